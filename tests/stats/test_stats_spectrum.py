"""Planted-answer tests for lmfacts.stats.spectrum."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.spectrum import (
    compare_to_marchenko_pastur,
    default_rank_range,
    eigvals_to_singular,
    fit_power_law,
    marchenko_pastur_singular_values,
)


def planted_power_law_matrix(m: int, n: int, exponent: float, seed: int, scale: float = 1.0) -> np.ndarray:
    """U diag(scale * k**-exponent) V^T with Haar-random orthogonal U, V."""
    rng = np.random.default_rng(seed)
    p = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, p)))  # reduced QR: orthonormal columns
    v, _ = np.linalg.qr(rng.standard_normal((n, p)))
    sv = scale * np.arange(1, p + 1, dtype=np.float64) ** -exponent
    return (u * sv) @ v.T


def svals(x: np.ndarray) -> np.ndarray:
    return np.linalg.svd(x, compute_uv=False)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), exponent=st.floats(0.5, 1.5), scale=st.floats(1e-3, 1e3))
def test_planted_power_law_recovered_and_called(seed: int, exponent: float, scale: float) -> None:
    w = planted_power_law_matrix(256, 512, exponent, seed, scale)
    cmp = compare_to_marchenko_pastur(svals(w), w.shape)
    assert abs(cmp.fit.exponent - exponent) < 0.05
    assert cmp.fit.r_squared > 0.99
    assert cmp.is_power_law


def test_planted_08_with_noise_and_float32() -> None:
    w = planted_power_law_matrix(256, 512, 0.8, seed=0)
    w = w + np.random.default_rng(1).standard_normal(w.shape) * 1e-5
    cmp = compare_to_marchenko_pastur(svals(w.astype(np.float32)), (256, 512))
    assert abs(cmp.fit.exponent - 0.8) < 0.05 and cmp.is_power_law


@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(256, 512), (300, 300), (512, 128), (64, 64)]),
    sigma=st.floats(1e-3, 10.0),
)
def test_gaussian_matrix_is_not_power_law(seed: int, shape: tuple[int, int], sigma: float) -> None:
    x = np.random.default_rng(seed).normal(0, sigma, shape)
    cmp = compare_to_marchenko_pastur(svals(x), shape)
    assert not cmp.is_power_law
    assert cmp.mp_log_distance < 0.03
    assert cmp.mp_sigma == pytest.approx(sigma, rel=0.03)
    assert cmp.frobenius_sigma == pytest.approx(sigma, rel=0.03)


def test_gaussian_high_r2_on_narrow_range_still_not_power_law() -> None:
    x = np.random.default_rng(0).standard_normal((300, 300))
    cmp = compare_to_marchenko_pastur(svals(x), x.shape, rank_range=(5, 20))
    assert cmp.fit.r_squared > 0.95  # log-log R^2 alone would be fooled
    assert not cmp.is_power_law


def test_spiked_gaussian_is_not_power_law() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 512)) * 0.3
    x += 20 * np.outer(rng.standard_normal(256), rng.standard_normal(512)) / np.sqrt(512)
    cmp = compare_to_marchenko_pastur(svals(x), x.shape)
    assert not cmp.is_power_law and cmp.mp_sigma == pytest.approx(0.3, rel=0.03)


@pytest.mark.parametrize("shape", [(256, 512), (300, 300), (400, 100), (50, 2000)])
def test_marchenko_pastur_matches_sampled_matrices(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    mean_sv = np.mean([svals(rng.normal(0, 2.0, shape)) for _ in range(5)], axis=0)
    mp = marchenko_pastur_singular_values(*shape, sigma=2.0)
    p = min(shape)
    assert mp.shape == (p,) and np.all(np.diff(mp) <= 0)
    bulk = slice(int(0.05 * p), int(0.8 * p))
    np.testing.assert_allclose(mp[bulk], mean_sv[bulk], rtol=0.02)
    # expected squared Frobenius norm is n_rows * n_cols * sigma^2
    assert np.sum(mp**2) == pytest.approx(shape[0] * shape[1] * 4.0, rel=0.01)


def test_marchenko_pastur_edges() -> None:
    mp = marchenko_pastur_singular_values(1000, 4000)
    top, bottom = np.sqrt(4000) * (1 + 0.5), np.sqrt(4000) * (1 - 0.5)
    assert mp[0] == pytest.approx(top, rel=0.01) and mp[-1] == pytest.approx(bottom, rel=0.02)
    sq = marchenko_pastur_singular_values(500, 500)
    assert sq[0] == pytest.approx(2 * np.sqrt(500), rel=0.01) and sq[-1] < 0.05 * sq[0]


@settings(max_examples=20, deadline=None)
@given(p=st.integers(10, 5000))
def test_default_rank_range(p: int) -> None:
    lo, hi = default_rank_range(p)
    assert 1 <= lo and hi <= p and hi - lo + 1 >= 5
    assert lo == max(1, int(np.ceil(0.05 * p)))


def test_exact_power_law_fit() -> None:
    sv = 3.0 * np.arange(1, 101, dtype=np.float64) ** -1.3
    fit = fit_power_law(np.random.default_rng(0).permutation(sv))  # order does not matter
    assert fit.exponent == pytest.approx(1.3, rel=1e-10) and fit.r_squared == pytest.approx(1.0)
    assert fit.rank_range == (5, 50) and fit.n_points == 46
    assert fit_power_law(sv, (1, 100)).exponent == pytest.approx(1.3, rel=1e-10)


def test_eigvals_to_singular_covariance() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 30)) * np.arange(1, 31) ** -0.7
    xc = x - x.mean(axis=0)
    cov = np.cov(x, rowvar=False)
    sv = eigvals_to_singular(np.linalg.eigvalsh(cov), n_samples=400)
    np.testing.assert_allclose(sv, svals(xc), rtol=1e-8)
    shape_only = eigvals_to_singular(np.linalg.eigvalsh(cov))
    np.testing.assert_allclose(shape_only / shape_only[0], sv / sv[0], rtol=1e-8)
    with pytest.raises(ValueError, match="PSD"):
        eigvals_to_singular([1.0, -0.5])


def test_to_dict() -> None:
    cmp = compare_to_marchenko_pastur(svals(np.random.default_rng(0).standard_normal((40, 60))), (40, 60))
    d = cmp.to_dict()
    assert json.loads(json.dumps(d)) == d and d["fit"]["rank_range"] == [2, 20]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="singular_values"):
        fit_power_law(np.ones(5))
    with pytest.raises(ValueError, match="singular_values"):
        fit_power_law(np.r_[np.ones(10), -1.0])
    with pytest.raises(ValueError, match="rank_range"):
        fit_power_law(np.ones(20), (0, 10))
    with pytest.raises(ValueError, match="rank_range"):
        fit_power_law(np.ones(20), (3, 5))
    with pytest.raises(ValueError, match="singular_values"):
        compare_to_marchenko_pastur(np.ones(20), (30, 40))
    with pytest.raises(ValueError, match="shape"):
        compare_to_marchenko_pastur(np.ones(20), 20)
    with pytest.raises(ValueError, match="n_rows"):
        marchenko_pastur_singular_values(0, 3)
    with pytest.raises(ValueError, match="sigma"):
        marchenko_pastur_singular_values(3, 3, sigma=0)
