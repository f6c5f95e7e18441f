"""Planted-answer tests for lmfacts.stats.bos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats.bos import bos_anomaly


def content_curve(n_layers: int, rate: float = 1.05, n_prompts: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10.0 * rate ** np.arange(n_layers) * rng.lognormal(0, 0.02, (n_prompts, n_layers))


def jump_then_flat(n_layers: int, jump_at: int = 2, factor: float = 20.0) -> np.ndarray:
    bos = np.full(n_layers, 10.0)
    bos[jump_at:] *= factor
    return bos


@settings(max_examples=20, deadline=None)
@given(
    n_layers=st.integers(8, 48),
    jump_at=st.integers(1, 3),
    factor=st.floats(5.0, 100.0),
    seed=st.integers(0, 1000),
)
def test_planted_bos_jump_then_plateau_flagged(n_layers: int, jump_at: int, factor: float, seed: int) -> None:
    res = bos_anomaly(jump_then_flat(n_layers, jump_at, factor), content_curve(n_layers, seed=seed))
    assert res.anomalous and res.plateau
    assert res.jump_layer == jump_at and res.most_different_layer == jump_at
    assert res.jump_rate == pytest.approx(factor)
    assert res.max_ratio_layer == jump_at
    assert res.plateau_rate == pytest.approx(1.0)
    assert res.content_rate_after == pytest.approx(1.05, abs=0.01)
    assert res.ratio_decline == pytest.approx(1.05, abs=0.01) and res.early


def test_20x_jump_at_layer_2() -> None:
    res = bos_anomaly(jump_then_flat(24), content_curve(24))
    assert res.anomalous and res.max_ratio == pytest.approx(20 / 1.05**2, rel=0.03)


@settings(max_examples=20, deadline=None)
@given(n_layers=st.integers(4, 48), scale=st.floats(1.0, 50.0), seed=st.integers(0, 1000))
def test_bos_like_content_not_flagged(n_layers: int, scale: float, seed: int) -> None:
    content = content_curve(n_layers, seed=seed)
    median = np.median(content, axis=0)
    same = bos_anomaly(median, content)
    assert not same.anomalous and same.max_ratio == pytest.approx(1.0)
    scaled = bos_anomaly(scale * median, content)  # big but the same profile: not an exception
    assert not scaled.anomalous and not scaled.plateau


def test_u_shape_flagged() -> None:
    layers = np.arange(30)
    bos = np.where(
        layers < 3, 10.0 * 8.0**layers, 10.0 * 8.0**3 * 0.97 ** (layers - 3) * 1.002 ** ((layers - 3) ** 2)
    )
    res = bos_anomaly(bos, content_curve(30))
    assert res.anomalous and res.plateau_rate is not None and res.plateau_rate < 1.05
    assert res.max_ratio_layer == 3 and res.jump_layer in (1, 2, 3)


def test_late_jump_is_not_early() -> None:
    res = bos_anomaly(jump_then_flat(20, jump_at=15), content_curve(20))
    assert res.max_ratio >= 2 and res.plateau and not res.early and not res.anomalous


def test_final_layer_peak_has_no_decline() -> None:
    bos = np.full(10, 10.0)
    bos[-1] = 1000.0
    res = bos_anomaly(bos, content_curve(10))
    assert np.isnan(res.ratio_decline) and not res.plateau and not res.anomalous
    assert res.to_dict()["ratio_decline"] is None


def test_to_dict_and_bad_input() -> None:
    d = bos_anomaly(jump_then_flat(6), content_curve(6)).to_dict()
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ValueError, match="layer counts"):
        bos_anomaly(np.ones(5), np.ones(6))
    with pytest.raises(ValueError, match="bos_norms"):
        bos_anomaly(np.zeros(5), np.ones(5))
    with pytest.raises(ValueError, match="content_norms"):
        bos_anomaly(np.ones(5), np.ones((2, 2, 5)))
    with pytest.raises(ValueError, match="at least 3"):
        bos_anomaly(np.ones(2), np.ones(2))
