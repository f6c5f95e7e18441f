"""The ``ctx`` object a claim test receives: its model, probe, expectation and record.

One :class:`ClaimContext` exists per (model, device) target (a session-scoped fixture, so
Hypothesis-driven claims never see a function-scoped fixture); the plugin points it at the running
test's :class:`~lmfacts.report.recorder.ClaimRecord` and resolved expectation before the body runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from lmfacts.claims import ClaimSpec
from lmfacts.options import Target
from lmfacts.report.recorder import ClaimRecord

if TYPE_CHECKING:
    from lmfacts.expectations import Resolved
    from lmfacts.session import LmfactsSession


class ClaimFailed(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """A claim's predicate is false on valid measurements: the only exception drawn as ✗ (``failed``)."""


class NonFiniteMeasurement(Exception):  # noqa: N818 - reads as what it reports
    """A value a verdict depends on is NaN, inf or missing: an ``error`` outcome, never a finding."""


def non_finite(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are not finite numbers (NaN, ±inf, None, or arrays containing them).

    Booleans and strings count as finite; sequences and numpy arrays are checked element-wise.
    """
    import numpy as np

    bad: dict[str, Any] = {}
    for key, v in values.items():
        if isinstance(v, (bool, str, np.bool_)):
            continue
        if v is None:
            bad[key] = None
            continue
        try:
            arr = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            continue
        if arr.size == 0 or not np.isfinite(arr).all():
            bad[key] = v if arr.size == 1 else f"{int((~np.isfinite(arr)).sum())} of {arr.size} non-finite"
    return bad


class ClaimContext:
    """Everything a claim needs about its target, plus the record it fills."""

    def __init__(self, session: LmfactsSession, target: Target) -> None:
        self.session = session
        self.target = target
        self.spec: ClaimSpec | None = None
        self.record: ClaimRecord | None = None
        self.expectation: Resolved | None = None
        self._observations: list[float] = []

    # -- what the claim measures on ----------------------------------------------------------
    def model(self, processing: str | None = None) -> Any:
        """The loaded model (a :class:`lmfacts.models.loading.LoadedModel`) in the claim's processing."""
        return self.session.pool.get(self.target, processing or self._processing())

    @property
    def info(self) -> Any:
        """The model's metadata (:class:`lmfacts.models.loading.ModelInfo`)."""
        return self.model().info

    def probe(self, processing: str | None = None) -> Any:
        """The corpus-level :class:`lmfacts.probe.probe.ProbeResult` (one pass, shared by all claims)."""
        return self.session.probe(self.target, processing or self._processing())

    @property
    def texts(self) -> list[str]:
        """The corpus prompts the probe runs on."""
        return self.session.probe_texts()

    @property
    def dtype(self) -> str:
        """The dtype the model runs in (``--dtype``)."""
        return str(self.session.options.dtype)

    def float_tol(self, base: float, ulps: float | None = None) -> float:
        """``base`` (a float32 tolerance) scaled to this run's dtype: :func:`lmfacts.tolerances.float_tol`."""
        from lmfacts.tolerances import DEFAULT_ULPS, float_tol

        return float_tol(base, self.dtype, DEFAULT_ULPS if ulps is None else ulps)

    def _processing(self) -> str:
        return self.spec.processing if self.spec else "raw"

    # -- the record ---------------------------------------------------------------------------
    def _rec(self) -> ClaimRecord:
        if self.record is None:
            raise RuntimeError("ctx is only usable inside a claim test (decorate it with @claim)")
        return self.record

    def statistic(self, text: str) -> None:
        """Describe the statistic in words (shown in the report)."""
        self._rec().statistic = text

    def measured(self, **values: Any) -> None:
        """Record measured values (merged into the record's ``measured``)."""
        self._rec().measured.update(values)

    def expected(self, **values: Any) -> None:
        """Record the expected values the verdict compares against."""
        rec = self._rec()
        rec.expected = {**(rec.expected or {}), **values}

    def tolerance(self, **values: Any) -> None:
        """Record the tolerances of the verdict."""
        rec = self._rec()
        rec.tolerance = {**(rec.tolerance or {}), **values}

    def conventions(self, **values: Any) -> None:
        """Record the conventions used (hook, positions, basis, threshold sign …)."""
        self._rec().conventions.update(values)

    def control(self, **values: Any) -> None:
        """Record the randomly initialised twin's value beside the model's."""
        rec = self._rec()
        rec.control = {**(rec.control or {}), **values}

    def robust(self, flag: bool) -> None:
        """Whether the verdict survives the alternative conventions."""
        self._rec().robust = flag

    def figure(self, spec: dict[str, Any]) -> None:
        """Attach a figure spec (see reports/README.md) for the HTML report."""
        self._rec().figures.append(spec)

    def witness(self, text: str, tokens: list[int] | None, value: Any) -> None:
        """The current Hypothesis example; kept in the report only when the claim fails.

        It also clears the reason left by an earlier example, so a failing per-prompt claim reports
        the reason of its final (shrunk) example only.
        """
        rec = self._rec()
        rec.witness = {"text": text, "tokens": tokens, "value": value}
        rec.reason = None

    def observe(self, value: float) -> None:
        """One per-example value of a per-prompt claim (summarised in the record)."""
        self._observations.append(float(value))
        obs = self._observations
        self._rec().measured.update(n_examples=len(obs), min_value=min(obs), max_value=max(obs))

    # -- verdicts ----------------------------------------------------------------------------
    def skip(self, reason: str) -> None:
        """Skip the claim as not applicable to this model, with the reason in the report."""
        self._rec().reason = reason
        pytest.skip(reason)

    def require(self, condition: bool, reason: str) -> None:
        """Skip with ``reason`` unless ``condition`` holds."""
        if not condition:
            self.skip(reason)

    def check(self, condition: bool, message: str, **operands: Any) -> None:
        """Fail the claim with ``message`` (kept as the record's reason) unless ``condition`` holds.

        ``operands`` are the values ``condition`` was computed from (``ctx.check(rate > 1, msg,
        rate=rate)``). They are checked first: a NaN, inf or None among them raises
        :class:`NonFiniteMeasurement` (an ``error`` outcome naming the value), so an invalid
        measurement is never reported as a finding. Calling without operands raises ``TypeError``.
        """
        if not operands:
            raise TypeError("ctx.check needs the values its condition compares, e.g. ctx.check(rate > 1, msg, "
                            "rate=rate): a NaN among them must be an error, not a failure")
        bad = non_finite(operands)
        if bad:
            shown = ", ".join(f"{k}={v}" for k, v in bad.items())
            raise NonFiniteMeasurement(f"non-finite value(s) the verdict depends on: {shown} (while checking: "
                                       f"{message})")
        if not condition:
            rec = self._rec()
            rec.reason = message if not rec.reason else f"{rec.reason}; {message}"
            raise ClaimFailed(message, pytrace=False)

    # -- plugin side ---------------------------------------------------------------------------
    def begin(self, spec: ClaimSpec, record: ClaimRecord) -> None:
        """Point the context at a new test (called by the plugin)."""
        self.spec, self.record, self._observations = spec, record, []
        self.expectation = None

    def end(self) -> None:
        """Detach from the finished test."""
        self.spec, self.record, self.expectation = None, None, None
