"""A model directory without a usable tokenizer: saved with ``model.save_pretrained`` alone (no tokenizer files),
or with a vocabulary that holds only the special tokens. transformers then either fails deep inside
(Llama) or builds a tokenizer that maps every word to one id (BERT: all ``[UNK]``; GPT-2: a 1-token
vocabulary), and every activation claim would have measured that. Both are clear errors naming the
directory; a tokenizer trained on other text (DNA letters) still loads. Models built here: 2 layers, d 32."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_pytest

torch = pytest.importorskip("torch")


def _save_model(kind: str, vocab_size: int, out: Path) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    common = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64, vocab_size=vocab_size)
    if kind == "bert":
        cfg, auto = AutoConfig.for_model("bert", pad_token_id=0, **common), AutoModelForMaskedLM
    else:
        cfg, auto = AutoConfig.for_model(kind, bos_token_id=None, eos_token_id=None, pad_token_id=None,
                                         **common), AutoModelForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        auto.from_config(cfg).save_pretrained(str(out))
    return out


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_directory_without_tokenizer_files_is_named(kind: str, tmp_path: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.support import UnusableTokenizerError

    out = _save_model(kind, 200, tmp_path / kind)
    with pytest.raises(UnusableTokenizerError) as err:
        load_model(str(out))
    assert f"{out} has no tokenizer files" in str(err.value) and "tokenizer.save_pretrained" in str(err.value)


def test_specials_only_vocabulary_cannot_spell_text(tmp_path: Path) -> None:
    """vocab.txt with only [PAD] [UNK] [CLS] [SEP] [MASK]: every word becomes [UNK]."""
    from transformers import BertTokenizerFast

    from lmfacts.models.loading import load_model
    from lmfacts.models.support import UnusableTokenizerError

    out = _save_model("bert", 200, tmp_path / "bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    BertTokenizerFast(vocab={t: i for i, t in enumerate(specials)}).save_pretrained(str(out))
    with pytest.raises(UnusableTokenizerError) as err:
        load_model(str(out))
    assert "cannot spell text" in str(err.value) and "5 tokens" in str(err.value) and "200 embedding rows" in str(
        err.value)


def test_a_small_vocabulary_for_other_text_still_loads(tmp_path: Path) -> None:
    """A 6-letter DNA WordPiece vocabulary: English maps to [UNK], but it is not less than half of d_vocab."""
    from transformers import BertTokenizerFast

    from lmfacts.models.loading import load_model

    out = _save_model("bert", 12, tmp_path / "dna")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "G", "T", "N", "##A", "##C"]
    BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(str(out))
    assert load_model(str(out)).info.d_vocab == 12


def test_missing_tokenizer_is_a_usage_error_before_any_test(tmp_path: Path) -> None:
    out = _save_model("gpt2", 200, tmp_path / "gpt2")
    proc, _ = run_pytest("claims/", "--model", str(out), "-q", report_dir=tmp_path / "r")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 4, text[-2000:]
    assert f"{out} has no tokenizer files" in text and "Traceback" not in text
