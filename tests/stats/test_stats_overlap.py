"""Planted-answer tests for lmfacts.stats.overlap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.overlap import chance_overlap, consistency_across, top_k_dims, top_k_overlap


def test_top_k_dims_order_and_sign() -> None:
    v = np.array([[0.1, -5.0, 3.0, 0.0], [9.0, 1.0, -2.0, 8.0]])
    np.testing.assert_array_equal(top_k_dims(v, 2), [[1, 2], [0, 3]])
    np.testing.assert_array_equal(top_k_dims(v[0], 4), [1, 2, 0, 3])


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), n=st.integers(2, 50), d=st.integers(8, 200), n_planted=st.integers(1, 4)
)
def test_planted_outlier_dims_consistent(seed: int, n: int, d: int, n_planted: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    planted = rng.choice(d, n_planted, replace=False)
    x[:, planted] *= 30.0
    x[:, planted] += 30.0 * np.sign(x[:, planted])  # make sure each planted entry is large in every row
    sets = top_k_dims(x, n_planted)
    assert all(set(row) == set(planted) for row in sets)
    res = consistency_across(sets, d)
    assert res.mean_overlap == pytest.approx(1.0)
    assert set(res.top_dims) == set(planted) and all(f == 1.0 for f in res.top_dim_frequency)
    assert res.chance == pytest.approx(n_planted / d)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 20))
def test_random_data_overlap_at_chance(seed: int, k: int) -> None:
    d, n = 100, 400
    x = np.random.default_rng(seed).standard_normal((n, d))
    res = consistency_across(top_k_dims(x, k), d)
    # pairwise overlaps are hypergeometric / k with mean k/d; the mean of ~80k pairs is tight
    assert abs(res.mean_overlap - k / d) < 0.3 * k / d + 0.01


def test_mean_overlap_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    sets = np.array([rng.choice(30, 5, replace=False) for _ in range(12)])
    brute = np.mean([top_k_overlap(sets[i], sets[j]) for i in range(12) for j in range(i + 1, 12)])
    assert consistency_across(sets).mean_overlap == pytest.approx(brute, rel=1e-12)


def test_pair_overlap_and_chance() -> None:
    assert top_k_overlap([1, 2, 3, 4], [4, 3, 9, 8]) == 0.5
    assert chance_overlap(5, 100) == 0.05
    d = consistency_across(np.array([[0, 1], [1, 2]]), 4).to_dict()
    assert json.loads(json.dumps(d)) == d and d["mean_overlap"] == 0.5


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="k"):
        top_k_dims(np.ones(3), 4)
    with pytest.raises(ValueError, match="values"):
        top_k_dims([np.nan, 1.0], 1)
    with pytest.raises(ValueError, match="same size"):
        top_k_overlap([1, 2], [1])
    with pytest.raises(ValueError, match="duplicates"):
        top_k_overlap([1, 1], [1, 2])
    with pytest.raises(ValueError, match="sets"):
        consistency_across(np.array([[1, 2]]))
    with pytest.raises(ValueError, match="sets"):
        consistency_across(np.array([[0.5, 1.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="n_dims"):
        consistency_across(np.array([[0, 5], [1, 2]]), n_dims=4)
