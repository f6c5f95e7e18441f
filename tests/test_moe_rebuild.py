"""A mixture-of-experts MLP: the rebuild self-check and the weight views neither crash nor pretend.

Input that exposed it: a random Mixtral (``MixtralForCausalLM``, 4 experts, top-2) saved with
``save_pretrained`` and run as ``pytest claims/ --model DIR``. TransformerLens wraps its sparse MoE block in
a ``MoEBridge``, which has no ``W_in`` / ``W_out``; ``WeightViews.layer`` read them unconditionally, so the
rebuild check (the premise of every RN and MA claim, ``residual_sum`` included) raised ``AttributeError:
'MoEBridge' object has no attribute 'W_in'`` and 14 claims were errors (E). What it should do: claims about
the stream and attention measure as on a dense model; claims that rebuild *the* MLP from its weights (RN-6,
RN-7) skip on ``mlp_rebuild`` naming the mixture of experts. Planted answers: the architecture built here
(its router and expert count), HF's own forward for the OV path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.models.loading import load_model
from lmfacts.rebuild import measure_rebuild
from tests.helpers import save_random_causal_lm

TEXTS = ["The quick brown fox jumps over the lazy dog near the river bank.", "def f(x):\n    return x * 2",
         "Paris is the capital of France and its largest city."]
SMALL = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=128)
MIXTRAL = dict(SMALL, intermediate_size=96, num_local_experts=4, num_experts_per_tok=2)
QWEN2MOE = dict(SMALL, intermediate_size=96, moe_intermediate_size=48, shared_expert_intermediate_size=64,
                num_experts=6, num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[])


def _load(tmp_path: Path, model_type: str, config: dict[str, Any]) -> Any:
    return load_model(str(save_random_causal_lm(tmp_path / model_type, model_type, trained_norms=True, **config)))


def _rebuild(lm: Any, processing: str = "raw") -> Any:
    return measure_rebuild(lm.bridge, TEXTS, processing=processing, dtype="float32",
                           prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx, device="cpu")


@pytest.mark.parametrize(("model_type", "config", "n_experts", "shared"),
                         [("mixtral", MIXTRAL, 4, False), ("qwen2_moe", QWEN2MOE, 6, True)])
def test_moe_rebuild_measures_the_stream_and_skips_the_mlp(tmp_path: Path, model_type: str, config: dict[str, Any],
                                                           n_experts: int, shared: bool) -> None:
    lm = _load(tmp_path, model_type, config)
    report = _rebuild(lm)  # raised AttributeError: 'MoEBridge' object has no attribute 'W_in'
    for group in ("residual_sum", "additive_residual", "ov_rebuild"):
        holds, evidence = report.holds(group)
        assert holds, f"{group}: {evidence}"
    holds, evidence = report.holds("mlp_rebuild")
    assert not holds
    assert "a mixture of experts" in evidence and f"router over {n_experts} experts" in evidence, evidence
    assert ("shared expert" in evidence) == shared, evidence
    assert "MLP of block(s) 0, 1 not rebuilt" in evidence, evidence
    assert "mixture of experts' own output" in report.holds("additive_residual")[1]


def test_moe_weight_views_and_weight_stats(tmp_path: Path) -> None:
    from lmfacts.measures.rn import layer_weight_stats
    from lmfacts.weights import WeightViews

    lm = _load(tmp_path, "mixtral", MIXTRAL)
    views = WeightViews(lm.bridge, "raw")
    lw = views.layer(1)
    assert lw.W_in is None and lw.W_out is None and lw.W_gate is None
    assert lw.mlp_note is not None and lw.mlp_note.startswith("blocks.1.mlp is a mixture of experts")
    assert [n for n, _, _ in views.matrices()] == ["W_Q", "W_K", "W_V", "W_O"] * 2
    ws = layer_weight_stats(views, lm.info.normalization)
    assert np.isnan(ws["mlp_random_norm"]).all() and np.isnan(ws["random_active_share"]).all()
    assert np.isfinite(ws["ov_fro_mean"]).all() and np.isfinite(ws["ov_random_norm"]).all()
    # the OV path the views give is HF's own: v_proj then o_proj on the same input (GQA heads expanded)
    hf = lm.bridge.original_model.model.layers[1].self_attn
    x = torch.randn(5, MIXTRAL["hidden_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        v = hf.v_proj(x).reshape(5, 2, -1).repeat_interleave(2, dim=1).reshape(5, -1)
        want = hf.o_proj(v)
    got = torch.einsum("nd,hde->ne", x, views.ov(lw))
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_multiplier_after_the_moe_block_is_still_caught(tmp_path: Path) -> None:
    """GraniteMoe scales the MoE output by residual_multiplier before the add: hook_mlp_out is not the MoE output."""
    lm = _load(tmp_path, "granitemoe", dict(SMALL, intermediate_size=96, num_local_experts=4, num_experts_per_tok=2,
                                            residual_multiplier=0.22, embedding_multiplier=12.0,
                                            attention_multiplier=0.0625, logits_scaling=1.0))
    report = _rebuild(lm)
    holds, evidence = report.holds("additive_residual")
    assert not holds, evidence
    assert report.max_error("mlp_out_is_down_proj") == pytest.approx(1 / 0.22 - 1, rel=1e-4)
    assert report.holds("residual_sum")[0]


# ---------------------------------------------------------------------------------------------
# BF-3 / BF-7 on a mixture of experts: the experts are judged, not silently left out
# ---------------------------------------------------------------------------------------------
def test_bf_weight_claims_judge_every_expert(tmp_path: Path) -> None:
    """Before: BF-3 / BF-7 read ``blocks[i].mlp.W_in`` etc. with ``getattr(..., None)``, got None on a MoEBridge and
    judged the attention matrices alone (n_excluded 0), so an expert with an outlier could never fail BF-3."""
    from claims.test_bf_distributions import block_matrices, weight_gaussianity, weight_spectra

    def plant_outlier(model: Any) -> None:
        with torch.no_grad():  # one entry 40 standard deviations out, in expert 2's down projection of block 1
            w = model.model.layers[1].mlp.experts.down_proj
            w[2, 5, 7] = 40 * float(w.std())

    d = save_random_causal_lm(tmp_path / "mixtral", "mixtral", **MIXTRAL)
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(d))
    plant_outlier(hf)
    hf.save_pretrained(str(d))
    lm = load_model(str(d))
    mats, unread = block_matrices(lm.bridge, 1)
    names = [n for n, _ in mats]
    assert not unread
    assert names[:4] == ["W_Q", "W_K", "W_V", "W_O"] and "mlp.gate" in names
    for e in range(4):
        assert {f"mlp.experts.gate_proj[{e}]", f"mlp.experts.up_proj[{e}]", f"mlp.experts.down_proj[{e}]"} <= set(names)
    assert len(names) == 4 + 1 + 3 * 4
    # the halves of the fused gate_up_proj are the gate and the up projection HF applies
    experts = lm.bridge.original_model.model.layers[1].mlp.experts
    x = torch.randn(3, MIXTRAL["hidden_size"])
    gate, up = torch.nn.functional.linear(x, experts.gate_up_proj[3]).chunk(2, dim=-1)
    m = dict(mats)
    assert torch.allclose(gate, x @ m["mlp.experts.gate_proj[3]"].T) and torch.allclose(up, x @ m["mlp.experts.up_proj[3]"].T)
    res = weight_gaussianity(lm.bridge, kurt_tol=1.0, bulk_tol=0.03, factor=1.5)
    rows = {(r["weight"], r["layer"]): r for r in res["matrices"]}
    assert not rows[("mlp.experts.down_proj[2]", 1)]["gaussian_no_outliers"]
    assert rows[("mlp.experts.down_proj[2]", 0)]["gaussian_no_outliers"]
    assert len(rows) == 2 * 17
    spectra = weight_spectra(lm.bridge, "cpu")
    assert {(n, i) for n, i, _, _ in spectra} == set(rows)


def test_bf7_keeps_dense_mlp_layers_beside_moe_layers(tmp_path: Path) -> None:
    """Qwen2-MoE with a dense MLP at block 0 (``mlp_only_layers``): W_in existed at block 0 only, and
    weight_spectra dropped a weight name missing at any block, so block 0's MLP vanished from BF-7 too."""
    from claims.test_bf_distributions import weight_spectra

    lm = _load(tmp_path, "qwen2_moe", dict(QWEN2MOE, mlp_only_layers=[0]))
    got = {(n, i) for n, i, _, _ in weight_spectra(lm.bridge, "cpu")}
    assert {("W_in", 0), ("W_gate", 0), ("W_out", 0)} <= got
    assert ("mlp.experts.down_proj[5]", 1) in got and ("mlp.shared_expert.down_proj", 1) in got
    assert ("W_in", 1) not in got


