"""GGUF files beyond the packaged Llama: other architectures (Qwen2, Phi-3) round-trip through the conversion,
and a truncated, corrupt or unconvertible file is a clear error naming the file within seconds, never a
reader's traceback. Every GGUF is written in the test with the ``gguf`` package from a tiny random HF model
(1 layer, d_model 32), its tensors named by ``gguf``'s own HF -> GGUF name map."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import run_pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")


def _write_gguf(model, tok, path: Path, arch, *, quantize: bool = False, pad_id: int | None = 0,
                drop: tuple[str, ...] = (), kv_heads: int | None = None, scores: bool = True) -> Path:
    """Write ``model`` (a HF causal LM, RMS-norm family) as a GGUF: F32, or Q8_0 for every 2-D matrix;
    ``drop``: GGUF tensor names left out; ``kv_heads``: the header's KV head count (default: the model's);
    ``scores``: False leaves out tokenizer.ggml.scores (with no merges either, a BPE vocabulary cannot be built)."""
    cfg = model.config
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    w.add_name("lmfacts test")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(kv_heads or cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(len(vocab))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quantize else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if i == 0 else 1 for i in range(len(vocab))])
    if scores:
        w.add_token_scores([0.0] * len(vocab))
    w.add_token_merges([])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    if pad_id is not None:
        w.add_pad_token_id(pad_id)
    w.add_add_bos_token(False)
    names = gguf.get_tensor_name_map(arch, cfg.num_hidden_layers)
    for key, value in model.state_dict().items():
        v = value.detach().float().numpy()
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        assert name is not None, key
        if name in drop:
            continue
        if quantize and v.ndim == 2 and v.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(v, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _tiny(model_type: str, **extra):
    from transformers import AutoConfig, AutoModelForCausalLM

    from lmfacts.models.tiny import load_byte_tokenizer

    tok = load_byte_tokenizer()
    cfg = AutoConfig.for_model(model_type, vocab_size=len(tok), num_hidden_layers=1, hidden_size=32,
                               num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
                               max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=0,
                               eos_token_id=0, **extra)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg).eval()
    return model, tok


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("gguf")
    qwen, tok = _tiny("qwen2", rms_norm_eps=1e-6)
    out = {"qwen2-f32": _write_gguf(qwen, tok, d / "qwen2-f32.gguf", gguf.MODEL_ARCH.QWEN2),
           "qwen2-q8_0": _write_gguf(qwen, tok, d / "qwen2-q8_0.gguf", gguf.MODEL_ARCH.QWEN2, quantize=True)}
    data = out["qwen2-f32"].read_bytes()
    for name, blob in {"header-cut": data[:600], "data-cut": data[: len(data) * 2 // 3],
                       "not-gguf": b"PK\x03\x04" + bytes(4000), "empty": b""}.items():
        (d / f"{name}.gguf").write_bytes(blob)
        out[name] = d / f"{name}.gguf"
    neox = gguf.GGUFWriter(str(d / "gptneox.gguf"), "gptneox")  # an architecture transformers cannot convert
    neox.add_block_count(1)
    neox.add_tensor("token_embd.weight", np.zeros((8, 32), np.float32))
    neox.write_header_to_file()
    neox.write_kv_data_to_file()
    neox.write_tensors_to_file()
    neox.close()
    out["gptneox"] = d / "gptneox.gguf"
    phi, tok = _tiny("phi3", rms_norm_eps=1e-5, pad_token_id=0)  # Phi3Config's default pad id 32000 > vocab
    out["phi3-no-pad"] = _write_gguf(phi, tok, d / "phi3-no-pad.gguf", gguf.MODEL_ARCH.PHI3, pad_id=None)
    out["_ref"] = d
    torch.save(qwen.state_dict(), d / "qwen2-ref.pt")
    return out


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFACTS_CACHE_DIR", str(tmp_path / "lmfacts-cache"))


@pytest.mark.parametrize("name, needle", [
    ("header-cut", "600 bytes"), ("data-cut", "truncated"), ("not-gguf", "4004 bytes"), ("empty", "0 bytes")])
def test_unreadable_gguf_is_named_with_its_size(ggufs: dict[str, Path], name: str, needle: str) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.support import UnreadableModelFileError

    t0 = time.perf_counter()
    with pytest.raises(UnreadableModelFileError) as err:
        load_model(str(ggufs[name]))
    assert time.perf_counter() - t0 < 30
    assert str(ggufs[name]) in str(err.value) and needle in str(err.value) and "not a readable GGUF" in str(err.value)


def test_unconvertible_gguf_architecture_lists_the_convertible_ones(ggufs: dict[str, Path]) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.support import UnsupportedArchitectureError

    with pytest.raises(UnsupportedArchitectureError) as err:
        load_model(str(ggufs["gptneox"]))
    msg = str(err.value)
    assert "'gptneox'" in msg and "qwen2" in msg and "phi3" in msg and "general" not in msg.split("Convertible:")[1]


def test_a_conversion_failure_is_a_model_error_naming_the_file(ggufs: dict[str, Path]) -> None:
    """transformers' GGUF loader raises whatever it raises (here an AssertionError from nn.Embedding: Phi-3's
    default pad id 32000 lies outside a 257-token vocabulary); lmfacts reports it as a load failure,
    naming the header field to write."""
    from lmfacts.models.loading import load_model
    from lmfacts.models.names import ModelUnavailableError

    with pytest.raises(ModelUnavailableError) as err:
        load_model(str(ggufs["phi3-no-pad"]))
    assert str(ggufs["phi3-no-pad"]) in str(err.value) and "could not be converted" in str(err.value)
    assert "tokenizer.ggml.padding_token_id" in str(err.value)  # what to fix, not nn.Embedding's assertion


def test_qwen2_gguf_round_trips_and_only_the_q8_file_counts_as_quantised(ggufs: dict[str, Path]) -> None:
    from lmfacts.models.loading import load_model

    ref, _ = _tiny("qwen2", rms_norm_eps=1e-6)
    ref.load_state_dict(torch.load(ggufs["_ref"] / "qwen2-ref.pt"))
    ids = torch.tensor([[0, 72, 101, 108, 108, 111]])
    with torch.no_grad():
        want = ref(ids).logits
    f32 = load_model(str(ggufs["qwen2-f32"]))
    assert f32.info.quantization is None and f32.info.weight_format == "GGUF F32"
    with torch.no_grad():
        got = f32.bridge.original_model(ids).logits
    assert torch.allclose(got, want, atol=1e-5, rtol=0), float((got - want).abs().max())
    f32.release()
    q8 = load_model(str(ggufs["qwen2-q8_0"]))
    assert q8.info.quantization is not None and "Q8_0" in q8.info.quantization


def test_truncated_gguf_is_a_usage_error_before_any_test(ggufs: dict[str, Path], tmp_path: Path) -> None:
    proc, seconds = run_pytest("claims/", "--model", str(ggufs["data-cut"]), "-q", report_dir=tmp_path / "r",
                               env={"LMFACTS_CACHE_DIR": str(tmp_path / "c")})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    assert "is not a readable GGUF file" in out and "Traceback" not in out and "INTERNALERROR" not in out
    assert seconds < 120, seconds  # no model loads (timings inflated by shared CPUs)


def test_claims_show_on_a_broken_gguf_is_a_usage_error_without_torch(ggufs: dict[str, Path], tmp_path: Path) -> None:
    """``claims show`` reads the header only (no torch): a corrupt file exits 2 naming it, no traceback."""
    import subprocess
    import sys

    from tests.helpers import REPO

    script = ("import sys; from lmfacts.__main__ import main\n"
              f"rc = main(['claims', 'show', 'RN-1', '--model', {str(ggufs['data-cut'])!r}])\n"
              "print('torch imported:', 'torch' in sys.modules); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "LMFACTS_CACHE_DIR": str(tmp_path)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert f"{str(ggufs['data-cut'])!r} is not a readable GGUF file" in out and "Traceback" not in out
    assert "torch imported: False" in out


def test_gguf_cache_reused_and_invalidated(ggufs: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A second load boots the cached conversion; a file replaced by another GGUF of the same size with the old
    mtime carried over (``cp -p``, ``rsync -a``) is converted again (its weights, not the old file's, are
    loaded); another transformers version converts again (its GGUF loader may read the file differently)."""
    import importlib.metadata
    import os
    import shutil

    from lmfacts.models.loading import load_model

    other, tok = _tiny("qwen2", rms_norm_eps=1e-6)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1.0)  # the same shapes, other values: a GGUF of the same size
    other_gguf = _write_gguf(other, tok, tmp_path / "other.gguf", gguf.MODEL_ARCH.QWEN2)
    f = tmp_path / "m.gguf"
    shutil.copy2(ggufs["qwen2-f32"], f)
    assert other_gguf.stat().st_size == f.stat().st_size
    ids = torch.tensor([[0, 72, 101, 108]])

    def load() -> tuple[str, torch.Tensor]:
        lm = load_model(str(f))
        with torch.no_grad():
            logits = lm.bridge.original_model(ids).logits
        note = next(n for n in lm.info.notes if n.startswith("GGUF converted") or n.startswith("GGUF booted"))
        lm.release()
        return note, logits

    first, want = load()
    second, again = load()
    assert first.startswith("GGUF converted") and second.startswith("GGUF booted from cached conversion")
    assert torch.equal(want, again)
    st = f.stat()
    shutil.copy2(other_gguf, tmp_path / "m.part")
    os.utime(tmp_path / "m.part", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp_path / "m.part", f)
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    replaced, got = load()
    assert replaced.startswith("GGUF converted"), replaced
    assert not torch.allclose(got, want)
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "99.0.0" if name == "transformers" else real_version(name))
    upgraded, again = load()
    assert upgraded.startswith("GGUF converted") and "tf99.0.0" in upgraded, upgraded
    assert torch.equal(got, again)


