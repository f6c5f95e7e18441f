"""Tests for the tiny random models: all four families load offline, in eval mode, with the right metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lmfacts.models.cache import cache_root
from lmfacts.models.loading import LoadedModel, build_tiny_model, load_model
from lmfacts.models.tiny import BYTE_TOKENIZER_NAME

EXPECTED = {
    # name: (architecture, normalization, positional, is_encoder, n_kv_heads, parallel, gated, prepends_bos)
    "tiny-gpt2": ("gpt2", "LN", "standard", False, 4, False, False, True),
    "tiny-neox": ("gpt_neox", "LN", "rotary", False, 4, True, False, False),
    "tiny-llama": ("llama", "RMS", "rotary", False, 2, False, True, True),
    "tiny-bert": ("bert", "LN", "standard", True, 4, False, False, True),
}


@pytest.fixture(scope="module", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMFACTS_CACHE_DIR", str(tmp_path_factory.mktemp("lmfacts-cache")))
        yield


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, LoadedModel]:
    return {name: load_model(name) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tiny_metadata(tiny_models: dict[str, LoadedModel], name: str) -> None:
    arch, norm, pos, enc, n_kv, parallel, gated, bos = EXPECTED[name]
    info = tiny_models[name].info
    assert (info.architecture, info.normalization, info.positional_embedding) == (arch, norm, pos)
    assert (info.is_encoder, info.n_kv_heads, info.parallel_attn_mlp, info.gated_mlp) == (enc, n_kv, parallel, gated)
    assert info.prepends_bos is bos
    assert (info.n_layers, info.d_model, info.n_heads, info.d_head, info.n_ctx, info.d_vocab) == (4, 128, 4, 32, 256, 257)
    assert (info.source, info.weight_processing, info.quantization, info.has_lm_head) == ("tiny", "raw", None, True)
    assert (info.bos_token_id, info.pad_token_id, info.padding_side) == (0, 0, "right")
    assert json.loads(json.dumps(info.to_dict()))["name"] == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tiny_eval_mode_and_deterministic(tiny_models: dict[str, LoadedModel], name: str) -> None:
    bridge = tiny_models[name].bridge
    assert not bridge.training and not bridge.original_model.training
    toks = bridge.to_tokens("Residual streams grow.")
    assert toks.shape[1] == len("Residual streams grow.") + int(EXPECTED[name][7])  # one token per byte (+BOS)
    with torch.no_grad():
        first, second = bridge(toks), bridge(toks)
    assert first.shape == (1, toks.shape[1], 257)
    assert torch.equal(first, second)


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, b, c = (build_tiny_model("tiny-gpt2", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.bridge.W_Q, b.bridge.W_Q)
    assert not torch.equal(a.bridge.W_Q, c.bridge.W_Q)


def test_llama_bos_embedding_is_not_zero(tiny_models: dict[str, LoadedModel]) -> None:
    assert tiny_models["tiny-llama"].bridge.W_E[0].abs().sum() > 0


def test_byte_tokenizer_saved_in_cache(tiny_models: dict[str, LoadedModel]) -> None:
    tok_dir = cache_root() / "tokenizers" / BYTE_TOKENIZER_NAME
    assert (tok_dir / "tokenizer.json").is_file()
    assert Path(tiny_models["tiny-gpt2"].tokenizer.name_or_path).resolve() == tok_dir.resolve()


def test_transform_plants_structure_and_overrides_apply() -> None:
    def scale_writing_weights(model: torch.nn.Module) -> None:
        with torch.no_grad():
            for layer, block in enumerate(model.transformer.h):
                block.attn.c_proj.weight.mul_(2.0**layer)

    plain = build_tiny_model("tiny-gpt2", config_overrides={"n_layer": 3})
    scaled = build_tiny_model("tiny-gpt2", hf_model_transform=scale_writing_weights, config_overrides={"n_layer": 3})
    assert scaled.info.n_layers == 3
    ratio = scaled.bridge.W_O.detach().flatten(1).norm(dim=1) / plain.bridge.W_O.detach().flatten(1).norm(dim=1)
    assert torch.allclose(ratio, torch.tensor([1.0, 2.0, 4.0]), rtol=1e-5)


def test_compat_processing_is_idempotent_and_recorded() -> None:
    model = build_tiny_model("tiny-gpt2")
    toks = model.bridge.to_tokens("abc")
    with torch.no_grad():
        raw = model.bridge(toks).log_softmax(-1)
    seconds = model.apply_compat_processing()
    assert seconds > 0 and model.info.weight_processing == "compat" and model.info.compat_s is not None
    assert model.apply_compat_processing() == 0.0
    assert not model.bridge.training
    with torch.no_grad():
        compat = model.bridge(toks).log_softmax(-1)
    assert torch.allclose(raw, compat, atol=1e-4)
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(toks, names_filter="blocks.1.hook_resid_post")
    assert cache["blocks.1.hook_resid_post"].mean(-1).abs().max() < 1e-5  # LN model: centred residual


def test_release_drops_bridge() -> None:
    model = build_tiny_model("tiny-neox")
    model.release()
    assert model.bridge is None and model.tokenizer is None


def test_dtype_bfloat16() -> None:
    model = load_model("tiny-llama", dtype="bfloat16")
    assert model.bridge.W_Q.dtype == torch.bfloat16 and model.info.dtype == "bfloat16"
    with pytest.raises(ValueError, match="dtype"):
        load_model("tiny-llama", dtype="float8")
