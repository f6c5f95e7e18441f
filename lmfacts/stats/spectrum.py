"""Singular-value spectra: power-law fits and the Marchenko-Pastur null (BF-7, BF-8).

* :func:`fit_power_law` -- OLS of log sigma_k on log k over a *bulk* rank range. Default range:
  ranks ``ceil(0.05 p)`` .. ``floor(0.5 p)`` (1-based, inclusive; p = number of values), which skips
  the few top "spikes" and the sharp fall-off at the small end the BF post describes; at least 5
  ranks are always used. ``exponent = -slope``.
* :func:`marchenko_pastur_singular_values` -- the *expected* sorted singular values of an
  ``n_rows x n_cols`` matrix of i.i.d. N(0, sigma^2) entries, from quantiles of the MP law (no
  sampling): with p = min, N = max and y = p / N, the eigenvalues of X X^T / N follow MP on
  [sigma^2 (1 - sqrt y)^2, sigma^2 (1 + sqrt y)^2]; sigma_k = sqrt(N * F^-1(1 - (k - 1/2) / p)).
* :func:`compare_to_marchenko_pastur` -- scales the MP baseline to the data over the bulk ranks
  (``mp_sigma`` = geometric mean of sigma_k / sigma_k^MP(sigma=1) there, the least-squares scale in
  log space; unlike Frobenius matching it ignores a few large spikes and the small-end fall-off),
  measures the RMS log-ratio of data to the scaled baseline over the bulk ranks (a pure *shape*
  distance: 0 for an exact MP spectrum of any scale), and calls the spectrum a power law only if the
  log-log fit is good (``R^2 >= r2_min``) AND it is far from MP (``mp_log_distance >= mp_tol``):
  a Gaussian matrix can have a high log-log R^2 over a narrow range, but it matches MP. The
  Frobenius-matched scale is also reported (``frobenius_sigma``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import DegenerateSample, as_finite_array, check_int, check_positive

__all__ = [
    "PowerLawFit",
    "SpectrumComparison",
    "default_rank_range",
    "fit_power_law",
    "marchenko_pastur_singular_values",
    "compare_to_marchenko_pastur",
    "eigvals_to_singular",
    "zero_below_floor",
]

_MIN_POINTS = 5


@dataclass(frozen=True)
class PowerLawFit(ResultMixin):
    """log sigma_k = intercept - exponent * log k over ``rank_range`` (1-based, inclusive)."""

    exponent: float
    intercept: float
    r_squared: float
    rank_range: tuple[int, int]
    n_points: int


@dataclass(frozen=True)
class SpectrumComparison(ResultMixin):
    """Data spectrum vs the Frobenius-matched Marchenko-Pastur baseline of the same shape.

    ``mp_log_distance`` = RMS over the bulk ranks of log(sigma_k / sigma_k^MP); ``mp_sigma`` the
    entry scale fitted over the bulk ranks, ``frobenius_sigma = ||W||_F / sqrt(n_rows n_cols)``;
    ``is_power_law = fit.r_squared >= r2_min and mp_log_distance >= mp_tol``.
    """

    fit: PowerLawFit
    mp_fit: PowerLawFit
    mp_sigma: float
    frobenius_sigma: float
    mp_log_distance: float
    shape: tuple[int, int]
    r2_min: float
    mp_tol: float
    is_power_law: bool


def _sorted_spectrum(singular_values: object, name: str = "singular_values") -> np.ndarray:
    sv = as_finite_array(singular_values, name, ndim=1, min_size=_MIN_POINTS * 2)
    if np.any(sv < 0):
        raise ValueError(f"{name}: singular values must be >= 0 (got min {sv.min():.4g})")
    return np.sort(sv)[::-1]


def default_rank_range(p: int) -> tuple[int, int]:
    """Bulk ranks ``(ceil(0.05 p), floor(0.5 p))`` (1-based, inclusive), widened to >= 5 ranks."""
    p = check_int(p, "p", minimum=_MIN_POINTS)
    lo = max(1, math.ceil(0.05 * p))
    hi = max(lo + _MIN_POINTS - 1, math.floor(0.5 * p))
    return lo, min(hi, p)


def _check_rank_range(rank_range: object, p: int) -> tuple[int, int]:
    if rank_range is None:
        return default_rank_range(p)
    try:
        lo, hi = (int(v) for v in rank_range)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rank_range: expected (lo, hi) 1-based ranks, got {rank_range!r}") from exc
    if not (1 <= lo and hi <= p and hi - lo + 1 >= _MIN_POINTS):
        raise ValueError(f"rank_range: need 1 <= lo, hi <= {p} and >= {_MIN_POINTS} ranks, got ({lo}, {hi})")
    return lo, hi


def _fit_sorted(sv: np.ndarray, lo: int, hi: int) -> PowerLawFit:
    ys = sv[lo - 1 : hi]
    if np.any(ys <= 0):
        rank = int(np.count_nonzero(sv > 0))
        raise DegenerateSample(
            f"singular_values: zeros inside rank_range ({lo}, {hi}): only {rank} of {sv.size} values are > 0 "
            "(rank-deficient); choose a range of positive values"
        )
    x = np.log(np.arange(lo, hi + 1, dtype=np.float64))
    y = np.log(ys)
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    intercept = float(y.mean() - slope * x.mean())
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - intercept - slope * x) ** 2))
    flat_tol = 1e-24 * y.size * max(1.0, float(np.max(np.abs(y)))) ** 2  # flat to round-off: R^2 = 1
    r2 = 1.0 if ss_tot <= flat_tol else 1.0 - ss_res / ss_tot
    return PowerLawFit(
        exponent=-slope, intercept=intercept, r_squared=r2, rank_range=(lo, hi), n_points=hi - lo + 1
    )


def fit_power_law(singular_values: object, rank_range: tuple[int, int] | None = None) -> PowerLawFit:
    """Fit sigma_k ~ k**-exponent by least squares on log-log over ``rank_range`` (see module doc)."""
    sv = _sorted_spectrum(singular_values)
    lo, hi = _check_rank_range(rank_range, sv.size)
    return _fit_sorted(sv, lo, hi)


def _mp_quantile_grid(y: float, n_grid: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Return (lambda values, CDF values) on a grid for the unit-variance MP law with ratio y <= 1.

    Uses lambda = a + (b - a)(1 - cos theta)/2, which removes the square-root edge singularities
    (and the 1/lambda one at a = 0 when y = 1) from the integrand; midpoint rule in theta.
    """
    a, b = (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2
    edges = np.linspace(0.0, math.pi, n_grid + 1)
    mid = 0.5 * (edges[1:] + edges[:-1])
    c = np.cos(mid)
    lam_mid = a + (b - a) * (1 - c) / 2
    half = (b - a) / 2
    if a > 0:
        dens = half**2 * (1 - c) * (1 + c) / (2 * math.pi * y * lam_mid)
    else:  # y == 1: cancel (1 - c) analytically
        dens = half**2 * (1 + c) * 2 / (2 * math.pi * y * (b - a))
    cdf = np.concatenate([[0.0], np.cumsum(dens) * (math.pi / n_grid)])
    cdf /= cdf[-1]  # integrates to 1 up to O(grid^-2); renormalise
    lam = a + (b - a) * (1 - np.cos(edges)) / 2
    return lam, cdf


def marchenko_pastur_singular_values(n_rows: int, n_cols: int, sigma: float = 1.0) -> np.ndarray:
    """Expected sorted (descending) singular values of an n_rows x n_cols i.i.d. N(0, sigma^2) matrix.

    Returns ``min(n_rows, n_cols)`` values from MP quantiles at probabilities (k - 1/2) / p.
    """
    n_rows = check_int(n_rows, "n_rows", minimum=1)
    n_cols = check_int(n_cols, "n_cols", minimum=1)
    sigma = check_positive(sigma, "sigma")
    p, big = min(n_rows, n_cols), max(n_rows, n_cols)
    lam, cdf = _mp_quantile_grid(p / big)
    probs = 1.0 - (np.arange(1, p + 1) - 0.5) / p
    eig = np.interp(probs, cdf, lam)
    return sigma * np.sqrt(big * eig)


def compare_to_marchenko_pastur(
    singular_values: object,
    shape: tuple[int, int],
    *,
    rank_range: tuple[int, int] | None = None,
    r2_min: float = 0.95,
    mp_tol: float = 0.1,
) -> SpectrumComparison:
    """Compare a spectrum with the MP baseline of a Gaussian matrix of ``shape`` (see module doc).

    ``singular_values`` must hold all ``min(shape)`` singular values of the matrix.
    """
    try:
        n_rows, n_cols = (int(v) for v in shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape: expected (n_rows, n_cols), got {shape!r}") from exc
    sv = _sorted_spectrum(singular_values)
    if sv.size != min(n_rows, n_cols):
        raise ValueError(
            f"singular_values: got {sv.size} values but shape {shape} has min(shape)={min(n_rows, n_cols)}; pass all of them"
        )
    r2_min = check_positive(r2_min, "r2_min")
    mp_tol = check_positive(mp_tol, "mp_tol")
    lo, hi = _check_rank_range(rank_range, sv.size)
    fit = _fit_sorted(sv, lo, hi)
    frob_sigma = math.sqrt(float(np.sum(sv**2)) / (n_rows * n_cols))
    unit = marchenko_pastur_singular_values(n_rows, n_cols, 1.0)
    log_ratio = np.log(sv[lo - 1 : hi] / unit[lo - 1 : hi])
    mp_sigma = float(np.exp(log_ratio.mean()))
    mp = unit * mp_sigma
    mp_fit = _fit_sorted(mp, lo, hi)
    dist = float(np.sqrt(np.mean((log_ratio - log_ratio.mean()) ** 2)))
    return SpectrumComparison(
        fit=fit,
        mp_fit=mp_fit,
        mp_sigma=mp_sigma,
        frobenius_sigma=frob_sigma,
        mp_log_distance=dist,
        shape=(n_rows, n_cols),
        r2_min=r2_min,
        mp_tol=mp_tol,
        is_power_law=bool(fit.r_squared >= r2_min and dist >= mp_tol),
    )


def eigvals_to_singular(eigvals: object, n_samples: int | None = None, *, ddof: int = 1) -> np.ndarray:
    """Singular values of the centred data matrix from covariance eigenvalues, sorted descending.

    For C = X_c^T X_c / (n_samples - ddof), sigma_k = sqrt((n_samples - ddof) * lambda_k); without
    ``n_samples`` returns sqrt(lambda_k) (same shape, so the same power-law exponent). Round-off
    negatives (>= -1e-10 * max) are clipped to 0; larger negatives raise (C is not a covariance).
    """
    lam = as_finite_array(eigvals, "eigvals", ndim=1)
    tol = 1e-10 * max(float(np.max(np.abs(lam))), np.finfo(np.float64).tiny)
    if np.any(lam < -tol):
        raise ValueError(f"eigvals: negative eigenvalue {lam.min():.4g}; a covariance matrix is PSD")
    lam = np.clip(lam, 0.0, None)
    factor = 1.0
    if n_samples is not None:
        n_samples = check_int(n_samples, "n_samples", minimum=ddof + 1)
        factor = float(n_samples - ddof)
    return np.sort(np.sqrt(lam * factor))[::-1]


def zero_below_floor(values: object, floor: float) -> tuple[np.ndarray, int]:
    """``(values with every entry <= floor set to exactly 0, number of entries > floor)``.

    For singular values or covariance eigenvalues computed in floating point, a matrix of rank r has
    min(shape) - r values that come out as rounding noise rather than exact zeros; ``floor`` is the
    rounding bound of the computation (e.g. ``sigma_max * max(shape) * eps``, NumPy's
    ``matrix_rank`` default). Zeroing them lets :func:`fit_power_law` and
    :func:`compare_to_marchenko_pastur` see the rank deficiency (they raise
    :class:`DegenerateSample` for zeros inside the fitted ranks) instead of fitting noise. The
    order of ``values`` is kept; negative round-off is zeroed too.
    """
    arr = as_finite_array(values, "values", ndim=1)
    floor = float(floor)
    if not np.isfinite(floor) or floor < 0:
        raise ValueError(f"floor: must be a finite number >= 0, got {floor!r}")
    out = np.where(arr > floor, arr, 0.0)
    return out, int(np.count_nonzero(out))
