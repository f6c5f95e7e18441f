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

    ``has_lm_head`` is False when some head parameter was not loaded from the checkpoint (judged by
    tensor values, see :func:`head_params_loaded`; e.g. a BERT encoder checkpoint booted as
    ``BertForMaskedLM``: the MLM head is random).
    ``quantization`` is None for float weights; otherwise it names the quantised storage (some weight
    matrix stored in a quantised type, e.g. ``"GGUF Q4_1 (attention/MLP), Q8_0 (embeddings)"``).
    ``weight_format`` says how the weight matrices were stored, quantised or not (``"GGUF F32"``,
    ``"safetensors BF16"``); None when they were not read from a file (tiny random models).
    ``bos_token_id`` / ``pad_token_id`` are only ever ids inside the model's vocabulary (< ``d_vocab``).
    ``weight_processing`` is ``"raw"`` (HF weights) or ``"compat"`` (HookedTransformer-style folding).
    ``prepends_bos`` is the convention every tokenisation of the run uses (BOS id prepended or not);
    ``prepend_bos_policy`` is the ``--prepend-bos`` choice that set it (``auto`` = the bridge's own
    ``cfg.default_prepend_bos``), and ``bridge_prepends_bos`` what ``auto`` would have used
    (None when no policy was applied, e.g. a random twin). :func:`bos_convention` words it.
    ``bos_note`` says where the BOS token comes from when the tokenizer declares none and TransformerBridge
    uses its EOS instead (:func:`bridge_substituted_bos`), or, for an encoder, that its class token
    (``[CLS]``, RoBERTa's ``<s>``) stands as BOS; None otherwise.
    ``cpu_threads``: the torch threads a CPU model computed with (:func:`lmfacts.pool.cpu_threads`; set by the
    model pool at load), None on an accelerator or outside the pool.
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
    weight_format: str | None = None
    notes: list[str] = field(default_factory=list)
    prepend_bos_policy: str = "auto"
    bridge_prepends_bos: bool | None = None
    bos_note: str | None = None
    cpu_threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of all fields."""
        data = asdict(self)
        json.dumps(data)  # fail loudly here, not in the report writer
        return data


def bos_convention(info: ModelInfo | dict[str, Any]) -> str:
    """One line saying whether prompts reach the model with a BOS and why, for reports and claim conventions.

    ``info``: a :class:`ModelInfo` or its ``to_dict()``. E.g. ``"BOS prepended (--prepend-bos auto: the
    bridge's default)"``, ``"no BOS (--prepend-bos never; the bridge would prepend one)"``. Source: the
    TransformerBridge's ``cfg.default_prepend_bos`` (TransformerLens 4.3), overridden by ``--prepend-bos``.
    """
    d = info if isinstance(info, dict) else asdict(info)
    used = "BOS prepended" if d.get("prepends_bos") else "no BOS"
    if d.get("prepends_bos") and d.get("bos_note"):
        used = f"BOS prepended: {d['bos_note']}"
    policy = d.get("prepend_bos_policy") or "auto"
    bridge = d.get("bridge_prepends_bos")
    if policy == "auto":
        return f"{used} (--prepend-bos auto: the bridge's default)"
    if bridge is None or bool(bridge) == bool(d.get("prepends_bos")):
        return f"{used} (--prepend-bos {policy}; the bridge's default too)"
    return f"{used} (--prepend-bos {policy}; the bridge would {'prepend one' if bridge else 'prepend none'})"


class CheckpointTensors:
    """Lazy read access to the tensors stored in an HF model directory (safetensors or torch ``.bin``).

    Sharded checkpoints are followed through their ``*.index.json``. Only headers are read up front;
    a tensor's values are read when :meth:`rows` is called. Use as a context manager (closes files).
    """

    def __init__(self, files: dict[str, Path]) -> None:
        """``files`` maps each stored tensor name to the file that holds it."""
        self._file_of = files
        self._open: dict[Path, Any] = {}

    @classmethod
    def open(cls, model_dir: Path | str) -> CheckpointTensors | None:
        """Return a reader for ``model_dir``'s checkpoint, or None if it has no readable one."""
        model_dir = Path(model_dir)
        try:
            for index_name in _INDEX_FILES:
                index = model_dir / index_name
                if index.is_file():
                    weight_map = json.loads(index.read_text())["weight_map"]
                    return cls({k: model_dir / f for k, f in weight_map.items()})
            for name in _WEIGHT_FILES:
                path = model_dir / name
                if path.is_file():
                    reader = cls({})
                    reader._file_of = dict.fromkeys(reader._handle(path).keys(), path)
                    return reader
        except Exception as exc:  # pragma: no cover - depends on odd checkpoints
            log.debug("cannot read the checkpoint in %s: %s", model_dir, exc)
        return None

    def _handle(self, path: Path) -> Any:
        """Open ``path`` once: a safetensors handle, or a dict of (memory-mapped) tensors for ``.bin``."""
        if path not in self._open:
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                self._open[path] = safe_open(str(path), framework="pt")
            else:
                import torch

                try:
                    self._open[path] = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
                    self._open[path] = torch.load(str(path), map_location="cpu", weights_only=True)
        return self._open[path]

    def keys(self) -> list[str]:
        """Names of all stored tensors."""
        return list(self._file_of)

    def shape(self, key: str) -> tuple[int, ...]:
        """Shape of stored tensor ``key`` (read from the header; no values are loaded)."""
        h = self._handle(self._file_of[key])
        if isinstance(h, dict):
            return tuple(h[key].shape)
        return tuple(h.get_slice(key).get_shape())

    def dtype(self, key: str) -> str:
        """Storage dtype of ``key`` in safetensors spelling (``F32``, ``BF16``, ``I8`` ...)."""
        h = self._handle(self._file_of[key])
        if isinstance(h, dict):
            return _TORCH_TO_ST.get(str(h[key].dtype).removeprefix("torch."), str(h[key].dtype))
        return str(h.get_slice(key).get_dtype())

    def rows(self, key: str, start: int, stop: int) -> Any:
        """Rows ``start:stop`` (first dimension) of stored tensor ``key`` as a CPU tensor."""
        h = self._handle(self._file_of[key])
        if isinstance(h, dict):
            t = h[key]
            return t[start:stop] if t.dim() else t
        sl = h.get_slice(key)
        return sl[start:stop] if sl.get_shape() else h.get_tensor(key)

    def close(self) -> None:
        """Drop the open handles."""
        self._open.clear()

    def __enter__(self) -> CheckpointTensors:
        """Return the reader itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the open handles."""
        self.close()


_TORCH_TO_ST = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int8": "I8",
                "uint8": "U8", "int16": "I16", "int32": "I32", "int64": "I64", "bool": "BOOL",
                "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}
_FLOAT_STORAGE = {"F64", "F32", "F16", "BF16"}
_CHUNK_ELEMENTS = 1 << 22


def checkpoint_keys(model_dir: Path) -> set[str] | None:
    """Return the parameter names stored in an HF model directory, or None if they can't be read."""
    reader = CheckpointTensors.open(model_dir)
    if reader is None:
        return None
    with reader:
        return set(reader.keys())


def checkpoint_weight_format(model_dir: Path | None) -> str | None:
    """Describe how the weight matrices (tensors with >= 2 dimensions) of a checkpoint are stored.

    Returns e.g. ``"safetensors F32"`` or ``"safetensors BF16 (412), F32 (2)"`` (tensor counts when
    mixed), or None if there is no readable checkpoint in ``model_dir``. Index buffers stored with the
    weights (``*_ids``, e.g. BERT's ``position_ids``) are left out.
    """
    if model_dir is None:
        return None
    reader = CheckpointTensors.open(model_dir)
    if reader is None:
        return None
    kind = "safetensors" if any(p.suffix == ".safetensors" for p in reader._file_of.values()) else "torch"
    counts: dict[str, int] = {}
    with reader:
        for key in reader.keys():
            if len(reader.shape(key)) >= 2 and not key.endswith("_ids"):  # not index buffers (position_ids)
                dt = reader.dtype(key)
                counts[dt] = counts.get(dt, 0) + 1
    if not counts:
        return None
    if len(counts) == 1:
        return f"{kind} {next(iter(counts))}"
    order = sorted(counts, key=lambda t: -counts[t])
    return f"{kind} " + ", ".join(f"{t} ({counts[t]})" for t in order)


def _equal_to_stored(reader: CheckpointTensors, key: str, param: Any) -> bool:
    """True if stored tensor ``key`` has ``param``'s shape and, cast to its dtype, exactly its values.

    Reads the stored tensor in row chunks (the first row alone first, so a mismatch costs little).
    """
    import torch

    if reader.shape(key) != tuple(param.shape):
        return False
    live = param.detach()
    if live.device.type == "meta":
        return False
    if live.dim() == 0:
        return bool(torch.equal(reader.rows(key, 0, 1).to(live.dtype).to(live.device), live))
    n = live.shape[0]
    per_row = max(1, live[0].numel())
    step = max(1, _CHUNK_ELEMENTS // per_row)
    bounds = [(0, 1)] + [(s, min(n, s + step)) for s in range(1, n, step)]
    for a, b in bounds:
        stored = reader.rows(key, a, b).to(device=live.device, dtype=live.dtype)
        if not torch.equal(stored, live[a:b]):
            return False
    return True


def _is_constant(param: Any) -> bool:
    """True if every element of ``param`` has the same value (e.g. a bias initialised to 0)."""
    flat = param.detach().reshape(-1)
    return flat.numel() <= 1 or bool((flat == flat[0]).all())


def _short(name: str) -> str:
    """The HF parameter name without the bridge's ``._original_component`` wrapper segments."""
    return name.replace("._original_component", "")  # the bridge wraps HF modules


def head_params_loaded(hf_model: Any, model_dir: Path | None) -> tuple[list[str], list[str]]:
    """Judge which head parameters (outside the base model) transformers loaded from the checkpoint.

    A head parameter counts as loaded if it is tied to (shares storage with) a base-model parameter
    or a loaded head parameter, or if the checkpoint holds a tensor equal to it: same shape and, cast
    to the parameter's dtype, the same values. Names are not trusted (transformers renames keys on
    load, e.g. GPT-NeoX ``embed_out`` -> ``lm_head``); only stored tensors of matching shape are read,
    the same-named one first. A parameter whose elements are all equal (a bias initialised to 0, a
    norm gain of 1) is only matched by a stored tensor of its own name: equal values under another
    name say nothing about whether it was loaded.

    Returns ``(missing, evidence)``: the names of head parameters not loaded (empty when ``model_dir``
    is None or holds no readable checkpoint, i.e. nothing can be judged), and one line per head
    parameter saying how it was judged. Base-model parameters are not checked.
    """
    if model_dir is None:
        return [], []
    reader = CheckpointTensors.open(model_dir)
    if reader is None:
        return [], [f"no readable checkpoint in {model_dir}: head parameters not checked"]
    prefix = getattr(hf_model, "base_model_prefix", "") or ""

    def strip(name: str) -> str:
        name = _short(name)
        return name[len(prefix) + 1 :] if prefix and name.startswith(prefix + ".") else name

    params = list(hf_model.named_parameters(remove_duplicate=False))
    body_ptrs = {p.data_ptr() for n, p in params if prefix and n.startswith(prefix + ".")}
    missing: list[str] = []
    evidence: list[str] = []
    loaded_ptrs: set[int] = set()
    with reader:
        by_shape: dict[tuple[int, ...], list[str]] = {}
        for key in reader.keys():
            by_shape.setdefault(reader.shape(key), []).append(key)
        for name, param in params:
            if prefix and name.startswith(prefix + "."):
                continue
            short, shape = _short(name), tuple(param.shape)
            ptr = param.data_ptr()
            if ptr in body_ptrs or ptr in loaded_ptrs:
                evidence.append(f"{short} {list(shape)}: tied to a loaded parameter")
                loaded_ptrs.add(ptr)
                continue
            constant = _is_constant(param)
            candidates = by_shape.get(shape, [])
            own = [k for k in candidates if strip(k) == strip(name)]
            others = [] if constant else [k for k in candidates if strip(k) != strip(name)]
            match = next((k for k in own + others if _equal_to_stored(reader, k, param)), None)
            if match is not None:
                how = "the stored tensor of that name" if match in own else f"stored tensor {match!r}"
                evidence.append(f"{short} {list(shape)}: equals {how}")
                loaded_ptrs.add(ptr)
                continue
            missing.append(short)
            why = (f"constant-valued and no stored tensor {strip(name)!r} equals it" if constant and not own
                   else f"none of the {len(own) + len(others)} stored tensor(s) of this shape equals it")
            evidence.append(f"{short} {list(shape)}: not loaded ({why})")
    return missing, evidence


def bridge_substituted_bos(tokenizer: Any) -> str | None:
    """A sentence naming the token used as BOS when the tokenizer declares no BOS token, else None.

    TransformerLens' ``configure_tokenizer`` (TransformerLens 4.3, as HookedTransformer) sets a tokenizer's
    missing ``bos_token`` to its ``eos_token``, and the bridge then prepends that EOS to every prompt wherever
    its adapter's ``cfg.default_prepend_bos`` is true (Llama, OLMo …): the model sees an EOS first, which its
    own tokenizer never puts there. Declared means: the ``bos_token`` the tokenizer was loaded with
    (``init_kwargs``, which holds tokenizer_config.json and special_tokens_map.json), else its class's default
    (``GPT2Tokenizer``: ``<|endoftext|>``, so GPT-2, whose BOS *is* its EOS, gets no sentence). Reads
    attributes only; never raises for a tokenizer without them (None).
    """
    import inspect

    bos = getattr(tokenizer, "bos_token", None)
    if tokenizer is None or bos is None or bos != getattr(tokenizer, "eos_token", None):
        return None
    init = getattr(tokenizer, "init_kwargs", None) or {}
    if "bos_token" in init:
        declared = init["bos_token"]
    else:
        try:
            param = inspect.signature(type(tokenizer).__init__).parameters.get("bos_token")
        except (TypeError, ValueError):
            return None
        declared = None if param is None or param.default is inspect.Parameter.empty else param.default
    if declared is not None:
        return None
    return (f"the tokenizer declares no BOS token, so TransformerBridge uses its EOS {str(bos)!r} "
            f"(id {getattr(tokenizer, 'bos_token_id', None)}) as BOS")


def _tokenizer_fields(tokenizer: Any, is_encoder: bool, d_vocab: int) -> tuple[int | None, int | None, str | None]:
    """Return (bos_token_id, pad_token_id, padding_side); encoders report [CLS] as their BOS.

    An id outside the model's vocabulary (>= ``d_vocab``) is reported as None: it cannot be fed.
    """
    if tokenizer is None:
        return None, None, None

    def in_vocab(i: Any) -> int | None:
        return int(i) if i is not None and 0 <= int(i) < d_vocab else None

    bos = getattr(tokenizer, "bos_token_id", None)
    if is_encoder and getattr(tokenizer, "cls_token_id", None) is not None:
        bos = tokenizer.cls_token_id
    return in_vocab(bos), in_vocab(getattr(tokenizer, "pad_token_id", None)), getattr(tokenizer, "padding_side", None)


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
    weight_format: str | None = None,
) -> ModelInfo:
    """Read a booted bridge's cfg, HF config and tokenizer into a :class:`ModelInfo` and return it.

    ``prepends_bos`` is the bridge's ``cfg.default_prepend_bos``, and False whenever the tokenizer has no
    BOS id inside the vocabulary. ``bos_note``: :func:`bridge_substituted_bos` (with a line in ``notes``)
    for decoders whose BOS id is in the vocabulary; the class token for encoders.
    """
    cfg = bridge.cfg
    hf_config = getattr(bridge.original_model, "config", None)
    is_encoder = getattr(cfg, "attention_dir", "causal") == "bidirectional"
    bos, pad, side = _tokenizer_fields(bridge.tokenizer, is_encoder, int(cfg.d_vocab))
    bos_note = None if is_encoder or bos is None else bridge_substituted_bos(bridge.tokenizer)
    notes = list(notes or []) + ([f"{bos_note}: prepended wherever a BOS is (prepends_bos)"] if bos_note else [])
    if is_encoder and bos is not None:  # an encoder's "BOS" is the class token its tokenizer prepends
        tok = bridge.tokenizer
        if getattr(tok, "cls_token_id", None) == bos:
            bos_note = f"the encoder's class token {str(tok.cls_token)!r} (id {bos}) is its first token, its BOS here"
        else:
            bos_note = f"the encoder has no class token; its BOS {str(getattr(tok, 'bos_token', None))!r} (id {bos})"
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
        prepends_bos=bool(getattr(cfg, "default_prepend_bos", True)) and bos is not None,
        bos_token_id=None if bos is None else int(bos),
        pad_token_id=None if pad is None else int(pad),
        padding_side=side,
        quantization=quantization,
        weight_processing="raw",
        device=device,
        dtype=dtype,
        load_s=round(load_s, 3),
        weight_format=weight_format,
        notes=notes,
        bos_note=bos_note,
    )


