"""Kurtosis (Pearson convention: a Gaussian has kurtosis 3), direct and from streamed power sums (RS-1, BF-3).

The estimator is the plug-in (biased) one, ``m4 / m2**2`` with population central moments, which is
what ``scipy.stats.kurtosis(x, fisher=False, bias=True)`` and the RS post compute.

Streaming: a probe accumulates, per dimension, the power sums ``s_k = sum (x - shift)**k`` for
k = 1..4 in float64 and calls :func:`kurtosis_from_moments`. Central moments are recovered from raw
moments, which cancels catastrophically when the mean is large relative to the spread: the relative
error of the kurtosis is roughly ``1e-16 * (1 + (|mean - shift| / std)**4)``. It is therefore safe
for ``|mean - shift| / std`` below ~1e2 (relative error < 1e-8); pass a ``shift`` close to the mean
(e.g. the first batch's mean) when the data are far from zero-centred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import as_finite_array

__all__ = [
    "MomentSummary",
    "kurtosis",
    "power_sums",
    "kurtosis_from_moments",
    "MomentAccumulator",
    "random_rotation",
]


@dataclass(frozen=True)
class MomentSummary(ResultMixin):
    """Mean, (population) variance and Pearson kurtosis; arrays match the power sums' shape.

    ``kurtosis`` is NaN where the variance is zero (a constant dimension).
    """

    n: int
    mean: np.ndarray
    var: np.ndarray
    kurtosis: np.ndarray


def _check_axis(arr: np.ndarray, axis: int, name: str) -> int:
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis: {axis} is out of range for {name} with shape {arr.shape}")
    return axis % arr.ndim


def kurtosis(x: object, axis: int = -1) -> np.ndarray | float:
    """Pearson kurtosis ``m4 / m2**2`` of ``x`` along ``axis`` (Gaussian = 3), computed in float64.

    Uses two-pass central moments. Returns a float for 1-D input, else an array without ``axis``.
    Zero-variance slices give NaN. Needs at least 2 samples along ``axis``.
    """
    arr = as_finite_array(x, "x", min_size=2)
    if arr.ndim == 0:
        raise ValueError("x: expected at least a 1-D array")
    ax = _check_axis(arr, axis, "x")
    if arr.shape[ax] < 2:
        raise ValueError(f"x: need >= 2 samples along axis {axis}, got shape {arr.shape}")
    dev = arr - arr.mean(axis=ax, keepdims=True)
    d2 = dev * dev
    m2 = d2.mean(axis=ax)
    m4 = (d2 * d2).mean(axis=ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(m2 > 0, m4 / np.where(m2 > 0, m2, 1.0) ** 2, np.nan)
    return float(k) if k.ndim == 0 else k


def power_sums(
    x: object, axis: int = 0, shift: object = 0.0
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(n, s1, s2, s3, s4)`` with ``s_k = sum((x - shift)**k, axis)`` in float64.

    The inputs :func:`kurtosis_from_moments` expects; ``shift`` broadcasts against the reduced shape.
    """
    arr = as_finite_array(x, "x")
    if arr.ndim == 0:
        raise ValueError("x: expected at least a 1-D array")
    ax = _check_axis(arr, axis, "x")
    sh = np.expand_dims(np.asarray(shift, dtype=np.float64), ax) if np.ndim(shift) else float(shift)
    d = arr - sh
    d2 = d * d
    return int(arr.shape[ax]), d.sum(axis=ax), d2.sum(axis=ax), (d2 * d).sum(axis=ax), (d2 * d2).sum(axis=ax)


def kurtosis_from_moments(
    n: int,
    s1: object,
    s2: object,
    s3: object,
    s4: object,
    *,
    shift: object = 0.0,
) -> MomentSummary:
    """Mean, variance and Pearson kurtosis from raw power sums ``s_k = sum (x - shift)**k``.

    ``n`` is the sample count; ``s1..s4`` are scalars or same-shape arrays (one entry per dimension).
    See the module docstring for the cancellation limit and the role of ``shift``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n: must be an integer >= 2 (the number of accumulated samples), got {n!r}")
    sums = [as_finite_array(s, name) for s, name in ((s1, "s1"), (s2, "s2"), (s3, "s3"), (s4, "s4"))]
    shape = sums[0].shape
    for s, name in zip(sums[1:], ("s2", "s3", "s4"), strict=True):
        if s.shape != shape:
            raise ValueError(
                f"{name}: shape {s.shape} differs from s1's {shape}; pass per-dimension sums of one shape"
            )
    shift_arr = as_finite_array(shift, "shift")
    a1, a2, a3, a4 = (s / n for s in sums)
    if np.any(a2 < 0) or np.any(a4 < 0):
        raise ValueError("s2/s4: even power sums must be >= 0; were they accumulated correctly?")
    mu = a1
    mu2 = mu * mu
    m2 = np.maximum(a2 - mu2, 0.0)
    m4 = np.maximum(a4 - 4.0 * mu * a3 + 6.0 * mu2 * a2 - 3.0 * mu2 * mu2, 0.0)
    # Variance at round-off level of a2 counts as zero (constant dimension).
    tiny = m2 <= 1e-14 * np.maximum(a2, np.finfo(np.float64).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        kurt = np.where(tiny, np.nan, m4 / np.where(tiny, 1.0, m2) ** 2)
    return MomentSummary(n=int(n), mean=mu + shift_arr, var=m2, kurtosis=kurt)


class MomentAccumulator:
    """Streaming per-dimension power sums: ``update(batch)`` then ``summary()``.

    Batches are ``(..., d)`` arrays; all leading axes are flattened into samples. The first batch's
    mean is used as the ``shift`` to limit cancellation (see module docstring).
    """

    def __init__(self) -> None:
        """Start with no samples."""
        self.n = 0
        self.shift: np.ndarray | None = None
        self.sums: list[np.ndarray] | None = None

    def update(self, batch: object) -> None:
        """Add a ``(..., d)`` batch of samples."""
        arr = as_finite_array(batch, "batch")
        if arr.ndim == 0:
            raise ValueError("batch: expected an array with a last (feature) axis")
        flat = arr.reshape(-1, arr.shape[-1])
        if self.shift is None:
            self.shift = flat.mean(axis=0)
        elif flat.shape[1] != self.shift.shape[0]:
            raise ValueError(f"batch: last axis {flat.shape[1]} != {self.shift.shape[0]} seen before")
        n, *s = power_sums(flat, axis=0, shift=self.shift)
        self.n += n
        self.sums = s if self.sums is None else [a + b for a, b in zip(self.sums, s, strict=True)]

    def summary(self) -> MomentSummary:
        """Mean, variance and kurtosis per dimension of everything seen so far."""
        if self.sums is None:
            raise ValueError("MomentAccumulator: no batches were added; call update() first")
        return kurtosis_from_moments(self.n, *self.sums, shift=self.shift)


def random_rotation(d: int, seed: int = 0) -> np.ndarray:
    """A Haar-random ``d x d`` orthogonal matrix (QR of a Gaussian matrix with the sign fix).

    Rotating features by it removes any privileged basis (RS-1's control: kurtosis -> ~3).
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d: must be a positive integer, got {d!r}")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))[None, :]
