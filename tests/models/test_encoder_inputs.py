"""Encoders beyond BERT: an unsupported architecture is a clear usage error, and a RoBERTa prompt keeps the
closing ``</s>`` its tokenizer appends (TransformerBridge strips a trailing EOS, right only for decoders).

Every model here is built in the test: random weights, 2 layers, d_model 32, saved with ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_TINY = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)


def _byte_bpe_roberta_tokenizer():
    """A RoBERTa-style byte-level tokenizer as released: <s>=0 <pad>=1 </s>=2 <unk>=3, 256 bytes, <mask>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import RobertaTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return RobertaTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def _save(model_cls, config, tok, out: Path) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_cls(config)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def albert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ALBERT (not a TransformerBridge architecture) with a RoBERTa-style tokenizer."""
    from transformers import AlbertConfig, AlbertForMaskedLM

    tok = _byte_bpe_roberta_tokenizer()
    cfg = AlbertConfig(vocab_size=len(tok), embedding_size=16, max_position_embeddings=64, pad_token_id=1, **_TINY)
    return _save(AlbertForMaskedLM, cfg, tok, tmp_path_factory.mktemp("enc") / "tiny-albert")


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random RoBERTa as released: pad_token_id 1, positions from 2, 66 = 64 + 2 position rows."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    tok = _byte_bpe_roberta_tokenizer()
    cfg = RobertaConfig(vocab_size=len(tok), max_position_embeddings=66, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, type_vocab_size=1, **_TINY)
    return _save(RobertaForMaskedLM, cfg, tok, tmp_path_factory.mktemp("enc") / "tiny-roberta")


def test_loader_names_an_unsupported_architecture_before_reading_weights(albert_dir: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.support import UnsupportedArchitectureError

    (albert_dir / "model.safetensors").rename(albert_dir / "weights-moved-away")  # never read: config decides
    try:
        with pytest.raises(UnsupportedArchitectureError) as err:
            load_model(str(albert_dir))
    finally:
        (albert_dir / "weights-moved-away").rename(albert_dir / "model.safetensors")
    msg = str(err.value)
    assert str(albert_dir) in msg and "AlbertForMaskedLM" in msg
    assert "BertForMaskedLM" in msg and "RobertaForMaskedLM" in msg and "LlamaForCausalLM" in msg
    assert "ViTModel" not in msg  # only architectures a claim can run on are offered


def test_unsupported_architecture_is_a_usage_error_not_a_traceback_per_claim(albert_dir: Path,
                                                                              tmp_path: Path) -> None:
    proc, seconds = run_pytest("claims/", "--model", str(albert_dir), "--model", "tiny-gpt2", "-q",
                               report_dir=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]  # pytest's usage-error exit code, before any test runs
    assert f"model {str(albert_dir)!r} cannot be run" in out and "Supported encoders: BertForMaskedLM" in out
    assert "Traceback" not in out and "passed" not in out
    assert not any(tmp_path.iterdir())  # no run started
    assert seconds < 120, seconds  # transformer_lens import only; no weights (inflated by shared CPUs)


def test_roberta_prompts_keep_their_closing_separator(roberta_dir: Path) -> None:
    """The ids fed to a RoBERTa are ``<s> … </s>`` (the template it was pre-trained on); the ``</s>`` is a
    special position, never content; a truncated prompt keeps ``</s>`` last; a decoder is unchanged."""
    from lmfacts.models.loading import load_model
    from lmfacts.probe.batching import SPECIAL, make_batch, tokenize_one

    lm = load_model(str(roberta_dir))
    bridge = lm.bridge
    assert bridge.cfg.tokenizer_appends_eos  # what makes TransformerBridge strip it
    ids, cut = tokenize_one(bridge, "hi there", prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx)
    assert not cut and ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 1, ids
    batch = make_batch(bridge, ["hi there", "a longer prompt than that"], prepend_bos=True, n_ctx=64,
                       padding_side="right", pad_id=1, device="cpu")
    assert int(batch.classes[0, len(ids) - 1]) == SPECIAL
    long_ids, cut = tokenize_one(bridge, "word " * 40, prepend_bos=True, n_ctx=lm.info.n_ctx)
    assert cut and len(long_ids) == lm.info.n_ctx == 64 and long_ids[0] == 0 and long_ids[-1] == 2
    assert bridge.cfg.tokenizer_appends_eos  # restored for anything else that reads it


def test_decoder_that_appends_eos_still_has_it_stripped(tmp_path: Path) -> None:
    """The OLMo case TransformerBridge strips the EOS for stays as it is: only encoders keep the closing token."""
    from lmfacts.models.loading import build_tiny_model
    from lmfacts.probe.batching import tokenize_one

    lm = build_tiny_model("tiny-llama")
    bridge = lm.bridge
    bridge.cfg.tokenizer_appends_eos = True
    bridge.tokenizer._tokenizer.post_processor = __import__("tokenizers").processors.TemplateProcessing(
        single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", 0)])
    raw = bridge.tokenizer("hi")["input_ids"]
    assert raw[-1] == 0  # the tokenizer appends it …
    stripped = bridge.to_tokens("hi", prepend_bos=True, truncate=False, move_to_device=False)[0].tolist()
    assert 0 not in stripped[1:]  # … the bridge strips it …
    ids, _ = tokenize_one(bridge, "hi", prepend_bos=True, n_ctx=64)
    assert ids == stripped  # … and lmfacts feeds the decoder what the bridge gives


def test_unsupported_architecture_in_the_hf_cache_is_a_usage_error(albert_dir: Path, tmp_path: Path) -> None:
    """A hub id whose cached config.json names an unsupported architecture: the same usage error, no hub asked."""
    import shutil

    from lmfacts.models.tiny import FAKE_COMMIT

    repo = tmp_path / "hub" / "models--lmfacts-test--tiny-albert"
    shutil.copytree(albert_dir, repo / "snapshots" / FAKE_COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FAKE_COMMIT)
    proc, _ = run_pytest("claims/", "--model", "lmfacts-test/tiny-albert", "-q", report_dir=tmp_path / "r",
                         env={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    assert "model 'lmfacts-test/tiny-albert' cannot be run" in out and "AlbertForMaskedLM" in out
    assert "Traceback" not in out