@pytest.mark.parametrize("qtype, quantised", [("F16", False), ("BF16", False), ("Q8_0", True), ("Q4_0", True),
                                              ("Q4_1", True), ("Q5_0", True)])
def test_storage_types_quantised_or_not(tmp_path: Path, qtype: str, quantised: bool) -> None:
    """Float storage (F16, BF16) is not quantisation, whatever its precision: BF-3/BF-7 judge those weights;
    every Q* type is, and the summary names it (the evidence of the float_weights premise). Header only."""
    from lmfacts.models.gguf_cache import summarise_gguf_quantization

    t = gguf.GGMLQuantizationType[qtype]
    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    rng = np.random.default_rng(0)
    for name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_up.weight"):
        v = rng.normal(0, 0.02, (64, 64)).astype(np.float32)
        q = v.astype(np.float16) if t == gguf.GGMLQuantizationType.F16 else gguf.quants.quantize(v, t)
        w.add_tensor(name, q, raw_shape=q.shape if t != gguf.GGMLQuantizationType.F16 else None,
                     raw_dtype=None if t == gguf.GGMLQuantizationType.F16 else t)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    meta = summarise_gguf_quantization(tmp_path / "m.gguf")
    assert meta["quantized"] is quantised
    assert qtype in meta["summary"] and "F32" not in meta["summary"]  # the F32 norm gain is no weight matrix


