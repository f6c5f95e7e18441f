"""Planted-truth end-to-end tests of RN-1, RN-4 and RN-5.

A tiny random Llama-style and GPT-2-style model get the writing weights of block l (attention
o_proj / c_proj and MLP down_proj / c_proj, with their biases) multiplied by g**l. Then:

* RN-1's measurement (:func:`lmfacts.measures.rn.measure_rn1` on a real :func:`run_probe` pass in
  compat processing, the same code the claim runs) must report the per-layer content norms and the
  growth rate that an *independent* computation gives: a plain Hugging Face forward with
  ``output_hidden_states=True`` (hidden_states[l] = input of block l) plus a forward hook on the last
  block, one prompt at a time, with no TransformerLens involved. For LayerNorm models the compat
  processing centres the writing weights, which removes each token's mean across d_model from the
  stream, so the independent norms are taken of the centred hidden states.
* RN-5 must see mean-over-heads ‖W_OV‖_F growing at exactly g per layer.
* The mutation tests prove the comparison has teeth: the probe reading resid_post where it should
  read resid_pre (an off-by-one in the hook wiring), or a broken rate estimator, are caught.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.measures import rn
from lmfacts.models.loading import build_tiny_model
from lmfacts.probe import probe as probe_mod
from lmfacts.probe.probe import run_probe
from lmfacts.rebuild import activation_of, mlp_forward, mlp_pre
from lmfacts.stats.growth import fit_growth_rate
from lmfacts.weights import WeightViews

G = 1.3
N_LAYERS = 8
TEXTS = [
    "The cat sat on the mat.",
    "Residual streams grow exponentially over the forward pass of a transformer.",
    "a",
    "Numbers: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10.",
    "Short one",
    "In the beginning was the word, and the word was long enough to need padding in a batch.",
]
NORM_RTOL = 1e-4  # float32 forward passes with different batch shapes (padding) agree to ~1e-6


def _writers(model: Any) -> list[list[torch.nn.Module]]:
    """The writing projections of each block: [attention output, MLP output]."""
    if hasattr(model, "transformer"):  # GPT-2
        return [[b.attn.c_proj, b.mlp.c_proj] for b in model.transformer.h]
    return [[b.self_attn.o_proj, b.mlp.down_proj] for b in model.model.layers]


def _plant(g: float):
    def transform(model: Any) -> None:
        with torch.no_grad():
            for layer, mods in enumerate(_writers(model)):
                for mod in mods:
                    mod.weight.mul_(g ** layer)
                    if getattr(mod, "bias", None) is not None:
                        mod.bias.mul_(g ** layer)
    return transform


def _blocks(model: Any) -> Any:
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


def independent_norms(lm: Any, texts: list[str], centre: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt mean content-token ‖resid_pre‖ at every point, [n_prompts, L+1], from HF alone.

    Also returns the token-weighted corpus mean per point. Content = every position after the
    prepended BOS.
    """
    hf = lm.bridge.original_model
    L = hf.config.num_hidden_layers if hasattr(hf.config, "num_hidden_layers") else hf.config.n_layer
    captured: dict[str, torch.Tensor] = {}
    handle = _blocks(hf)[-1].register_forward_hook(
        lambda mod, inp, out: captured.__setitem__("final", out[0] if isinstance(out, tuple) else out))
    rows, sums, count = [], np.zeros(L + 1), 0
    try:
        for text in texts:
            ids = lm.bridge.to_tokens(text, prepend_bos=True)
            with torch.no_grad():
                out = hf(ids, output_hidden_states=True)
            states = [out.hidden_states[i][0] for i in range(L)] + [captured["final"].reshape(ids.shape[1], -1)]
            per = []
            for s in states:
                s = s.double()[1:]
                if centre:
                    s = s - s.mean(-1, keepdim=True)
                n = s.norm(dim=-1)
                per.append(float(n.mean()))
                sums[len(per) - 1] += float(n.sum())
            count += ids.shape[1] - 1
            rows.append(per)
    finally:
        handle.remove()
    return np.array(rows), sums / count


def rn1_discrepancies(m: dict[str, Any], per_prompt: np.ndarray, token_mean: np.ndarray) -> list[str]:
    """Compare RN-1's measurement with the independent one; return the discrepancies (empty = agree)."""
    errs = []
    norms = np.array(m["norms"])
    if norms.shape != token_mean.shape or not np.allclose(norms, token_mean, rtol=NORM_RTOL, atol=0):
        errs.append(f"norms differ: {norms} vs {token_mean}")
    truth = fit_growth_rate(per_prompt.mean(0), tuple(m["window"]), n_boot=0)
    if abs(m["rate"] - truth.rate) > 1e-4 * truth.rate:
        errs.append(f"rate {m['rate']} vs independent {truth.rate}")
    if abs(m["r2"] - truth.r_squared) > 1e-4:
        errs.append(f"R² {m['r2']} vs independent {truth.r_squared}")
    return errs


