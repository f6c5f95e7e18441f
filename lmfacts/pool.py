"""Keeps at most one model resident per process and hands it out in the processing a claim needs.

Tests are ordered raw-before-compat per model, so a model is loaded once raw, switched in place
to TransformerLens compat processing when the first compat claim needs it, and released when its
tests are done. A load failure is remembered, so every later test of that model fails fast with
the same message instead of retrying.

Under pytest-xdist, ``--device cuda`` puts worker ``gwI`` on ``cuda:(I mod device_count)``
(:func:`worker_device`), so ``-n 8`` on an 8-GPU runner loads one model per GPU; ``--device-map`` /
``--n-devices`` keep spreading one model over the GPUs instead. The model's ``info.device`` (run.json,
the report's model table) names the GPU it ran on, and a note says which worker put it there.

``LMFACTS_CUDA_MEMORY_LOG=FILE``: when a CUDA model is released, one JSON line (model, device, dtype,
``torch.cuda.max_memory_allocated`` in bytes since its load) is appended to FILE (used by
``scripts/gpu_check.py``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from lmfacts.options import RunOptions, Target, resolve_auto_device


def _share_cpu_threads_between_workers() -> None:
    """Under pytest-xdist, give each worker its share of the CPU threads (no oversubscription). Only in a worker
    (``PYTEST_XDIST_WORKER`` set): a process that merely inherited ``PYTEST_XDIST_WORKER_COUNT`` (a pytest run
    started from inside a worker) is no worker and keeps its own threads (``OMP_NUM_THREADS`` or torch's default)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1 and os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def cpu_threads(device: str) -> int | None:
    """The torch threads a model on ``device`` computes with: ``torch.get_num_threads()`` for the CPU (under
    pytest-xdist each worker's share, :func:`_share_cpu_threads_between_workers`), None for an accelerator.
    Recorded per model in run.json (``models[].cpu_threads``): torch splits a float sum across its threads, so
    runs with other counts give values that differ in their last digits (``report diff`` says so)."""
    if str(device).split(":")[0] != "cpu":
        return None
    import torch

    return int(torch.get_num_threads())


_WORKER_ID = re.compile(r"^gw(\d+)$")
MEMORY_LOG_ENV = "LMFACTS_CUDA_MEMORY_LOG"


def xdist_worker_index(worker_id: str | None = None) -> int | None:
    """The index of a pytest-xdist worker: ``"gw3"`` → 3; ``worker_id`` None reads ``$PYTEST_XDIST_WORKER``
    (set by xdist in each worker, the same value as ``config.workerinput["workerid"]``). None outside xdist
    or for an id not of the form ``gwN``."""
    wid = os.environ.get("PYTEST_XDIST_WORKER") if worker_id is None else worker_id
    m = _WORKER_ID.match(wid or "")
    return int(m.group(1)) if m else None


def worker_device(device: str, worker_index: int | None, n_cuda: int, *, spread: bool = False) -> str:
    """The concrete device of one process: plain ``cuda`` on xdist worker I → ``cuda:(I mod n_cuda)``.

    ``device``: the requested device (``cuda``, ``cuda:N``, ``cpu``, …; ``auto`` already resolved).
    ``worker_index``: the xdist worker number (None outside xdist). ``n_cuda``: visible CUDA devices.
    ``spread``: ``--device-map`` / ``--n-devices`` given, so one model spans the GPUs. Unchanged in every
    other case: an explicit ``cuda:N``, a non-CUDA device, no worker, no CUDA device, or ``spread``.
    Pure: no torch call.
    """
    if device != "cuda" or worker_index is None or n_cuda < 1 or spread:
        return device
    return f"cuda:{worker_index % n_cuda}"


@dataclass(frozen=True)
class PoolKey:
    """What identifies one resident model."""

    model: str
    device: str
    dtype: str
    revision: str | None = None
    #: the target's report name where it is not the loader's (a revision, a disambiguated local path)
    label: str | None = field(default=None, compare=False)


class ModelPool:
    """A one-slot cache of loaded models (see the module docstring)."""

    def __init__(self, options: RunOptions, on_load: Any = None) -> None:
        self.options = options
        self.on_load = on_load
        self.key: PoolKey | None = None
        self.loaded: Any = None
        self.failures: dict[PoolKey, BaseException] = {}
        #: compat processing that changed a model's function (:mod:`lmfacts.compat_check`), re-raised for every
        #: compat request of that model (the processed model is never handed out as compat)
        self.compat_failures: dict[PoolKey, BaseException] = {}
        self.worker_placed: set[str] = set()  # devices chosen by worker_device (said in the model's notes)

    def device_for(self, target: Target) -> str:
        """The concrete device of a target: ``auto`` resolved, plain ``cuda`` under xdist spread one GPU per
        worker (:func:`worker_device`)."""
        device = resolve_auto_device() if target.device == "auto" else target.device
        if device != "cuda":
            return device
        import torch

        n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        spread = self.options.n_devices is not None or self.options.device_map is not None
        placed = worker_device(device, xdist_worker_index(), n_cuda, spread=spread)
        if placed != device:
            self.worker_placed.add(placed)
        return placed

    def resident(self, target: Target) -> Any:
        """The loaded model of ``target`` if it is the resident one (in whatever processing), else None."""
        return self.loaded if self.key == self._key(target) else None

    def _key(self, target: Target) -> PoolKey:
        label = target.label if target.revision or target.display else None
        return PoolKey(target.model, self.device_for(target), self.options.dtype, target.revision, label)

    def get(self, target: Target, processing: str = "raw") -> Any:
        """The loaded model of ``target`` in ``processing`` (``raw`` or ``compat``)."""
        key = self._key(target)
        if key in self.failures:
            raise self.failures[key]
        if processing == "compat" and key in self.compat_failures:
            raise self.compat_failures[key]
        if self.key != key or (processing == "raw" and self.loaded.info.weight_processing != "raw"):
            self.release()
            self._load(key)
        if processing == "compat" and self.loaded.info.weight_processing != "compat":
            from lmfacts.compat_check import (
                CompatProcessingError,
                NonFiniteLogitsError,
                checked_compat_processing,
            )

            try:
                checked_compat_processing(self.loaded)
            except (CompatProcessingError, NonFiniteLogitsError) as exc:
                self.compat_failures[key] = exc
                raise
            if self.on_load:
                self.on_load(self.loaded)
        return self.loaded

    def _load(self, key: PoolKey) -> None:
        from lmfacts.models.loading import load_model

        _share_cpu_threads_between_workers()
        o = self.options
        try:
            self.loaded = load_model(key.model, device=key.device, dtype=key.dtype, revision=key.revision,
                                     trust_remote_code=o.trust_remote_code, n_devices=o.n_devices,
                                     device_map=o.device_map, prepend_bos=o.prepend_bos)
        except Exception as exc:  # remembered and re-raised for every test of this model
            self.failures[key] = exc
            raise
        if key.label:  # reports tell checkpoints apart: name@revision, or the path parts that differ
            self.loaded.info.name = key.label
        self.loaded.info.cpu_threads = cpu_threads(self.loaded.info.device)
        if key.device in self.worker_placed:
            self.loaded.info.notes.append(f"xdist worker gw{xdist_worker_index()} placed on {key.device} (--device "
                                          "cuda under -n: worker index mod the number of CUDA devices)")
        self.key = key
        if self.on_load:
            self.on_load(self.loaded)

    def release(self) -> None:
        """Drop the resident model (frees its memory); log its CUDA peak memory if ``$LMFACTS_CUDA_MEMORY_LOG``."""
        if self.loaded is not None:
            _log_cuda_peak(self.loaded.info)
            self.loaded.release()
        self.loaded, self.key = None, None


def _log_cuda_peak(info: object) -> None:
    """Append ``{model, device, dtype, peak_bytes, pid}`` to ``$LMFACTS_CUDA_MEMORY_LOG`` for a CUDA model and
    reset the peak counter (bytes: ``torch.cuda.max_memory_allocated`` of the model's device since the last
    reset, i.e. the load, probe and claims of this model)."""
    path = os.environ.get(MEMORY_LOG_ENV)
    device = str(getattr(info, "device", ""))
    if not path or not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        return
    dev = torch.device(device)
    line = {"model": getattr(info, "name", None), "device": device, "dtype": getattr(info, "dtype", None),
            "peak_bytes": int(torch.cuda.max_memory_allocated(dev)), "pid": os.getpid()}
    torch.cuda.reset_peak_memory_stats(dev)
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")