# --------------------------------------------------------------------------------------------
# Facts from the configuration alone (no weights loaded, no torch imported)
# --------------------------------------------------------------------------------------------
#: Model types whose TransformerBridge attends bidirectionally (``cfg.attention_dir``), when the config
#: names no causal-LM class.
ENCODER_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta",
                                 "deberta-v2", "mpnet", "camembert", "modernbert"})
#: Normalisation of the TransformerBridge's ``cfg.normalization_type`` by HF ``model_type``, used when the
#: config.json has no ``*_eps`` key that says it (tiny models, GGUF headers).
NORMALIZATION_BY_MODEL_TYPE = {
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text",
                     "olmo2", "phi3", "t5"), "RMS"),
    **dict.fromkeys(("gpt2", "gpt_neox", "gpt_neo", "gptj", "opt", "bert", "roberta", "distilbert", "bloom",
                     "falcon", "phi"), "LN"),
}


@dataclass(frozen=True)
class ConfigFacts:
    """What a model's configuration says, read without loading its weights (:func:`config_facts`).

    The fields mirror those of :class:`ModelInfo` that expectation matching reads (``names`` as the
    plugin builds them: the name given, the display name, the HF id or path). ``evidence[field]`` says
    where each value was read (``"config.json model_type"``, ``"GGUF header"`` …). ``quantization``
    is None for float weights, else the storage summary, as :class:`ModelInfo` has it.
    """

    names: tuple[str, ...]
    architecture: str
    architecture_class: str | None
    is_encoder: bool
    normalization: str | None
    quantization: str | None
    source: str
    evidence: dict[str, str] = field(default_factory=dict)
    #: Structure the configuration declares that some premises depend on (:func:`config_structure`): ``experts``
    #: (a mixture-of-experts MLP) and ``sliding_window`` (local attention), each as the text quoted in hints.
    structure: dict[str, Any] = field(default_factory=dict)

    def model_facts(self) -> Any:
        """The :class:`lmfacts.expectations.ModelFacts` the plugin would build from the loaded model's info."""
        from lmfacts.expectations import ModelFacts

        return ModelFacts(names=self.names, architecture=self.architecture, is_encoder=self.is_encoder,
                          normalization=self.normalization or "", quantized=self.quantization is not None)


