"""Planted-answer tests for lmfacts.stats.verdict: the bootstrap CI over prompts and interval verdicts.

The planted claim: a growth rate of 1.05 (± per-prompt noise σ) against the band (1.04, 1.08). With
400 prompts the 95% CI half-width is ≈ 1.96·σ/√400 ≈ 0.098·σ:

* small noise (σ = 0.01): CI ≈ 1.05 ± 0.001, inside the band → ``passed``;
* medium noise (σ = 0.24): CI ≈ 1.05 ± 0.0235: wider than the whole band (0.04), so it can never lie
  inside it, and it reaches past 1.04 unless the sample mean falls 2.9 standard errors low
  (p ≈ 0.2 %) → ``inconclusive``;
* rate 1.02 with small noise: CI ≈ 1.02 ± 0.001, entirely below 1.04 → ``failed``.

The same three cases go through RN-1's own estimator (:func:`lmfacts.stats.growth.fit_growth_rate`,
the rate of the mean curve over prompts) with per-layer lognormal noise on each prompt's curve.
"""

from __future__ import annotations

import numpy as np
import pytest

from lmfacts.stats import DegenerateSample
from lmfacts.stats.growth import fit_growth_rate
from lmfacts.stats.verdict import bootstrap_ci, bootstrap_mean, interval_verdict, straddled_edge

BAND = (1.04, 1.08)
N_PROMPTS = 400
CASES = [  # (planted rate, per-prompt noise sd, expected verdict)
    (1.05, 0.01, "passed"),
    (1.05, 0.24, "inconclusive"),
    (1.02, 0.01, "failed"),
]
GROWTH_CASES = [  # (planted rate, per-layer lognormal noise sd, expected verdict), 48 prompts × 24 layers
    (1.05, 0.02, "passed"),
    (1.05, 2.0, "inconclusive"),
    (1.02, 0.02, "failed"),
]
SEEDS = range(8)


def planted_rates(rate: float, sd: float, seed: int, n: int = N_PROMPTS) -> np.ndarray:
    """Per-prompt rates: ``rate`` + N(0, sd²) noise, one per prompt."""
    return rate + sd * np.random.default_rng(seed).standard_normal(n)


def planted_curves(rate: float, sd: float, seed: int, n: int = 48, n_layers: int = 24) -> np.ndarray:
    """Per-prompt norm curves ``(n, n_layers)``: scale_i · rate**l · lognormal(0, sd) per layer.

    The noise has the same mean at every layer, so the mean curve over prompts grows at ``rate``.
    """
    rng = np.random.default_rng(seed)
    layers = np.arange(n_layers)
    return rng.uniform(0.5, 2.0, (n, 1)) * rate**layers * rng.lognormal(0.0, sd, (n, n_layers))


@pytest.mark.parametrize("method", ["percentile", "BCa"])
@pytest.mark.parametrize(("rate", "sd", "want"), CASES)
def test_planted_rate_verdict_mean(rate: float, sd: float, want: str, method: str) -> None:
    """The mean of per-prompt rates: the verdict follows the noise level, on every seed."""
    for seed in SEEDS:
        boot = bootstrap_mean(planted_rates(rate, sd, seed), method=method, seed=seed)
        got = interval_verdict(boot.ci, BAND)
        assert got == want, (seed, boot.value, boot.ci)
        assert boot.ci[0] <= boot.value <= boot.ci[1]
        assert boot.n_resamples == 2000 and boot.method == method and boot.n_prompts == N_PROMPTS


@pytest.mark.parametrize(("rate", "sd", "want"), GROWTH_CASES)
def test_planted_rate_verdict_growth_fit(rate: float, sd: float, want: str) -> None:
    """The same through RN-1's estimator: the rate of the mean curve, its CI by bootstrap over prompts.

    Heavy per-layer noise (sd 2.0) makes the medium case's verdict right in ~98 % of seeds (a sample
    far off 1.05 gives a CI below 1.04, a correct ``failed`` for that sample), so it is asserted on
    at least 46 of 50 seeds; the small-noise cases on every seed.
    """
    hits = 0
    for seed in range(50):
        fit = fit_growth_rate(planted_curves(rate, sd, seed), (2, 20), n_boot=400, seed=seed)
        assert fit.ci is not None and fit.ci_method == "bootstrap_prompts" and fit.boot_method == "percentile"
        hits += interval_verdict(fit.ci, BAND) == want
    assert hits >= (46 if want == "inconclusive" else 50), (rate, sd, want, hits)


