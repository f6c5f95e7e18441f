"""Measured baselines: regression guards checked in addition to a claim's general predicate.

An expectation entry may carry, in its ``params``::

    baseline = { share = 0.3448, median_hill_tail_index = 1.484 }   # measured values, by key
    baseline_rtol = 0.05                                             # relative tolerance: a number,
    baseline_atol = { share = 0.0345 }                               # or a table by key (missing key: 0)

A value ``v`` is within its band when ``|v − b| ≤ atol + rtol·|b|`` (the ``numpy.isclose``
convention; non-finite values never are). At least one of the tolerances must be given for every key:
a baseline without a tolerance is an error, never an implicit exact match.

A baseline can only *add* a failure: :func:`baseline_guard` runs the claim's own checks inside it; if
they fail, the claim fails with its own reason (a finding) and a baseline violation is appended to that
reason; if they pass, the baseline is checked and a value outside its band fails the claim.

Comparability: a baseline is measured on one prompt set (``measured_by.corpus_sha256`` and
``measured_by.n_prompts``). Statistics of the corpus probe (``scope="probe"``) are compared only when the
run probes the same prompts with the default token sampling; statistics on a fixed seeded sample of the
corpus (``scope="corpus"``) only when the corpus file is the same; weight statistics (``scope="weights"``)
always. A baseline that cannot be compared is recorded as such (``baseline_status``) and not checked.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

Scope = Literal["weights", "corpus", "probe"]
SCOPES = ("weights", "corpus", "probe")


class BaselineError(ValueError):
    """A malformed baseline (unknown key, missing tolerance, non-numeric value)."""


@dataclass(frozen=True)
class Deviation:
    """One key's comparison with its baseline."""

    key: str
    value: float
    baseline: float
    allowed: float  # atol + rtol·|baseline|

    @property
    def abs_dev(self) -> float:
        """|value − baseline| (inf when the value is not finite)."""
        return abs(self.value - self.baseline) if math.isfinite(self.value) else math.inf

    @property
    def rel_dev(self) -> float:
        """|value − baseline| / |baseline| (inf for a zero baseline with a nonzero deviation)."""
        if self.baseline == 0:
            return 0.0 if self.abs_dev == 0 else math.inf
        return self.abs_dev / abs(self.baseline)

    @property
    def within(self) -> bool:
        """Inside the (closed) band."""
        return self.abs_dev <= self.allowed

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``ctx.measured``."""
        return {"value": self.value, "baseline": self.baseline, "abs_dev": self.abs_dev, "rel_dev": self.rel_dev,
                "allowed": self.allowed, "within": self.within}


@dataclass
class BaselineResult:
    """The comparison of a claim's measured values with its baseline."""

    deviations: list[Deviation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every key within its band."""
        return all(d.within for d in self.deviations)

    @property
    def violations(self) -> list[Deviation]:
        """The keys outside their band."""
        return [d for d in self.deviations if not d.within]

    def operands(self) -> dict[str, float]:
        """The measured values compared, by key (``ctx.check`` operands: a NaN among them is an error)."""
        return {d.key: d.value for d in self.deviations}

    def message(self) -> str:
        """Why the baseline check fails (empty when it does not)."""
        return "measured baseline violated (regression guard): " + "; ".join(
            f"{d.key} = {d.value:.6g}, baseline {d.baseline:.6g} ± {d.allowed:.3g}" for d in self.violations
        ) if self.violations else ""


def _tol(tol: float | Mapping[str, float] | None, key: str, name: str) -> float | None:
    if tol is None:
        return None
    if isinstance(tol, Mapping):
        v = tol.get(key)
    else:
        v = tol
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
        raise BaselineError(f"{name} for {key!r} must be a number ≥ 0, got {v!r}")
    return float(v)


def compare_to_baseline(measured: Mapping[str, Any], baseline: Mapping[str, Any],
                        rtol: float | Mapping[str, float] | None = None,
                        atol: float | Mapping[str, float] | None = None) -> BaselineResult:
    """Compare ``measured[key]`` with ``baseline[key]`` for every baseline key (pure; no recording).

    Raises :class:`BaselineError` for a baseline key the claim does not measure, a non-numeric
    baseline, a tolerance table naming a key the baseline lacks, or a key with neither tolerance.
    """
    for name, tol in (("baseline_rtol", rtol), ("baseline_atol", atol)):
        if isinstance(tol, Mapping) and set(tol) - set(baseline):
            raise BaselineError(f"{name} names key(s) {sorted(set(tol) - set(baseline))} without a baseline value")
    out = BaselineResult()
    for key, b in baseline.items():
        if key not in measured:
            raise BaselineError(f"baseline key {key!r} is not measured by this claim; available: {sorted(measured)}")
        if isinstance(b, bool) or not isinstance(b, numbers.Real) or not math.isfinite(b):
            raise BaselineError(f"baseline {key!r} must be a finite number, got {b!r}")
        r, a = _tol(rtol, key, "baseline_rtol"), _tol(atol, key, "baseline_atol")
        if r is None and a is None:
            raise BaselineError(f"baseline {key!r} has no tolerance: give baseline_rtol and/or baseline_atol")
        v = measured[key]
        value = float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else math.nan
        out.deviations.append(Deviation(key, value, float(b), (a or 0.0) + (r or 0.0) * abs(float(b))))
    return out


def _record_band(ctx: Any, baseline: Mapping[str, Any], rtol: Any, atol: Any, measured_by: Any) -> None:
    ctx.expected(baseline=dict(baseline), **({"baseline_measured_by": measured_by} if measured_by else {}))
    ctx.tolerance(**{k: v for k, v in (("baseline_rtol", rtol), ("baseline_atol", atol)) if v is not None})


def _record(ctx: Any, result: BaselineResult, baseline: Mapping[str, Any], rtol: Any, atol: Any,
            measured_by: Any) -> None:
    _record_band(ctx, baseline, rtol, atol, measured_by)
    ctx.measured(baseline_deviation={d.key: d.to_dict() for d in result.deviations}, baseline_ok=result.ok,
                 baseline_status="compared")


def check_baseline(ctx: Any, measured: Mapping[str, Any], baseline: Mapping[str, Any],
                   rtol: float | Mapping[str, float] | None = None,
                   atol: float | Mapping[str, float] | None = None) -> BaselineResult:
    """Record the comparison (baseline in ``expected``, tolerances in ``tolerance``, deviations in
    ``measured``) and fail the claim through ``ctx.check`` if a value is outside its band."""
    result = compare_to_baseline(measured, baseline, rtol, atol)
    _record(ctx, result, baseline, rtol, atol, None)
    ctx.check(result.ok, result.message(), **result.operands())
    return result


def comparability(ctx: Any, measured_by: Mapping[str, Any] | None, scope: Scope) -> str | None:
    """Why a baseline of ``scope`` cannot be compared in this run, or None when it can."""
    if scope not in SCOPES:
        raise BaselineError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "weights":
        return None
    mb = measured_by or {}
    session = ctx.session
    want_sha = mb.get("corpus_sha256")
    sha = session.corpus.sha256
    if want_sha is not None and sha != want_sha:
        return f"the run's corpus (sha256 {sha[:12]}…) is not the baseline's ({str(want_sha)[:12]}…)"
    if scope == "probe":
        n = len(session.probe_texts())
        want_n = mb.get("n_prompts")
        if want_n is not None and n != int(want_n):
            return f"the run probes {n} prompts (--max-prompts), the baseline was measured on {want_n}"
        if getattr(session.options, "probe_sample_tokens", None) is not None:
            return "the run overrides the probe's token sampling (--probe-sample-tokens)"
    return None


@contextmanager
def baseline_guard(ctx: Any, measured: Mapping[str, Any], *, scope: Scope) -> Iterator[BaselineResult | None]:
    """Run the claim's own checks inside; check the expectation's measured baseline (if any) too.

    Reads ``baseline`` / ``baseline_rtol`` / ``baseline_atol`` from ``ctx.expectation``. Without a
    baseline it does nothing. If the claim's checks fail, their failure stands (a baseline never turns
    a failure into a pass) and any baseline violation is appended to the record's reason; if they pass,
    a value outside its band fails the claim. Skips raised inside pass through untouched.
    """
    exp = ctx.expectation
    baseline = exp.get("baseline") if exp is not None else None
    if not baseline:
        yield None
        return
    if not isinstance(baseline, Mapping):
        raise BaselineError(f"expectation baseline must be a table of key = value, got {baseline!r}")
    rtol, atol = exp.get("baseline_rtol"), exp.get("baseline_atol")
    measured_by = exp.measured_by
    result = compare_to_baseline(measured, baseline, rtol, atol)  # validates even when not compared
    why_not = comparability(ctx, measured_by, scope)
    if why_not is not None:
        _record_band(ctx, baseline, rtol, atol, measured_by)
        ctx.measured(baseline_status=f"not compared: {why_not}")
        yield None
        return
    _record(ctx, result, baseline, rtol, atol, measured_by)
    try:
        yield result
    except pytest.fail.Exception:
        if not result.ok and ctx.record is not None:
            msg = result.message()
            ctx.record.reason = f"{ctx.record.reason}; {msg}" if ctx.record.reason else msg
        raise
    ctx.check(result.ok, result.message(), **result.operands())
