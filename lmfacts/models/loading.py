"""HEAVY part: turn a model name into a booted TransformerBridge (eval mode) plus :class:`ModelInfo`.

Imported lazily (it imports torch / transformer_lens). Routes:

* packaged GGUF (``smollm2-135m``) and user ``.gguf`` files: converted once to a cached HF dir, booted by path;
* packaged zipped HF dir (``minilm-l6``): extracted once into the cache, booted by path;
* ``tiny-*``: random models from fixtures, seeded, booted with ``hf_model=``;
* hub ids / aliases: local HF cache first, else a short reachability probe, never a retry loop;
* local HF directories: booted by path.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lmfacts.models import gguf_cache, hub, tiny
from lmfacts.models.cache import build_dir_atomic, cache_root, sha256_file
from lmfacts.models.metadata import ModelInfo, build_model_info, checkpoint_keys, head_params_missing
from lmfacts.models.names import (
    PACKAGED,
    TINY,
    ModelRef,
    ModelUnavailableError,
    PackagedModel,
    parse_model_name,
)

log = logging.getLogger(__name__)

DTYPE_NAMES = ("float32", "bfloat16", "float16")


def torch_dtype(name: str) -> Any:
    """Map ``"float32" | "bfloat16" | "float16"`` to the torch dtype."""
    import torch

    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {name!r}")
    return getattr(torch, name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep library warnings and progress bars out of the way while loading (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _seeded(seed: int = 0) -> Iterator[None]:
    """Seed torch inside ``fork_rng`` so any randomly initialised parameters (e.g. a missing MLM head)
    are reproducible, without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class LoadedModel:
    """A booted bridge (eval mode) with its tokenizer and metadata."""

    def __init__(self, bridge: Any, info: ModelInfo) -> None:
        """Wrap ``bridge`` (already on its device and in eval mode) and its ``info``."""
        self.bridge = bridge
        self.info = info

    @property
    def tokenizer(self) -> Any:
        """The bridge's tokenizer (None after :meth:`release`)."""
        return None if self.bridge is None else self.bridge.tokenizer

    def apply_compat_processing(self) -> float:
        """Apply HookedTransformer-style weight processing in place (fold_ln, centring, ...).

        Idempotent: a second call does nothing and returns 0.0. Returns the seconds spent.
        """
        if self.info.weight_processing == "compat":
            return 0.0
        if self.bridge is None:
            raise RuntimeError("model was released")
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.bridge.enable_compatibility_mode(disable_warnings=True)
        for w in caught:
            msg = str(w.message)
            if "support" in msg and msg not in self.info.notes:
                self.info.notes.append(f"compat: {msg}")
        self.bridge.eval()
        seconds = time.perf_counter() - t0
        self.info.weight_processing = "compat"
        self.info.compat_s = round(seconds, 3)
        return seconds

    def release(self) -> None:
        """Drop the references to the bridge and free memory (gc, and the CUDA cache on GPU)."""
        on_cuda = self.info.device.startswith("cuda")
        self.bridge = None
        gc.collect()
        if on_cuda:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def __repr__(self) -> str:
        """Short description: name, source, weight processing."""
        return f"LoadedModel({self.info.name!r}, source={self.info.source!r}, {self.info.weight_processing})"


def _boot_kwargs(device: str, dtype: str, n_devices: int | None, device_map: Any) -> dict[str, Any]:
    """Keyword arguments for ``boot_transformers``: ``device`` and ``device_map`` are exclusive."""
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype)}
    if device_map is not None or n_devices is not None:
        kwargs.update(device_map=device_map, n_devices=n_devices)
    else:
        kwargs["device"] = device
    return kwargs


def _has_lm_head(bridge: Any, model_dir: Path | None, notes: list[str]) -> bool:
    """True unless head parameters of the booted model are absent from the checkpoint in ``model_dir``."""
    if model_dir is None:
        return True
    missing = head_params_missing(bridge.original_model, checkpoint_keys(model_dir))
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        notes.append(f"head parameters not in the checkpoint, randomly initialised: {shown}")
        return False
    return True


def _boot_path(
    model_dir: Path,
    *,
    trust_remote_code: bool,
    boot_kwargs: dict[str, Any],
) -> Any:
    """Boot a local HF directory by path."""
    from transformer_lens.model_bridge import TransformerBridge

    hub.check_remote_code(model_dir / "config.json", trust_remote_code, str(model_dir))
    with _quiet(), _seeded():
        return TransformerBridge.boot_transformers(
            str(model_dir), trust_remote_code=trust_remote_code, **boot_kwargs
        )


