"""Tests for lmfacts.models.twin: a seeded, untrained, same-config copy with a copy of the tokenizer."""

from __future__ import annotations

import torch

from lmfacts.models.loading import build_tiny_model, load_model
from lmfacts.models.twin import build_random_twin, random_twin, release_twin, twin_probe


def _perturbed(m):  # noqa: ANN001, ANN202
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.5)  # "training": the twin must not inherit these weights


def test_twin_has_same_config_fresh_weights_and_is_seeded() -> None:
    lm = build_tiny_model("tiny-llama", hf_model_transform=_perturbed)
    t1, t2 = build_random_twin(lm, seed=0), build_random_twin(lm, seed=0)
    t3 = build_random_twin(lm, seed=1)
    assert t1.info.n_layers == lm.info.n_layers and t1.info.d_model == lm.info.d_model
    assert t1.info.quantization is None and "random twin" in t1.info.name
    w = lm.bridge.blocks[0].attn.W_Q.detach()
    w1, w2, w3 = (t.bridge.blocks[0].attn.W_Q.detach() for t in (t1, t2, t3))
    assert not torch.allclose(w, w1)
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)
    assert abs(float(w1.std()) - 0.02) < 0.005  # HF default init
    assert not t1.bridge.original_model.training
    # its own copy of the tokenizer (booting re-runs the tokenizer set-up on it), tokenising alike
    assert t1.bridge.tokenizer is not lm.bridge.tokenizer
    assert t1.bridge.to_tokens("hi").tolist() == lm.bridge.to_tokens("hi").tolist()


def test_twin_does_not_touch_global_rng() -> None:
    lm = load_model("tiny-gpt2")
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    build_random_twin(lm)
    assert torch.equal(torch.rand(3), a)


def test_cache_and_probe() -> None:
    lm = load_model("tiny-gpt2")
    t = random_twin(lm)
    assert random_twin(lm) is t
    p = twin_probe(lm, ["hello world", "a b c d e"], n_prompts=2)
    assert p.n_prompts == 2 and twin_probe(lm, ["hello world", "a b c d e"], n_prompts=2) is p
    other = load_model("tiny-neox")
    assert random_twin(other) is not t
    release_twin()
