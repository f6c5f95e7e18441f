"""Field inputs that lmfacts' loader got wrong (issue 10, item 5), rebuilt here as small inputs.

* a head stored under another name than its module (GPT-NeoX ``embed_out`` -> ``lm_head``);
* GGUF files whose weight matrices are floats (F32/F16), next to a genuinely quantised Q8_0 twin;
* tokenizers whose special tokens are not in the model's vocabulary (a plain 256-byte vocabulary).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lmfacts.models import gguf_cache
from lmfacts.models.loading import load_model
from lmfacts.models.metadata import CheckpointTensors
from lmfacts.models.tiny import build_tiny_hf_model, byte_tokenizer_dir


@pytest.fixture(scope="module", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMFACTS_CACHE_DIR", str(tmp_path_factory.mktemp("lmfacts-cache")))
        yield


def _stored(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


# --------------------------------------------------------------------------------------------
# 1. "Is the LM head trained" is judged by the tensors transformers loaded, not by names


@pytest.fixture(scope="module")
def neox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random GPT-NeoX saved with save_pretrained: the checkpoint says embed_out, the module lm_head."""
    out = tmp_path_factory.mktemp("neox") / "neox-seq"
    hf, tok, _ = build_tiny_hf_model("tiny-neox", config_overrides={"use_parallel_residual": False})
    hf.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def test_renamed_head_tensor_counts_as_loaded(neox_dir: Path) -> None:
    stored = _stored(neox_dir)
    assert "embed_out.weight" in stored and "lm_head.weight" not in stored  # the premise of this input
    loaded = load_model(str(neox_dir))
    head = loaded.bridge.original_model.get_output_embeddings().weight.detach()
    assert torch.equal(head, stored["embed_out.weight"])  # what transformers actually loaded
    assert loaded.info.has_lm_head
    assert any("lm_head.weight" in n and "'embed_out.weight'" in n for n in loaded.info.notes), loaded.info.notes
    assert not any("not loaded" in n for n in loaded.info.notes)


def test_head_stored_under_an_unloadable_name_is_not_trained(neox_dir: Path, tmp_path: Path) -> None:
    """Same dir, but the head tensor sits under a name transformers does not map: lm_head is random."""
    from safetensors.torch import save_file

    out = tmp_path / "neox-lost-head"
    out.mkdir()
    for f in neox_dir.iterdir():
        if f.name != "model.safetensors":
            (out / f.name).write_bytes(f.read_bytes())
    stored = _stored(neox_dir)
    stored["unrelated.weight"] = stored.pop("embed_out.weight")
    save_file(stored, str(out / "model.safetensors"), metadata={"format": "pt"})
    loaded = load_model(str(out))
    assert not torch.equal(loaded.bridge.original_model.get_output_embeddings().weight.detach(),
                           stored["unrelated.weight"])
    assert not loaded.info.has_lm_head
    assert any("not loaded" in n and "lm_head.weight" in n for n in loaded.info.notes), loaded.info.notes


def test_encoder_checkpoint_booted_as_mlm_has_no_trained_head(tmp_path: Path) -> None:
    hf, tok, _ = build_tiny_hf_model("tiny-bert")
    hf.base_model.save_pretrained(str(tmp_path / "bert"))
    tok.save_pretrained(str(tmp_path / "bert"))
    loaded = load_model(str(tmp_path / "bert"))
    assert loaded.info.is_encoder and not loaded.info.has_lm_head
    note = next(n for n in loaded.info.notes if "not loaded" in n)
    # the random dense matrix is not in the checkpoint under any name; the constant-valued LayerNorm gain
    # equals stored norm gains (all 1 at init), which is no evidence of loading
    assert "cls.predictions.transform.dense.weight" in note and "constant-valued" in note


def test_packaged_minilm_has_no_trained_head() -> None:
    pytest.importorskip("all_minilm_l6_v2")
    info = load_model("minilm-l6").info
    assert not info.has_lm_head and info.weight_format == "safetensors F32"


