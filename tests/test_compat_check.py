"""Compat processing that changes the model's function is an error for compat claims, never measured.

Input that exposed it: a random Qwen2-MoE with trained norm gains (``Qwen2MoeForCausalLM``, a shared expert).
TransformerLens 4.3's ``enable_compatibility_mode`` folds ln2's gain into the router and the routed experts
but not into the shared expert, so the "compat" model's logits differ from the model's by 1.5% (row-centred)
and its block-0 mlp_out by 30%; lmfacts then ran RN-1 … RN-9 on that other function (the fingerprint check
only chose a real compat pass over the derived one). Planted answers: a fold that scales one weight (dense
Llama), the shared expert's missing fold, Mixtral (no shared expert: the fold is exact).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lmfacts.compat_check import CompatProcessingError, checked_compat_processing
from lmfacts.models.loading import LoadedModel, build_tiny_model, load_model
from tests.helpers import save_random_causal_lm

SMALL = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=96, max_position_embeddings=128)


def test_exact_processing_passes_and_is_applied() -> None:
    lm = build_tiny_model("tiny-llama", hf_model_transform=_trained_gains)
    checked_compat_processing(lm)
    assert lm.info.weight_processing == "compat"
    assert checked_compat_processing(lm) == 0.0  # idempotent


def _trained_gains(model: Any) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("dtype, block", [("float32", 2), ("bfloat16", 1)])
def test_a_processing_that_changes_a_weight_is_caught(monkeypatch: pytest.MonkeyPatch, dtype: str, block: int) -> None:
    """A fold that forgets one reader (block ``block``'s MLP down projection × 1.5 after it) is caught and the
    block named, in float32 and under bfloat16's wider tolerance."""
    lm = build_tiny_model("tiny-llama", dtype=dtype, hf_model_transform=_trained_gains)
    original = LoadedModel.apply_compat_processing

    def broken(self: Any) -> float:
        seconds = original(self)
        with torch.no_grad():
            self.bridge.original_model.model.layers[block].mlp.down_proj.weight.mul_(1.5)
        return seconds

    monkeypatch.setattr(LoadedModel, "apply_compat_processing", broken)
    with pytest.raises(CompatProcessingError,
                       match=rf"first block whose stream .* moved is {block} \(blocks\.{block}\.hook_resid_post"):
        checked_compat_processing(lm)


def test_qwen2_moe_shared_expert_fold(tmp_path: Path) -> None:
    moe = dict(SMALL, moe_intermediate_size=48, shared_expert_intermediate_size=64, num_experts=6,
               num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[])
    lm = load_model(str(save_random_causal_lm(tmp_path / "q", "qwen2_moe", trained_norms=True, **moe)))
    with pytest.raises(CompatProcessingError, match="changed what .* computes") as exc:
        checked_compat_processing(lm)
    assert "blocks.0.hook_resid_post" in str(exc.value)
    # without a shared expert every reader of ln2 is folded: exact
    mixtral = dict(SMALL, num_local_experts=4, num_experts_per_tok=2)
    lm = load_model(str(save_random_causal_lm(tmp_path / "m", "mixtral", trained_norms=True, **mixtral)))
    checked_compat_processing(lm)


def test_pool_never_hands_out_a_failed_compat_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lmfacts.options import RunOptions, Target
    from lmfacts.pool import ModelPool

    original = LoadedModel.apply_compat_processing

    def broken(self: Any) -> float:
        seconds = original(self)
        with torch.no_grad():
            self.bridge.original_model.model.layers[0].mlp.down_proj.weight.mul_(2.0)
        return seconds

    monkeypatch.setattr(LoadedModel, "apply_compat_processing", broken)
    pool = ModelPool(RunOptions(models=("tiny-llama",), devices=("cpu",), dtype="float32", revisions=(), prompts=None,
                                report_dir=tmp_path, n_devices=None, device_map=None, trust_remote_code=False,
                                max_prompts=None, batch_size=None, probe_sample_tokens=None, compare_latest=False))
    target = Target(model="tiny-llama", device="cpu")
    assert pool.get(target, "raw").info.weight_processing == "raw"
    for _ in range(2):  # remembered: the processed model is not returned on a second request
        with pytest.raises(CompatProcessingError):
            pool.get(target, "compat")
    assert pool.get(target, "raw").info.weight_processing == "raw"  # raw claims reload the raw model


def test_reduced_precision_rounding_is_not_a_changed_function() -> None:
    """smollm2-135m's fold is exact, but in bfloat16 its two passes differ by rounding accumulated over 30 blocks
    (0.0375 on CPU, above a fixed 4 ulps = 0.031: every compat claim was E). The tolerance grows like √blocks."""
    from lmfacts.compat_check import COMPAT_TOL_F32, compat_tol

    assert compat_tol("float32", 30) == COMPAT_TOL_F32
    assert compat_tol("bfloat16", 3) == pytest.approx(4 * 2 ** -7 * 2)
    lm = load_model("smollm2-135m", dtype="bfloat16")
    checked_compat_processing(lm)
    assert lm.info.weight_processing == "compat"
