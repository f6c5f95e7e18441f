"""Statistical verdicts: a seeded bootstrap CI over prompts, and the verdict of a CI against a band.

Conventions
-----------
* The resampling unit is the **prompt**: every array handed to :func:`bootstrap_ci` has the prompts
  on axis 0 (``(n_prompts,)`` per-prompt values, or ``(n_prompts, k)`` rows such as a per-prompt
  curve over ``k`` layers). Several arrays are resampled *together* (the same prompt indices), so a
  statistic of paired measurements (two curves of the same prompts) keeps the pairing.
* The statistic is *batched*: it receives each array resampled as ``(B, n_prompts, ...)`` and
  returns ``(B,)`` values, one per resample (the full sample is passed as ``B = 1``).
* The interval is :func:`scipy.stats.bootstrap` on the prompt indices, ``method`` "percentile"
  (default) or "BCa", with ``rng = numpy.random.default_rng(seed)``: a given (data, statistic,
  n_resamples, level, method, seed) gives a bit-identical CI on every run.
* A band ``(lo, hi)`` is the *open* interval of accepted values (``None`` = unbounded on that side,
  as :func:`lmfacts.measures.rn.in_band`), or with ``closed=True`` the closed one (for a statistic with
  discrete values, like a rank correlation over a few layers, whose bound is stated "at least" / "at most").
  :func:`interval_verdict`: ``passed`` when the whole CI lies inside the band, ``failed`` when the whole
  CI lies outside it, ``inconclusive`` when it straddles an edge.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ._result import ResultMixin
from ._validation import DegenerateSample, check_int, check_probability

__all__ = ["BootstrapCI", "bootstrap_ci", "bootstrap_mean", "interval_verdict", "straddled_edge", "VERDICTS",
           "DEFAULT_N_RESAMPLES", "METHODS"]

VERDICTS: tuple[str, ...] = ("passed", "failed", "inconclusive")
METHODS: tuple[str, ...] = ("percentile", "BCa")
DEFAULT_N_RESAMPLES = 2000
#: at most this many floats are gathered per batch of resamples (B × n_prompts × row size)
_MAX_BATCH_FLOATS = 20_000_000

Band = tuple[float | None, float | None]


@dataclass(frozen=True)
class BootstrapCI(ResultMixin):
    """Result of :func:`bootstrap_ci`.

    ``value``: the statistic on the full sample; ``ci``: ``(low, high)`` at ``level``;
    ``standard_error``: the bootstrap standard deviation of the statistic; ``n_prompts``: the
    number of resampled units; ``n_resamples``, ``method`` and ``seed`` reproduce the interval.
    """

    value: float
    ci: tuple[float, float]
    level: float
    n_resamples: int
    method: str
    seed: int
    n_prompts: int
    standard_error: float


def _as_samples(samples: object) -> list[np.ndarray]:
    arrays = [samples] if isinstance(samples, np.ndarray) else list(samples)  # type: ignore[call-overload]
    if arrays and not isinstance(arrays[0], (np.ndarray, list, tuple)):
        arrays = [np.asarray(samples)]  # a flat list of numbers: one sample
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    if not out:
        raise ValueError("samples: need at least one array with the prompts on axis 0")
    n = out[0].shape[0] if out[0].ndim else 0
    for i, a in enumerate(out):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"samples[{i}]: expected the prompts on axis 0 ({n} of them), got shape {a.shape}")
        if not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ValueError(f"samples[{i}]: {bad} non-finite value(s); drop the prompts without a measurement first")
    if n < 2:
        raise DegenerateSample(f"samples: a bootstrap over prompts needs at least 2 prompts, got {n}")
    return out


def bootstrap_ci(
    samples: np.ndarray | Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    level: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
) -> BootstrapCI:
    """Seeded bootstrap CI over prompts of a batched ``statistic`` (see the module conventions).

    ``samples``: one array ``(n_prompts, ...)`` or a sequence of arrays sharing axis 0 (resampled
    together). ``statistic(*resampled)``: each argument ``(B, n_prompts, ...)``, returns ``(B,)``.
    Raises ``ValueError`` for non-finite data, mismatched prompt counts, a bad ``method`` / ``level``
    / ``n_resamples``; :class:`DegenerateSample` for fewer than 2 prompts or a CI that is not finite
    (e.g. BCa on a statistic with no spread).
    """
    arrays = _as_samples(samples)
    n = arrays[0].shape[0]
    level = check_probability(level, "level")
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    row = max(1, max(int(np.prod(a.shape[1:])) for a in arrays))

    def stat_idx(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx).astype(np.intp, copy=False)
        flat = idx.reshape(-1, idx.shape[-1])
        vals = np.asarray(statistic(*(a[flat] for a in arrays)), dtype=np.float64).reshape(flat.shape[0])
        return vals.reshape(idx.shape[:-1])

    value = float(stat_idx(np.arange(n)[None, :])[0])
    if not math.isfinite(value):
        raise ValueError(f"statistic: not finite on the full sample ({value})")
    batch = max(1, min(n_resamples, _MAX_BATCH_FLOATS // (n * row)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # BCa's 0/0 on a statistic without spread: checked below
        res = sps.bootstrap((np.arange(n),), stat_idx, n_resamples=n_resamples, batch=batch, vectorized=True,
                            axis=-1, confidence_level=level, method=method, rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DegenerateSample(f"statistic: the {method} bootstrap CI is not finite ({lo}, {hi}); the statistic "
                               "has no spread over the resamples")
    return BootstrapCI(value=value, ci=(lo, hi), level=level, n_resamples=n_resamples, method=method, seed=seed,
                       n_prompts=n, standard_error=float(res.standard_error))


def bootstrap_mean(values: object, **kwargs: object) -> BootstrapCI:
    """:func:`bootstrap_ci` of the mean of per-prompt ``values`` (shape ``(n_prompts,)``)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values: expected one value per prompt, shape (n_prompts,), got {arr.shape}")
    return bootstrap_ci(arr, lambda x: x.mean(axis=1), **kwargs)  # type: ignore[arg-type]


