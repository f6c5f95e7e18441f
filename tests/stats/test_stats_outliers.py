"""Planted-answer tests for lmfacts.stats.outliers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.outliers import feature_maxima, outlier_feature_share, outlier_feature_share_abs


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(5, 300), n_out=st.integers(0, 5))
def test_planted_outlier_features(seed: int, d: int, n_out: int) -> None:
    rng = np.random.default_rng(seed)
    acts = rng.uniform(-1.0, 1.0, size=(4, 16, d))
    pos = rng.choice(d, n_out, replace=False)
    neg = np.setdiff1d(np.arange(d), pos)[: min(2, d - n_out)]
    acts[0, 3, pos] = 12.0  # one token anywhere is enough
    acts[1, 5, neg] = -50.0  # negative-side outliers: only the |.| rule counts them
    mx, mabs = feature_maxima(acts)
    signed = outlier_feature_share(mx, 10.0)
    absolute = outlier_feature_share_abs(mabs, 10.0)
    assert signed.n_outliers == n_out and signed.share == pytest.approx(n_out / d)
    assert sorted(signed.outlier_dims) == sorted(int(i) for i in pos)
    assert absolute.n_outliers == n_out + neg.size
    assert outlier_feature_share(mx, 20.0).n_outliers == 0


def test_threshold_boundary() -> None:
    m = np.array([10.0, 9.99, 10.01])
    assert outlier_feature_share(m, 10.0).n_outliers == 1
    assert outlier_feature_share(m, 10.0, inclusive=True).n_outliers == 2


def test_to_dict_and_bad_input() -> None:
    d = outlier_feature_share(np.array([1.0, 20.0]), 6).to_dict()
    assert json.loads(json.dumps(d)) == d and d["share"] == 0.5
    with pytest.raises(ValueError, match="max_abs"):
        outlier_feature_share_abs(np.array([-1.0, 2.0]), 1.0)
    with pytest.raises(ValueError, match="max_signed"):
        outlier_feature_share(np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match="threshold"):
        outlier_feature_share(np.ones(2), float("nan"))
    with pytest.raises(ValueError, match="acts"):
        feature_maxima(np.float64(3.0))
