"""Input validation shared by the statistics modules.

Every public statistic funnels its array arguments through :func:`as_finite_array`, so bad input
fails early with a ``ValueError`` that names the argument and says what to fix. Arrays are always
converted to float64 (inputs may be float32/float16/int).

Two kinds of bad input are told apart. A *usage* error (wrong shape, a parameter out of range,
NaN/inf in the data) raises a plain ``ValueError``: the caller has a bug, or the measurement is
invalid. A *degenerate sample* raises :class:`DegenerateSample` (a ``ValueError`` subclass): the
data are valid but this statistic cannot judge them (too few values, no spread, zeros where logs
are taken, rank deficiency inside a fitted rank range). A claim may exclude such a sample with its
reason and judge the rest; it must never exclude on a plain ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DegenerateSample", "as_finite_array", "check_window", "check_positive", "check_probability", "check_int"]


class DegenerateSample(ValueError):  # noqa: N818 - reads as what it reports
    """Valid data this statistic cannot judge: too few values, no spread, zeros where logs are taken.

    A property of the sample, not a usage error (those raise a plain ``ValueError``); the message
    names the argument and what is degenerate about it.
    """


def as_finite_array(
    x: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_size: int = 1,
    positive: bool = False,
) -> np.ndarray:
    """Return ``x`` as a float64 array after checking it.

    ``ndim`` restricts the allowed number of dimensions (an int or a collection of ints);
    ``min_size`` is the minimum number of elements; ``positive`` requires every entry > 0.
    Raises ``ValueError`` naming ``name`` on non-finite or wrongly shaped input, and
    :class:`DegenerateSample` on too few elements or (with ``positive``) a non-positive entry.
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric array, got {type(x).__name__} ({exc})") from exc
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name}: expected an array with ndim in {allowed}, got shape {arr.shape}; reshape it"
            )
    if arr.size < min_size:
        raise DegenerateSample(f"{name}: needs at least {min_size} element(s), got {arr.size} (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN/inf value(s); drop or mask them before calling")
    if positive and np.any(arr <= 0):
        raise DegenerateSample(
            f"{name}: all entries must be > 0 (got min {arr.min():.4g}); norms of zero cannot be log-fitted"
        )
    return arr


def check_window(
    window: object, n_layers: int, name: str = "window", *, min_points: int = 2
) -> tuple[int, int]:
    """Validate an inclusive layer window ``(lo, hi)`` against ``n_layers`` and return it as ints.

    Requires ``0 <= lo < hi < n_layers`` and at least ``min_points`` layers in the window.
    """
    try:
        lo, hi = (int(v) for v in window)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a pair (lo, hi) of layer indices, got {window!r}") from exc
    if not (0 <= lo < hi < n_layers):
        raise ValueError(
            f"{name}: need 0 <= lo < hi < n_layers={n_layers} (inclusive indices), got ({lo}, {hi})"
        )
    if hi - lo + 1 < min_points:
        raise ValueError(f"{name}: ({lo}, {hi}) spans {hi - lo + 1} layers; need at least {min_points}")
    return lo, hi


def check_positive(value: float, name: str) -> float:
    """Return ``value`` as float after checking it is finite and > 0."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return v


def check_probability(value: float, name: str) -> float:
    """Return ``value`` as float after checking 0 < value < 1."""
    v = float(value)
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name}: must lie strictly between 0 and 1, got {value!r}")
    return v


def check_int(value: object, name: str, *, minimum: int) -> int:
    """Return ``value`` as int after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    return v
