"""RS-3 / RS-4 on inputs whose next-token losses are degenerate. (1) A one-token prompt without a BOS (tiny-neox,
Pythia-style: no BOS prepended; a user --prompts line 'a') has no next-token target, so its per-prompt loss is
NaN by LossResult's contract and loss_delta_ci drops it; the ctx.finite check before the bootstrap counted it and
both claims were E 'non-finite value(s) … base=1 of 4 non-finite'. (2) A corpus of special tokens only
('<|endoftext|>' lines): RS-3 passed and RS-4 failed on losses over special-token targets; now the run's corpus
error (NoContentTokensError), as every probe claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import only_run_dir, run_pytest

pytest.importorskip("torch")


def _records(report_dir: Path) -> dict[str, dict]:
    lines = (only_run_dir(report_dir) / "results.jsonl").read_text().splitlines()
    return {r["claim"]: r for r in map(json.loads, lines)}


def test_a_one_token_prompt_without_bos_is_left_out_not_an_error(tmp_path: Path) -> None:
    prompts = tmp_path / "short.txt"
    prompts.write_text("a\nThe cat sat on the mat and looked out of the window.\n"
                       "In 1990 the city built a new bridge over the river.\n"
                       "She opened the door and walked into the garden slowly.\n")
    run_pytest("claims/", "--model", "tiny-neox", "--prompts", str(prompts), "-k", "RS-3 or RS-4", "-q",
               report_dir=tmp_path / "r")
    recs = _records(tmp_path / "r")
    assert set(recs) == {"RS-3", "RS-4"}
    for claim, rec in recs.items():
        assert rec["outcome"] != "error", (claim, rec["reason"])
        assert "non-finite" not in (rec["reason"] or ""), (claim, rec["reason"])


def test_a_special_token_corpus_is_the_corpus_error(tmp_path: Path) -> None:
    prompts = tmp_path / "eos.txt"
    eos = "<|endoftext|>"
    prompts.write_text(f"{eos}\n{eos * 2}\n{eos * 3}\n")
    run_pytest("claims/", "--model", "tiny-llama", "--prompts", str(prompts), "-k", "RS-3 or RS-4", "-q",
               report_dir=tmp_path / "r")
    recs = _records(tmp_path / "r")
    assert set(recs) == {"RS-3", "RS-4"}
    for claim, rec in recs.items():
        assert rec["outcome"] == "error", (claim, rec)
        assert "no prompt of the run has a content token" in rec["reason"], (claim, rec["reason"])
