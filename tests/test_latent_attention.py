"""Multi-head latent attention (DeepSeek-V2/V3 MLA): the weight views, the rebuild check and the BF weight claims
neither crash nor pretend.

Input that exposed it: a random ``DeepseekV3ForCausalLM`` (3 layers, MLA with q_lora_rank 48 / kv_lora_rank 32,
a dense block 0 and MoE blocks) saved with ``save_pretrained`` and run as ``pytest claims/ --model DIR``.
TransformerLens' ``MLAAttentionBridge`` raises NotImplementedError for W_Q / W_K / W_V / W_O (its queries and keys /
values come out of low-rank projections with a norm on the latent: there is no per-head W_V, so no W_OV).
``WeightViews.layer`` read them unconditionally, so the rebuild check behind residual_sum / additive_residual
raised and 18 of 32 claims were E with a TransformerLens traceback (RN-1 …, MA-1 …); BF-3 / BF-7 / BF-6 raised
too. What it should do: the stream claims measure; ov_rebuild fails naming the latent attention (RN-5 / RN-8
skip); BF-3 / BF-7 judge the attention's matrices as stored; BF-6 differentiates its Q/K/V projections.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.models.loading import load_model
from lmfacts.rebuild import measure_rebuild
from tests.helpers import save_random_causal_lm

TEXTS = ["The quick brown fox jumps over the lazy dog near the river bank.", "def f(x):\n    return x * 2",
         "Paris is the capital of France and its largest city."]
DEEPSEEK_V3 = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
                   intermediate_size=96, moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2,
                   n_shared_experts=1, n_group=1, topk_group=1, first_k_dense_replace=1, q_lora_rank=24,
                   kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
                   max_position_embeddings=128)


@pytest.fixture(scope="module")
def mla(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = save_random_causal_lm(tmp_path_factory.mktemp("mla") / "deepseek_v3", "deepseek_v3", trained_norms=True,
                              **DEEPSEEK_V3)
    return load_model(str(d))


def test_weight_views_name_the_latent_attention(mla: Any) -> None:
    from lmfacts.measures.rn import layer_weight_stats
    from lmfacts.weights import WeightViews

    views = WeightViews(mla.bridge, "raw")
    lw = views.layer(0)  # raised NotImplementedError: W_Q is not available on MLA …
    assert lw.W_Q is None and lw.W_K is None and lw.W_V is None
    assert lw.attn_note is not None and lw.attn_note.startswith("blocks.0.attn is multi-head latent attention")
    assert "kv_b_proj" in lw.attn_note
    # W_O is the o projection per head: z (heads concatenated) · W_O summed over heads = o_proj(z)
    o_proj = mla.bridge.original_model.model.layers[0].self_attn.o_proj
    z = torch.randn(5, 4 * DEEPSEEK_V3["v_head_dim"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = torch.einsum("phk,hke->pe", z.reshape(5, 4, -1), lw.W_O)
        assert torch.allclose(got, o_proj(z), atol=1e-6)
    with pytest.raises(ValueError, match="multi-head latent attention"):
        views.ov(lw)
    ws = layer_weight_stats(views, mla.info.normalization)
    assert np.isnan(ws["ov_fro_mean"]).all() and np.isnan(ws["ov_random_norm"]).all()


def test_rebuild_measures_the_stream_and_names_the_latent_attention(mla: Any) -> None:
    report = measure_rebuild(mla.bridge, TEXTS, processing="raw", dtype="float32", prepend_bos=mla.info.prepends_bos,
                             n_ctx=mla.info.n_ctx, device="cpu")
    holds, evidence = report.holds("residual_sum")
    assert holds, evidence
    assert report.max_error("o_from_z") is not None and report.max_error("o_from_z") <= report.tol
    holds, evidence = report.holds("ov_rebuild")
    assert not holds
    assert "v_from_ln1 not measurable" in evidence and "attention of block(s) 0, 1 has no W_OV" in evidence, evidence
    assert "multi-head latent attention (DeepseekV3Attention" in evidence, evidence


def test_bf_weight_claims_read_the_latent_projections(mla: Any) -> None:
    from claims.test_bf_distributions import block_matrices
    from lmfacts.gradients import qkv_weight_parameters

    mats, unread = block_matrices(mla.bridge, 0)  # raised NotImplementedError
    names = [n for n, _ in mats]
    assert not unread
    assert not {"W_Q", "W_K", "W_V", "W_O"} & set(names)
    for n in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"):
        assert f"attn.{n}" in names, names
    assert {"W_in", "W_gate", "W_out"} <= set(names)  # block 0's MLP is dense
    hf = mla.bridge.original_model.model.layers[0].self_attn
    assert torch.equal(dict(mats)["attn.kv_b_proj"], hf.kv_b_proj.weight.float())
    params = qkv_weight_parameters(mla.bridge, 1)  # raised LookupError: no Q/K/V weight parameters
    found = {n.split(".")[0] if not n.startswith("_") else n.split(".")[1] for n in params}
    assert found == {"q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"}, list(params)


def test_dense_block_beside_moe_blocks_is_checked_against_its_down_projection(mla: Any) -> None:
    """DeepSeek's first ``first_k_dense_replace`` blocks are dense MLPs, which TransformerLens wraps in its MoEBridge
    with the down projection under ``mlp.dense_out`` (no ``mlp.out``). Before: mlp_out_is_down_proj had no reference
    at block 0 ('not measurable (hook or weights absent)'), so additive_residual failed and RN-3 / RN-5 / RN-6
    skipped on a premise that holds."""
    report = measure_rebuild(mla.bridge, TEXTS, processing="raw", dtype="float32", prepend_bos=mla.info.prepends_bos,
                             n_ctx=mla.info.n_ctx, device="cpu")
    assert "blocks.0.mlp.dense_out.hook_out" in mla.bridge.hook_dict
    assert report.errors["mlp_out_is_down_proj"][0] is not None
    holds, evidence = report.holds("additive_residual")
    assert holds, evidence
