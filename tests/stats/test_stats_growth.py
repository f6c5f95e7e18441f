"""Planted-answer tests for lmfacts.stats.growth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.growth import (
    fit_growth_rate,
    growth_curvature,
    per_layer_rates,
    two_point_rate,
)


def planted_norms(rate: float, n_prompts: int, n_layers: int, seed: int, sigma: float = 0.02) -> np.ndarray:
    """norms = n0 * rate**l * lognormal(0, sigma) noise, with a per-prompt scale n0."""
    rng = np.random.default_rng(seed)
    n0 = rng.uniform(0.5, 2.0, size=(n_prompts, 1))
    layers = np.arange(n_layers)
    return n0 * rate**layers * rng.lognormal(0.0, sigma, size=(n_prompts, n_layers))


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), rate=st.floats(0.9, 1.2), dtype=st.sampled_from([np.float32, np.float64])
)
def test_planted_rate_recovered(seed: int, rate: float, dtype: type) -> None:
    norms = planted_norms(rate, 40, 30, seed).astype(dtype)
    fit = fit_growth_rate(norms, (0, 29), n_boot=200, seed=seed)
    assert abs(fit.rate - rate) < 0.002
    assert fit.ci is not None and fit.ci[0] <= fit.rate <= fit.ci[1]
    assert fit.r_squared > 0.9 or abs(np.log(rate)) < 0.01
    assert fit.n_prompts == 40 and fit.ci_method == "bootstrap_prompts"


def test_rate_107_over_window_and_two_point() -> None:
    norms = planted_norms(1.07, 40, 30, seed=1)
    fit = fit_growth_rate(norms, (5, 25), n_boot=300)
    assert abs(fit.rate - 1.07) < 0.002
    assert abs(two_point_rate(norms, 5, 25) - 1.07) < 0.005
    rates = per_layer_rates(norms)
    assert rates.shape == (29,)
    assert abs(np.exp(np.mean(np.log(rates))) - 1.07) < 0.005


def test_bootstrap_ci_coverage() -> None:
    """The 95% bootstrap CI covers the planted rate in >= 90% of 50 seeds."""
    covered = 0
    for seed in range(50):
        fit = fit_growth_rate(planted_norms(1.07, 40, 30, seed=1000 + seed), (0, 29), n_boot=400, seed=seed)
        assert fit.ci is not None
        covered += fit.ci[0] <= 1.07 <= fit.ci[1]
    assert covered >= 45, covered


def test_ci_width_shrinks_with_more_prompts() -> None:
    narrow = fit_growth_rate(planted_norms(1.05, 400, 20, seed=3), (0, 19), n_boot=300).ci
    wide = fit_growth_rate(planted_norms(1.05, 10, 20, seed=3), (0, 19), n_boot=300).ci
    assert narrow is not None and wide is not None
    assert (narrow[1] - narrow[0]) < (wide[1] - wide[0])


@settings(max_examples=20, deadline=None)
@given(
    n0=st.floats(1e-3, 1e3),
    rate=st.floats(0.5, 2.0),
    n_layers=st.integers(3, 60),
)
def test_exact_exponential_is_exact(n0: float, rate: float, n_layers: int) -> None:
    norms = n0 * rate ** np.arange(n_layers)
    fit = fit_growth_rate(norms, (0, n_layers - 1))
    assert fit.rate == pytest.approx(rate, rel=1e-10)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-9)
    assert fit.ci_method == "ols_t" and fit.ci is not None
    assert fit.ci[0] == pytest.approx(rate, rel=1e-8) and fit.ci[1] == pytest.approx(rate, rel=1e-8)
    assert two_point_rate(norms, 0, n_layers - 1) == pytest.approx(rate, rel=1e-10)
    np.testing.assert_allclose(per_layer_rates(norms), rate, rtol=1e-10)


def test_1d_ols_ci_covers_and_noisy_r2_below_one() -> None:
    rng = np.random.default_rng(0)
    norms = 2.0 * 1.04 ** np.arange(40) * rng.lognormal(0, 0.05, 40)
    fit = fit_growth_rate(norms, (0, 39))
    assert fit.ci is not None and fit.ci[0] < 1.04 < fit.ci[1]
    assert 0.5 < fit.r_squared < 1.0


def test_r2_low_for_non_exponential_curve() -> None:
    norms = 5.0 + np.sin(np.arange(30))  # oscillates, no trend
    assert fit_growth_rate(norms, (0, 29)).r_squared < 0.3


def test_quadratic_log_curve_is_superexponential() -> None:
    rng = np.random.default_rng(7)
    layers = np.arange(30)
    log_curve = 0.03 * layers + 0.002 * layers**2
    norms = np.exp(log_curve)[None, :] * rng.lognormal(0, 0.02, size=(40, 30))
    res = growth_curvature(norms, (0, 29))
    assert res.superexponential and not res.subexponential
    assert res.c == pytest.approx(0.002, abs=3e-4)
    assert res.rate_end > res.rate_start
    concave = growth_curvature(np.exp(0.1 * layers - 0.002 * layers**2), (0, 29))
    assert concave.subexponential and not concave.superexponential


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rate=st.floats(0.95, 1.15))
def test_pure_exponential_not_superexponential(seed: int, rate: float) -> None:
    norms = planted_norms(rate, 40, 30, seed)
    res = growth_curvature(norms, (0, 29))
    assert not res.superexponential
    exact = growth_curvature(rate ** np.arange(30), (2, 27))
    assert not exact.superexponential and not exact.subexponential


def test_to_dict_is_json_safe() -> None:
    import json

    fit = fit_growth_rate(planted_norms(1.07, 10, 12, 0), (1, 10), n_boot=50)
    d = fit.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["window"] == [1, 10]
    json.dumps(growth_curvature(planted_norms(1.07, 10, 12, 0), (1, 10)).to_dict())


@pytest.mark.parametrize(
    ("norms", "window", "match"),
    [
        (np.array([]), (0, 1), "norms"),
        (np.array([1.0, np.nan, 2.0]), (0, 2), "NaN"),
        (np.array([1.0, 0.0, 2.0]), (0, 2), "> 0"),
        (np.ones((2, 3, 4)), (0, 2), "ndim"),
        (np.ones(5), (0, 5), "window"),
        (np.ones(5), (3, 3), "window"),
        (np.ones(5), (-1, 3), "window"),
    ],
)
def test_bad_input_raises(norms: np.ndarray, window: tuple[int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_growth_rate(norms, window)


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="ci"):
        fit_growth_rate(np.ones((3, 5)), (0, 4), ci=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        fit_growth_rate(np.ones((3, 5)), (0, 4), n_boot=-1)
    with pytest.raises(ValueError, match="window"):
        growth_curvature(np.ones(10), (0, 2))


def test_single_prompt_uses_ols_interval_and_no_ci_cases() -> None:
    norms = planted_norms(1.05, 1, 20, seed=4)
    fit = fit_growth_rate(norms, (0, 19))
    assert fit.ci_method == "ols_t" and fit.n_prompts == 1 and fit.ci is not None
    assert fit.ci[0] < fit.ci[1]
    assert fit_growth_rate(planted_norms(1.05, 5, 20, 0), (0, 19), n_boot=0).ci is None
    assert fit_growth_rate(np.array([1.0, 2.0]), (0, 1)).ci is None


def test_r_squared_ci_brackets_a_planted_fit_quality() -> None:
    """R²'s bootstrap CI over prompts: prompts that grow exactly exponentially give R² = 1 with a CI of [1, 1];
    prompts with independent per-layer noise give an R² below 1 whose CI contains it and excludes 1; the
    full-sample R² is the one reported."""
    from lmfacts.stats.growth import fit_growth_rate

    layers = np.arange(12)
    exact = np.tile(1.05 ** layers, (20, 1)) * np.linspace(0.5, 2.0, 20)[:, None]  # each prompt a scaled curve
    fit = fit_growth_rate(exact, (0, 11), n_boot=300, seed=0)
    assert fit.r_squared == pytest.approx(1.0) and fit.r_squared_ci == pytest.approx((1.0, 1.0))
    rng = np.random.default_rng(7)
    noisy = np.tile(1.02 ** layers, (30, 1)) * np.exp(0.05 * rng.standard_normal((30, 12)))
    fit = fit_growth_rate(noisy, (0, 11), n_boot=500, seed=0)
    lo, hi = fit.r_squared_ci
    assert lo <= fit.r_squared <= hi < 1.0 and hi - lo > 0.005, (fit.r_squared, fit.r_squared_ci)
    assert fit_growth_rate(noisy[0], (0, 11)).r_squared_ci is None  # one prompt: no bootstrap
