"""Degenerate samples: the statistics say *which* inputs they cannot judge (DegenerateSample), apart
from usage errors (plain ValueError), so a claim can exclude exactly those and judge the rest."""

from __future__ import annotations

import numpy as np
import pytest

from lmfacts.stats import DegenerateSample
from lmfacts.stats.frobenius import frobenius_identity_error
from lmfacts.stats.gaussianity import (
    bulk_ks_distance,
    gaussian_with_outliers,
    hill_tail_index,
    ks_sampling_bound,
    outlier_excess,
    robust_standardise,
    tail_comparison,
)
from lmfacts.stats.spectrum import compare_to_marchenko_pastur, fit_power_law, zero_below_floor


def _rank_deficient(m: int, n: int, rank: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))


def test_degenerate_sample_is_a_value_error() -> None:
    assert issubclass(DegenerateSample, ValueError)


@pytest.mark.parametrize("call", [
    lambda: robust_standardise(np.r_[-np.arange(1.0, 21.0), np.zeros(60), np.arange(1.0, 21.0)]),  # over half equal: IQR 0
    lambda: outlier_excess(np.r_[-np.arange(1.0, 21.0), np.zeros(60), np.arange(1.0, 21.0)]),
    lambda: gaussian_with_outliers(np.zeros(100)),
    lambda: tail_comparison(np.ones(50)),
    lambda: hill_tail_index(np.random.default_rng(0).standard_normal(20), 20),  # k ≥ n: too few values
    lambda: robust_standardise(np.arange(5.0)),  # fewer than 8 values
    lambda: fit_power_law(np.arange(8.0, 0.0, -1.0)),  # 8 singular values (< 10)
    lambda: frobenius_identity_error(np.zeros((4, 4)), 10),
])
def test_data_the_statistic_cannot_judge_raise_degenerate_sample(call) -> None:  # noqa: ANN001
    with pytest.raises(DegenerateSample):
        call()


@pytest.mark.parametrize("call", [
    lambda: robust_standardise(np.r_[np.arange(20.0), np.nan]),  # NaN: invalid, not degenerate
    lambda: bulk_ks_distance(np.arange(100.0), central=1.5),
    lambda: gaussian_with_outliers(np.arange(100.0), bulk_tol=-1.0),
    lambda: compare_to_marchenko_pastur(np.arange(1.0, 21.0), (30, 40)),  # 20 values for min(shape) 30
    lambda: fit_power_law(np.arange(1.0, 21.0), rank_range=(0, 3)),
])
def test_usage_errors_stay_plain_value_errors(call) -> None:  # noqa: ANN001
    with pytest.raises(ValueError) as info:
        call()
    assert not isinstance(info.value, DegenerateSample)


def test_rank_deficient_spectrum_is_degenerate_once_noise_is_zeroed() -> None:
    """A 128×128 matrix of rank 32: its computed singular values 33…128 are rounding noise, not zeros.
    Below the rank floor they become exact zeros, and the fit says why it cannot judge the spectrum."""
    w = _rank_deficient(128, 128, 32)
    sv = np.linalg.svd(w, compute_uv=False)
    assert sv[32:].max() > 0  # noise, not zeros: a fit on sv would silently use it
    floor = sv[0] * 128 * np.finfo(np.float64).eps
    zeroed, rank = zero_below_floor(sv, floor)
    assert rank == 32 and np.all(zeroed[32:] == 0) and np.array_equal(zeroed[:32], sv[:32])
    with pytest.raises(DegenerateSample, match=r"only 32 of 128 values are > 0"):
        compare_to_marchenko_pastur(zeroed, (128, 128))


def test_zero_below_floor_keeps_full_rank_and_order() -> None:
    sv = np.array([3.0, 1.0, 2.0, 1e-20, -1e-18])
    out, rank = zero_below_floor(sv, 1e-12)
    assert rank == 3 and out.tolist() == [3.0, 1.0, 2.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        zero_below_floor(sv, -1.0)


def test_ks_sampling_bound_covers_gaussian_samples_of_that_size() -> None:
    """bulk_ks_distance of Gaussian samples stays below the bound (it is conservative for the robust,
    central-mass KS), and the bound shrinks as 1/sqrt(n)."""
    rng = np.random.default_rng(0)
    for n in (256, 1024):
        ks = [bulk_ks_distance(rng.standard_normal(n)) for _ in range(200)]
        assert max(ks) < ks_sampling_bound(n, alpha=0.01)
    assert ks_sampling_bound(400) == pytest.approx(1.6276 / 20, rel=1e-3)
    assert ks_sampling_bound(65_536) < 0.03 < ks_sampling_bound(256)  # only small samples widen bulk_tol 0.03
