"""The ``ctx`` object a claim test receives: its model, probe, expectation and record.

One :class:`ClaimContext` exists per (model, device) target (a session-scoped fixture, so
Hypothesis-driven claims never see a function-scoped fixture); the plugin points it at the running
test's :class:`~lmfacts.report.recorder.ClaimRecord` and resolved expectation before the body runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class Inconclusive(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """Raised by the plugin after a body that ended with an inconclusive interval verdict and no failure.

    A pytest skip (reason ``"inconclusive: …"``) that the record calls ``inconclusive``: the CI of a
    headline statistic straddles an edge of its band, so the claim is neither replicated nor refuted.
    Named like pytest's own skip exception so that pytest prints ``SKIPPED [1] file:line: inconclusive: …``
    (it strips the ``Skipped: `` prefix), located at the test, not at the plugin line that raises it.
    """

    __module__ = "builtins"
    __qualname__ = "Skipped"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, _use_item_location=True)


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


def _require_finite(what: str, values: Mapping[str, Any]) -> None:
    """Raise :class:`NonFiniteMeasurement` naming the entries of ``values`` that are not finite."""
    bad = non_finite(values)
    if bad:
        shown = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise NonFiniteMeasurement(f"non-finite value(s) the verdict depends on: {shown} ({what})")


def _scalar_operands(operands: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of a check's ``operands`` (bools, ints, floats, numpy scalars as Python numbers); arrays
    and other values are left out (the record keeps what the report can show, not whole tensors)."""
    import numpy as np

    out: dict[str, Any] = {}
    for key, v in operands.items():
        if isinstance(v, (bool, np.bool_)):
            out[key] = bool(v)
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out[key] = v.item() if isinstance(v, np.generic) else v
    return out


