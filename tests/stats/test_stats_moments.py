"""Planted-answer tests for lmfacts.stats.moments."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as sps
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.moments import (
    MomentAccumulator,
    kurtosis,
    kurtosis_from_moments,
    power_sums,
    random_rotation,
)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), loc=st.floats(-5, 5), scale=st.floats(0.01, 100))
def test_gaussian_kurtosis_is_three(seed: int, loc: float, scale: float) -> None:
    n = 200_000
    x = np.random.default_rng(seed).normal(loc, scale, n)
    se = np.sqrt(24.0 / n)
    assert abs(kurtosis(x) - 3.0) < 5 * se


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_student_t10_kurtosis_is_four(seed: int) -> None:
    x = np.random.default_rng(seed).standard_t(10, size=1_000_000)
    assert abs(kurtosis(x) - 4.0) < 0.12  # 3 + 6 / (nu - 4)


def test_student_t5_kurtosis_near_nine() -> None:
    x = np.random.default_rng(1).standard_t(5, size=2_000_000)
    assert abs(kurtosis(x) - 9.0) < 1.5  # heavy tail: the sample kurtosis converges slowly


def test_uniform_kurtosis_is_nine_fifths() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 400_000)
    assert kurtosis(x) == pytest.approx(1.8, abs=0.01)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 500),
    d=st.integers(1, 6),
    loc=st.floats(-50, 50),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_matches_scipy(seed: int, n: int, d: int, loc: float, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    x = (loc + rng.standard_t(4, size=(n, d)) * rng.uniform(0.1, 3, size=d)).astype(dtype)
    ref = sps.kurtosis(x.astype(np.float64), axis=0, fisher=False, bias=True)
    np.testing.assert_allclose(kurtosis(x, axis=0), ref, rtol=1e-9)
    shift = x[0].astype(np.float64)  # as a streaming probe would: the first sample is near the mean
    summary = kurtosis_from_moments(*power_sums(x, axis=0, shift=shift), shift=shift)
    np.testing.assert_allclose(summary.kurtosis, ref, rtol=1e-9)
    np.testing.assert_allclose(summary.mean, x.astype(np.float64).mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(summary.var, x.astype(np.float64).var(axis=0), rtol=1e-9)


def test_shift_rescues_large_mean() -> None:
    rng = np.random.default_rng(0)
    x = 1e4 + rng.standard_normal(100_000)  # |mean| / std = 1e4: raw sums cancel badly
    ref = sps.kurtosis(x, fisher=False)
    shifted = kurtosis_from_moments(*power_sums(x, shift=1e4), shift=1e4)
    assert float(shifted.kurtosis) == pytest.approx(ref, rel=1e-9)
    assert float(shifted.mean) == pytest.approx(x.mean(), rel=1e-12)


def test_accumulator_streams_batches() -> None:
    rng = np.random.default_rng(3)
    x = 7.0 + rng.standard_t(6, size=(4, 500, 8))
    acc = MomentAccumulator()
    for batch in x:
        acc.update(batch)
    summary = acc.summary()
    flat = x.reshape(-1, 8)
    np.testing.assert_allclose(summary.kurtosis, sps.kurtosis(flat, axis=0, fisher=False), rtol=1e-9)
    assert summary.n == 2000
    with pytest.raises(ValueError, match="last axis"):
        acc.update(np.ones((3, 5)))
    with pytest.raises(ValueError, match="update"):
        MomentAccumulator().summary()


def test_constant_dimension_is_nan() -> None:
    x = np.column_stack([np.ones(50), np.arange(50.0)])
    k = kurtosis(x, axis=0)
    assert np.isnan(k[0]) and np.isfinite(k[1])
    assert np.isnan(kurtosis_from_moments(*power_sums(x, axis=0)).kurtosis[0])


def test_rotation_removes_privileged_basis() -> None:
    rng = np.random.default_rng(0)
    d = 64
    x = rng.standard_normal((4000, d))
    x[:, 3] *= 30.0  # one outlier dimension -> heavy-tailed across features per token
    per_token = kurtosis(x, axis=-1).mean()
    rotated = kurtosis(x @ random_rotation(d, seed=1), axis=-1).mean()
    assert per_token > 20
    assert abs(rotated - 3.0) < 0.5
    q = random_rotation(d, seed=2)
    np.testing.assert_allclose(q @ q.T, np.eye(d), atol=1e-10)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="x"):
        kurtosis([1.0, np.inf, 2.0])
    with pytest.raises(ValueError, match="x"):
        kurtosis([1.0])
    with pytest.raises(ValueError, match="axis"):
        kurtosis(np.ones((3, 3)), axis=2)
    with pytest.raises(ValueError, match="n"):
        kurtosis_from_moments(1, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="s3"):
        kurtosis_from_moments(10, np.ones(3), np.ones(3), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="s2"):
        kurtosis_from_moments(10, 1.0, -1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="d"):
        random_rotation(0)
