"""Planted-answer tests for lmfacts.stats.logit_lens (LL-1, LL-2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats import DegenerateSample
from lmfacts.stats.logit_lens import (
    LogitLensAccumulator,
    holds_from,
    kl_to_final,
    log_softmax,
    logit_lens_stats,
    sample_positions,
    top1_agreement,
)


class TinyLM(torch.nn.Module):
    """Embedding, ``n_layers`` residual MLP blocks, final LayerNorm, unembedding. Blocks listed in
    ``identity`` add nothing (their output is their input), so the stream stops changing there."""

    def __init__(self, n_layers: int = 6, d: int = 16, vocab: int = 50, identity: tuple[int, ...] = (),
                 seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d))
            for _ in range(n_layers)
        )
        self.identity = set(identity)
        self.ln_f = torch.nn.LayerNorm(d)
        self.unembed = torch.nn.Linear(d, vocab, bias=False)
        self.double()  # float64 so batch shape does not change the rounding

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final logits and the residual points: resid_pre of every block plus the final resid_post."""
        x = self.embed(tokens)
        points = []
        for i, block in enumerate(self.blocks):
            points.append(x)
            if i not in self.identity:
                x = x + block(x)
        points.append(x)
        return self.unembed(self.ln_f(x)), points

    def decode(self, resid: np.ndarray) -> np.ndarray:
        """Final norm + unembedding on [n, d] numpy residuals (the logit lens)."""
        with torch.no_grad():
            return self.unembed(self.ln_f(torch.as_tensor(resid, dtype=torch.float64))).numpy()


def lens_on(model: TinyLM, tokens: torch.Tensor, batch: int, n_per_prompt: int = 5,
            seed: int = 0) -> LogitLensAccumulator:
    """Run the model once on every prompt, then feed the accumulator ``batch`` prompts at a time
    with a seeded sample of content positions (the stream's reductions are what is tested)."""
    acc = LogitLensAccumulator(len(model.blocks) + 1)
    content = np.ones(tuple(tokens.shape), bool)
    content[:, 0] = False  # position 0 (BOS) is not content
    with torch.no_grad():
        all_logits, all_points = model(tokens)
    for start in range(0, tokens.shape[0], batch):
        logits = all_logits[start:start + batch]
        rows, cols = sample_positions(content[start:start + batch], n_per_prompt, seed=seed,
                                      prompt_ids=range(start, start + logits.shape[0]))
        final = logits[rows, cols].double().numpy()
        for point, resid in enumerate(all_points):
            acc.add_resid(point, final, resid[start:start + batch][rows, cols].numpy(), model.decode)
    return acc


def test_identity_final_layers_give_kl_zero_from_that_layer_on() -> None:
    model = TinyLM(n_layers=6, identity=(4, 5))
    tokens = torch.randint(0, 50, (10, 12), generator=torch.Generator().manual_seed(1))
    res = logit_lens_stats(lens_on(model, tokens, 10), kl_threshold=1e-9, agreement_threshold=1.0)
    # points 4, 5, 6 (resid_pre of the identity blocks 4, 5 and the final resid_post) equal the output
    assert res.kl_mean[4:] == pytest.approx([0.0] * 3, abs=1e-10)
    assert min(res.kl_mean[:4]) > 1e-4
    assert res.kl_from == 4 and res.agreement == pytest.approx([*res.agreement[:4], 1.0, 1.0, 1.0])
    assert res.agreement_from is not None and res.agreement_from <= 4
    assert res.kl_last == pytest.approx(0.0, abs=1e-10)


def test_no_identity_layers_kl_zero_only_at_the_end() -> None:
    model = TinyLM(n_layers=6)
    tokens = torch.randint(0, 50, (6, 10), generator=torch.Generator().manual_seed(2))
    res = logit_lens_stats(lens_on(model, tokens, 6), kl_threshold=1e-9)
    assert res.kl_from == 6 and res.kl_last == pytest.approx(0.0, abs=1e-10)