def test_checkpoint_reader_is_lazy_and_follows_shards(tmp_path: Path) -> None:
    hf, _, _ = build_tiny_hf_model("tiny-gpt2")
    hf.save_pretrained(str(tmp_path / "sharded"), max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    reader = CheckpointTensors.open(tmp_path / "sharded")
    assert reader is not None
    with reader:
        key = "transformer.wte.weight"
        assert reader.shape(key) == (257, 128) and reader.dtype(key) == "F32"
        assert torch.equal(reader.rows(key, 3, 5), hf.transformer.wte.weight.detach()[3:5])
    assert CheckpointTensors.open(tmp_path) is None


# --------------------------------------------------------------------------------------------
# 2. Quantised means some weight matrix is stored in a quantised type


def _write_gguf(path: Path, qtype_name: str) -> None:
    """Write a tiny GQA Llama as GGUF with every matrix in ``qtype_name`` (F32, F16 or Q8_0); norms F32."""
    import gguf
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(byte_tokenizer_dir()))
    V, L, D, H, KV, F = len(tok), 2, 64, 4, 2, 96
    cfg = AutoConfig.for_model("llama", vocab_size=V, num_hidden_layers=L, hidden_size=D, num_attention_heads=H,
                               num_key_value_heads=KV, intermediate_size=F, max_position_embeddings=128,
                               bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).eval()

    def permute(w: np.ndarray, n_head: int) -> np.ndarray:  # llama.cpp's q/k row order for its RoPE
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    per = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
           "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
           "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
           "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
           "mlp.down_proj.weight": "ffn_down.weight"}
    qtype = getattr(gguf.GGMLQuantizationType, qtype_name)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(L)
    w.add_context_length(128)
    w.add_embedding_length(D)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(D // H)
    w.add_vocab_size(V)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if i == 0 else 1 for i in range(V)])
    w.add_token_scores([0.0] * V)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    for k, t in model.state_dict().items():
        v = t.detach().numpy().astype(np.float32)
        if k in top:
            name = top[k]
        else:
            parts = k.split(".")
            rest = ".".join(parts[3:])
            name = f"blk.{parts[2]}.{per[rest]}"
            if rest == "self_attn.q_proj.weight":
                v = permute(v, H)
            elif rest == "self_attn.k_proj.weight":
                v = permute(v, KV)
        if v.ndim < 2 or qtype_name == "F32":
            w.add_tensor(name, v)
        elif qtype_name == "F16":
            w.add_tensor(name, v.astype(np.float16))
        else:
            q = gguf.quants.quantize(v, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def gguf_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("gguf")
    root = tmp_path_factory.mktemp("gguf")
    files = {}
    for qtype in ("F32", "F16", "Q8_0"):
        files[qtype] = root / f"tiny-llama-{qtype.lower()}.gguf"
        _write_gguf(files[qtype], qtype)
    return files


def test_gguf_storage_summary(gguf_files: dict[str, Path]) -> None:
    f32 = gguf_cache.summarise_gguf_quantization(gguf_files["F32"])
    f16 = gguf_cache.summarise_gguf_quantization(gguf_files["F16"])
    q8 = gguf_cache.summarise_gguf_quantization(gguf_files["Q8_0"])
    assert (f32["summary"], f32["quantized"]) == ("GGUF F32", False)
    assert (f16["summary"], f16["quantized"]) == ("GGUF F16", False)
    assert (q8["summary"], q8["quantized"]) == ("GGUF Q8_0 (attention/MLP/embeddings/unembedding)", True)
    assert f16["tensor_types"]["norms"] == {"F32": 5}  # 1-D norm gains are F32 in every file


@pytest.mark.parametrize("qtype", ["F32", "F16"])
def test_float_gguf_is_not_quantised(gguf_files: dict[str, Path], qtype: str) -> None:
    info = load_model(str(gguf_files[qtype])).info
    assert info.quantization is None
    assert info.weight_format == f"GGUF {qtype}"
    assert any("not quantised" in n for n in info.notes)


def test_q8_gguf_is_quantised(gguf_files: dict[str, Path]) -> None:
    info = load_model(str(gguf_files["Q8_0"])).info
    assert info.quantization == "GGUF Q8_0 (attention/MLP/embeddings/unembedding)"
    assert info.weight_format == info.quantization


def test_stale_gguf_metadata_is_reread(gguf_files: dict[str, Path]) -> None:
    """A conversion cached by an older lmfacts (summary "GGUF F32 (unquantised)", no flag) is corrected."""
    out, meta, _ = gguf_cache.ensure_gguf_converted(gguf_files["F32"])
    for key in ("quantized", "meta_version"):
        meta.pop(key)
    meta["summary"] = "GGUF F32 (unquantised)"
    (out / gguf_cache.META_FILE).write_text(json.dumps(meta))
    info = load_model(str(gguf_files["F32"])).info
    assert (info.quantization, info.weight_format) == (None, "GGUF F32")
    assert json.loads((out / gguf_cache.META_FILE).read_text())["quantized"] is False


# --------------------------------------------------------------------------------------------
# 3. A special-token id outside the model's vocabulary never reaches the model


def _bare_byte_tokenizer(out: Path, **specials: str) -> None:
    """Save a 256-token byte-level tokenizer with no special tokens (plus any ``specials`` given)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for s in specials.values():
        vocab.setdefault(s, len(vocab))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tk, **specials).save_pretrained(str(out))


def _llama_dir(out: Path, vocab_size: int, **specials: str) -> Path:
    from transformers import AutoConfig, LlamaForCausalLM

    _bare_byte_tokenizer(out, **specials)
    cfg = AutoConfig.for_model("llama", vocab_size=vocab_size, num_hidden_layers=2, hidden_size=64,
                               num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
                               max_position_embeddings=128, bos_token_id=None, eos_token_id=None,
                               pad_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(cfg).save_pretrained(str(out))
    return out


def _probe_two(loaded) -> None:
    from lmfacts.probe.probe import run_probe

    info = loaded.info
    texts = ["Hi", "a longer prompt that contains <|endoftext|> as plain text"]
    run_probe(loaded.bridge, texts, prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
              pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx)


def test_vocabulary_without_special_tokens_has_no_bos(tmp_path: Path) -> None:
    loaded = load_model(str(_llama_dir(tmp_path / "bare", 256)))
    info, bridge = loaded.info, loaded.bridge
    assert (info.d_vocab, info.prepends_bos, info.bos_token_id) == (256, False, None)
    assert bridge.cfg.default_prepend_bos is False
    assert info.pad_token_id is not None and 0 <= info.pad_token_id < 256
    ids = bridge.to_tokens(["x", "text with <|endoftext|> inside"])  # default prepend_bos, padded batch
    assert int(ids.max()) < 256 and ids[1, 0].item() == bridge.tokenizer.convert_tokens_to_ids("t")
    with torch.no_grad():
        bridge(ids)
    _probe_two(loaded)  # a padded batch of two prompts of different lengths: no IndexError
    assert any("outside the model's vocabulary" in n for n in info.notes), info.notes


def test_in_vocabulary_bos_is_kept_when_eos_and_pad_are_missing(tmp_path: Path) -> None:
    loaded = load_model(str(_llama_dir(tmp_path / "bos-only", 257, bos_token="<s>")))
    info, bridge = loaded.info, loaded.bridge
    assert (info.prepends_bos, info.bos_token_id) == (True, 256)
    assert bridge.to_tokens("ab")[0].tolist() == [256, 64, 65]
    assert info.pad_token_id is not None and info.pad_token_id < 257 and bridge.tokenizer.eos_token_id is None
    _probe_two(loaded)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_in_vocabulary_specials_are_untouched(name: str, tmp_path: Path) -> None:
    hf, tok, _ = build_tiny_hf_model(name)
    hf.save_pretrained(str(tmp_path / name))
    tok.save_pretrained(str(tmp_path / name))
    for loaded in (load_model(name), load_model(str(tmp_path / name))):
        info = loaded.info
        assert (info.prepends_bos, info.bos_token_id, info.pad_token_id) == (True, 0, 0)
        assert loaded.bridge.to_tokens("ab")[0].tolist() == [0, 65, 66]
        assert not any("vocabulary" in n for n in info.notes)