def _probe(lm: Any, texts: list[str], batch_size: int = 4) -> Any:
    info = lm.info
    return run_probe(lm.bridge, texts, prepend_bos=True, padding_side=info.padding_side or "right",
                     pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx,
                     batch_size=batch_size)


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def planted(request: pytest.FixtureRequest) -> Any:
    name = request.param
    key = "num_hidden_layers" if name == "tiny-llama" else "n_layer"
    lm = build_tiny_model(name, seed=3, config_overrides={key: N_LAYERS}, hf_model_transform=_plant(G))
    truth = independent_norms(lm, TEXTS, centre=lm.info.normalization == "LN")
    lm.apply_compat_processing()
    return lm, truth


def test_rn1_reports_the_independent_rate(planted: Any) -> None:
    lm, (per_prompt, token_mean) = planted
    probe = _probe(lm, TEXTS)
    m = rn.measure_rn1(probe, None)
    assert m["window"] == list(rn.default_window(N_LAYERS + 1))
    assert rn1_discrepancies(m, per_prompt, token_mean) == []
    assert m["rate"] > 1.1  # the planted growth is visible (g = 1.3 on the writes)
    assert probe.bound_violations.sum() == 0 and probe.bound_checked.min() > 0  # RN-4 on the planted model


def test_rn5_sees_wov_growing_at_g(planted: Any) -> None:
    """Planted W_OV_l = g**l · W_OV_l(unplanted): RN-5's per-layer norms and fitted rate carry exactly g."""
    lm, _ = planted
    name = lm.info.name
    key = "num_hidden_layers" if name == "tiny-llama" else "n_layer"
    base = build_tiny_model(name, seed=3, config_overrides={key: N_LAYERS})
    base.apply_compat_processing()
    probe = _probe(lm, TEXTS)
    m = rn.measure_rn5(WeightViews(lm.bridge, "compat"), probe, None, lm.info.normalization)
    b = rn.measure_rn5(WeightViews(base.bridge, "compat"), _probe(base, TEXTS[:2]), None, lm.info.normalization)
    ratio = np.array(m["ov_fro_mean"]) / np.array(b["ov_fro_mean"])
    np.testing.assert_allclose(ratio, G ** np.arange(N_LAYERS), rtol=1e-4)
    assert abs(m["ov_rate"] / b["ov_rate"] - G) < 1e-4 * G


def test_mlp_forward_matches_hooks(planted: Any) -> None:
    """RN-6/RN-7 compute the MLP from the weights: it must equal hook_mlp_out / mlp.hook_pre."""
    lm, _ = planted
    _, cache = lm.bridge.run_with_cache(lm.bridge.to_tokens(TEXTS[1]))
    for i, lw in WeightViews(lm.bridge, "compat").layers():
        x = cache[f"blocks.{i}.ln2.hook_normalized"][0]
        out = cache[f"blocks.{i}.hook_mlp_out"][0]
        torch.testing.assert_close(mlp_forward(lw, x, activation_of(lm.bridge, i)), out, rtol=1e-4,
                                   atol=1e-5 * float(out.abs().max()))
        torch.testing.assert_close(mlp_pre(lw, x), cache[f"blocks.{i}.mlp.hook_pre"][0], rtol=1e-4, atol=1e-5)


# -- mutation tests: the planted comparison must catch broken wiring and a broken estimator ----------
def test_detects_off_by_one_hook_wiring(planted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lm, (per_prompt, token_mean) = planted
    real_hooks = probe_mod._hooks

    def shifted(probe: Any, n_layers: int) -> list[tuple[str, object]]:
        hooks = real_hooks(probe, n_layers)
        return [(name.replace("hook_resid_pre", "hook_resid_post"), fn) for name, fn in hooks]

    monkeypatch.setattr(probe_mod, "_hooks", shifted)
    m = rn.measure_rn1(_probe(lm, TEXTS), None)
    assert any(e.startswith("norms differ") for e in rn1_discrepancies(m, per_prompt, token_mean))


def test_detects_broken_rate_estimator(planted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lm, (per_prompt, token_mean) = planted
    real_fit = rn.fit_growth_rate

    def off_by_one_window(norms: Any, window: tuple[int, int], **kw: Any) -> Any:
        return real_fit(norms, (window[0] + 1, window[1]), **kw)

    monkeypatch.setattr(rn, "fit_growth_rate", off_by_one_window)
    m = rn.measure_rn1(_probe(lm, TEXTS), None)
    assert any(e.startswith("rate") for e in rn1_discrepancies(m, per_prompt, token_mean))
