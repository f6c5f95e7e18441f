"""The logit lens's readout is checked against the logits the model returns (premise ``lens_readout``).

Input that exposed it: a random Granite (``logits_scaling`` = 8: the model returns ``lm_head(·) / 8``) and a
random Cohere (``logit_scale`` = 1/16). The lens decoded every point, and built the final distribution, as
``unembed(ln_final(·))`` without that division, so LL-1 / LL-2 were judged at 8× (16×) the model's temperature
and KL at the last point was still 0 (both sides left the scale out): the claim passed on numbers that are not
the model's. Planted answers: a decoding scaled by a known factor, a nonlinear (soft-capped) one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.measures.beyond import bridge_decode
from lmfacts.models.loading import build_tiny_model, load_model
from lmfacts.rebuild import measure_lens_readout
from tests.helpers import load_report, run_pytest, save_random_causal_lm

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
GRANITE = dict(num_hidden_layers=3, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=128, max_position_embeddings=128, embedding_multiplier=12.0,
               residual_multiplier=0.22, attention_multiplier=0.0625, logits_scaling=8.0)


def _readout(lm: Any, decode: Any, unembed: Any = None) -> Any:
    return measure_lens_readout(lm.bridge, TEXT, decode, unembed=unembed, dtype="float32",
                                prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx, device="cpu")


@pytest.fixture(scope="module")
def llama() -> Any:
    return build_tiny_model("tiny-llama")


def test_readout_holds_for_the_models_own_head(llama: Any) -> None:
    check = _readout(llama, bridge_decode(llama.bridge), llama.bridge.unembed)
    assert check.holds and check.rel_error < 1e-5 and check.kl_max < 1e-8, check
    assert len(check.checked) == 2  # the lens decoding and the final distribution's unembedding


def test_readout_catches_a_planted_logit_multiplier(llama: Any) -> None:
    dec = bridge_decode(llama.bridge)
    check = _readout(llama, lambda x: 8.0 * dec(x))
    assert not check.holds
    assert check.scale == pytest.approx(1 / 8, rel=1e-5) and check.scale_residual < 1e-5
    assert check.rel_error == pytest.approx(7.0, rel=1e-4)  # ‖8z − z‖ / ‖z‖
    assert "0.125 × the decoded ones" in check.evidence()
    # the final distribution's unembedding is checked too: a wrong one alone makes the readout miss
    wrong_final = _readout(llama, dec, lambda h: 8.0 * llama.bridge.unembed(h))
    assert not wrong_final.holds and wrong_final.checked[1] == "unembed(unembed.hook_in)"


def test_readout_catches_a_nonlinear_map(llama: Any) -> None:
    dec = bridge_decode(llama.bridge)
    check = _readout(llama, lambda x: 0.05 * torch.tanh(dec(x) / 0.05))  # a soft cap far below the logits' range
    assert not check.holds and check.scale_residual > check.tol
    assert "post-unembedding map" in check.evidence()


def _independent_rel_error(model_dir: Path) -> float:
    """bridge_decode(last resid_post) against the logits of the HF model itself (not the bridge's forward)."""
    from transformers import AutoModelForCausalLM

    lm = load_model(str(model_dir))
    hf = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    ids = lm.bridge.to_tokens(TEXT, prepend_bos=lm.info.prepends_bos)
    last = f"blocks.{lm.bridge.cfg.n_layers - 1}.hook_resid_post"
    with torch.inference_mode():
        _, cache = lm.bridge.run_with_cache(ids, names_filter=[last])
        dec = bridge_decode(lm.bridge)(cache[last][0]).double()
        ref = hf(ids).logits[0].double()
    dec, ref = dec - dec.mean(-1, keepdim=True), ref - ref.mean(-1, keepdim=True)
    return float((dec - ref).norm() / ref.norm())


def test_ll_claims_never_pass_on_a_lens_that_is_not_the_models_head(tmp_path: Path) -> None:
    """A Granite whose head divides its logits by 8: LL-1 / LL-2 either skip naming ``lens_readout`` (the lens
    leaves the division out) or, where the lens applies it, run with the premise holding; never pass on a lens
    that decodes another distribution than the model's."""
    model_dir = save_random_causal_lm(tmp_path / "granite", "granite", **GRANITE)
    lens_is_head = _independent_rel_error(model_dir) < 1e-3
    # the lens applies the head's output transform (beyond.output_transform): it decodes the model's distribution
    assert lens_is_head, _independent_rel_error(model_dir)
    proc, _ = run_pytest("claims/", "-m", "LL", "--model", str(model_dir), "--max-prompts", "8",
                         report_dir=tmp_path / "reports", timeout=300)
    report = load_report(tmp_path / "reports")
    blob = json.dumps(report, ensure_ascii=False)
    outcomes = {r["claim"]: r["outcome"] for r in report["results"]}
    assert set(outcomes) == {"LL-1", "LL-2"}, (outcomes, proc.stdout[-2000:])
    if lens_is_head:
        assert "skipped" not in outcomes.values(), outcomes
    else:
        assert set(outcomes.values()) == {"skipped"}, (outcomes, proc.stdout[-2000:])
        assert "lens_readout" in blob and "0.125 × the decoded ones" in blob


def test_both_final_distributions_are_the_models_on_a_rescaling_head(tmp_path: Path) -> None:
    """The lens's final distribution is the model's whether it comes from ``unembed.hook_out`` (a pass that runs
    the unembedding: the head's transform is applied after the hook) or from ``unembed(unembed.hook_in)`` (the
    probe pass, which stops before it): at the last point, which the lens decodes like the output, KL ≈ 0 both
    ways, and the two passes agree. Without the transform on the hook_out branch the final distribution is 8×
    sharper than the lens's last point and KL there is far from 0."""
    from lmfacts.measures.beyond import attach_sample, beyond_pass
    from lmfacts.probe.probe import run_probe

    lm = load_model(str(save_random_causal_lm(tmp_path / "granite", "granite", **GRANITE)))
    info = lm.info
    kw = dict(prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
              pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx, device="cpu")
    texts = [TEXT, "A second, somewhat longer prompt about rivers, banks and the foxes that live near them."]
    alone = beyond_pass(lm.bridge, texts, causal=True, lens=True, batch_size=4, **kw)
    att = attach_sample(lm.bridge, texts, range(len(texts)), causal=True, lens=True,
                        prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    run_probe(lm.bridge, texts, reductions=att.reductions, **kw)
    ridden = att.result(0.0, "attached")
    assert any("hook_out" in s for s in alone.lens.final_source)
    assert any("hook_in" in s for s in ridden.lens.final_source)
    for res in (alone, ridden):
        acc = res.lens.acc
        assert acc.n_tokens[-1] > 0 and acc.kl_sum[-1] / acc.n_tokens[-1] < 1e-6, (res.lens.final_source, acc.kl_sum)
    np.testing.assert_allclose(alone.lens.acc.kl_sum, ridden.lens.acc.kl_sum, rtol=1e-4, atol=1e-6)
