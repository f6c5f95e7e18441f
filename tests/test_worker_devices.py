"""One GPU per xdist worker: ``--device cuda -n N`` puts worker gwI on ``cuda:(I mod device_count)``.

On CPU: the pure assignment (:func:`lmfacts.pool.worker_device`), the worker id parsing, and the pool
with a faked CUDA device count (``torch.cuda.is_available`` / ``device_count`` monkeypatched) and a fake
loader that records the device it was asked for.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import lmfacts.models.loading as loading
from lmfacts import pool as pool_mod
from lmfacts.options import Target
from lmfacts.pool import ModelPool, worker_device, xdist_worker_index


@pytest.mark.parametrize(("device", "worker", "n_cuda", "spread", "expected"), [
    ("cuda", 0, 4, False, "cuda:0"),
    ("cuda", 3, 4, False, "cuda:3"),
    ("cuda", 5, 4, False, "cuda:1"),   # more workers than GPUs: wrap around
    ("cuda", 7, 1, False, "cuda:0"),
    ("cuda", None, 4, False, "cuda"),  # not under xdist: the default CUDA device
    ("cuda", 2, 0, False, "cuda"),     # no CUDA device visible: left for the device check to report
    ("cuda", 2, 4, True, "cuda"),      # --device-map / --n-devices spread one model instead
    ("cuda:3", 1, 4, False, "cuda:3"),  # an explicit GPU is kept
    ("cpu", 1, 4, False, "cpu"),
    ("mps", 1, 4, False, "mps"),
])
def test_worker_device(device: str, worker: int | None, n_cuda: int, spread: bool, expected: str) -> None:
    assert worker_device(device, worker, n_cuda, spread=spread) == expected


def test_eight_workers_on_four_gpus_use_each_gpu_twice() -> None:
    placed = Counter(worker_device("cuda", i, 4) for i in range(8))
    assert placed == {"cuda:0": 2, "cuda:1": 2, "cuda:2": 2, "cuda:3": 2}


def test_worker_index(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (xdist_worker_index("gw0"), xdist_worker_index("gw12"), xdist_worker_index("master")) == (0, 12, None)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert xdist_worker_index() is None
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    assert xdist_worker_index() == 5


def _options(**kw: object) -> SimpleNamespace:
    base = dict(dtype="float32", revision=None, trust_remote_code=False, n_devices=None, device_map=None,
                prepend_bos="auto")
    return SimpleNamespace(**{**base, **kw})


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Three fake CUDA devices, and a loader that records what it was asked to load (no torch.cuda call)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    calls: list[dict] = []

    def fake_load(model: str, **kw: object) -> SimpleNamespace:
        calls.append({"model": model, **kw})
        info = SimpleNamespace(name=model, device=kw["device"], dtype=kw["dtype"], notes=[],
                               weight_processing="raw")
        return SimpleNamespace(info=info, release=lambda: None)

    monkeypatch.setattr(loading, "load_model", fake_load)
    monkeypatch.setattr(pool_mod, "_share_cpu_threads_between_workers", lambda: None)
    return calls


@pytest.mark.parametrize(("worker", "expected"), [("gw0", "cuda:0"), ("gw1", "cuda:1"), ("gw4", "cuda:1")])
def test_pool_loads_each_worker_on_its_gpu(fake_gpus: list[dict], monkeypatch: pytest.MonkeyPatch,
                                           worker: str, expected: str) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    pool = ModelPool(_options())  # type: ignore[arg-type]
    for device in ("cuda", "auto"):  # auto resolves to cuda when CUDA is available
        loaded = pool.get(Target("tiny-gpt2", device))
        assert fake_gpus[-1]["device"] == expected and loaded.info.device == expected
        assert any(f"xdist worker {worker} placed on {expected}" in n for n in loaded.info.notes), loaded.info.notes
        pool.release()


def test_pool_keeps_explicit_and_spread_devices(fake_gpus: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    pool = ModelPool(_options())  # type: ignore[arg-type]
    assert pool.get(Target("tiny-gpt2", "cuda:0")).info.device == "cuda:0"
    assert pool.loaded.info.notes == []
    spread = ModelPool(_options(device_map="auto"))  # type: ignore[arg-type]
    assert spread.device_for(Target("tiny-gpt2", "cuda")) == "cuda"
    assert ModelPool(_options(n_devices=2)).device_for(Target("tiny-gpt2", "cuda")) == "cuda"  # type: ignore[arg-type]
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert ModelPool(_options()).device_for(Target("tiny-gpt2", "cuda")) == "cuda"  # type: ignore[arg-type]


def test_cuda_peak_memory_is_logged_per_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "mem.jsonl"
    monkeypatch.setenv(pool_mod.MEMORY_LOG_ENV, str(log))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    peaks = iter([123_456_789, 42])
    resets: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda dev: next(peaks))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda dev: resets.append(dev))
    pool_mod._log_cuda_peak(SimpleNamespace(name="m1", device="cuda:1", dtype="bfloat16"))
    pool_mod._log_cuda_peak(SimpleNamespace(name="m2", device="cpu", dtype="float32"))  # not a CUDA model
    pool_mod._log_cuda_peak(SimpleNamespace(name="m3", device="cuda", dtype="float32"))
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["model"], x["device"], x["dtype"], x["peak_bytes"]) for x in lines] == [
        ("m1", "cuda:1", "bfloat16", 123_456_789), ("m3", "cuda", "float32", 42)]
    assert resets == [torch.device("cuda:1"), torch.device("cuda")]
