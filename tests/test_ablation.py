"""Planted-answer tests for lmfacts.ablation: the hooks do exactly what their docstrings say."""

from __future__ import annotations

import math

import pytest
import torch

from lmfacts.ablation import next_token_loss, remove_skip_hooks, skip_block_hooks
from lmfacts.models.loading import load_model

TEXTS = ["The cat sat on the mat and looked out of the window.", "In 1492 Columbus sailed the ocean blue.",
         "def f(x):\n    return x + 1"]


def _kw(lm):  # noqa: ANN001, ANN202
    i = lm.info
    return dict(prepend_bos=i.prepends_bos, padding_side=i.padding_side or "right",
                pad_id=i.pad_token_id or 0, n_ctx=i.n_ctx)


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-neox", "tiny-llama"])
def lm(request):  # noqa: ANN001, ANN201
    return load_model(request.param)


def _grab(cache: dict, key: str):  # noqa: ANN202
    def fn(x: torch.Tensor, hook: object) -> None:
        cache[key] = x.clone()
    return fn


def test_loss_matches_hf_cross_entropy(lm) -> None:  # noqa: ANN001
    """Unpadded single prompt: our loss equals torch's cross-entropy of the HF logits."""
    kw = _kw(lm)
    res = next_token_loss(lm.bridge, TEXTS[:1], **kw)
    toks = lm.bridge.to_tokens(TEXTS[0], prepend_bos=kw["prepend_bos"])
    with torch.inference_mode():
        logits = lm.bridge(toks, return_type="logits")
    ref = torch.nn.functional.cross_entropy(logits[0, :-1].double(), toks[0, 1:])
    assert res.loss == pytest.approx(float(ref), rel=1e-6)
    assert res.n_targets == toks.shape[1] - 1


def test_padding_does_not_change_per_prompt_loss(lm) -> None:  # noqa: ANN001
    kw = _kw(lm)
    together = next_token_loss(lm.bridge, TEXTS, **kw).per_prompt
    alone = [next_token_loss(lm.bridge, [t], **kw).loss for t in TEXTS]
    assert together == pytest.approx(alone, rel=1e-4)


def test_skip_block_passes_input_through(lm) -> None:  # noqa: ANN001
    cache: dict = {}
    hooks = skip_block_hooks([1]) + [("blocks.1.hook_resid_pre", _grab(cache, "pre")),
                                      ("blocks.2.hook_resid_pre", _grab(cache, "next"))]
    base = next_token_loss(lm.bridge, TEXTS, **_kw(lm)).loss
    ablated = next_token_loss(lm.bridge, TEXTS, fwd_hooks=hooks, **_kw(lm)).loss
    assert torch.equal(cache["pre"], cache["next"])
    assert ablated != base


def test_skipping_every_block_feeds_the_embedding_to_the_head(lm) -> None:  # noqa: ANN001
    """With all blocks skipped, the final resid equals the stream entering block 0."""
    L = lm.info.n_layers
    cache: dict = {}
    hooks = skip_block_hooks(range(L)) + [("blocks.0.hook_resid_pre", _grab(cache, "emb")),
                                          (f"blocks.{L - 1}.hook_resid_post", _grab(cache, "final"))]
    next_token_loss(lm.bridge, TEXTS, fwd_hooks=hooks, **_kw(lm))
    assert torch.equal(cache["emb"], cache["final"])


def test_remove_skip_outputs_sublayers_only(lm) -> None:  # noqa: ANN001
    b = lm.bridge
    parallel = "blocks.0.hook_resid_mid" not in b.hook_dict
    cache: dict = {}
    hooks = remove_skip_hooks(1, parallel=parallel) + [
        ("blocks.1.hook_attn_out", _grab(cache, "attn")), ("blocks.1.hook_mlp_out", _grab(cache, "mlp")),
        ("blocks.2.hook_resid_pre", _grab(cache, "next")), ("blocks.1.ln2.hook_scale", _grab(cache, "scale"))]
    next_token_loss(b, TEXTS, fwd_hooks=hooks, **_kw(lm))
    want = cache["attn"] + cache["mlp"] if parallel else cache["mlp"]
    assert torch.allclose(cache["next"], want)
    if not parallel:  # the MLP's norm read attn_out, not resid_pre + attn_out
        a = cache["attn"]
        eps = float(getattr(b.cfg, "eps", 1e-5))
        scale = (a.var(-1, unbiased=False, keepdim=True) if lm.info.normalization == "LN"
                 else a.pow(2).mean(-1, keepdim=True)).add(eps).sqrt()
        assert torch.allclose(scale, cache["scale"], rtol=1e-4, atol=1e-6)


def test_empty_and_single_token_inputs_raise() -> None:
    lm = load_model("tiny-gpt2")
    with pytest.raises(ValueError):
        next_token_loss(lm.bridge, [], **_kw(lm))
    res = next_token_loss(lm.bridge, ["ab"], **_kw(lm))
    assert math.isfinite(res.loss)