def test_verdict_rates_over_many_seeds() -> None:
    """Over 200 seeds each planted case gets its verdict at least 98.5% of the time (expected ≥ 99.5%):
    the seeds of the per-seed test are not cherry-picked."""
    for rate, sd, want in CASES:
        hits = sum(interval_verdict(bootstrap_mean(planted_rates(rate, sd, 1000 + s), n_resamples=500).ci, BAND)
                   == want for s in range(200))
        assert hits >= 197, (rate, sd, want, hits)


def test_ci_is_bit_identical_between_calls() -> None:
    x = planted_rates(1.05, 0.05, 3)
    assert bootstrap_mean(x, seed=7) == bootstrap_mean(x, seed=7)
    assert bootstrap_mean(x, seed=7, method="BCa").ci == bootstrap_mean(x, seed=7, method="BCa").ci
    assert bootstrap_mean(x, seed=7).ci != bootstrap_mean(x, seed=8).ci  # the seed matters
    curves = planted_curves(1.05, 0.05, 3)
    a = fit_growth_rate(curves, (2, 20), seed=5)
    b = fit_growth_rate(curves, (2, 20), seed=5)
    assert a.ci == b.ci and a.n_boot == 1000


def test_ci_shrinks_with_more_prompts_and_covers_the_truth() -> None:
    wide = bootstrap_mean(planted_rates(1.05, 0.05, 0, n=20)).ci
    narrow = bootstrap_mean(planted_rates(1.05, 0.05, 0, n=2000)).ci
    assert narrow[1] - narrow[0] < 0.5 * (wide[1] - wide[0])
    covered = sum(bootstrap_mean(planted_rates(1.05, 0.05, s), n_resamples=500).ci[0] <= 1.05
                  <= bootstrap_mean(planted_rates(1.05, 0.05, s), n_resamples=500).ci[1] for s in range(100))
    assert covered >= 88