def test_streaming_equals_one_shot() -> None:
    model = TinyLM(n_layers=4, identity=(3,))
    tokens = torch.randint(0, 50, (9, 11), generator=torch.Generator().manual_seed(3))
    one = logit_lens_stats(lens_on(model, tokens, 9)).to_dict()
    for batch in (1, 4):
        other = logit_lens_stats(lens_on(model, tokens, batch)).to_dict()
        for key in one:
            np.testing.assert_allclose(np.asarray(one[key], dtype=float), np.asarray(other[key], dtype=float),
                                       rtol=1e-9, atol=1e-12, err_msg=key)


def test_planted_synthetic_kl_falls_with_depth() -> None:
    rng = np.random.default_rng(4)
    final = rng.standard_normal((200, 30)) * 3
    acc = LogitLensAccumulator(8)
    for point in range(8):
        noise = (7 - point) / 7  # the lens approaches the final logits linearly
        acc.add(point, final, final + noise * 3 * rng.standard_normal(final.shape))
    res = logit_lens_stats(acc, kl_threshold=0.5, agreement_threshold=0.8)
    assert res.kl_spearman == pytest.approx(-1.0) and res.agreement_spearman > 0.9
    assert res.kl_last == 0.0 and res.kl_increases == []
    assert res.kl_from is not None and 0 < res.kl_from < 7
    assert all(k > 0.5 for k in res.kl_mean[:res.kl_from])


def test_early_spike_is_reported() -> None:
    rng = np.random.default_rng(5)
    final = rng.standard_normal((100, 20)) * 3
    acc = LogitLensAccumulator(5)
    for point, noise in enumerate([1.0, 3.0, 0.5, 0.2, 0.0]):  # point 1 is worse than point 0
        acc.add(point, final, final + noise * rng.standard_normal(final.shape))
    assert logit_lens_stats(acc).kl_increases == [1]


def test_kl_and_agreement_exact_values() -> None:
    p = np.log(np.array([[0.5, 0.25, 0.25]]))
    q = np.log(np.array([[0.25, 0.5, 0.25]]))
    assert kl_to_final(p, q)[0] == pytest.approx(0.5 * np.log(2) + 0.25 * np.log(0.5))
    assert not top1_agreement(p, q)[0] and top1_agreement(p, p + 7.0)[0]
    assert kl_to_final(p, p + 123.0)[0] == pytest.approx(0.0, abs=1e-15)  # logit shift is invariant
    np.testing.assert_allclose(np.exp(log_softmax([[1000.0, 1000.0]])), [[0.5, 0.5]])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 1000), b=st.integers(1, 6))
def test_sample_positions_is_batch_invariant(n: int, seed: int, b: int) -> None:
    rng = np.random.default_rng(seed)
    content = rng.random((b, 10)) < 0.6
    rows, cols = sample_positions(content, n, seed=seed)
    assert np.all(content[rows, cols])
    for r in range(b):
        mine = cols[rows == r]
        assert mine.size == min(n, content[r].sum()) and len(set(mine.tolist())) == mine.size
        alone_rows, alone_cols = sample_positions(content[r:r + 1], n, seed=seed, prompt_ids=[r])
        assert alone_cols.tolist() == mine.tolist()


def test_holds_from() -> None:
    assert holds_from([False, True, False, True, True]) == 3
    assert holds_from([True, True]) == 0
    assert holds_from([True, False]) is None


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: kl_to_final(np.array([[0.0, np.nan]]), np.zeros((1, 2))), ValueError, "NaN"),
    (lambda: kl_to_final(np.zeros((1, 3)), np.zeros((1, 2))), ValueError, "shapes differ"),
    (lambda: kl_to_final(np.zeros((0, 3)), np.zeros((0, 3))), DegenerateSample, "at least 1"),
    (lambda: logit_lens_stats(LogitLensAccumulator(4)), DegenerateSample, "no tokens"),
    (lambda: LogitLensAccumulator(4).add(4, np.zeros((1, 2)), np.zeros((1, 2))), ValueError, "point"),
    (lambda: LogitLensAccumulator(2).add_resid(0, np.zeros((1, 2)), np.full((1, 3), np.inf), lambda r: r),
     ValueError, "resid"),
    (lambda: sample_positions(np.ones((2, 3)), 2), ValueError, "bool"),
])
def test_bad_input_raises_with_a_clear_message(call, exc, match) -> None:  # noqa: ANN001
    with pytest.raises(exc, match=match):
        call()


