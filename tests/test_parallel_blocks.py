"""Parallel attention+MLP blocks and partial rotary, measured against Hugging Face's own modules.

The architectures: Phi (one LayerNorm shared by attention and MLP, partial_rotary_factor 0.5, LM head with a
bias, final LayerNorm), GPT-J (parallel, rotary_dim < head_dim, LM head with a bias), Falcon-7B style (parallel,
multi-query attention, fused query_key_value) and Phi-3 (sequential, fused qkv_proj / gate_up_proj, grouped K/V).
Each is built here: random weights, 2 layers, d_model 64, the byte tokenizer, every norm gain and bias perturbed
(HF's 1 / 0 initialisation hides a convention that ignores them).

What is checked, independently of TransformerLens' hooks: ‖W_V·W_O‖_F per head from :class:`lmfacts.weights.WeightViews`
against the HF checkpoint's own V and output projections (their layouts unpacked here); the MLP rebuilt from the
weights (:func:`lmfacts.rebuild.mlp_forward`) against the HF MLP module fed through the HF norm module the block
actually applies; the rebuild premises (:func:`lmfacts.rebuild.measure_rebuild`). And that RN-6/RN-7 record the
norm the MLP really reads (ln1 for a single-norm parallel block; they said ln2, which Phi, GPT-J and Falcon-7B
do not have).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_report, run_pytest, save_random_causal_lm

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

SMALL = dict(num_hidden_layers=2, num_attention_heads=4)
#: name → (model_type, config kwargs, the HF norm module the MLP reads, the norm lmfacts must say it reads)
MODELS: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "phi": ("phi", dict(hidden_size=64, intermediate_size=128, partial_rotary_factor=0.5,
                        max_position_embeddings=256, **SMALL), "input_layernorm", "ln1"),
    "gptj": ("gptj", dict(n_embd=64, n_layer=2, n_head=4, rotary_dim=8, n_positions=256), "ln_1", "ln1"),
    "falcon": ("falcon", dict(hidden_size=64, multi_query=True, parallel_attn=True, new_decoder_architecture=False,
                              bias=True, alibi=False, **SMALL), "input_layernorm", "ln1"),
    "phi3": ("phi3", dict(hidden_size=64, intermediate_size=128, num_key_value_heads=2, max_position_embeddings=256,
                          pad_token_id=None, **SMALL), "post_attention_layernorm", "ln2"),
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("parallel")
    dirs = {name: save_random_causal_lm(root / name, mt, trained_norms=True, **cfg)
            for name, (mt, cfg, _, _) in MODELS.items()}
    for path in dirs.values():  # every norm module's gain, by class (GPT-J's ln_1 has no "norm" in its name)
        model = AutoModelForCausalLM.from_pretrained(str(path))
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for mod in model.modules():
                w = getattr(mod, "weight", None)
                if "norm" in type(mod).__name__.lower() and isinstance(w, torch.Tensor) and w.dim() == 1:
                    w.add_(0.3 * torch.randn(w.shape, generator=g))
        model.save_pretrained(str(path))
    return dirs


def _ov_from_hf(attn: Any, config: Any, n_heads: int, d_head: int, d_model: int) -> torch.Tensor:
    """‖W_V,h · W_O,h‖_F per query head [n_heads] from the HF attention module's own parameters."""
    sd = {k: v.detach().float() for k, v in attn.state_dict().items()}
    if "v_proj.weight" in sd:  # phi, gptj
        w_v, w_o = sd["v_proj.weight"], sd.get("dense.weight", sd.get("out_proj.weight"))
        n_kv = w_v.shape[0] // d_head
    elif "qkv_proj.weight" in sd:  # phi3: rows q (H·dh), k (kv·dh), v (kv·dh)
        n_kv = config.num_key_value_heads
        w_v, w_o = sd["qkv_proj.weight"][(n_heads + n_kv) * d_head:], sd["o_proj.weight"]
    else:  # falcon, multi_query: rows q (H·dh), k (dh), v (dh)
        n_kv = 1
        w_v, w_o = sd["query_key_value.weight"][(n_heads + 1) * d_head:], sd["dense.weight"]
    w_v = w_v.reshape(n_kv, d_head, d_model).repeat_interleave(n_heads // n_kv, 0)  # [H, dh, d] (out, in)
    w_o = w_o.reshape(d_model, n_heads, d_head).permute(1, 2, 0)  # [H, dh, d]
    return torch.stack([(w_v[h].T @ w_o[h]).norm() for h in range(n_heads)])


@pytest.mark.parametrize("name", list(MODELS))
def test_weights_rebuild_the_hf_modules(model_dirs: dict[str, Path], name: str) -> None:
    from transformers import AutoModelForCausalLM

    from lmfacts.models.loading import load_model
    from lmfacts.rebuild import REBUILD_CHECKS, activation_of, measure_rebuild, mlp_forward, normalise
    from lmfacts.weights import WeightViews

    _, _, hf_norm, lmfacts_norm = MODELS[name]
    lm = load_model(str(model_dirs[name]))
    hf = AutoModelForCausalLM.from_pretrained(str(model_dirs[name])).eval()
    layers = getattr(hf.base_model, "layers", None) or hf.base_model.h
    cfg = lm.bridge.cfg
    views = WeightViews(lm.bridge, "raw")
    x = torch.randn(64, cfg.d_model, generator=torch.Generator().manual_seed(1)) * 3 + 0.5
    for i, lw in views.layers():
        layer = layers[i]
        attn = next(m for n, m in layer.named_children() if n in ("self_attn", "attn", "self_attention"))
        ov_ref = _ov_from_hf(attn, hf.config, cfg.n_heads, cfg.d_head, cfg.d_model)
        ov = WeightViews.ov_frobenius(lw)
        assert torch.allclose(ov, ov_ref, rtol=1e-4, atol=0), (name, i, ov, ov_ref)
        norm_module = getattr(layer, hf_norm)
        with torch.no_grad():
            ref = layer.mlp(norm_module(x))
        eps = float(getattr(norm_module, "eps", getattr(norm_module, "variance_epsilon", 1e-5)))
        mine = mlp_forward(lw, normalise(x, cfg.normalization_type, eps), activation_of(lm.bridge, i))
        err = float((mine - ref).norm() / ref.norm())
        assert err < 1e-5, (name, i, err)
        assert views.mlp_norm_name(i) == lmfacts_norm
    report = measure_rebuild(lm.bridge, ["The quick brown fox jumps over the lazy dog.", "def f(x):\n    return x"],
                             processing="raw", dtype="float32", prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx,
                             device="cpu")
    for group in REBUILD_CHECKS:
        assert report.holds(group)[0], (name, group, report.holds(group)[1])


def test_rn6_rn7_name_the_norm_the_mlp_reads(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Phi's MLP reads ln1(resid_pre), the norm attention reads: the conventions say so instead of ln2."""
    path = model_dirs["phi"]
    proc, _ = run_pytest("claims/", "--model", str(path), "-k", "RN-6 or RN-7", "--max-prompts", "4", "-q",
                         report_dir=tmp_path)
    out = proc.stdout + proc.stderr
    results = {r["claim"]: r for r in load_report(tmp_path)["results"]}
    assert {"RN-6", "RN-7"} <= set(results), out[-2000:]
    conv6, conv7 = results["RN-6"]["conventions"], results["RN-7"]["conventions"]
    text = json.dumps([conv6, conv7])
    assert "ln1 (the block's one norm, shared with attention)" in conv6["inputs"], conv6
    assert "through ln1" in conv6["resid_mid"] and "ln2" not in text, text
    assert "ln1 (the block's one norm" in conv7["random_inputs"], conv7
