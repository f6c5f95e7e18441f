"""Planted-answer tests for lmfacts.stats.gaussianity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.gaussianity import (
    bulk_ks_distance,
    expected_max_abs_z,
    gaussian_with_outliers,
    hill_tail_index,
    max_abs_z,
    outlier_excess,
    robust_standardise,
    tail_comparison,
)

seeds = st.integers(0, 2**31 - 1)


def test_expected_max_abs_z_exact_and_monte_carlo() -> None:
    assert expected_max_abs_z(1) == pytest.approx(np.sqrt(2 / np.pi), rel=1e-9)
    assert expected_max_abs_z(2) == pytest.approx(2 / np.sqrt(np.pi), rel=1e-9)  # E max(|Z1|,|Z2|)
    rng = np.random.default_rng(0)
    for n in (10, 300):
        mc = np.abs(rng.standard_normal((20_000, n))).max(axis=1)
        se = mc.std() / np.sqrt(mc.size)
        assert abs(expected_max_abs_z(n) - mc.mean()) < 5 * se
    values = [expected_max_abs_z(n) for n in (10, 10**3, 10**6, 10**9)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert 6.0 < values[-1] < 6.4


@settings(max_examples=10, deadline=None)
@given(
    seed=seeds,
    loc=st.floats(-100, 100),
    scale=st.floats(1e-3, 1e3),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_gaussian_sample_is_gaussian_without_outliers(
    seed: int, loc: float, scale: float, dtype: type
) -> None:
    n = 20_000
    x = np.random.default_rng(seed).normal(loc, scale, n).astype(dtype)
    assert bulk_ks_distance(x) < 3.0 / np.sqrt(n)
    assert 0.8 < outlier_excess(x) < 1.35
    verdict = gaussian_with_outliers(x)
    assert verdict.bulk_gaussian and not verdict.has_outliers and not verdict.gaussian_with_outliers
    assert tail_comparison(x).best == "gaussian"


@settings(max_examples=10, deadline=None)
@given(seed=seeds, n_out=st.integers(1, 5))
def test_planted_20_sigma_outliers_flagged(seed: int, n_out: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(20_000) * 2.0 + 1.0
    idx = rng.choice(x.size, n_out, replace=False)
    x[idx] = 1.0 + 2.0 * 20.0 * rng.choice([-1.0, 1.0], n_out)
    verdict = gaussian_with_outliers(x)
    assert verdict.bulk_gaussian and verdict.has_outliers and verdict.gaussian_with_outliers
    assert verdict.max_abs_z == pytest.approx(20.0, rel=0.05)
    assert verdict.outlier_excess > 4.0
    # classical standardisation lets the outliers inflate the scale but still sees them
    assert max_abs_z(x, standardise="classical") > 10


@settings(max_examples=5, deadline=None)
@given(seed=seeds)
def test_student_t3_heavy_tail(seed: int) -> None:
    x = np.random.default_rng(seed).standard_t(3, 20_000)
    verdict = gaussian_with_outliers(x)
    assert verdict.has_outliers and verdict.outlier_excess > 2.0
    assert 2.0 < hill_tail_index(x, 200) < 4.5  # tail index of t_nu is nu


@settings(max_examples=5, deadline=None)
@given(seed=seeds)
def test_laplace_and_logistic_identified(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lap = tail_comparison(rng.laplace(3.0, 2.0, 20_000))
    assert lap.best == "laplace"
    assert lap.params["laplace"][0] == pytest.approx(3.0, abs=0.1)
    assert lap.params["laplace"][1] == pytest.approx(2.0, rel=0.05)
    assert tail_comparison(rng.logistic(0.0, 1.0, 20_000)).best == "logistic"
    assert bulk_ks_distance(rng.laplace(size=20_000)) > 0.03  # the bulk is not Gaussian either


@settings(max_examples=10, deadline=None)
@given(seed=seeds, alpha=st.floats(1.0, 4.0))
def test_hill_recovers_pareto_index(seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    # symmetric Pareto with exactly balanced signs, so the median is ~0 (between -1 and 1)
    x = np.concatenate([rng.pareto(alpha, 25_000) + 1.0, -(rng.pareto(alpha, 25_000) + 1.0)])
    est = hill_tail_index(x, 2000)
    assert est == pytest.approx(alpha, rel=0.12)


def test_hill_gaussian_is_light_tailed() -> None:
    x = np.random.default_rng(0).standard_normal(50_000)
    assert hill_tail_index(x, 500) > 6.0


def test_bulk_ks_ignores_tails_but_not_bulk() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20_000)
    x[:50] = 1e4  # 0.25% wild values, outside the central 99%
    assert bulk_ks_distance(x) < 0.03
    skewed = rng.exponential(size=20_000)
    assert bulk_ks_distance(skewed) > 0.05


def test_robust_standardise_of_gaussian() -> None:
    z = robust_standardise(np.random.default_rng(2).normal(5.0, 3.0, 100_000))
    assert abs(np.median(z)) < 0.02 and abs(z.std() - 1.0) < 0.02


def test_verdict_to_dict() -> None:
    d = gaussian_with_outliers(np.random.default_rng(0).standard_normal(1000)).to_dict()
    assert json.loads(json.dumps(d)) == d
    t = tail_comparison(np.random.default_rng(0).standard_normal(1000)).to_dict()
    assert set(t["loglik_per_sample"]) == {"gaussian", "laplace", "logistic"}


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="x"):
        bulk_ks_distance([1.0, 2.0, np.nan] * 5)
    with pytest.raises(ValueError, match="x"):
        bulk_ks_distance([])
    with pytest.raises(ValueError, match="interquartile"):
        max_abs_z(np.r_[np.zeros(20), 1.0])
    with pytest.raises(ValueError, match="central"):
        bulk_ks_distance(np.arange(20.0), central=1.0)
    with pytest.raises(ValueError, match="k"):
        hill_tail_index(np.arange(20.0), 20)
    with pytest.raises(ValueError, match="n"):
        expected_max_abs_z(0)
    with pytest.raises(ValueError, match="standardise"):
        max_abs_z(np.arange(20.0), standardise="mad")
    with pytest.raises(ValueError, match="bulk_tol"):
        gaussian_with_outliers(np.arange(20.0), bulk_tol=-1)
