"""The matrix row of a claim with several checks shows the quantity and band that decided its verdict.

Input: an RN-3 record whose headline rates pass ``> 1`` but whose ``mlp_out_rate_diff`` (mlp_out's rate minus
the stream's) lies outside ±0.05. Was: the row read ``attn_out.rate | > 1 | 1.403 [..] ✗`` (a passing value
and band beside a ✗). Now: ``mlp_out_rate_diff | (-0.05, 0.05) | 0.081 [..] ✗``; with another model that passes,
the row keeps the headline and the failing cell names its quantity and band. Planted records, no run.
"""

from __future__ import annotations

import pytest

from lmfacts.report.markdown import render_markdown
from lmfacts.report.table import cell_for, deciding_quantity, lead_sentence, matrix


def _iv(value: float, ci: tuple[float, float], band: list, verdict: str) -> dict:
    return {"value": value, "ci": list(ci), "band": band, "level": 0.95, "n_resamples": 1000,
            "method": "percentile", "verdict": verdict}


def _rn3(model: str, diff: float, verdict: str, outcome: str) -> dict:
    return {"claim": "RN-3", "title": "attn_out and mlp_out grow at the stream's rate", "model": model,
            "nodeid": f"t[RN-3-{model}-cpu]", "device": "cpu", "dtype": "float32", "outcome": outcome,
            "headline": ["attn_out.rate", "mlp_out.rate"],
            "measured": {"attn_out": {"rate": 1.403}, "mlp_out": {"rate": 1.25}},
            "intervals": {"attn_out_rate": _iv(1.403, (1.39, 1.41), [1.0, None], "passed"),
                          "attn_out_rate_diff": _iv(0.01, (0.0, 0.02), [-0.05, 0.05], "passed"),
                          "mlp_out_rate": _iv(1.25, (1.24, 1.26), [1.0, None], "passed"),
                          "mlp_out_rate_diff": _iv(diff, (diff - 0.01, diff + 0.01), [-0.05, 0.05], verdict)},
            "expected": {"sub_rate_min": 1.0, "rate_diff_max": 0.05},
            "reason": "mlp_out rate − stream rate lies outside the expected band" if outcome != "passed" else None}


def test_a_failed_row_shows_the_failing_check_and_its_band():
    failed = _rn3("m", 0.081, "failed", "failed")
    assert deciding_quantity(failed).name == "mlp_out_rate_diff"
    _, rows = matrix({"run": {"id": "r"}, "models": [], "results": [failed]})
    (row,) = rows
    assert (row.quantity, row.expected, row.cells["m"].text) == ("mlp_out_rate_diff", "(-0.05, 0.05)",
                                                                 "0.081 [0.071, 0.091] ✗")
    md_row = next(line for line in render_markdown({"run": {"id": "r"}, "models": [], "results": [failed]})
                  .splitlines() if line.startswith("| **RN-3**"))
    assert "mlp_out_rate_diff" in md_row and "(-0.05, 0.05)" in md_row and "> 1" not in md_row, md_row
    assert "mlp_out_rate_diff = 0.081" in lead_sentence(failed) and "expected (-0.05, 0.05)" in lead_sentence(failed)


def test_models_deciding_on_different_checks_name_theirs():
    results = [_rn3("a", 0.01, "passed", "passed"), _rn3("b", 0.081, "failed", "failed"),
               _rn3("c", 0.05, "inconclusive", "inconclusive")]
    _, rows = matrix({"run": {"id": "r"}, "models": [], "results": results})
    (row,) = rows
    assert row.quantity == "attn_out.rate" and not row.uniform
    assert row.cells["a"].text == "1.403 [1.39, 1.41] ✓" and row.cells["a"].expected == "> 1"
    assert row.cells["b"].value == "mlp_out_rate_diff=0.081" and row.cells["b"].expected == "(-0.05, 0.05)"
    assert row.cells["c"].value.startswith("mlp_out_rate_diff=0.05") and row.cells["c"].expected == "(-0.05, 0.05)"
    # several devices in one cell: each record names a quantity other than the row's
    two = cell_for([_rn3("b", 0.01, "passed", "passed"), _rn3("b", 0.081, "failed", "failed")], "attn_out.rate")
    assert "mlp_out_rate_diff=0.081 [0.071, 0.091] ✗" in two.mark and "1.403 [1.39, 1.41] ✓" in two.mark


def test_a_point_check_failure_shows_the_checked_value():
    """A failure no interval verdict decided (ctx.check, e.g. the point estimate with < 2 prompts): the
    cell shows the failed check's first operand, not the passing headline value; the record keeps the check."""
    from lmfacts.context import ClaimContext, ClaimFailed
    from lmfacts.report.recorder import ClaimRecord

    ctx = ClaimContext.__new__(ClaimContext)
    ctx.record = ClaimRecord(claim="RN-1", title="t", source="s", nodeid="n", model="m", device="cpu",
                             dtype="float32", processing="compat")
    ctx.check(True, "rate fine", rate=1.2)
    with pytest.raises(ClaimFailed):
        ctx.check(False, "R² 0.8 < 0.9", r2=0.8, min_r2=0.9)
    rec = ctx.record.to_dict()
    assert rec["failed_check"] == {"message": "R² 0.8 < 0.9", "operands": {"r2": 0.8, "min_r2": 0.9}}
    rec.update(outcome="failed", headline=["rate"], measured={"rate": 1.2, "r2": 0.8},
               expected={"rate_band": [1.0, None], "min_r2": 0.9}, reason="R² 0.8 < 0.9")
    _, rows = matrix({"run": {"id": "r"}, "models": [], "results": [rec]})
    (row,) = rows
    assert (row.quantity, row.cells["m"].text) == ("r2", "0.8 ✗")
    assert "min_r2=0.9" in row.expected
