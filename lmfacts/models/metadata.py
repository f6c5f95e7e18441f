"""``ModelInfo``: what the report needs to know about a loaded model, read from the bridge and checkpoint."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass
class ModelInfo:
    """Metadata of a loaded model; ``to_dict()`` is JSON-safe.

    ``has_lm_head`` is False when the unembedding head's parameters are absent from the checkpoint
    (e.g. a BERT encoder checkpoint booted as ``BertForMaskedLM``: the MLM head is random).
    ``weight_processing`` is ``"raw"`` (HF weights) or ``"compat"`` (HookedTransformer-style folding).
    """

    name: str
    source: str
    hf_id_or_path: str
    revision: str | None
    architecture: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int | None
    d_vocab: int
    n_ctx: int
    normalization: str | None
    positional_embedding: str | None
    act_fn: str | None
    gated_mlp: bool
    parallel_attn_mlp: bool
    is_encoder: bool
    has_lm_head: bool
    prepends_bos: bool
    bos_token_id: int | None
    pad_token_id: int | None
    padding_side: str | None
    quantization: str | None
    weight_processing: str
    device: str
    dtype: str
    load_s: float
    compat_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of all fields."""
        data = asdict(self)
        json.dumps(data)  # fail loudly here, not in the report writer
        return data


def checkpoint_keys(model_dir: Path) -> set[str] | None:
    """Return the parameter names stored in an HF model directory, or None if they can't be read."""
    model_dir = Path(model_dir)
    files: list[Path] = []
    for index_name in _INDEX_FILES:
        index = model_dir / index_name
        if index.is_file():
            return set(json.loads(index.read_text())["weight_map"])
    for name in _WEIGHT_FILES:
        if (model_dir / name).is_file():
            files.append(model_dir / name)
            break
    if not files:
        return None
    path = files[0]
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                return set(fh.keys())
        import torch

        return set(torch.load(str(path), map_location="meta", weights_only=True, mmap=True))
    except Exception as exc:  # pragma: no cover - depends on odd checkpoints
        log.debug("cannot read checkpoint keys of %s: %s", path, exc)
        return None


def head_params_missing(hf_model: Any, keys: set[str] | None) -> list[str]:
    """Return the names of head parameters (outside the base model) absent from the checkpoint ``keys``.

    Parameters tied to a stored parameter (same storage) count as present. Names are compared with
    the ``base_model_prefix`` stripped, because encoder checkpoints are often saved without it.
    """
    if keys is None:
        return []
    prefix = getattr(hf_model, "base_model_prefix", "") or ""

    def strip(name: str) -> str:
        name = name.replace("._original_component", "")  # the bridge wraps HF modules
        return name[len(prefix) + 1 :] if prefix and name.startswith(prefix + ".") else name

    stored = {strip(k) for k in keys}
    params = dict(hf_model.named_parameters(remove_duplicate=False))
    present_ptrs = {p.data_ptr() for n, p in params.items() if strip(n) in stored}
    missing = []
    for name, param in params.items():
        in_body = bool(prefix) and name.startswith(prefix + ".")
        if in_body or strip(name) in stored or param.data_ptr() in present_ptrs:
            continue
        missing.append(name.replace("._original_component", ""))
    return missing


def _tokenizer_fields(tokenizer: Any, is_encoder: bool) -> tuple[int | None, int | None, str | None]:
    """Return (bos_token_id, pad_token_id, padding_side); encoders report [CLS] as their BOS."""
    if tokenizer is None:
        return None, None, None
    bos = getattr(tokenizer, "bos_token_id", None)
    if is_encoder and getattr(tokenizer, "cls_token_id", None) is not None:
        bos = tokenizer.cls_token_id
    return bos, getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "padding_side", None)


def build_model_info(
    bridge: Any,
    *,
    name: str,
    source: str,
    hf_id_or_path: str,
    revision: str | None,
    has_lm_head: bool,
    quantization: str | None,
    device: str,
    dtype: str,
    load_s: float,
    notes: list[str] | None = None,
) -> ModelInfo:
    """Read a booted bridge's cfg, HF config and tokenizer into a :class:`ModelInfo`."""
    cfg = bridge.cfg
    hf_config = getattr(bridge.original_model, "config", None)
    is_encoder = getattr(cfg, "attention_dir", "causal") == "bidirectional"
    bos, pad, side = _tokenizer_fields(bridge.tokenizer, is_encoder)
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelInfo(
        name=name,
        source=source,
        hf_id_or_path=hf_id_or_path,
        revision=revision,
        architecture=str(getattr(hf_config, "model_type", None) or getattr(cfg, "architecture", "unknown")),
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_head=int(cfg.d_head),
        d_mlp=None if cfg.d_mlp is None else int(cfg.d_mlp),
        d_vocab=int(cfg.d_vocab),
        n_ctx=int(cfg.n_ctx),
        normalization=getattr(cfg, "normalization_type", None),
        positional_embedding=getattr(cfg, "positional_embedding_type", None),
        act_fn=getattr(cfg, "act_fn", None),
        gated_mlp=bool(getattr(cfg, "gated_mlp", False)),
        parallel_attn_mlp=bool(getattr(cfg, "parallel_attn_mlp", False)),
        is_encoder=is_encoder,
        has_lm_head=has_lm_head,
        prepends_bos=bool(getattr(cfg, "default_prepend_bos", True)),
        bos_token_id=None if bos is None else int(bos),
        pad_token_id=None if pad is None else int(pad),
        padding_side=side,
        quantization=quantization,
        weight_processing="raw",
        device=device,
        dtype=dtype,
        load_s=round(load_s, 3),
        notes=list(notes or []),
    )