@pytest.mark.parametrize("case, needles", [
    ("no-ffn-norm", ["initialised at random", "model.layers.0.post_attention_layernorm.weight"]),
    ("kv-header", ["another shape", "k_proj.weight", "(16, 32) in the file", "(32, 32) expected"]),
    ("no-scores", ["tokenizer.ggml.scores", "convert_hf_to_gguf.py"])])
def test_a_gguf_that_leaves_parameters_random_is_refused(tmp_path: Path, case: str, needles: list[str]) -> None:
    """transformers' GGUF loader initialises at random (and only logs) a parameter the file does not hold or
    holds in another shape than its header implies; lmfacts must refuse that model, naming the parameters,
    instead of judging a partly random model (a Bloom GGUF without token_embd_norm, a Qwen3 header without
    attention.key_length). A header without the tokenizer field transformers indexes (no scores and no merges)
    names that field instead of a bare KeyError."""
    from lmfacts.models.loading import load_model
    from lmfacts.models.names import ModelUnavailableError

    qwen, tok = _tiny("qwen2", rms_norm_eps=1e-6)
    kw = {"no-ffn-norm": {"drop": ("blk.0.ffn_norm.weight",)}, "kv-header": {"kv_heads": 2},
          "no-scores": {"scores": False}}[case]
    path = _write_gguf(qwen, tok, tmp_path / f"{case}.gguf", gguf.MODEL_ARCH.QWEN2, **kw)
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        load_model(str(path))
    assert time.perf_counter() - t0 < 30
    msg = str(err.value)
    assert str(path) in msg and all(n in msg for n in needles), msg
    assert not any((tmp_path / "lmfacts-cache").glob("gguf/*/config.json"))  # no partly random model cached
