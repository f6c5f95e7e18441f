"""Measured baselines (lmfacts.measures.baseline): bands, validation, and that a baseline only adds failures."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lmfacts.context import ClaimContext
from lmfacts.expectations import Resolved
from lmfacts.measures.baseline import (
    BaselineError,
    baseline_guard,
    check_baseline,
    compare_to_baseline,
)
from lmfacts.options import Target
from lmfacts.report.recorder import ClaimRecord

SHA = "9416b9563cf5065d0678754ebfa2e3dc2c33d755790b46103f98053dd52b5e7c"


def _ctx(params: dict[str, Any] | None = None, *, sha: str = SHA, n_probe: int = 227,
         sample_tokens: int | None = None) -> ClaimContext:
    corpus = SimpleNamespace(sha256=sha)
    session = SimpleNamespace(corpus=corpus, probe_texts=lambda: ["p"] * n_probe,
                              options=SimpleNamespace(probe_sample_tokens=sample_tokens))
    ctx = ClaimContext(session, Target("fake", "cpu"))  # type: ignore[arg-type]
    ctx.begin(None, ClaimRecord("X-1", "t", "s", "n", "fake", "cpu", "float32", "raw"))  # type: ignore[arg-type]
    res = Resolved("X-1", params=dict(params or {}), kind="measured")
    res.measured_by = {"lmfacts": "0.1.0", "date": "2026-11-23", "corpus_sha256": SHA, "n_prompts": 227}
    ctx.expectation = res
    return ctx


# ---- the pure comparison ------------------------------------------------------------------------
def test_inside_band_passes_and_outside_fails() -> None:
    r = compare_to_baseline({"rate": 1.0499}, {"rate": 1.0}, rtol=0.05)
    assert r.ok and r.deviations[0].allowed == pytest.approx(0.05)
    r = compare_to_baseline({"rate": 1.0501}, {"rate": 1.0}, rtol=0.05)
    assert not r.ok and [d.key for d in r.violations] == ["rate"]
    assert "rate = 1.0501" in r.message()
    # below the band fails too (a regression guard is two-sided)
    assert not compare_to_baseline({"rate": 0.9}, {"rate": 1.0}, rtol=0.05).ok


def test_atol_rtol_per_key_and_sum() -> None:
    base = {"share": 0.0, "kurt": 80.0}
    r = compare_to_baseline({"share": 0.03, "kurt": 83.9}, base, rtol={"kurt": 0.05}, atol={"share": 0.0345})
    assert r.ok
    assert not compare_to_baseline({"share": 0.04, "kurt": 80.0}, base, rtol={"kurt": 0.05},
                                   atol={"share": 0.0345}).ok
    # atol + rtol·|b| (numpy.isclose convention)
    assert compare_to_baseline({"x": 10.6}, {"x": 10.0}, rtol=0.05, atol=0.1).ok
    assert not compare_to_baseline({"x": 10.61}, {"x": 10.0}, rtol=0.05, atol=0.1).ok
    assert np.isclose(10.6, 10.0, rtol=0.05, atol=0.1)


def test_numpy_scalars_and_non_finite() -> None:
    assert compare_to_baseline({"x": np.float32(1.0)}, {"x": 1}, atol=0.0).ok
    for bad in (math.nan, math.inf, None, "1.0"):
        r = compare_to_baseline({"x": bad}, {"x": 1.0}, rtol=10.0)
        assert not r.ok, bad


@pytest.mark.parametrize(("measured", "baseline", "rtol", "atol", "match"), [
    ({"a": 1.0}, {"b": 1.0}, 0.1, None, "not measured by this claim"),
    ({"a": 1.0}, {"a": 1.0}, None, None, "no tolerance"),
    ({"a": 1.0}, {"a": 1.0}, {"b": 0.1}, None, "without a baseline value"),
    ({"a": 1.0}, {"a": True}, 0.1, None, "finite number"),
    ({"a": 1.0}, {"a": 1.0}, -0.1, None, "≥ 0"),
])
def test_malformed_baselines_are_errors(measured: dict, baseline: dict, rtol: Any, atol: Any, match: str) -> None:
    with pytest.raises(BaselineError, match=match):
        compare_to_baseline(measured, baseline, rtol, atol)


# ---- recording and failing through ctx ------------------------------------------------------------
def test_check_baseline_records_and_fails_outside_band() -> None:
    ctx = _ctx()
    check_baseline(ctx, {"share": 0.34}, {"share": 0.3448}, atol=0.0345)
    rec = ctx.record
    assert rec.expected["baseline"] == {"share": 0.3448} and rec.tolerance["baseline_atol"] == 0.0345
    assert rec.measured["baseline_ok"] is True and rec.measured["baseline_deviation"]["share"]["within"]
    ctx = _ctx()
    with pytest.raises(pytest.fail.Exception):
        check_baseline(ctx, {"share": 0.40}, {"share": 0.3448}, atol=0.0345)
    assert "regression guard" in ctx.record.reason and ctx.record.measured["baseline_ok"] is False


def test_guard_without_baseline_does_nothing() -> None:
    ctx = _ctx({"min_share": 0.5})
    with baseline_guard(ctx, {"share": 0.1}, scope="probe") as res:
        assert res is None
    assert "baseline_ok" not in ctx.record.measured


def test_guard_passing_predicate_but_value_outside_band_fails() -> None:
    ctx = _ctx({"baseline": {"share": 0.8}, "baseline_atol": 0.2})
    with pytest.raises(pytest.fail.Exception, match="regression guard"), \
            baseline_guard(ctx, {"share": 0.5}, scope="probe"):
        ctx.check(0.5 >= 0.5, "predicate", share=0.5)  # the general predicate holds
    assert ctx.record.measured["baseline_deviation"]["share"]["within"] is False


def test_guard_never_turns_a_failing_predicate_into_a_pass() -> None:
    # value inside the band, predicate fails: the claim still fails with the predicate's reason
    ctx = _ctx({"baseline": {"share": 0.34}, "baseline_atol": 0.0345})
    with pytest.raises(pytest.fail.Exception, match="only 0.34"), baseline_guard(ctx, {"share": 0.34}, scope="probe"):
        ctx.check(False, "only 0.34 of points", share=0.34)
    assert ctx.record.reason == "only 0.34 of points" and ctx.record.measured["baseline_ok"] is True
    # both fail: the predicate's reason stays first, the violation is appended
    ctx = _ctx({"baseline": {"share": 0.34}, "baseline_atol": 0.0345})
    with pytest.raises(pytest.fail.Exception), baseline_guard(ctx, {"share": 0.10}, scope="probe"):
        ctx.check(False, "only 0.10 of points", share=0.10)
    assert ctx.record.reason.startswith("only 0.10 of points; measured baseline violated")


def test_guard_lets_skips_through() -> None:
    ctx = _ctx({"baseline": {"share": 0.8}, "baseline_atol": 0.2})
    with pytest.raises(pytest.skip.Exception), baseline_guard(ctx, {"share": 0.0}, scope="probe"):
        ctx.skip("not applicable")


@pytest.mark.parametrize(("kw", "scope", "compared"), [
    ({}, "probe", True),
    ({"n_probe": 48}, "probe", False),  # --max-prompts: another prompt set
    ({"n_probe": 48}, "corpus", True),  # a fixed seeded sample of the full corpus is unaffected
    ({"sample_tokens": 64}, "probe", False),
    ({"sha": "0" * 64}, "corpus", False),
    ({"sha": "0" * 64, "n_probe": 3}, "weights", True),
])
def test_guard_compares_only_on_the_baseline_prompt_set(kw: dict, scope: Any, compared: bool) -> None:
    ctx = _ctx({"baseline": {"share": 0.8}, "baseline_atol": 0.01}, **kw)
    if compared:
        with pytest.raises(pytest.fail.Exception), baseline_guard(ctx, {"share": 0.5}, scope=scope):
            pass
        assert ctx.record.measured["baseline_status"] == "compared"
    else:
        with baseline_guard(ctx, {"share": 0.5}, scope=scope) as res:
            assert res is None
        assert ctx.record.measured["baseline_status"].startswith("not compared")
        assert ctx.record.expected["baseline"] == {"share": 0.8}


def test_guard_rejects_unknown_keys_even_when_not_compared() -> None:
    ctx = _ctx({"baseline": {"shrae": 0.8}, "baseline_atol": 0.01}, n_probe=48)
    with pytest.raises(BaselineError, match="shrae"), baseline_guard(ctx, {"share": 0.5}, scope="probe"):
        pass
