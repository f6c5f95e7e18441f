"""Real packaged models (smollm2-135m GGUF, minilm-l6). Deselect with ``-m "not needs_model"``.

These use the normal lmfacts cache ($LMFACTS_CACHE_DIR or ~/.cache/lmfacts), so the GGUF conversion
(~20 s) happens once per machine and later runs boot the cached directory.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from lmfacts.models import gguf_cache
from lmfacts.models.loading import LoadedModel, load_model
from lmfacts.models.names import PACKAGED

pytestmark = pytest.mark.needs_model

PROMPT = "The capital of France is"


def _package_file(name: str) -> Path:
    pkg = PACKAGED[name]
    spec = importlib.util.find_spec(pkg.module)
    if spec is None:
        pytest.skip(f"{pkg.module} not installed ({pkg.pip})")
    return Path(next(iter(spec.submodule_search_locations))) / pkg.file


@pytest.fixture(scope="module")
def smol() -> LoadedModel:
    _package_file("smollm2-135m")
    return load_model("smollm2-135m")


def test_smollm2_metadata(smol: LoadedModel) -> None:
    info = smol.info
    assert (info.source, info.architecture, info.hf_id_or_path) == (
        "packaged", "llama", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (info.n_layers, info.d_model, info.n_heads, info.n_kv_heads, info.d_vocab) == (30, 576, 9, 3, 49152)
    assert (info.normalization, info.positional_embedding, info.gated_mlp) == ("RMS", "rotary", True)
    assert not info.is_encoder and info.has_lm_head  # tied unembedding counts as present
    assert (info.prepends_bos, info.bos_token_id, info.pad_token_id) == (True, 1, 2)
    assert info.quantization is not None and "Q4_1" in info.quantization and "Q8_0" in info.quantization
    assert not smol.bridge.training
    json.dumps(info.to_dict())


def test_smollm2_predicts_paris(smol: LoadedModel) -> None:
    toks = smol.bridge.to_tokens(PROMPT)
    assert toks[0, 0].item() == 1
    with torch.no_grad():
        logits = smol.bridge(toks)
    assert smol.tokenizer.decode(logits[0, -1].argmax()).strip() == "Paris"


def test_quantization_summary_read_from_gguf() -> None:
    meta = gguf_cache.summarise_gguf_quantization(_package_file("smollm2-135m"))
    assert meta["summary"] == "GGUF Q4_1 (attention/MLP), Q8_0 (embeddings)"
    assert meta["gguf_architecture"] == "llama"
    assert meta["tensor_types"]["norms"] == {"F32": 61}


def test_cache_dir_holds_converted_model_and_summary(smol: LoadedModel) -> None:
    out = gguf_cache.converted_dir_for(_package_file("smollm2-135m"))
    meta = json.loads((out / gguf_cache.META_FILE).read_text())
    assert meta["architecture_class"] == "LlamaForCausalLM"
    assert meta["summary"] == smol.info.quantization
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert "quantization_config" not in json.loads((out / "config.json").read_text())


def test_second_load_boots_the_cached_conversion(smol: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second load reads the cached conversion and never converts again (its time is a benchmark figure:
    bench/suite_vs_floor.py reports the load; a wall-clock bound here would only test the machine's load)."""

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second load converted the GGUF again")

    monkeypatch.setattr(gguf_cache, "_convert", no_conversion)
    again = load_model("smollm2-135m")
    assert any("cached conversion" in note for note in again.info.notes), again.info.notes
    again.release()


def test_gguf_route_matches_cached_dir(smol: LoadedModel) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    hf_model, tok = gguf_cache.load_gguf_direct(_package_file("smollm2-135m"))
    direct = TransformerBridge.boot_transformers("local/smollm2-gguf", hf_model=hf_model, tokenizer=tok)
    direct.eval()
    toks = smol.bridge.to_tokens(PROMPT)
    with torch.no_grad():
        diff = (direct(toks) - smol.bridge(toks)).abs().max().item()
    assert diff <= 1e-5


def test_user_gguf_file_route_reuses_conversion(smol: LoadedModel) -> None:
    path = _package_file("smollm2-135m")
    loaded = load_model(str(path))
    assert (loaded.info.source, loaded.info.hf_id_or_path) == ("gguf-file", str(path.resolve()))
    assert any("cached conversion" in note for note in loaded.info.notes)
    toks = smol.bridge.to_tokens(PROMPT)
    with torch.no_grad():
        assert torch.equal(loaded.bridge(toks), smol.bridge(toks))
    loaded.release()


def test_minilm_is_an_encoder_without_lm_head() -> None:
    _package_file("minilm-l6")
    model = load_model("minilm-l6")
    info = model.info
    assert (info.architecture, info.n_layers, info.d_model, info.n_heads) == ("bert", 6, 384, 12)
    assert info.is_encoder and not info.has_lm_head and info.bos_token_id == 101
    toks = model.bridge.to_tokens(PROMPT)
    assert toks[0, 0].item() == 101 and toks[0, -1].item() == 102

    from transformers import BertModel

    model_dir = Path(model.bridge.original_model.config._name_or_path)
    reference = BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(toks, names_filter="blocks.5.hook_resid_post")
        expected = reference(toks).last_hidden_state
    assert (cache["blocks.5.hook_resid_post"] - expected).abs().max().item() < 1e-4
