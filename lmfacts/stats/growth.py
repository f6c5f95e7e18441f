"""Exponential (and super-exponential) growth of a norm over a layer window (RN-1, RN-3, RN-5..RN-7).

Conventions
-----------
* ``norms`` is ``(n_layers,)`` or ``(n_prompts, n_layers)``; 2-D input is first averaged over
  prompts (rows) per layer, matching the RN post's "mean norm over kept tokens" curve.
* ``window = (lo, hi)`` is an *inclusive* range of layer indices.
* The growth rate is ``r = exp(slope)`` where ``slope`` is the ordinary least-squares slope of
  ``log(mean norm)`` against the layer index over the window; ``R^2`` is that log-linear fit's.
* Confidence interval of ``r``:
  - 2-D input: seeded bootstrap over prompts (:func:`lmfacts.stats.verdict.bootstrap_ci`: rows
    resampled with replacement, the per-layer mean recomputed from the resample, the slope refitted;
    ``boot_method`` "percentile" (default) or "BCa") -- ``ci_method == "bootstrap_prompts"``.
  - 1-D input (or a single prompt): the classical OLS t-interval of the slope, exponentiated
    (``ci_method == "ols_t"``, assumes independent per-layer residuals); it needs >= 3 layers in
    the window, otherwise ``ci`` is ``None`` (``ci_method == "none"``, also when ``n_boot == 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ._result import ResultMixin
from ._validation import as_finite_array, check_int, check_probability, check_window

__all__ = [
    "GrowthFit",
    "CurvatureFit",
    "fit_growth_rate",
    "two_point_rate",
    "window_rates",
    "per_layer_rates",
    "growth_curvature",
    "mean_curve",
]


@dataclass(frozen=True)
class GrowthFit(ResultMixin):
    """Result of :func:`fit_growth_rate`.

    ``rate`` = exp(slope) per layer; ``ci`` = (low, high) bounds on ``rate`` or ``None``;
    ``r_squared`` of the log-linear fit over ``window`` (inclusive); ``r_squared_ci``: its bootstrap interval
    over prompts (the same resamples, level and method as ``ci``), ``None`` without a bootstrap (1-D input).
    """

    rate: float
    slope: float
    intercept: float
    r_squared: float
    window: tuple[int, int]
    n_prompts: int
    ci: tuple[float, float] | None
    ci_level: float
    ci_method: str
    n_boot: int
    boot_method: str = "none"
    seed: int = 0
    r_squared_ci: tuple[float, float] | None = None


def _r_squared(logy: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """R² of the OLS line through ``logy[..., :]`` against ``layers`` (batched); a curve flat to round-off is
    fitted perfectly by slope 0: R² = 1 there (0/0 otherwise)."""
    slope, intercept = _ols_slopes(logy, layers)
    resid = logy - (intercept[..., None] + slope[..., None] * layers)
    ss_tot = np.sum((logy - logy.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    ss_res = np.sum(resid**2, axis=-1)
    flat_tol = 1e-24 * logy.shape[-1] * np.maximum(1.0, np.max(np.abs(logy), axis=-1)) ** 2
    return np.where(ss_tot <= flat_tol, 1.0, 1.0 - ss_res / np.where(ss_tot <= flat_tol, 1.0, ss_tot))


@dataclass(frozen=True)
class CurvatureFit(ResultMixin):
    """Result of :func:`growth_curvature`: quadratic fit ``log norm = a + b*l + c*l^2``.

    ``c`` is the curvature of log-norm (0 for a pure exponential), ``c_se`` its OLS standard error,
    ``t_stat = c / c_se`` and ``p_value`` the one-sided p-value for ``c > 0``. ``rate_start`` and
    ``rate_end`` are the local per-layer rates ``exp(b + 2 c l)`` at the window ends, and
    ``rate_change = rate_end / rate_start - 1``. ``superexponential`` is True iff ``c > 0`` with
    ``p_value < alpha`` *and* ``rate_change >= min_rate_change`` (the effect must be material, not just
    detectable). ``subexponential`` is the mirror image (``c < 0``).
    """

    c: float
    c_se: float
    t_stat: float
    p_value: float
    rate_start: float
    rate_end: float
    rate_change: float
    window: tuple[int, int]
    alpha: float
    min_rate_change: float
    superexponential: bool
    subexponential: bool


def _as_norms(norms: object, name: str = "norms") -> np.ndarray:
    arr = as_finite_array(norms, name, ndim=(1, 2), positive=True)
    if arr.shape[-1] < 2:
        raise ValueError(f"{name}: need at least 2 layers on the last axis, got shape {arr.shape}")
    return arr


def mean_curve(norms: object) -> np.ndarray:
    """Per-layer mean norm: ``norms`` itself if 1-D, the mean over rows (prompts) if 2-D."""
    arr = _as_norms(norms)
    return arr if arr.ndim == 1 else arr.mean(axis=0)


def _ols_slopes(logy: np.ndarray, layers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised OLS of ``logy[..., :]`` on ``layers``; returns (slopes, intercepts)."""
    xc = layers - layers.mean()
    slope = (logy - logy.mean(axis=-1, keepdims=True)) @ xc / float(xc @ xc)
    intercept = logy.mean(axis=-1) - slope * layers.mean()
    return slope, intercept


