"""Tests for lmfacts.gradients: per-example Q/K/V gradients match autograd on the whole model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmfacts.gradients import per_example_qkv_gradients, qkv_weight_parameters
from lmfacts.models.loading import load_model

TEXTS = ["The cat sat on the mat.", "Water boils at one hundred degrees."]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-neox", "tiny-llama", "tiny-bert"])
def test_finds_qkv_not_output_projection(name: str) -> None:
    lm = load_model(name)
    params = qkv_weight_parameters(lm.bridge, 0)
    assert 1 <= len(params) <= 4
    assert not any(n.split(".")[0] in ("o", "o_proj", "dense", "output") for n in params)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_gradients_are_per_example_and_exact(name: str) -> None:
    lm = load_model(name)
    b, i = lm.bridge, lm.info
    ex = per_example_qkv_gradients(b, TEXTS, [0, 1], prepend_bos=i.prepends_bos, n_ctx=i.n_ctx)
    assert len(ex) == 2
    assert not np.allclose(ex[0].grads[0], ex[1].grads[0])  # not averaged between examples
    # reference: the same loss differentiated with autograd on the whole parameter list
    params = list(qkv_weight_parameters(b, 1).values())
    toks = b.to_tokens(TEXTS[1], prepend_bos=i.prepends_bos)
    for p in params:
        p.requires_grad_(True)
    logits = b(toks, return_type="logits")
    loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), toks[0, 1:])
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    ref = np.concatenate([g.double().numpy().ravel() for g in grads if g is not None])
    for p in params:
        p.requires_grad_(False)
    assert ex[1].loss == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(ex[1].grads[1], ref, rtol=1e-4, atol=1e-8)
    assert np.abs(ex[1].grads[1]).max() > 0