def test_two_points_are_too_few_for_a_trend() -> None:
    acc = LogitLensAccumulator(2)
    for point in range(2):
        acc.add(point, np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(DegenerateSample, match=">= 3"):
        logit_lens_stats(acc)


def _planted_prompts(n_prompts: int, n_points: int, trend: float, seed: int) -> LogitLensAccumulator:
    """``n_prompts`` prompts of 6 tokens each; at point l the lens is the final logits plus noise of scale
    ``1 + trend·(n_points − 1 − l)`` times a per-prompt factor (so KL falls with depth when ``trend`` > 0, and
    is flat up to noise when ``trend`` = 0)."""
    rng = np.random.default_rng(seed)
    acc = LogitLensAccumulator(n_points)
    for pid in range(n_prompts):
        final = rng.standard_normal((6, 20)) * 3
        scale = rng.uniform(0.5, 1.5)
        for point in range(n_points):
            noise = scale * (1 + trend * (n_points - 1 - point))
            acc.add(point, final, final + noise * rng.standard_normal(final.shape), prompt_ids=[pid] * 6)
    return acc


def test_lens_spearman_ci_planted_trend_lies_below_and_no_trend_straddles_zero() -> None:
    from lmfacts.stats.logit_lens import lens_spearman_ci
    from lmfacts.stats.trends import depth_spearman

    falls = _planted_prompts(30, 8, trend=0.5, seed=1)
    ci = lens_spearman_ci(falls, "kl", (1, 7), n_resamples=500)
    curve = falls.kl_sum / falls.n_tokens
    assert ci.value == pytest.approx(depth_spearman(curve[1:8]))  # the full-sample ρ is the reported one
    assert ci.ci[1] < -0.8 and ci.n_prompts == 30
    flat = _planted_prompts(30, 8, trend=0.0, seed=2)
    ci0 = lens_spearman_ci(flat, "kl", (0, 7), n_resamples=500)
    assert ci0.ci[0] < 0 < ci0.ci[1] and ci0.ci[1] - ci0.ci[0] > 0.3
    agree = lens_spearman_ci(falls, "agreement", (0, 7), n_resamples=500)
    assert agree.value == pytest.approx(depth_spearman((falls.agree / falls.n_tokens)[:8]))


def test_lens_spearman_ci_resamples_prompts_not_tokens() -> None:
    """Two prompts whose curves disagree: a resample of prompts can draw one of them twice, so the CI spans both
    directions; tokens resampled as independent would give a narrow interval around the pooled curve."""
    from lmfacts.stats.logit_lens import lens_spearman_ci

    acc = LogitLensAccumulator(5)
    final = np.zeros((50, 4))
    for point in range(5):
        up, down = np.zeros((50, 4)), np.zeros((50, 4))
        up[:, 0], down[:, 0] = 0.5 * point, 0.5 * (4 - point)  # prompt 0's KL rises with depth, prompt 1's falls
        acc.add(point, final, up, prompt_ids=[0] * 50)
        acc.add(point, final, down, prompt_ids=[1] * 50)
    assert sorted(acc.per_prompt) == [0, 1] and acc.n_tokens.tolist() == [100] * 5
    ci = lens_spearman_ci(acc, "kl", (0, 4), n_resamples=400)
    assert ci.ci[0] == pytest.approx(-1.0) and ci.ci[1] == pytest.approx(1.0)


def test_lens_spearman_ci_needs_two_prompts_and_a_known_statistic() -> None:
    from lmfacts.stats.logit_lens import lens_spearman_ci

    one = _planted_prompts(1, 4, trend=1.0, seed=3)
    with pytest.raises(DegenerateSample, match="2"):
        lens_spearman_ci(one, "kl", (0, 3))
    with pytest.raises(ValueError, match="which"):
        lens_spearman_ci(_planted_prompts(3, 4, trend=1.0, seed=3), "entropy", (0, 3))