def _package_file(pkg: PackagedModel) -> Path:
    """Locate a packaged model's file without importing its package (its own imports may be absent)."""
    spec = importlib.util.find_spec(pkg.module)
    dirs = list(spec.submodule_search_locations or []) if spec is not None else []
    for d in dirs:
        candidate = Path(d) / pkg.file
        if candidate.is_file():
            return candidate
    what = "is not installed" if spec is None else f"has no {pkg.file}"
    raise ModelUnavailableError(
        f"The package providing this model ({pkg.module}) {what}. Install it with:\n    {pkg.pip}\n"
        "(--no-deps: its declared dependencies are not needed by lmfacts.)"
    )


def _extract_zip(zip_path: Path, label: str) -> Path:
    """Extract a zipped HF directory once into the cache (atomically); return the dir with config.json."""

    def build(tmp: Path) -> None:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)

    root = build_dir_atomic(cache_root() / "zipped" / f"{label}-{sha256_file(zip_path)[:24]}", build)
    if (root / "config.json").is_file():
        return root
    found = sorted(p.parent for p in root.rglob("config.json"))
    if not found:
        raise ModelUnavailableError(f"{zip_path} contains no config.json")
    return found[0]


def _load_gguf_file(
    path: Path, hint: str | None, boot_kwargs: dict[str, Any], notes: list[str]
) -> tuple[Any, Path, str]:
    """Convert (first time) and boot a GGUF file; return (bridge, converted dir, quantisation summary)."""
    with _quiet():
        converted, meta, now = gguf_cache.ensure_gguf_converted(path, hint)
    notes.append(
        f"GGUF converted to {converted} in {meta.get('convert_s')} s"
        if now
        else f"GGUF booted from cached conversion {converted}"
    )
    bridge = _boot_path(converted, trust_remote_code=False, boot_kwargs=boot_kwargs)
    return bridge, converted, meta["summary"]


def _finish(
    bridge: Any,
    *,
    ref: ModelRef,
    source: str,
    hf_id_or_path: str,
    revision: str | None,
    model_dir: Path | None,
    quantization: str | None,
    device: str,
    dtype: str,
    t0: float,
    notes: list[str],
    has_lm_head: bool | None = None,
) -> LoadedModel:
    """Put the bridge in eval mode and assemble the :class:`LoadedModel`."""
    bridge.eval()
    if has_lm_head is None:
        has_lm_head = _has_lm_head(bridge, model_dir, notes)
    info = build_model_info(
        bridge,
        name=ref.display_name,
        source=source,
        hf_id_or_path=hf_id_or_path,
        revision=revision,
        has_lm_head=has_lm_head,
        quantization=quantization,
        device=str(device),
        dtype=dtype,
        load_s=time.perf_counter() - t0,
        notes=notes,
    )
    return LoadedModel(bridge, info)


