"""BF-4 sees every norm vector of the model, with effective gains.

Gemma 2 has a norm after each sublayer (ln1_post, ln2_post) besides ln1/ln2, and stores RMSNorm gains as
offsets (the module multiplies by 1 + w). Qwen 3 normalises queries and keys (q_norm, k_norm); BERT has an
embedding LayerNorm. :meth:`WeightViews.norm_parameters` finds them by walking the model's norm modules,
not from a list of names; before, it yielded ln1/ln2 and the final norm only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from claims.test_bf_distributions import norm_vector_rows
from lmfacts.models.loading import build_tiny_model
from lmfacts.weights import WeightViews
from tests.helpers import load_report, run_pytest

N_LAYERS = 4
GEMMA2_NORMS = {"input_layernorm": "ln1", "post_attention_layernorm": "ln1_post",
                "pre_feedforward_layernorm": "ln2", "post_feedforward_layernorm": "ln2_post"}


def _plant_gemma2_gains(model: Any) -> None:
    """Trained-looking offsets w (gain 1 + w): a Gaussian bulk plus a few large entries, different per norm."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for layer in model.model.layers:
            for j, hf_name in enumerate(GEMMA2_NORMS):
                w = getattr(layer, hf_name).weight
                w.copy_(0.1 * torch.randn(w.shape, generator=g))
                w[: 2 + j] = 3.0 + j  # outliers
        model.model.norm.weight.copy_(0.1 * torch.randn(model.model.norm.weight.shape, generator=g))


@pytest.fixture(scope="module")
def gemma2() -> Any:
    return build_tiny_model("tiny-gemma2", seed=0, hf_model_transform=_plant_gemma2_gains)


def test_gemma2_post_sublayer_norms_are_norm_vectors_with_effective_gains(gemma2: Any) -> None:
    views = WeightViews(gemma2.bridge, "raw")
    got = dict(views.norm_parameters())
    expected = {f"blocks.{i}.{n}.weight" for i in range(N_LAYERS) for n in GEMMA2_NORMS.values()} | {"ln_final.weight"}
    assert set(got) == expected
    hf = gemma2.bridge.original_model.model
    for i in range(N_LAYERS):
        for hf_name, name in GEMMA2_NORMS.items():
            w = getattr(hf.layers[i], hf_name).weight.detach().float()
            assert torch.equal(got[f"blocks.{i}.{name}.weight"], w + 1.0), name  # gain = 1 + stored offset
    assert torch.equal(got["ln_final.weight"], hf.norm.weight.detach().float() + 1.0)


def test_bf4_judges_the_post_sublayer_gains(gemma2: Any) -> None:
    rows, excluded = norm_vector_rows(WeightViews(gemma2.bridge, "raw"))
    assert not excluded and not rows["bias"]
    names = [r["name"] for r in rows["weight"]]
    assert len(names) == 4 * N_LAYERS + 1
    assert {f"blocks.{i}.ln1_post.weight" for i in range(N_LAYERS)} <= set(names)
    assert {f"blocks.{i}.ln2_post.weight" for i in range(N_LAYERS)} <= set(names)
    # the gains are centred at 1 (1 + w, w ~ 0.1·N(0, 1)) and the planted entries are outliers
    assert all(abs(r["median"] - 1.0) < 0.1 for r in rows["weight"])
    assert all(r["outlier_excess"] > 1.5 for r in rows["weight"] if r["name"] != "ln_final.weight")


def test_untrained_gains_are_excluded_as_constant_with_their_reason() -> None:
    lm = build_tiny_model("tiny-gemma2", seed=0)  # random init: every offset 0, every gain exactly 1
    rows, excluded = norm_vector_rows(WeightViews(lm.bridge, "raw"))
    assert not rows["weight"] and len(excluded) == 4 * N_LAYERS + 1
    assert all("constant vector (every entry 1)" in why for why in excluded.values())
    assert "blocks.2.ln2_post.weight" in excluded


def test_embedding_layernorm_and_biases_are_norm_vectors() -> None:
    lm = build_tiny_model("tiny-bert", seed=0)
    names = [n for n, _ in WeightViews(lm.bridge, "raw").norm_parameters()]
    assert len(names) == len(set(names))  # a vector shared by a bridge and its HF module is yielded once
    assert {"embed_ln.weight", "embed_ln.bias", "blocks.0.ln1.bias", "ln_final.bias"} <= set(names)


def test_qk_norms_are_norm_vectors() -> None:
    """A Qwen 3 block normalises queries and keys per head (q_norm / k_norm, d_head gains)."""
    import transformers
    from transformer_lens.model_bridge import TransformerBridge

    from lmfacts.models.tiny import load_byte_tokenizer

    tok = load_byte_tokenizer()
    cfg = transformers.Qwen3Config(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                   head_dim=16, intermediate_size=128, vocab_size=len(tok),
                                   max_position_embeddings=128)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    bridge = TransformerBridge.boot_transformers("lmfacts/qwen3-test", hf_model=model, tokenizer=tok, device="cpu",
                                                 dtype=torch.float32)
    got = dict(WeightViews(bridge, "raw").norm_parameters())
    for i in range(2):
        assert {f"blocks.{i}.attn.q_norm.weight", f"blocks.{i}.attn.k_norm.weight", f"blocks.{i}.ln1.weight",
                f"blocks.{i}.ln2.weight"} <= set(got)
        assert got[f"blocks.{i}.attn.q_norm.weight"].shape == (16,)
    assert len(got) == 4 * 2 + 1


def test_bf4_claim_reports_every_gemma2_norm(tmp_path: Path) -> None:
    """End to end: BF-4 on the planted Gemma 2 saved as a local HF directory."""
    from lmfacts.models.tiny import build_tiny_hf_model, byte_tokenizer_dir

    model_dir = tmp_path / "planted-gemma2-norms"
    shutil.copytree(byte_tokenizer_dir(), model_dir)
    model, _, _ = build_tiny_hf_model("tiny-gemma2", seed=0)
    _plant_gemma2_gains(model)
    model.save_pretrained(str(model_dir))
    proc, _ = run_pytest("claims/test_bf_distributions.py", "-k", "BF-4", "--model", str(model_dir),
                         "--max-prompts", "4", "-q", report_dir=tmp_path / "reports")
    (r,) = load_report(tmp_path / "reports")["results"]
    assert r["outcome"] == "passed", (r["outcome"], r["reason"], proc.stdout[-2000:])
    gains = {g["name"] for g in r["measured"]["gains"]}
    assert {f"blocks.{i}.{n}.weight" for i in range(N_LAYERS) for n in GEMMA2_NORMS.values()} <= gains
    assert r["measured"]["n_excluded"] == 0 and r["conventions"]["gain_offset"] is True
    assert np.isclose(r["measured"]["median_gain"], 1.0, atol=0.1)
