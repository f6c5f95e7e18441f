"""The rebuild self-check (lmfacts/rebuild.py) on planted conventions.

Weights + conventions must reproduce the hooks on every architecture we build for (errors ≈ 0 in
float32), and the check must catch a wrong convention: a norm gain read as w instead of 1 + w, a
norm after the sublayer, a post-norm block, a bidirectional mask.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lmfacts.models.loading import build_tiny_model
from lmfacts.rebuild import measure_causal_leak, measure_rebuild

TEXTS = ["The quick brown fox jumps over the lazy dog near the river bank.", "def f(x):\n    return x * 2",
         "Paris is the capital of France and its largest city."]


def _trained_norms(model: Any) -> None:
    """Give every norm gain and bias non-trivial values (HF initialises them to exactly 1 / 0)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name.lower() or name.endswith(("ln_1.weight", "ln_2.weight")):
                p.add_(0.3 * torch.randn(p.shape, generator=g))


def _rebuild(name: str, processing: str = "raw", transform: Any = _trained_norms, **kw: Any) -> Any:
    lm = build_tiny_model(name, hf_model_transform=transform, **kw)
    if processing == "compat":
        lm.apply_compat_processing()
    return lm, measure_rebuild(lm.bridge, TEXTS, processing=processing, dtype=kw.get("dtype", "float32"),
                               prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx, device="cpu")


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "tiny-neox", "tiny-gemma"])
@pytest.mark.parametrize("processing", ["raw", "compat"])
def test_pre_norm_models_are_rebuilt_exactly(name: str, processing: str) -> None:
    _, report = _rebuild(name, processing)
    for group in ("additive_residual", "ov_rebuild", "mlp_rebuild"):
        holds, evidence = report.holds(group)
        assert holds, evidence
    assert max(report.max_error(c) for c in report.errors) < 1e-5


def test_offset_gain_read_as_plain_gain_is_caught() -> None:
    lm, good = _rebuild("tiny-gemma")
    assert good.holds("mlp_rebuild")[0]
    from lmfacts import weights

    original = weights.WeightViews.__init__

    def plain_gains(self: Any, bridge: Any, processing: str) -> None:
        original(self, bridge, processing)
        self.gain_offset = False  # the bug the field report describes: w instead of 1 + w

    weights.WeightViews.__init__ = plain_gains  # type: ignore[method-assign]
    try:
        bad = measure_rebuild(lm.bridge, TEXTS, processing="raw", dtype="float32", prepend_bos=True,
                              n_ctx=lm.info.n_ctx, device="cpu")
    finally:
        weights.WeightViews.__init__ = original  # type: ignore[method-assign]
    holds, evidence = bad.holds("mlp_rebuild")
    assert not holds and bad.max_error("mlp_from_ln2") > 0.1, evidence


def test_norm_after_the_sublayer_fails_additive_residual_only() -> None:
    _, report = _rebuild("tiny-gemma2")
    holds, evidence = report.holds("additive_residual")
    assert not holds and "attn_out_is_o_proj" in evidence
    assert report.max_error("attn_out_is_o_proj") > 0.5 and report.max_error("mlp_out_is_down_proj") > 0.5
    assert report.holds("residual_sum")[0] and report.holds("ov_rebuild")[0] and report.holds("mlp_rebuild")[0]


def test_post_norm_encoder_attention_reads_the_stream_itself() -> None:
    _, report = _rebuild("tiny-bert")
    holds, evidence = report.holds("ov_rebuild")
    assert holds and "resid_pre unnormalised" in evidence, evidence
    assert not report.holds("residual_sum")[0]  # post-LN: the stream is re-normalised


def test_bfloat16_rounding_stays_inside_the_dtype_tolerance() -> None:
    _, report = _rebuild("tiny-llama", dtype="bfloat16")
    assert 1e-4 < report.max_error("mlp_from_ln2") < report.tol  # rounding is visible, and tolerated
    assert report.holds("mlp_rebuild")[0]


@pytest.mark.parametrize("name, causal", [("tiny-llama", True), ("tiny-gpt2", True), ("tiny-bert", False)])
def test_causal_mask_is_measured(name: str, causal: bool) -> None:
    lm = build_tiny_model(name)
    check = measure_causal_leak(lm.bridge, TEXTS[0], dtype="float32", prepend_bos=lm.info.prepends_bos,
                                n_ctx=lm.info.n_ctx, device="cpu")
    assert (check.leak <= check.tol) is causal, check
    if not causal:
        assert check.leak > 0.1
