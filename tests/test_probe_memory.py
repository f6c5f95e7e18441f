"""The probe's memory plan (``--probe-memory``) and BF-8's verdict under it.

* :func:`plan_memory` picks float64 covariances where they fit, float32 where those fit, else float32
  at an evenly spaced subset of points (first and last always kept); planted budgets pick each tier.
* The measured accumulator memory of a run stays within the planned bytes.
* BF-8 (covariance spectra) gives the same verdict — share of power-law points ≥ 0.75 and Spearman
  ρ of the bulk level with depth ≥ 0.5 — from the exact float64 accumulators, from float32 ones, and
  from a 9-point subset, on smollm2-135m (d 576, 31 points) over 24 corpus prompts, where all fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmfacts.probe.accumulators import GB, accumulator_bytes, plan_memory
from lmfacts.probe.probe import CovarianceNotKept, run_probe


def test_plan_tiers() -> None:
    n, d = 31, 576
    base = accumulator_bytes(n, d, 0, 4)
    assert plan_memory(n, d, base + n * d * d * 8).covariance == "float64"
    assert plan_memory(n, d, base + n * d * d * 8 - 1).covariance == "float32"
    sub = plan_memory(n, d, base + 9 * d * d * 4)
    assert sub.covariance == "float32-subset"
    assert sub.cov_points[0] == 0 and sub.cov_points[-1] == n - 1 and len(sub.cov_points) <= 9
    assert sub.bytes <= base + 9 * d * d * 4
    assert len(plan_memory(n, d, 1).cov_points) == 2  # never fewer than two points
    # pythia-12b (d 5120, 37 points) under 2 GB: a subset, within the budget
    big = plan_memory(37, 5120, 2 * GB)
    assert big.covariance == "float32-subset" and big.bytes <= 2 * GB


def _bf8_verdict(probe: Any) -> tuple[bool, float, float, int]:
    from claims.test_bf_distributions import _covariance_spectra
    from lmfacts.stats.trends import depth_trend

    res = _covariance_spectra(probe, "cpu", 1, probe.n_layers, 0.95, 0.1)
    rows = res["points"]
    trend = depth_trend(np.exp([r["bulk_log_sv_per_token"] for r in rows]), [r["point"] for r in rows])
    holds = res["share"] >= 0.75 and trend.spearman >= 0.5
    return holds, float(res["share"]), float(trend.spearman), len(rows)


@pytest.fixture(scope="module")
def smollm2() -> Any:
    from lmfacts.models.loading import load_model
    from lmfacts.prompts.corpus import load_builtin_corpus

    return load_model("smollm2-135m"), list(load_builtin_corpus().sample(24, seed=0).texts)


def test_bf8_verdict_exact_equals_budgeted(smollm2: Any) -> None:
    lm, texts = smollm2
    info = lm.info
    kw = dict(prepend_bos=info.prepends_bos, padding_side=info.padding_side, pad_id=info.pad_token_id or 0,
              n_ctx=info.n_ctx)
    L, d = info.n_layers, lm.bridge.cfg.d_model
    base = accumulator_bytes(L + 1, d, 0, 4, len(texts), 5 * L * 2)
    exact = run_probe(lm.bridge, texts, memory_gb=4.0, **kw)
    f32 = run_probe(lm.bridge, texts, memory_gb=(base + (L + 1) * d * d * 4 + 1024) / GB, **kw)
    sub = run_probe(lm.bridge, texts, memory_gb=(base + 9 * d * d * 4 + 1024) / GB, **kw)
    assert exact.memory["covariance"] == "float64"
    assert f32.memory["covariance"] == "float32"
    assert sub.memory["covariance"] == "float32-subset"
    for r in (exact, f32, sub):
        assert r.memory["measured_gb"] <= r.memory["planned_gb"] + 1e-4
    with pytest.raises(CovarianceNotKept):
        sub.covariance(next(p for p in range(L + 1) if not sub.has_covariance(p)))
    # float32 sums: the covariance itself agrees with float64 to float32 rounding
    for p in (1, L // 2, L):
        a, b = f32.covariance(p), exact.covariance(p)
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()
    v_exact, v_f32, v_sub = _bf8_verdict(exact), _bf8_verdict(f32), _bf8_verdict(sub)
    print(f"BF-8 exact {v_exact}, float32 {v_f32}, 9-point subset {v_sub}")
    assert v_f32[0] == v_exact[0]
    assert v_sub[0] == v_exact[0]
    assert abs(v_f32[1] - v_exact[1]) < 1e-9 and abs(v_f32[2] - v_exact[2]) < 1e-9