def config_quantization(config: dict[str, Any]) -> str | None:
    """Describe the ``quantization_config`` of an HF config dict (``"gptq 4-bit"``), or None without one.

    The one description of it: the loader (:mod:`lmfacts.models.loading`) and the config-only facts use it."""
    qc = config.get("quantization_config")
    if not qc:
        return None
    bits = qc.get("bits") or ("4" if qc.get("load_in_4bit") else "8" if qc.get("load_in_8bit") else None)
    return f"{qc.get('quant_method', 'quantized')}" + (f" {bits}-bit" if bits else "")


#: Config keys that give a mixture-of-experts MLP's number of experts (transformers' names).
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", "n_experts")


def config_structure(config: dict[str, Any], where: str) -> dict[str, Any]:
    """What an HF config dict declares about a mixture-of-experts MLP and a sliding attention window.

    Returns ``{"experts": (n, text), "sliding_window": (w, n_sliding, n_layers, text)}`` with the keys present
    only where the config declares them (a text config nested as ``text_config`` is read too): ``n`` experts
    from the first of :data:`EXPERT_COUNT_KEYS` above 1; ``w`` = ``sliding_window`` (a positive int), applied
    to ``n_sliding`` of ``n_layers`` layers (``layer_types`` entries naming sliding attention; every layer
    where there are no layer types and ``use_sliding_window`` is not false). Hints only: the premises
    themselves are measured on the loaded model. Raises nothing.
    """
    cfg = dict(config.get("text_config") or {}) | {k: v for k, v in config.items() if k != "text_config"} \
        if isinstance(config.get("text_config"), dict) else config
    out: dict[str, Any] = {}
    for key in EXPERT_COUNT_KEYS:
        n = cfg.get(key)
        if isinstance(n, int) and not isinstance(n, bool) and n > 1:
            out["experts"] = (n, f"{where}: {key} = {n}")
            break
    w = cfg.get("sliding_window")
    if isinstance(w, int) and not isinstance(w, bool) and w > 0 and cfg.get("use_sliding_window") is not False:
        types = cfg.get("layer_types")
        n_layers = int(cfg.get("num_hidden_layers") or (len(types) if isinstance(types, list) else 0))
        n_sliding = sum("sliding" in str(t) for t in types) if isinstance(types, list) and types else n_layers
        if n_sliding:
            out["sliding_window"] = (w, n_sliding, n_layers, f"{where}: sliding_window = {w} on {n_sliding} of "
                                                             f"{n_layers} layers")
    return out


