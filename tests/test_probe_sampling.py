"""The probe's token-sampling plan: distribution statistics on a subset, norms and extremes exact."""

from __future__ import annotations

import numpy as np

from lmfacts.models.loading import build_tiny_model
from lmfacts.probe.probe import ProbePlan, run_probe

TEXTS = [
    "The committee met on Tuesday to review the budget for the new library wing.",
    "def add(a, b):\n    return a + b",
    "Rain is expected over the hills by the afternoon, with clear skies later.",
    "Ein kurzer deutscher Satz über das Wetter in Berlin.",
    "1. flour\n2. water\n3. salt\n4. patience",
    "She closed the book, looked out at the harbour and said nothing for a long while.",
]


def _probe(plan: ProbePlan):
    lm = build_tiny_model("tiny-gpt2")
    info = lm.info
    return run_probe(lm.bridge, TEXTS, prepend_bos=info.prepends_bos, padding_side=info.padding_side,
                     pad_id=info.pad_token_id, n_ctx=info.n_ctx, batch_size=3, plan=plan)


def test_sampling_keeps_norms_and_extremes_exact_and_subsamples_the_rest() -> None:
    full = _probe(ProbePlan())
    cap = 20
    sampled = _probe(ProbePlan(sample_tokens=cap))
    np.testing.assert_allclose(sampled.resid.mean("content"), full.resid.mean("content"), rtol=1e-6)
    for p_full, p_s in zip(full.points, sampled.points, strict=True):
        np.testing.assert_array_equal(p_s.max_signed, p_full.max_signed)
        np.testing.assert_array_equal(p_s.min_signed, p_full.min_signed)
        assert p_s.n_tokens == 2 * cap  # two batches of three prompts, each with more than `cap` tokens
        assert p_full.n_tokens == full.n_content_tokens
        assert not np.allclose(p_s.moments.variance(), p_full.moments.variance())
    assert sampled.plan.sample_tokens == cap
