"""``prepends_bos`` is measured, not read off ``cfg.default_prepend_bos``: when TransformerBridge's tokenisation puts
no BOS in front, the first word of every prompt was classed as the BOS (RN-2's BOS norm, AS-1's sink, MA-2's "first"
measured on a word). Two tokenizers do that, both built here (tiny random models, saved with their tokenizer):

* a decoder tokenizer with ``<unk>`` and no BOS/EOS: the bridge names ``'<|endoftext|>'`` its BOS, which maps to
  ``<unk>`` (id 0, inside the vocabulary), and ``to_tokens`` skips it (not one token of the vocabulary);
* an encoder whose generic tokenizer adds ``[CLS] … [SEP]`` by its template: TransformerLens reloads it with
  ``add_bos_token=True``, which rebuilds the template without them; lmfacts restores it from the saved files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import only_run_dir, run_pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _byte_tokenizer(specials: list[str], template: str | None = None, **kwargs: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=kwargs.get("unk_token")))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    if template:
        tk.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(s, vocab[s]) for s in specials if s in template])
    return PreTrainedTokenizerFast(tokenizer_object=tk, **kwargs)


def _save(model, tok, out: Path) -> Path:
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def unk_only_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _byte_tokenizer(["<unk>"], unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128,
                      bos_token_id=None, eos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg)
    return _save(model, tok, tmp_path_factory.mktemp("bosfed") / "tiny-llama-unk-only")


@pytest.fixture(scope="module")
def bert_template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    tok = _byte_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], template="[CLS] $A [SEP]",
                          pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                          mask_token="[MASK]")
    assert tok("hi")["input_ids"] == [2, 72 + 4, 73 + 4, 3]  # the template the model was trained with
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertForMaskedLM(cfg)
    return _save(model, tok, tmp_path_factory.mktemp("bosfed") / "tiny-bert-template")


def test_a_bos_that_maps_to_unk_is_no_bos(unk_only_dir: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.names import ModelOptionError
    from lmfacts.probe.batching import CONTENT, position_classes, special_ids, tokenize_one

    lm = load_model(str(unk_only_dir))
    info = lm.info
    assert not info.prepends_bos and info.bos_token_id is None and info.bos_note is None
    assert any("maps to the unknown token '<unk>'" in n for n in info.notes), info.notes
    ids, _ = tokenize_one(lm.bridge, "hi", prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    classes = position_classes(ids, prepend_bos=info.prepends_bos, specials=special_ids(lm.bridge))
    assert classes.tolist() == [CONTENT, CONTENT]  # 'h' is not a BOS
    with pytest.raises(ModelOptionError, match="no BOS token to prepend"):
        load_model(str(unk_only_dir), prepend_bos="always")


def test_an_encoders_lost_template_is_restored(bert_template_dir: Path) -> None:
    """The encoder is fed ``[CLS] … [SEP]`` as its tokenizer files say (was: the bare text, and 'h' classed BOS)."""
    from lmfacts.models.loading import load_model
    from lmfacts.probe.batching import BOS, CONTENT, SPECIAL, position_classes, special_ids, tokenize_one

    lm = load_model(str(bert_template_dir))
    info = lm.info
    assert info.is_encoder and info.prepends_bos and info.bos_token_id == 2
    assert any("template restored" in n and "[CLS] … [SEP]" in n for n in info.notes), info.notes
    ids, _ = tokenize_one(lm.bridge, "hi", prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    assert ids == [2, 76, 77, 3], ids
    classes = position_classes(ids, prepend_bos=True, specials=special_ids(lm.bridge)).tolist()
    assert classes == [BOS, CONTENT, CONTENT, SPECIAL]
    long_ids, cut = tokenize_one(lm.bridge, "word " * 40, prepend_bos=True, n_ctx=info.n_ctx)
    assert cut and long_ids[0] == 2 and long_ids[-1] == 3 and len(long_ids) == info.n_ctx


def test_an_encoder_fed_no_class_token_is_said_to_have_no_bos(bert_template_dir: Path) -> None:
    """Where the template cannot be restored (here: undone after loading), check_bos_fed drops the BOS."""
    from lmfacts.models.loading import check_bos_fed, load_model

    lm = load_model(str(bert_template_dir))
    from tokenizers import processors

    lm.bridge.tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A")
    lm.bridge.cfg.tokenizer_prepends_bos = False
    check_bos_fed(lm.bridge, lm.info)
    assert not lm.info.prepends_bos and lm.info.bos_token_id is None
    assert any("not its BOS '[CLS]' (id 2)" in n for n in lm.info.notes), lm.info.notes


def test_models_with_a_real_bos_are_unchanged() -> None:
    from lmfacts.models.loading import build_tiny_model

    for name, prepends in (("tiny-llama", True), ("tiny-bert", True), ("tiny-neox", False)):
        info = build_tiny_model(name).info
        assert info.prepends_bos is prepends and info.bos_token_id == 0, name
        assert not any("no usable BOS" in n for n in info.notes), name


def test_the_first_word_is_content_in_a_run(unk_only_dir: Path, tmp_path: Path) -> None:
    """RN-1's position counts over 8 prompts: no BOS position, every real position content (was: 8 'bos'), and
    RN-2 skips on its bos_prepended premise."""
    proc, _ = run_pytest("claims/", "--model", str(unk_only_dir), "-k", "RN-1- or RN-2-", "--max-prompts", "8",
                         "-q", report_dir=tmp_path)
    out = proc.stdout + proc.stderr
    records = [json.loads(line) for line in (only_run_dir(tmp_path) / "results.jsonl").read_text().splitlines()]
    by_claim = {r["claim"]: r for r in records}
    counts = by_claim["RN-1"]["measured"]["position_counts"]
    assert counts.get("bos", 0) == 0 and counts["content"] > 0, (counts, out[-2000:])
    rn2 = by_claim["RN-2"]
    assert rn2["outcome"] == "skipped" and "bos_prepended" in rn2["reason"], (rn2["outcome"], rn2["reason"])
