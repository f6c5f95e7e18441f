"""Keeps at most one model resident per process and hands it out in the processing a claim needs.

Tests are ordered raw-before-compat per model, so a model is loaded once raw, switched in place
to TransformerLens compat processing when the first compat claim needs it, and released when its
tests are done. A load failure is remembered, so every later test of that model fails fast with
the same message instead of retrying.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lmfacts.options import RunOptions, Target, resolve_auto_device


def _share_cpu_threads_between_workers() -> None:
    """Under pytest-xdist, give each worker its share of the CPU threads (no oversubscription)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@dataclass(frozen=True)
class PoolKey:
    """What identifies one resident model."""

    model: str
    device: str
    dtype: str


class ModelPool:
    """A one-slot cache of loaded models (see the module docstring)."""

    def __init__(self, options: RunOptions, on_load: Any = None) -> None:
        self.options = options
        self.on_load = on_load
        self.key: PoolKey | None = None
        self.loaded: Any = None
        self.failures: dict[PoolKey, BaseException] = {}

    def device_for(self, target: Target) -> str:
        """The concrete device of a target (``auto`` resolved)."""
        return resolve_auto_device() if target.device == "auto" else target.device

    def resident(self, target: Target) -> Any:
        """The loaded model of ``target`` if it is the resident one (in whatever processing), else None."""
        key = PoolKey(target.model, self.device_for(target), self.options.dtype)
        return self.loaded if self.key == key else None

    def get(self, target: Target, processing: str = "raw") -> Any:
        """The loaded model of ``target`` in ``processing`` (``raw`` or ``compat``)."""
        key = PoolKey(target.model, self.device_for(target), self.options.dtype)
        if key in self.failures:
            raise self.failures[key]
        if self.key != key or (processing == "raw" and self.loaded.info.weight_processing != "raw"):
            self.release()
            self._load(key)
        if processing == "compat" and self.loaded.info.weight_processing != "compat":
            self.loaded.apply_compat_processing()
            if self.on_load:
                self.on_load(self.loaded)
        return self.loaded

    def _load(self, key: PoolKey) -> None:
        from lmfacts.models.loading import load_model

        _share_cpu_threads_between_workers()
        o = self.options
        try:
            self.loaded = load_model(key.model, device=key.device, dtype=key.dtype, revision=o.revision,
                                     trust_remote_code=o.trust_remote_code, n_devices=o.n_devices,
                                     device_map=o.device_map)
        except Exception as exc:  # remembered and re-raised for every test of this model
            self.failures[key] = exc
            raise
        self.key = key
        if self.on_load:
            self.on_load(self.loaded)

    def release(self) -> None:
        """Drop the resident model (frees its memory)."""
        if self.loaded is not None:
            self.loaded.release()
        self.loaded, self.key = None, None
