"""Prompts whose text the tokenizer's vocabulary cannot spell become its unknown token, which counts as content (it
is a real input position). A corpus where many content tokens are ``[UNK]`` (an English WordPiece model on
prompts in another script) measures the unknown token's one embedding at those positions, and nothing said so:
the content census now counts them, ``run.json`` records the share (``probes[<target>].unknown_content_share``)
and, from 5 %, a sentence (``unknown_content``) that report.md / report.html show under Models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import only_run_dir, run_pytest

pytest.importorskip("torch")

HIEROGLYPHS = "𓀀 𓀁 𓀂 and 𓀃"  # no WordPiece vocabulary of an English BERT spells these: [UNK] each


def test_the_census_counts_unknown_content_tokens() -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.probe.batching import content_census

    lm = load_model("minilm-l6")
    try:
        unk = lm.bridge.tokenizer.unk_token_id
        assert unk is not None
        plain = content_census(lm.bridge, ["the cat sat on the mat"], prepend_bos=lm.info.prepends_bos,
                               n_ctx=lm.info.n_ctx)
        assert plain.n_unknown == 0 and plain.unknown_share == 0.0
        mixed = content_census(lm.bridge, ["the cat sat on the mat", HIEROGLYPHS], prepend_bos=lm.info.prepends_bos,
                               n_ctx=lm.info.n_ctx)
        ids = lm.bridge.tokenizer(HIEROGLYPHS, add_special_tokens=False)["input_ids"]
        assert mixed.n_unknown == ids.count(unk) == 4  # the planted count: four glyphs, one [UNK] each
        assert mixed.n_content_tokens == plain.n_content_tokens + len(ids)
        assert mixed.unknown_examples == (HIEROGLYPHS[:40],)
        assert "4 of" in mixed.describe_unknown() and "unknown token" in mixed.describe_unknown()
    finally:
        lm.release()


def test_a_corpus_of_unknown_tokens_says_so_in_run_json_and_the_report(tmp_path: Path) -> None:
    prompts = tmp_path / "glyphs.txt"
    prompts.write_text(f"{HIEROGLYPHS}\nthe cat sat on the mat\n{HIEROGLYPHS} {HIEROGLYPHS}\n")
    proc, _ = run_pytest("claims/", "--model", "minilm-l6", "--prompts", str(prompts), "-k", "BF-1", "-q",
                         "--no-baselines", "-p", "no:cacheprovider", report_dir=tmp_path / "r", timeout=600)
    run_dir = only_run_dir(tmp_path / "r")
    probes = json.loads((run_dir / "run.json").read_text())["probes"]
    (entry,) = probes.values()
    # 12 glyphs of 21 content tokens (6 words, and 5 + 10 tokens of the glyph lines, "and" spelled)
    assert entry["unknown_content_share"] == pytest.approx(12 / 21), (entry, proc.stdout[-2000:])
    assert "unknown token" in entry["unknown_content"]
    md = (run_dir / "report.md").read_text()
    assert "## Models" in md and entry["unknown_content"][:60] in md
    assert entry["unknown_content"][:40] in (run_dir / "report.html").read_text().replace("&#x27;", "'")
