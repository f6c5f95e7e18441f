"""Planted-answer tests for lmfacts.stats.trends (BF-2 counts overlap, depth trends, spectrum fall-off)."""

from __future__ import annotations

import numpy as np
import pytest

from lmfacts.stats.overlap import consistency_across, top_k_dims
from lmfacts.stats.spectrum import fit_power_law
from lmfacts.stats.trends import depth_trend, overlap_from_counts, tail_falloff


def _counts(sets: np.ndarray, d: int) -> np.ndarray:
    return np.bincount(sets.ravel(), minlength=d).astype(float)


def test_counts_overlap_matches_sets() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 64))
    x[:, 5] += 30.0  # a planted outlier dimension, the same for every token
    sets = top_k_dims(x, 4)
    got = overlap_from_counts(_counts(sets, 64), 300, 4)
    assert got == pytest.approx(consistency_across(sets, 64).mean_overlap)
    assert got > 0.25  # dimension 5 is in every set: at least 1/4 shared
    assert _counts(sets, 64)[5] == 300


def test_counts_overlap_random_is_chance() -> None:
    rng = np.random.default_rng(1)
    sets = top_k_dims(rng.standard_normal((2000, 100)), 5)
    assert overlap_from_counts(_counts(sets, 100), 2000, 5) == pytest.approx(5 / 100, abs=0.01)


def test_counts_overlap_bad_input() -> None:
    with pytest.raises(ValueError, match="sum"):
        overlap_from_counts([1, 1, 1], 2, 1)
    with pytest.raises(ValueError, match="n_sets"):
        overlap_from_counts([1.0], 1, 1)


def test_depth_trend_rising_flat_falling() -> None:
    up = depth_trend(1.1 ** np.arange(12))
    assert up.spearman == pytest.approx(1.0) and up.rate == pytest.approx(1.1)
    rng = np.random.default_rng(2)
    flat = depth_trend(1 + 0.01 * rng.standard_normal(12))
    assert abs(flat.rate - 1) < 0.01
    down = depth_trend(np.exp(-0.2 * np.arange(8)))
    assert down.spearman == pytest.approx(-1.0) and down.rate < 1
    assert depth_trend([0.0, 0.0, 0.0]).spearman == 0.0


def test_tail_falloff_power_law_vs_sharp_drop() -> None:
    k = np.arange(1, 201)
    sv = 10 * k.astype(float) ** -0.8
    fit = fit_power_law(sv)
    assert tail_falloff(sv, fit.exponent, fit.intercept) == pytest.approx(0.0, abs=1e-9)
    dropped = sv.copy()
    dropped[-10:] *= np.exp(-3)
    fit = fit_power_law(dropped)
    assert tail_falloff(dropped, fit.exponent, fit.intercept) == pytest.approx(3.0, abs=1e-6)


def test_depth_spearman_planted() -> None:
    from lmfacts.stats.trends import depth_spearman

    rng = np.random.default_rng(0)
    rising = np.exp(0.05 * np.arange(20)) + rng.normal(0, 1e-3, 20)
    assert depth_spearman(rising) == pytest.approx(1.0)
    assert depth_spearman(rising[::-1]) == pytest.approx(-1.0)
    assert depth_spearman([2.0, 2.0, 2.0]) == 0.0  # no trend, not scipy's NaN
    assert np.isnan(depth_spearman([1.0, np.nan, 3.0]))
    # with explicit layers: only the order of the layers matters
    assert depth_spearman([3.0, 1.0, 2.0], layers=[10, 0, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="≥ 2"):
        depth_spearman([1.0])
    with pytest.raises(ValueError, match="layers"):
        depth_spearman([1.0, 2.0, 3.0], layers=[0, 1])


def test_depth_spearman_is_the_exact_rank_ratio() -> None:
    """ρ is a ratio of integers; a threshold it meets exactly is met (scipy's float Pearson on the ranks gives
    0.7999999999999999 for one swapped pair of 4 points, and ``ρ ≥ 0.8`` failed: LL-2 on tiny-llama in bfloat16,
    whose first two agreement shares swapped by one token of 187). Planted permutations with known ρ."""
    from lmfacts.stats.trends import depth_spearman, depth_trend

    # one adjacent swap among n points: ρ = 1 − 12 / (n(n² − 1)), exactly
    for n, want in ((4, 0.8), (5, 0.9), (6, 33 / 35)):
        values = list(range(n))
        values[0], values[1] = values[1], values[0]
        assert depth_spearman(values) == want
        assert depth_spearman(values) >= want and depth_trend([v + 1.0 for v in values]).spearman == want
    # ties (average ranks) still agree with scipy to the last digits, and stay within [−1, 1]
    rng = np.random.default_rng(1)
    from scipy import stats as sps

    for _ in range(200):
        n = int(rng.integers(3, 30))
        v = rng.integers(0, 5, n).astype(float)
        if np.ptp(v) == 0:
            continue
        assert depth_spearman(v) == pytest.approx(sps.spearmanr(np.arange(n), v).statistic, abs=1e-12)
    assert np.isnan(depth_spearman([1.0, 2.0, 3.0], layers=[4, 4, 4]))  # constant layers: undefined
