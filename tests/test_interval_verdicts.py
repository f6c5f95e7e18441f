"""Interval verdicts through the plugin: ``ctx.interval`` → passed / failed / inconclusive.

An inconclusive CI (straddling a band edge) is a pytest skip whose reason starts with
"inconclusive:", the outcome ``inconclusive`` in results.jsonl, ``?`` in the report matrix and the
terminal summary, and never a pass; a later definite failure in the same body still gives ✗, a
later crash still gives E. The per-prompt values are planted (rate 1.05 ± noise vs (1.04, 1.08)).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import load_report, only_run_dir, run_pytest

FAKE_CLAIMS = '''
import numpy as np
from lmfacts.claims import claim
from lmfacts.stats.verdict import bootstrap_mean

BAND = (1.04, 1.08)


def judge(ctx, rate, sd, seed=0, name="rate"):
    values = rate + sd * np.random.default_rng(seed).standard_normal(400)
    b = bootstrap_mean(values, seed=seed)
    ctx.measured(**{name: b.value})
    return ctx.interval(name, b.value, b.ci, BAND, n_resamples=b.n_resamples, method=b.method, level=b.level)


@claim("ZZ-11", title="small noise", source="test")
def test_small_noise(ctx):
    assert judge(ctx, 1.05, 0.01) == "passed"


@claim("ZZ-22", title="medium noise", source="test")
def test_medium_noise(ctx):
    assert judge(ctx, 1.05, 0.24) == "inconclusive"
    ctx.measured(after_interval=True)  # the body goes on after an inconclusive verdict


@claim("ZZ-33", title="rate too low", source="test")
def test_low_rate(ctx):
    judge(ctx, 1.02, 0.01)
    ctx.measured(never_reached=True)


@claim("ZZ-44", title="inconclusive, then a definite failure", source="test")
def test_inconclusive_then_fail(ctx):
    judge(ctx, 1.05, 0.24)
    r2 = 0.5
    ctx.check(r2 >= 0.9, f"R² {r2} < 0.9", r2=r2)


@claim("ZZ-55", title="inconclusive, then a crash", source="test")
def test_inconclusive_then_crash(ctx):
    judge(ctx, 1.05, 0.24)
    raise RuntimeError("boom after the interval")


@claim("ZZ-66", title="nan CI", source="test")
def test_nan_ci(ctx):
    ctx.interval("rate", 1.05, (float("nan"), 1.06), BAND, n_resamples=10, method="percentile", level=0.95)


@claim("ZZ-77", title="two intervals, one inconclusive", source="test")
def test_two_intervals(ctx):
    judge(ctx, 1.05, 0.24, name="rate")
    judge(ctx, 1.05, 0.01, seed=1, name="other_rate")
'''


def test_interval_outcomes_through_the_plugin(tmp_path: Path) -> None:
    module = tmp_path / "mod" / "test_fake_interval_claims.py"
    module.parent.mkdir()
    module.write_text(FAKE_CLAIMS)
    proc, _ = run_pytest(str(module), "--model", "tiny-gpt2", "--max-prompts", "4", "-rA", report_dir=tmp_path / "r")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    results = {r["claim"]: r for r in load_report(tmp_path / "r")["results"]}

    small = results["ZZ-11"]
    assert small["outcome"] == "passed", small
    entry = small["intervals"]["rate"]
    assert set(entry) == {"value", "ci", "band", "level", "n_resamples", "method", "verdict"}
    assert entry["verdict"] == "passed" and entry["band"] == [1.04, 1.08] and entry["n_resamples"] == 2000
    assert entry["method"] == "percentile" and entry["level"] == 0.95 and 1.04 < entry["ci"][0] < entry["ci"][1] < 1.08

    medium = results["ZZ-22"]
    assert medium["outcome"] == "inconclusive", medium
    assert medium["reason"].startswith("inconclusive: rate = 1.0"), medium["reason"]
    assert "straddles the band edge 1.04" in medium["reason"] and "CI [" in medium["reason"]
    assert medium["measured"]["after_interval"] is True
    lo, hi = medium["intervals"]["rate"]["ci"]
    assert lo < 1.04 < hi and medium["intervals"]["rate"]["verdict"] == "inconclusive"

    low = results["ZZ-33"]
    assert low["outcome"] == "failed", low
    assert "outside the expected band (1.04, 1.08)" in low["reason"] and "CI [1.0" in low["reason"]
    assert "never_reached" not in low["measured"] and low["intervals"]["rate"]["verdict"] == "failed"

    then_fail = results["ZZ-44"]
    assert then_fail["outcome"] == "failed" and "R² 0.5 < 0.9" in then_fail["reason"], then_fail
    assert then_fail["intervals"]["rate"]["verdict"] == "inconclusive"
    assert results["ZZ-55"]["outcome"] == "error" and "boom" in results["ZZ-55"]["reason"]
    nan = results["ZZ-66"]
    assert nan["outcome"] == "error" and "ci_low=nan" in nan["reason"], nan
    two = results["ZZ-77"]
    assert two["outcome"] == "inconclusive" and "rate " in two["reason"] and "other_rate" not in two["reason"]
    assert two["intervals"]["other_rate"]["verdict"] == "passed"

    # results.jsonl carries the same outcome
    run_dir = only_run_dir(tmp_path / "r")
    lines = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    assert {r["claim"]: r["outcome"] for r in lines}["ZZ-22"] == "inconclusive"
    # pytest counts it as a skip, labelled INCONCLUSIVE with its reason at the test's line; never as a pass
    skipped_lines = [line for line in out.splitlines() if line.startswith("INCONCLUSIVE")]
    assert len(skipped_lines) == 2 and all(": inconclusive: rate " in line for line in skipped_lines), out
    assert "test_fake_interval_claims.py:" in skipped_lines[0]
    assert "2 skipped" in out.strip().splitlines()[-1]
    assert not any(line.startswith("PASSED") and ("ZZ-22" in line or "ZZ-77" in line) for line in out.splitlines())
    failed_lines = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert failed_lines and all("ZZ-33" in line or "ZZ-44" in line for line in failed_lines), failed_lines
    # the terminal summary table and the markdown matrix show "?"
    summary = out[out.index("lmfacts replication report"):]
    assert "inconclusive" in summary.splitlines()[1], summary
    row = next(line for line in summary.splitlines() if line.startswith("ZZ-22"))
    assert row.split()[-1] == "?", row
    assert "? inconclusive (CI straddles a band edge; not a pass): 2" in summary
    assert "  ZZ-22 [tiny-gpt2]: inconclusive: rate " in summary
    md = (run_dir / "report.md").read_text()
    md_row = next(line for line in md.splitlines() if line.startswith("| **ZZ-22**"))
    assert "?" in md_row and "✓" not in md_row, md_row
    assert "Interval verdicts" in md and "| ZZ-22 | rate |" in md
    assert "| ZZ-44 |" in md and "✗" in next(line for line in md.splitlines() if line.startswith("| **ZZ-44**"))
    html = (run_dir / "report.html").read_text()
    assert "o-inconclusive" in html and "inconclusive: rate" in html
    counts = load_report(tmp_path / "r")["summary"]["counts"]
    assert counts["inconclusive"] == 2 and counts["passed"] == 1 and counts["failed"] == 2


def test_report_diff_keeps_inconclusive_as_its_own_outcome() -> None:
    """passed → inconclusive is an outcome change (with the CI in its reason), not a pass and not a
    regression; inconclusive → failed is not a regression either (it never passed)."""
    from lmfacts.report.diff import diff_runs, format_diff

    def run(run_id: str, outcomes: dict[str, tuple[str, str | None]]) -> dict:
        return {"run": {"id": run_id}, "results": [
            {"claim": c, "model": "m", "nodeid": f"t::{c}", "outcome": o, "reason": why, "measured": {}}
            for c, (o, why) in outcomes.items()]}

    reason = "inconclusive: rate 1.05, 95% CI [1.03, 1.07] (2000 resamples, percentile) straddles the band edge 1.04"
    a = run("A", {"RN-1": ("passed", None), "RN-3": ("inconclusive", reason)})
    b = run("B", {"RN-1": ("inconclusive", reason), "RN-3": ("failed", "rate 0.9")})
    diff = diff_runs(a, b)
    changes = {c.claim: (c.before, c.after) for c in diff.outcome_changes}
    assert changes == {"RN-1": ("passed", "inconclusive"), "RN-3": ("inconclusive", "failed")}
    assert diff.regressions == []
    text = format_diff(diff)
    assert "RN-1 [m] passed -> inconclusive" in text and "straddles the band edge 1.04" in text