def _check_interval(ci: Sequence[float], band: Band) -> tuple[float, float, float | None, float | None]:
    if len(ci) != 2:
        raise ValueError(f"ci: expected (low, high), got {ci!r}")
    lo, hi = float(ci[0]), float(ci[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ci: not finite ({lo}, {hi}): no verdict on an invalid interval")
    if lo > hi:
        raise ValueError(f"ci: low {lo} > high {hi}")
    if len(band) != 2:
        raise ValueError(f"band: expected (low, high) with None for an open side, got {band!r}")
    b_lo = None if band[0] is None else float(band[0])
    b_hi = None if band[1] is None else float(band[1])
    if b_lo is None and b_hi is None:
        raise ValueError("band: at least one edge must be set")
    for name, edge in (("low", b_lo), ("high", b_hi)):
        if edge is not None and math.isnan(edge):
            raise ValueError(f"band: {name} edge is NaN")
    if b_lo is not None and b_hi is not None and b_lo >= b_hi:
        raise ValueError(f"band: low {b_lo} >= high {b_hi}")
    return lo, hi, b_lo, b_hi


def interval_verdict(ci: Sequence[float], band: Band, *, closed: bool = False) -> str:
    """``"passed"`` / ``"failed"`` / ``"inconclusive"`` of the interval ``ci`` against ``band`` (open, or closed
    with ``closed=True``).

    Open band: passed ``band_lo < ci_lo`` and ``ci_hi < band_hi`` (the whole CI inside); failed ``ci_hi <=
    band_lo`` or ``ci_lo >= band_hi`` (the whole CI outside). Closed band: passed ``band_lo <= ci_lo`` and
    ``ci_hi <= band_hi``; failed ``ci_hi < band_lo`` or ``ci_lo > band_hi``. Inconclusive otherwise (the CI
    straddles an edge). ``None`` edges are unbounded. Raises ``ValueError`` for a NaN/inf or
    reversed CI, a band with no edge, a NaN or reversed band (so the caller records an error).
    """
    lo, hi, b_lo, b_hi = _check_interval(ci, band)
    if closed:
        if (b_lo is not None and hi < b_lo) or (b_hi is not None and lo > b_hi):
            return "failed"
        if (b_lo is None or lo >= b_lo) and (b_hi is None or hi <= b_hi):
            return "passed"
        return "inconclusive"
    if (b_lo is not None and hi <= b_lo) or (b_hi is not None and lo >= b_hi):
        return "failed"
    if (b_lo is None or lo > b_lo) and (b_hi is None or hi < b_hi):
        return "passed"
    return "inconclusive"


def straddled_edge(ci: Sequence[float], band: Band) -> float | None:
    """The band edge that lies within ``ci`` (the low edge first), ``None`` if none does."""
    lo, hi, b_lo, b_hi = _check_interval(ci, band)
    for edge in (b_lo, b_hi):
        if edge is not None and lo <= edge <= hi:
            return edge
    return None