def _facts_from_config(names: tuple[str, ...], config: dict[str, Any], where: str, *, source: str,
                       auto_class: str | None = None, quantization: tuple[str | None, str] | None = None,
                       arch_key: str = "model_type") -> ConfigFacts:
    """Build :class:`ConfigFacts` from an HF config dict read at ``where`` (a file name, for the evidence;
    ``arch_key``: the key the architecture was read from there)."""
    ev: dict[str, str] = {}
    model_type = str(config.get("model_type") or "unknown")
    ev["architecture"] = f"{where} {arch_key}"
    declared = [str(c) for c in config.get("architectures") or []]
    classes = declared + ([auto_class] if auto_class else [])
    causal = [c for c in classes if c.endswith(("ForCausalLM", "LMHeadModel"))]
    if causal:
        is_encoder, ev["is_encoder"] = False, f"{where}: causal-LM class {causal[0]}"
    elif any(c.endswith("ForMaskedLM") for c in classes):
        is_encoder, ev["is_encoder"] = True, f"{where}: masked-LM class {classes[0]}"
    elif model_type in ENCODER_MODEL_TYPES:
        is_encoder, ev["is_encoder"] = True, f"{where}: model_type {model_type} (an encoder family)"
    else:
        is_encoder, ev["is_encoder"] = False, f"{where}: no encoder marker (classes {classes or 'none'})"
    if "rms_norm_eps" in config:
        norm, ev["normalization"] = "RMS", f"{where} has rms_norm_eps"
    elif any(k in config for k in ("layer_norm_eps", "layer_norm_epsilon", "layernorm_epsilon")):
        norm, ev["normalization"] = "LN", f"{where} has a layer-norm epsilon"
    else:
        norm = NORMALIZATION_BY_MODEL_TYPE.get(model_type)
        ev["normalization"] = (f"model_type {model_type} (TransformerBridge {norm})" if norm
                               else f"not stated in {where} (model_type {model_type})")
    if quantization is None:
        q = config_quantization(config)
        quantization = (q, f"{where}: {'quantization_config' if q else 'no quantization_config'}")
    quant, ev["quantization"] = quantization
    return ConfigFacts(names, model_type, declared[0] if declared else None, is_encoder, norm, quant, source, ev,
                       structure=config_structure(config, where))


