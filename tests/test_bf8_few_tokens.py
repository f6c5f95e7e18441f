"""BF-8 with fewer content tokens than d_model (a big model on a --max-prompts subset, a small --prompts file).

An n × d data matrix with n < d has n singular values; BF-8 passed all d of them to the MP comparison
with shape (n, d), which raised ``ValueError: got d values but … min(shape)=n`` (an E on every such run).
Planted: Gaussian activations (MP: not a power law) and activations with column scales k^-1.5 (a power
law far from MP), 60 tokens × 128 dims at each point, through a probe stub with exact covariances.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from claims.test_bf_distributions import _covariance_spectra


class _ProbeStub:
    """The part of a ProbeResult BF-8 reads: per point n_tokens, the mean, the population covariance."""

    def __init__(self, data: list[np.ndarray]) -> None:
        self.data = data
        self.points = [SimpleNamespace(n_tokens=x.shape[0], moments=SimpleNamespace(mean=lambda x=x: x.mean(0)))
                       for x in data]
        self.memory: dict[str, Any] = {}

    def has_covariance(self, p: int) -> bool:
        return True

    def covariance(self, p: int) -> np.ndarray:
        xc = self.data[p] - self.data[p].mean(0)
        return xc.T @ xc / xc.shape[0]


@pytest.mark.parametrize("n", [60, 300])
def test_bf8_judges_points_with_fewer_tokens_than_dims(n: int) -> None:
    rng = np.random.default_rng(0)
    d = 128
    k = np.arange(1, d + 1)
    gauss = _covariance_spectra(_ProbeStub([rng.standard_normal((n, d)) for _ in range(4)]), "cpu", 1, 3, 0.95, 0.1)
    power = _covariance_spectra(_ProbeStub([rng.standard_normal((n, d)) * k ** -1.5 for _ in range(4)]),
                                "cpu", 1, 3, 0.95, 0.1)
    assert not gauss["excluded"] and not power["excluded"]
    assert len(gauss["points"]) == len(power["points"]) == 3
    assert gauss["share"] == 0.0 and power["share"] == 1.0
    assert all(r["mp_log_distance"] < 0.1 for r in gauss["points"])
    assert all(r["mp_log_distance"] > 0.5 and r["r2"] > 0.99 for r in power["points"])
