"""Prompts that a model's tokenizer turns into special tokens only (``"\\u200b"`` → ``[CLS] [SEP]`` with a
BERT-style normalizer, which drops invisible characters): a corpus made only of them is a clear error naming the
model, the prompts and their tokens (was: RS-1 ``ZeroDivisionError`` in the probe, RN-9 a bare ``ValueError``,
other claims skipped as if the model had been measured); a corpus with some of them says so in ``run.json``.

The model is built in the test: a tiny random Llama with the byte tokenizer and a BertNormalizer in front.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import only_run_dir, run_pytest, save_random_causal_lm

pytest.importorskip("torch")

#: Invisible-only prompts: each is one or more format characters (Unicode Cf) BertNormalizer removes.
INVISIBLE = ["\u200b", "\ufeff", "\u200b\u200c", "\u200d\u2060"]


def _drop_invisible(tokenizer) -> None:
    from tokenizers import normalizers

    tokenizer.backend_tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                                                        strip_accents=False, lowercase=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    out = save_random_causal_lm(tmp_path_factory.mktemp("census") / "tiny-llama-bertnorm", "llama",
                                num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                                intermediate_size=64, max_position_embeddings=128)
    tok = AutoTokenizer.from_pretrained(str(out))
    _drop_invisible(tok)
    tok.save_pretrained(str(out))
    assert AutoTokenizer.from_pretrained(str(out))("\u200b", add_special_tokens=False)["input_ids"] == []
    return out


def _prompts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_census_counts_prompts_without_content() -> None:
    from lmfacts.models.loading import build_tiny_model
    from lmfacts.probe.batching import content_census

    lm = build_tiny_model("tiny-llama")
    bridge = lm.bridge
    plain = content_census(bridge, ["hi", "\u200b"], prepend_bos=True, n_ctx=64)
    assert plain.without_content == () and plain.n_content_tokens == 2 + 3  # bytes: 'h','i' and U+200B's 3
    _drop_invisible(bridge.tokenizer)
    census = content_census(bridge, ["hi", *INVISIBLE], prepend_bos=True, n_ctx=64)
    assert census.n_prompts == 5 and census.n_content_tokens == 2
    assert census.without_content == (1, 2, 3, 4)
    assert census.examples[0] == ("\u200b", ("<|endoftext|>",))  # the prepended BOS alone
    assert len(census.examples) == 3 and "4 of 5 prompts have no content token" in census.describe()


def test_a_corpus_without_content_is_an_error_naming_it(model_dir: Path, tmp_path: Path) -> None:
    prompts = _prompts(tmp_path / "invisible.jsonl", INVISIBLE)
    proc, _ = run_pytest("claims/", "--model", str(model_dir), "--prompts", str(prompts), "-k", "RS-1 or RN-9",
                         "-q", report_dir=tmp_path / "r")
    out = proc.stdout + proc.stderr
    assert "ZeroDivisionError" not in out, out[-3000:]
    results = [json.loads(line) for line in (only_run_dir(tmp_path / "r") / "results.jsonl").read_text().splitlines()]
    by_claim = {r["claim"]: r for r in results}
    for claim in ("RS-1", "RN-9"):
        rec = by_claim[claim]
        assert rec["outcome"] == "error", rec
        assert "no prompt of the run has a content token" in rec["reason"], rec["reason"]
        assert "4 of 4 prompts" in rec["reason"] and "'\\u200b' → ['<|endoftext|>']" in rec["reason"], rec["reason"]


def test_some_prompts_without_content_are_named_in_run_json(model_dir: Path, tmp_path: Path) -> None:
    prompts = _prompts(tmp_path / "mixed.jsonl", ["The cat sat on the mat and looked around.", *INVISIBLE[:2]])
    proc, _ = run_pytest("claims/", "--model", str(model_dir), "--prompts", str(prompts), "-k", "RS-1", "-q",
                         report_dir=tmp_path / "r")
    out = proc.stdout + proc.stderr
    run = json.loads((only_run_dir(tmp_path / "r") / "run.json").read_text())
    probes = next(iter(run["probes"].values()))
    assert "2 of 3 prompts have no content token" in probes["prompts_without_content"], (probes, out[-2000:])
    assert "ZeroDivisionError" not in out


def test_gradients_of_a_special_token_corpus_are_an_error_not_a_finding(model_dir: Path, tmp_path: Path) -> None:
    """Prompts of the BOS string only ('<|endoftext|>' lines) have next-token targets, all special tokens: BF-6
    judged the gradients of their losses and failed ('only 0.00 of per-example QKV gradients are zero-mean
    Gaussian'), a ✗ about no text at all. It is the corpus error every probe claim of the run gives."""
    eos = "<|endoftext|>"
    prompts = _prompts(tmp_path / "bos-only.jsonl", [eos, eos * 2, eos * 3])
    run_pytest("claims/", "--model", str(model_dir), "--prompts", str(prompts), "-k", "BF-6 or RS-1", "-q",
               report_dir=tmp_path / "r")
    results = [json.loads(line) for line in (only_run_dir(tmp_path / "r") / "results.jsonl").read_text().splitlines()]
    by_claim = {r["claim"]: r for r in results}
    for claim in ("RS-1", "BF-6"):
        rec = by_claim[claim]
        assert rec["outcome"] == "error", rec
        assert "no prompt of the run has a content token" in rec["reason"], rec["reason"]
        assert "3 of 3 prompts" in rec["reason"], rec["reason"]