def _read_json(path: Path) -> dict[str, Any]:
    from lmfacts.models.names import ModelUnavailableError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read {path}: {exc}") from None


def _gguf_facts(names: tuple[str, ...], path: Path, hint: str | None, source: str) -> ConfigFacts:
    """Facts of a GGUF file: its cached conversion's config.json when there is one, else the GGUF header."""
    from lmfacts.models import gguf_cache

    converted = gguf_cache.converted_dir_for(path)  # the sha256 is cached by (path, size, mtime)
    meta_path = converted / gguf_cache.META_FILE
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    if meta.get("meta_version") == gguf_cache.META_VERSION and (converted / "config.json").is_file():
        quant = (meta["summary"] if meta["quantized"] else None, f"{meta_path} (GGUF tensor types)")
        return _facts_from_config(names, _read_json(converted / "config.json"), f"{converted / 'config.json'}",
                                  source=source, quantization=quant)
    try:
        meta = gguf_cache.summarise_gguf_quantization(path)  # reads the header (tensor types), not the values
    except Exception as exc:  # noqa: BLE001 - any reader failure: the file is not a readable GGUF
        from lmfacts.models.support import unreadable_gguf

        raise unreadable_gguf(str(path), path, exc) from None
    config = {"model_type": meta.get("gguf_architecture") or "unknown", "architectures": [hint] if hint else []}
    quant = (meta["summary"] if meta["quantized"] else None, f"GGUF header of {path.name} (tensor types)")
    return _facts_from_config(names, config, f"GGUF header of {path.name}", source=source, quantization=quant,
                              arch_key="general.architecture")