def build_tiny_model(
    name: str,
    *,
    seed: int = 0,
    config_overrides: dict[str, Any] | None = None,
    hf_model_transform: Callable[[Any], Any] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> LoadedModel:
    """Build a tiny random model (``tiny-gpt2`` etc.), optionally editing the HF model before booting.

    ``hf_model_transform(hf_model)`` may modify the model in place (return None) or return a
    replacement; use it to plant known structure (e.g. rescale layer l's writing weights).
    """
    from transformer_lens.model_bridge import TransformerBridge

    t0 = time.perf_counter()
    ref = parse_model_name(name)
    if ref.kind != "tiny":
        raise ValueError(f"{name!r} is not a tiny model")
    model, tok, spec = tiny.build_tiny_hf_model(name, seed=seed, config_overrides=config_overrides)
    if hf_model_transform is not None:
        replaced = hf_model_transform(model)
        model = model if replaced is None else replaced
    model = model.to(device=device, dtype=torch_dtype(dtype)).eval()
    with _quiet():
        bridge = TransformerBridge.boot_transformers(
            f"lmfacts/{name}", hf_model=model, tokenizer=tok, device=device, dtype=torch_dtype(dtype)
        )
    notes = [f"random init, seed {seed}" + (f", overrides {config_overrides}" if config_overrides else "")]
    if hf_model_transform is not None:
        notes.append("HF model transformed before booting")
    return _finish(
        bridge,
        ref=ref,
        source="tiny",
        hf_id_or_path=str(TINY[name].config_path(name)),
        revision=None,
        model_dir=None,
        quantization=None,
        device=device,
        dtype=dtype,
        t0=t0,
        notes=notes,
        has_lm_head=True,
    )


def load_model(
    ref_or_name: ModelRef | str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    revision: str | None = None,
    trust_remote_code: bool = False,
    n_devices: int | None = None,
    device_map: Any = None,
) -> LoadedModel:
    """Load a model by name or :class:`ModelRef` and return it booted, in eval mode, with metadata.

    Raises:
        UnknownModelError: the name matches no accepted form.
        ModelUnavailableError: the weights cannot be obtained here (message says how to provide them).
    """
    t0 = time.perf_counter()
    ref = parse_model_name(ref_or_name) if isinstance(ref_or_name, str) else ref_or_name
    if ref.kind == "tiny":
        loaded = build_tiny_model(ref.target, device=device, dtype=dtype)
        loaded.info.name = ref.display_name
        return loaded
    kwargs = _boot_kwargs(device, dtype, n_devices, device_map)
    notes: list[str] = []
    common = dict(ref=ref, device=device, dtype=dtype, t0=t0, notes=notes)

    if ref.kind == "packaged":
        pkg = PACKAGED[ref.target]
        path = _package_file(pkg)
        if pkg.kind == "gguf":
            bridge, converted, quant = _load_gguf_file(path, pkg.architecture_class, kwargs, notes)
            return _finish(bridge, source="packaged", hf_id_or_path=pkg.hf_label, revision=None,
                           model_dir=converted, quantization=quant, **common)
        model_dir = _extract_zip(path, ref.target)
        bridge = _boot_path(model_dir, trust_remote_code=trust_remote_code, boot_kwargs=kwargs)
        return _finish(bridge, source="packaged", hf_id_or_path=pkg.hf_label, revision=None,
                       model_dir=model_dir, quantization=None, **common)

    if ref.kind == "gguf-file":
        bridge, converted, quant = _load_gguf_file(Path(ref.target), None, kwargs, notes)
        return _finish(bridge, source="gguf-file", hf_id_or_path=ref.target, revision=None,
                       model_dir=converted, quantization=quant, **common)

    if ref.kind == "local-dir":
        model_dir = Path(ref.target)
        bridge = _boot_path(model_dir, trust_remote_code=trust_remote_code, boot_kwargs=kwargs)
        return _finish(bridge, source="local-dir", hf_id_or_path=ref.target, revision=revision,
                       model_dir=model_dir, quantization=_config_quantization(model_dir), **common)

    return _load_hub(ref, revision=revision, trust_remote_code=trust_remote_code, boot_kwargs=kwargs,
                     common=common)


def _config_quantization(model_dir: Path) -> str | None:
    """Describe a ``quantization_config`` in an HF config.json, if present."""
    import json

    try:
        qc = json.loads((Path(model_dir) / "config.json").read_text()).get("quantization_config")
    except (OSError, ValueError):
        return None
    if not qc:
        return None
    bits = qc.get("bits") or ("4" if qc.get("load_in_4bit") else "8" if qc.get("load_in_8bit") else None)
    return f"{qc.get('quant_method', 'quantized')}" + (f" {bits}-bit" if bits else "")


def _load_hub(
    ref: ModelRef,
    *,
    revision: str | None,
    trust_remote_code: bool,
    boot_kwargs: dict[str, Any],
    common: dict[str, Any],
) -> LoadedModel:
    """Load a Hugging Face hub model from the local cache or (if reachable) the hub."""
    from transformer_lens.model_bridge import TransformerBridge

    plan = hub.plan_hub_load(ref.target, revision, trust_remote_code)
    ctx = hub.offline_mode() if plan.offline else contextlib.nullcontext()
    try:
        with ctx, _quiet(), _seeded():
            bridge = TransformerBridge.boot_transformers(
                ref.target, revision=revision, trust_remote_code=trust_remote_code, **boot_kwargs
            )
    except OSError as exc:
        raise ModelUnavailableError(
            f"Could not load {ref.target} ({'offline, from the local cache' if plan.offline else 'from the hub'}):"
            f" {exc}\n" + hub.provide_weights_text(ref.target)
        ) from exc
    snapshot = plan.config_path.parent if plan.config_path is not None else None
    if plan.offline:
        common["notes"].append("loaded from the local Hugging Face cache in offline mode")
    return _finish(bridge, source="hub", hf_id_or_path=ref.target, revision=revision, model_dir=snapshot,
                   quantization=_config_quantization(snapshot) if snapshot else None, **common)