def fit_growth_rate(
    norms: object,
    window: tuple[int, int],
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    boot_method: str = "percentile",
) -> GrowthFit:
    """Fit the per-layer exponential growth rate of ``norms`` over the inclusive ``window``.

    ``rate = exp(OLS slope of log(mean norm) vs layer)``; see the module docstring for the CI
    (bootstrap over prompts for 2-D input, ``n_boot`` resamples by ``boot_method`` ("percentile" or
    "BCa") with ``seed``, bit-identical on every run; OLS t-interval for 1-D input).
    """
    arr = _as_norms(norms)
    lo, hi = check_window(window, arr.shape[-1])
    level = check_probability(ci, "ci")
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    layers = np.arange(lo, hi + 1, dtype=np.float64)
    curve = arr if arr.ndim == 1 else arr.mean(axis=0)
    logy = np.log(curve[lo : hi + 1])
    slope, intercept = _ols_slopes(logy, layers)
    slope, intercept = float(slope), float(intercept)
    resid = logy - (intercept + slope * layers)
    ss_tot = float(np.sum((logy - logy.mean()) ** 2))
    ss_res = float(np.sum(resid**2))
    # A curve flat to round-off is fitted perfectly by slope 0: call that R^2 = 1 (0/0 otherwise).
    flat_tol = 1e-24 * logy.size * max(1.0, float(np.max(np.abs(logy)))) ** 2
    r2 = 1.0 if ss_tot <= flat_tol else 1.0 - ss_res / ss_tot

    interval: tuple[float, float] | None = None
    r2_interval: tuple[float, float] | None = None
    method = "none"
    tail = (1.0 - level) / 2.0
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]  # one prompt: nothing to resample, use the 1-D (OLS) interval
    if arr.ndim == 2 and n_boot > 0:
        from .verdict import bootstrap_ci

        method = "bootstrap_prompts"

        def rates(rows: np.ndarray) -> np.ndarray:  # (B, n, window) -> (B,) rate of each resample's mean curve
            return np.exp(_ols_slopes(np.log(rows.mean(axis=1)), layers)[0])

        boot = bootstrap_ci(arr[:, lo : hi + 1], rates, n_resamples=n_boot, level=level, method=boot_method,
                            seed=seed)
        interval = boot.ci

        def r_squareds(rows: np.ndarray) -> np.ndarray:  # (B, n, window) -> (B,) R² of each resample's mean curve
            return _r_squared(np.log(rows.mean(axis=1)), layers)

        r2_interval = bootstrap_ci(arr[:, lo : hi + 1], r_squareds, n_resamples=n_boot, level=level,
                                   method="percentile", seed=seed).ci
    elif arr.ndim == 1 and layers.size >= 3:
        method = "ols_t"
        dof = layers.size - 2
        se = np.sqrt(ss_res / dof / float(np.sum((layers - layers.mean()) ** 2)))
        t = sps.t.ppf(1.0 - tail, dof)
        interval = (float(np.exp(slope - t * se)), float(np.exp(slope + t * se)))
    return GrowthFit(
        rate=float(np.exp(slope)),
        slope=slope,
        intercept=intercept,
        r_squared=float(r2),
        window=(lo, hi),
        n_prompts=1 if arr.ndim == 1 else int(arr.shape[0]),
        ci=interval,
        ci_level=level,
        ci_method=method,
        n_boot=n_boot if method == "bootstrap_prompts" else 0,
        boot_method=boot_method if method == "bootstrap_prompts" else "none",
        seed=seed,
        r_squared_ci=r2_interval,
    )