def config_facts(name: str, revision: str | None = None) -> ConfigFacts:
    """Read what expectation matching needs about model ``name`` from its configuration alone.

    No weights are read and torch is not imported: a tiny model's JSON spec, an HF directory's or the
    HF cache's ``config.json``, a zipped HF directory's ``config.json`` (read from the zip), a GGUF
    file's cached conversion (``config.json`` and ``lmfacts-gguf.json``) or, before its first
    conversion, its header (architecture and tensor storage types). A hub model is looked up in the
    local HF cache only (never the network). Normalisation follows the config's ``*_eps`` key, else
    :data:`NORMALIZATION_BY_MODEL_TYPE` (None when neither says).

    Raises:
        UnknownModelError: ``name`` matches no accepted form (:func:`lmfacts.models.parse_model_name`).
        ModelUnavailableError: the configuration cannot be read here (package not installed, hub model
            not in the local cache); the message says how to provide it. Its subclass
            UnreadableModelFileError: a GGUF file that is truncated, corrupt or not GGUF.
    """
    import zipfile

    from lmfacts.models import hub
    from lmfacts.models.names import PACKAGED, TINY, ModelUnavailableError, parse_model_name

    ref = parse_model_name(name)
    if ref.kind == "tiny":
        spec_path = TINY[ref.target].config_path(ref.target)
        spec = _read_json(spec_path)
        return _facts_from_config((name, ref.display_name, str(spec_path)), {"model_type": spec["model_type"],
                                  **spec.get("config", {})}, spec_path.name, source="tiny",
                                  auto_class=spec.get("auto_class"))
    if ref.kind == "packaged":
        from lmfacts.models.loading import _package_file

        pkg = PACKAGED[ref.target]
        names = (name, ref.display_name, pkg.hf_label)
        path = _package_file(pkg)
        if pkg.kind == "gguf":
            return _gguf_facts(names, path, pkg.architecture_class, "packaged")
        with zipfile.ZipFile(path) as zf:
            members = sorted((m for m in zf.namelist() if m.endswith("config.json") and
                              m.rsplit("/", 1)[-1] == "config.json"), key=lambda m: (m.count("/"), m))
            if not members:
                raise ModelUnavailableError(f"{path} contains no config.json")
            config = json.loads(zf.read(members[0]))
        return _facts_from_config(names, config, f"{path.name}:{members[0]}", source="packaged")
    if ref.kind == "gguf-file":
        return _gguf_facts((name, ref.display_name, ref.target), Path(ref.target), None, "gguf-file")
    if ref.kind == "local-dir":
        path = Path(ref.target) / "config.json"
        return _facts_from_config((name, ref.display_name, ref.target), _read_json(path), str(path),
                                  source="local-dir")
    cached = hub.cached_config_path(ref.target, revision)
    if cached is None:
        raise ModelUnavailableError(f"{ref.target}{f' at revision {revision!r}' if revision else ''}: its "
                                    f"config.json is not in the local Hugging Face cache (the hub is not asked)."
                                    f"\n" + hub.provide_weights_text(ref.target))
    return _facts_from_config((name, ref.display_name, ref.target), _read_json(cached), str(cached), source="hub")