GPT_OSS = dict(SMALL, head_dim=16, intermediate_size=48, num_local_experts=4, num_experts_per_tok=2,
               sliding_window=16, layer_types=["sliding_attention", "full_attention"])


def test_interleaved_experts_split_and_expert_biases_left_out(tmp_path: Path) -> None:
    """GPT-OSS stores each expert's gate and up projections interleaved in one ``gate_up_proj`` [experts, d_model,
    2·d_mlp] (gate columns 0, 2, 4 …, up columns 1, 3, 5 …; transformers' ``is_concatenated=False``) and stacks the
    experts' biases as 2-D ``gate_up_proj_bias`` / ``down_proj_bias`` [experts, ·]. Before: moe_matrices split the
    fused projection into halves, so BF-3 / BF-7 judged 'gate_proj[e]' made of half gate and half up columns, and
    judged the stacked biases as weight matrices (a zero bias excluded, a trained one counted)."""
    from claims.test_bf_distributions import block_matrices
    from lmfacts.weights import moe_matrices

    d = save_random_causal_lm(tmp_path / "gpt_oss", "gpt_oss", trained_norms=True, **GPT_OSS)
    lm = load_model(str(d))
    experts = lm.bridge.original_model.model.layers[1].mlp.experts
    assert experts.is_concatenated is False  # the layout transformers declares, which the split must follow
    mats, unread = moe_matrices(lm.bridge.blocks[1].mlp, GPT_OSS["hidden_size"])
    m = dict(mats)
    assert not unread
    assert not [n for n in m if "bias" in n], list(m)
    x = torch.randn(3, GPT_OSS["hidden_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gate_up = x @ experts.gate_up_proj[2]  # [3, 2·d_mlp], what GptOssExperts computes (before its bias)
        gate, up = gate_up[..., ::2], gate_up[..., 1::2]  # GptOssExperts._apply_gate
    assert torch.allclose(x @ m["experts.gate_proj[2]"], gate) and torch.allclose(x @ m["experts.up_proj[2]"], up)
    names = [n for n, _ in block_matrices(lm.bridge, 1)[0]]
    assert names.count("mlp.router") == 1 and not [n for n in names if "bias" in n], names