def test_paired_samples_are_resampled_together() -> None:
    """Two arrays of the same prompts keep their pairing: the CI of a difference of paired values is
    as narrow as the difference's own spread, far narrower than unpaired resampling would give."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 200)
    a, b = base + 0.01 * rng.normal(size=200), base + 0.5 + 0.01 * rng.normal(size=200)
    boot = bootstrap_ci([a, b], lambda x, y: (y - x).mean(axis=1))
    assert abs(boot.value - 0.5) < 0.01 and boot.ci[1] - boot.ci[0] < 0.01


def test_two_dimensional_rows() -> None:
    rows = np.random.default_rng(1).normal(1.0, 0.1, (30, 5))
    boot = bootstrap_ci(rows, lambda r: r.mean(axis=(1, 2)))
    assert boot.value == pytest.approx(rows.mean()) and boot.ci[0] < rows.mean() < boot.ci[1]


@pytest.mark.parametrize(
    ("ci", "band", "want"),
    [
        ((1.05, 1.06), (1.04, 1.08), "passed"),
        ((1.03, 1.05), (1.04, 1.08), "inconclusive"),
        ((1.07, 1.09), (1.04, 1.08), "inconclusive"),
        ((1.00, 1.10), (1.04, 1.08), "inconclusive"),
        ((1.00, 1.03), (1.04, 1.08), "failed"),
        ((1.09, 1.10), (1.04, 1.08), "failed"),
        ((1.00, 1.04), (1.04, 1.08), "failed"),  # touching the open edge from outside: outside
        ((1.01, 1.02), (1.0, None), "passed"),
        ((0.99, 1.02), (1.0, None), "inconclusive"),
        ((0.5, 0.9), (1.0, None), "failed"),
        ((0.5, 0.9), (None, 1.0), "passed"),
        ((1.5, 1.9), (None, 1.0), "failed"),
        ((1.0, 1.0), (0.9, 1.1), "passed"),  # a zero-width CI is a point estimate
    ],
)
def test_interval_verdict_table(ci: tuple[float, float], band: tuple, want: str) -> None:
    assert interval_verdict(ci, band) == want


@pytest.mark.parametrize(
    ("ci", "band", "want"),
    [
        ((0.8, 1.0), (0.8, None), "passed"),  # ρ ≥ 0.8: a CI that reaches the edge from inside is inside
        ((0.6, 0.8), (0.8, None), "inconclusive"),
        ((0.4, 0.79), (0.8, None), "failed"),
        ((-1.0, -0.8), (None, -0.8), "passed"),
        ((-0.8, -0.8), (None, -0.8), "passed"),  # a point CI on the closed edge (open: failed)
        ((-0.79, -0.5), (None, -0.8), "failed"),
        ((0.9, 1.1), (0.9, 1.1), "passed"),
        ((1.1, 1.2), (0.9, 1.1), "inconclusive"),
    ],
)
def test_interval_verdict_closed_band(ci: tuple[float, float], band: tuple, want: str) -> None:
    """A closed band (a bound stated "at least" / "at most" on a statistic with discrete values: the rank
    correlations of LL-1 / LL-2) accepts its edges; the open one does not."""
    assert interval_verdict(ci, band, closed=True) == want
    if want == "passed" and any(e is not None and e in ci for e in band):
        assert interval_verdict(ci, band) != "passed"


def test_straddled_edge() -> None:
    assert straddled_edge((1.03, 1.05), (1.04, 1.08)) == 1.04
    assert straddled_edge((1.07, 1.09), (1.04, 1.08)) == 1.08
    assert straddled_edge((1.05, 1.06), (1.04, 1.08)) is None


@pytest.mark.parametrize(
    ("ci", "band", "match"),
    [
        ((float("nan"), 1.0), (1.0, None), "not finite"),
        ((1.0, float("inf")), (1.0, None), "not finite"),
        ((1.2, 1.1), (1.0, None), "low"),
        ((1.0, 1.1), (None, None), "at least one edge"),
        ((1.0, 1.1), (1.2, 1.0), "band: low"),
        ((1.0, 1.1), (float("nan"), 2.0), "NaN"),
        ((1.0,), (1.0, 2.0), r"\(low, high\)"),
    ],
)
def test_interval_verdict_rejects_invalid_input(ci: tuple, band: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        interval_verdict(ci, band)


def test_bootstrap_rejects_invalid_input() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_mean([1.0, float("nan"), 2.0])
    with pytest.raises(DegenerateSample, match="at least 2 prompts"):
        bootstrap_mean([1.0])
    with pytest.raises(ValueError, match="method"):
        bootstrap_mean([1.0, 2.0, 3.0], method="basic-ish")
    with pytest.raises(ValueError, match="prompts on axis 0"):
        bootstrap_ci([np.ones(4), np.ones(5)], lambda a, b: a.mean(axis=1))
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mean([1.0, 2.0, 3.0], n_resamples=0)
    with pytest.raises(DegenerateSample, match="not finite"):
        bootstrap_mean(np.full(10, 2.0), method="BCa")  # no spread: BCa's acceleration is 0/0
    const = bootstrap_mean(np.full(10, 2.0))  # the percentile CI of a constant is the constant
    assert const.ci == (2.0, 2.0)


def test_loss_delta_ci_is_token_weighted() -> None:
    """RS-3/RS-4's Δ loss: token-weighted over prompts, equal to the difference of the losses on the full
    sample; a planted Δ of 1.5 nats is judged against min_increase 1.0 (passed) and 2.0 (failed)."""
    from lmfacts.ablation import LossResult, loss_delta_ci

    rng = np.random.default_rng(0)
    n = rng.integers(5, 60, 30)
    base = rng.normal(3.0, 0.3, 30)
    abl = base + rng.normal(1.5, 0.05, 30)
    n[3] = 0  # a prompt without a target token is dropped
    base[3] = abl[3] = float("nan")
    keep = n > 0
    b = LossResult(float((base[keep] * n[keep]).sum() / n.sum()), int(n.sum()), base.tolist(), n.tolist())
    a = LossResult(float((abl[keep] * n[keep]).sum() / n.sum()), int(n.sum()), abl.tolist(), n.tolist())
    boot = loss_delta_ci(b, [a], lambda d: d)
    assert boot.value == pytest.approx(a.loss - b.loss, rel=1e-12) and boot.n_prompts == 29
    assert interval_verdict(boot.ci, (1.0, None)) == "passed"
    assert interval_verdict(boot.ci, (2.0, None)) == "failed"
    margin = loss_delta_ci(b, [a, a], lambda h, t: h - 2.0 * np.maximum(t, 0.0))
    assert margin.value == pytest.approx(-(a.loss - b.loss), rel=1e-12)
    with pytest.raises(ValueError, match="same prompts"):
        loss_delta_ci(b, [LossResult(a.loss, a.n_targets, a.per_prompt, [1] * 30)], lambda d: d)