class ClaimContext:
    """Everything a claim needs about its target, plus the record it fills."""

    def __init__(self, session: LmfactsSession, target: Target) -> None:
        self.session = session
        self.target = target
        self.spec: ClaimSpec | None = None
        self.record: ClaimRecord | None = None
        self.expectation: Resolved | None = None
        self._observations: list[float] = []
        self._inconclusive: list[str] = []

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

    def require_content(self) -> None:
        """Raise :class:`lmfacts.probe.batching.NoContentTokensError` (an error naming the model, the count
        and examples with their tokens) when no prompt of the run has a content token on this model.

        The probe claims get this from the probe pass; a claim that measures on corpus prompts without it
        (next-token losses, per-example gradients) calls this first, so a corpus its tokenizer turns into
        special tokens only (``<|endoftext|>`` lines) is an error there too, not a loss or gradient over
        special-token targets judged as a finding. Tokenisation only, computed once per model.
        """
        self.session.content_census(self.target)

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
        _require_finite(f"while checking: {message}", operands)
        if not condition:
            rec = self._rec()
            rec.reason = message if not rec.reason else f"{rec.reason}; {message}"
            rec.failed_check = {"message": message, "operands": _scalar_operands(operands)}  # for the report
            raise ClaimFailed(message, pytrace=False)

    def finite(self, what: str, **values: Any) -> None:
        """Raise :class:`NonFiniteMeasurement` (an ``error`` outcome naming the values) unless every one of
        ``values`` is a finite number (arrays element-wise, :func:`non_finite`); ``what`` says what they feed.

        The rule :meth:`check` applies to its operands, for values that feed a later statistic (e.g.
        per-prompt losses before a bootstrap) rather than a predicate directly.
        """
        _require_finite(what, values)

    def interval(self, name: str, value: float, ci: Sequence[float] | None, band: Sequence[float | None], *,
                 n_resamples: int, method: str, level: float, label: str | None = None, closed: bool = False) -> str:
        """Judge a headline statistic by its bootstrap CI against its band; returns the verdict.

        ``value``: the statistic on all prompts; ``ci``: its ``(low, high)`` bootstrap interval over
        prompts at ``level`` (e.g. 0.95) from ``n_resamples`` resamples by ``method`` ("percentile" or
        "BCa", :func:`lmfacts.stats.verdict.bootstrap_ci`); ``band``: the open band ``(low, high)`` of
        accepted values, ``None`` for an open side (``closed=True``: the closed band, for a statistic with discrete
        values whose bound is "at least" / "at most"). ``label`` names the statistic in messages
        (default ``name``). The verdict is :func:`lmfacts.stats.verdict.interval_verdict` and is
        recorded as ``record.intervals[name] = {"value", "ci": [lo, hi], "band": [lo, hi], "level",
        "n_resamples", "method", "verdict"}`` (a stable contract: baselines derive tolerances from it), plus
        ``"closed": true`` for a closed band.

        * ``passed``: nothing more happens.
        * ``failed``: the claim fails like :meth:`check` (:class:`ClaimFailed`, the numbers in the message).
        * ``inconclusive``: deferred; the body goes on (a later failure or error still decides the
          outcome) and, if it ends without one, the plugin turns the test into a skip whose reason
          starts with ``"inconclusive:"`` (record outcome ``inconclusive``).

        A NaN/inf/None value or CI bound raises :class:`NonFiniteMeasurement` (an ``error``); a
        malformed band or CI raises ``ValueError`` (also an ``error``).
        """
        from lmfacts.report.outcomes import band_text
        from lmfacts.stats.verdict import interval_verdict, straddled_edge

        what = label or name
        ci_pair = list(ci) if ci is not None else [None, None]
        bad = non_finite({"value": value, "ci_low": ci_pair[0], "ci_high": ci_pair[1]})
        if bad:
            shown = ", ".join(f"{k}={v}" for k, v in bad.items())
            raise NonFiniteMeasurement(f"non-finite value(s) of the interval verdict on {what}: {shown}")
        lo, hi = float(ci_pair[0]), float(ci_pair[1])
        band_pair = [None if b is None else float(b) for b in band]
        verdict = interval_verdict((lo, hi), (band_pair[0], band_pair[1]) if len(band_pair) == 2 else band_pair,
                                   closed=closed)
        rec = self._rec()
        rec.intervals[name] = {"value": float(value), "ci": [lo, hi], "band": band_pair, "level": float(level),
                               "n_resamples": int(n_resamples), "method": str(method), "verdict": verdict}
        if closed:
            rec.intervals[name]["closed"] = True
        text = (f"{what} = {value:.5g}, {100 * level:g}% CI [{lo:.5g}, {hi:.5g}] ({n_resamples} resamples, "
                f"{method})")
        if verdict == "failed":
            self.check(False, f"{text} lies outside the expected band {band_text(band_pair, closed)}", value=value,
                       ci_low=lo, ci_high=hi)
        elif verdict == "inconclusive":
            edge = straddled_edge((lo, hi), (band_pair[0], band_pair[1]))
            self.inconclusive(f"{text} straddles the band edge {edge:.5g} of {band_text(band_pair, closed)}")
        return verdict

    def inconclusive(self, reason: str) -> None:
        """Defer the verdict as :meth:`interval` does on a straddled edge: the body goes on (a later failure or
        error still decides) and, if it ends without one, the test becomes a skip whose reason starts with
        ``"inconclusive:"``. For a point estimate the run's precision cannot place on either side of its bound."""
        self._inconclusive.append(str(reason))

    @property
    def inconclusive_reason(self) -> str | None:
        """``"inconclusive: …"`` naming every deferred interval verdict of this test, or ``None``."""
        return "inconclusive: " + "; ".join(self._inconclusive) if self._inconclusive else None

    # -- plugin side ---------------------------------------------------------------------------
    def begin(self, spec: ClaimSpec, record: ClaimRecord) -> None:
        """Point the context at a new test (called by the plugin)."""
        self.spec, self.record, self._observations = spec, record, []
        self._inconclusive = []
        self.expectation = None

    def end(self) -> None:
        """Detach from the finished test."""
        self.spec, self.record, self.expectation = None, None, None
