"""Planted-answer tests for lmfacts.stats.frobenius."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.frobenius import frobenius_identity_error, frobenius_sq, mean_sq_norm_of_random_products


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    d_out=st.integers(1, 40),
    d_in=st.integers(1, 40),
    scale=st.floats(1e-3, 1e3),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_identity_holds_within_se(seed: int, d_out: int, d_in: int, scale: float, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((d_out, d_in)) * rng.uniform(0.1, 2.0, d_in) * scale).astype(dtype)
    res = frobenius_identity_error(w, 4000, seed=seed)
    assert res.frobenius_sq == pytest.approx(np.linalg.norm(w.astype(np.float64)) ** 2, rel=1e-12)
    assert abs(res.z) < 5.0
    assert res.within_tolerance or abs(res.z) > 4.0
    assert res.rel_error <= 5.0 * res.se / res.frobenius_sq


def test_z_scores_are_standard_normal() -> None:
    """The SE formula is right: across seeds the z-scores have mean ~0 and sd ~1."""
    w = np.random.default_rng(0).standard_normal((8, 5))
    zs = np.array([frobenius_identity_error(w, 2000, seed=s).z for s in range(200)])
    assert abs(zs.mean()) < 0.25 and 0.8 < zs.std() < 1.2


def test_low_rank_and_row_vector_convention() -> None:
    rng = np.random.default_rng(1)
    w = np.outer(rng.standard_normal(30), rng.standard_normal(12))  # rank 1: heavy-tailed ||Wx||^2
    for mat in (w, w.T):
        res = frobenius_identity_error(mat, 20_000, seed=3)
        assert res.within_tolerance
        assert res.se == pytest.approx(
            np.sqrt(2 / 20_000) * frobenius_sq(w), rel=1e-9
        )  # rank 1: ||W^TW||_F = ||W||_F^2


def test_detects_a_wrong_identity() -> None:
    """A matrix whose claimed Frobenius norm is off by 10% is caught (the check can fail)."""
    w = np.random.default_rng(2).standard_normal((20, 20))
    mc = mean_sq_norm_of_random_products(w, 20_000, seed=0)
    res = frobenius_identity_error(w, 20_000, seed=0)
    assert abs(1.1 * res.frobenius_sq - mc) / res.se > 10


def test_chunking_is_invisible() -> None:
    w = np.random.default_rng(0).standard_normal((3, 2_000_000 // 100))
    a = mean_sq_norm_of_random_products(w, 500, seed=1)
    assert np.isfinite(a) and a > 0


def test_to_dict_and_bad_input() -> None:
    d = frobenius_identity_error(np.eye(3), 10).to_dict()
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ValueError, match="W"):
        frobenius_sq(np.ones(3))
    with pytest.raises(ValueError, match="W"):
        frobenius_identity_error(np.zeros((2, 2)), 10)
    with pytest.raises(ValueError, match="n_samples"):
        mean_sq_norm_of_random_products(np.eye(2), 0)
    with pytest.raises(ValueError, match="W"):
        frobenius_sq(np.array([[1.0, np.inf]]))


def test_monte_carlo_mean_is_exactly_the_sample_mean() -> None:
    """Same seed, same draws: the estimator is the plain mean of ||W x_i||^2 (no hidden bias)."""
    w = np.random.default_rng(5).standard_normal((7, 3))
    x = np.random.default_rng(11).standard_normal((300, 3))
    direct = float(np.mean(np.sum((x @ w.T) ** 2, axis=1)))
    assert mean_sq_norm_of_random_products(w, 300, seed=11) == pytest.approx(direct, rel=1e-12)