def window_rates(curves: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Batched LSQ growth rates: ``exp(OLS slope of log curve vs layer)`` over the inclusive ``window``.

    ``curves``: ``(..., n_layers)`` positive per-layer values (e.g. the mean curve of each bootstrap
    resample); returns ``(...)`` rates. No validation (a bootstrap statistic; validate the data first).
    """
    lo, hi = window
    layers = np.arange(lo, hi + 1, dtype=np.float64)
    return np.exp(_ols_slopes(np.log(np.asarray(curves, dtype=np.float64)[..., lo : hi + 1]), layers)[0])


def two_point_rate(norms: object, lo: int, hi: int) -> float:
    """The RN post's "by eye" rate: ``(norm[hi] / norm[lo]) ** (1 / (hi - lo))`` of the mean curve."""
    curve = mean_curve(norms)
    lo, hi = check_window((lo, hi), curve.size, "(lo, hi)")
    return float((curve[hi] / curve[lo]) ** (1.0 / (hi - lo)))


def per_layer_rates(norms: object) -> np.ndarray:
    """Per-layer ratios ``norm[l + 1] / norm[l]`` of the mean curve, shape ``(n_layers - 1,)``."""
    curve = mean_curve(norms)
    return curve[1:] / curve[:-1]


def growth_curvature(
    norms: object,
    window: tuple[int, int],
    *,
    alpha: float = 0.01,
    min_rate_change: float = 0.01,
) -> CurvatureFit:
    """Test for super-exponential growth: is the quadratic term of log-norm vs layer > 0?

    Fits ``log(mean norm) = a + b*l + c*l^2`` by OLS over the inclusive window (>= 4 layers) and
    applies the decision rule documented on :class:`CurvatureFit`. The OLS standard error assumes
    independent per-layer noise; a perfect fit (zero residuals) gives ``c_se = 0`` and a p-value of
    0 (``c > 0``) or 1.
    """
    curve = mean_curve(norms)
    lo, hi = check_window(window, curve.size, min_points=4)
    alpha = check_probability(alpha, "alpha")
    if not np.isfinite(min_rate_change) or min_rate_change < 0:
        raise ValueError(f"min_rate_change: must be a finite number >= 0, got {min_rate_change!r}")
    layers = np.arange(lo, hi + 1, dtype=np.float64)
    centre = layers.mean()
    xc = layers - centre
    design = np.column_stack([np.ones_like(xc), xc, xc**2])
    logy = np.log(curve[lo : hi + 1])
    coef, *_ = np.linalg.lstsq(design, logy, rcond=None)
    resid = logy - design @ coef
    dof = layers.size - 3
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.inv(design.T @ design)
    c = float(coef[2])
    c_se = float(np.sqrt(max(cov[2, 2], 0.0)))
    # Treat residuals at float round-off level as an exact fit.
    if c_se <= 1e-12 * max(1.0, float(np.max(np.abs(logy)))):
        t_stat = float(np.sign(c)) * np.inf if abs(c) > 1e-12 else 0.0
        p_value = 0.0 if t_stat > 0 else 1.0
        c_se = 0.0
    else:
        t_stat = c / c_se
        p_value = float(sps.t.sf(t_stat, dof))
    b = float(coef[1])
    rate_start = float(np.exp(b + 2 * c * (lo - centre)))
    rate_end = float(np.exp(b + 2 * c * (hi - centre)))
    change = rate_end / rate_start - 1.0
    p_low = 1.0 - p_value if np.isfinite(t_stat) else (0.0 if t_stat < 0 else 1.0)
    return CurvatureFit(
        c=c,
        c_se=c_se,
        t_stat=float(t_stat),
        p_value=float(p_value),
        rate_start=rate_start,
        rate_end=rate_end,
        rate_change=float(change),
        window=(lo, hi),
        alpha=alpha,
        min_rate_change=float(min_rate_change),
        superexponential=bool(c > 0 and p_value < alpha and change >= min_rate_change),
        subexponential=bool(c < 0 and p_low < alpha and -change / (1.0 + change) >= min_rate_change),
    )
