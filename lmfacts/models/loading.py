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
from lmfacts.models.metadata import (
    ModelInfo,
    build_model_info,
    checkpoint_weight_format,
    config_quantization,
    head_params_loaded,
)
from lmfacts.models.names import (
    PACKAGED,
    TINY,
    ModelOptionError,
    ModelRef,
    ModelUnavailableError,
    PackagedModel,
    parse_model_name,
)

log = logging.getLogger(__name__)

DTYPE_NAMES = ("float32", "bfloat16", "float16")
#: ``--prepend-bos``: ``auto`` keeps the bridge's ``cfg.default_prepend_bos``; the others force it.
PREPEND_BOS_CHOICES = ("auto", "always", "never")


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


def _weight_processing_file() -> str | None:
    """Path of TransformerLens' ``weight_processing`` module source, or None if it cannot be imported."""
    try:
        from transformer_lens import weight_processing
    except ImportError:  # pragma: no cover - transformer_lens is a hard dependency
        return None
    return str(weight_processing.__file__)


@contextlib.contextmanager
def _no_defensive_state_dict_copies() -> Iterator[None]:
    """Skip the whole-state-dict ``clone()`` that each TransformerLens weight-processing step makes.

    TransformerLens 4.x ``ProcessWeights.fold_layer_norm`` / ``center_writing_weights`` /
    ``center_unembed`` / ``fold_value_biases`` each start with
    ``state_dict = {k: v.clone() ... for k, v in state_dict.items()}`` ("deep copy to avoid modifying
    the original") while the caller still holds the previous dict, so during the compat switch the
    process holds the model's parameters plus two full copies of every weight: on smollm2-135m
    (513 MB of fp32 parameters) RSS peaks at 2.48 GB. None of these steps modifies a tensor in place
    (each computes new tensors and stores them in its dict; the one in-place write, ``new_b_V[...] = 0``,
    is on a tensor cloned outside a dict comprehension and is still cloned), and the bridge installs
    the processed tensors as new parameters, so sharing the unchanged tensors instead of copying them
    gives the same values with one copy of only the tensors that change.

    Implemented as a :class:`torch.overrides.TorchFunctionMode` that answers ``Tensor.clone`` with the
    tensor itself only when it is called directly from a dict comprehension in TransformerLens'
    ``weight_processing.py`` (CPython ≤ 3.11 runs a comprehension in its own ``<dictcomp>`` frame;
    where it does not, e.g. inlined comprehensions in 3.12+, nothing is skipped and the switch merely
    uses more memory). Every other ``clone`` is unchanged. Yields nothing; raises nothing of its own.
    """
    import sys

    import torch
    from torch.overrides import TorchFunctionMode

    source = _weight_processing_file()
    if source is None:
        yield
        return

    class _ShareInsteadOfDeepCopy(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func is torch.Tensor.clone and not kwargs and len(args) == 1:
                caller = sys._getframe(1).f_code
                if caller.co_name == "<dictcomp>" and caller.co_filename == source:
                    return args[0]
            return func(*args, **(kwargs or {}))

    with _ShareInsteadOfDeepCopy():
        yield


def _file_mapped_ranges() -> list[tuple[int, int]]:
    """``(start, end)`` address ranges of this process's ``*.safetensors`` memory maps (Linux; else [])."""
    ranges: list[tuple[int, int]] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip().endswith(".safetensors"):
                lo, hi = parts[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def _copy_file_backed_tensors(module: Any) -> int:
    """Copy the parameters and buffers of ``module`` that still live in a memory-mapped checkpoint
    file into ordinary memory, one tensor at a time, so the map can close; return how many were copied.

    transformers loads ``*.safetensors`` checkpoints memory-mapped: a parameter's storage is a slice of
    one map of the whole file, and the map stays open while any slice is referenced. After the compat
    switch most slices are dead (their weights were replaced by processed copies) but the few weights
    processing leaves unchanged keep the whole map, and every page of it ever read, resident: +370 MB
    of RSS on smollm2-135m. Values are copied exactly (``clone``); CPU tensors only.
    """
    ranges = _file_mapped_ranges()
    if not ranges:
        return 0
    copied = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.device.type != "cpu":
            continue
        ptr = tensor.untyped_storage().data_ptr()
        if any(lo <= ptr < hi for lo, hi in ranges):
            tensor.data = tensor.data.clone()
            copied += 1
    return copied


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
        gc.collect()
        with warnings.catch_warnings(record=True) as caught, _no_defensive_state_dict_copies():
            warnings.simplefilter("always")
            self.bridge.enable_compatibility_mode(disable_warnings=True)
        gc.collect()
        _copy_file_backed_tensors(self.bridge)
        gc.collect()
        from lmfacts.heap import return_freed_heap

        return_freed_heap()
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
    """Return False if some head parameter of the booted model was not loaded from the checkpoint in
    ``model_dir`` (judged by tensor values, see :func:`head_params_loaded`), else True.

    The evidence (which stored tensor each head parameter equals, or why it counts as not loaded) is
    appended to ``notes``. With no ``model_dir`` nothing can be judged and True is returned.
    """
    missing, evidence = head_params_loaded(bridge.original_model, model_dir)
    shown = "; ".join(evidence[:4]) + (f"; ... ({len(evidence) - 4} more)" if len(evidence) > 4 else "")
    if missing:
        names = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        notes.append(f"head parameters not loaded from the checkpoint, randomly initialised: {names}"
                     f" (evidence: {shown})")
        return False
    if evidence:
        notes.append(f"LM head loaded from the checkpoint: {shown}")
    return True


class TokenizerVocabularyError(ModelUnavailableError):
    """The tokenizer can produce ids outside the model's vocabulary and cannot be made consistent."""


_SPECIAL_ATTRS = ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token")


def _vocab_rows(bridge: Any) -> int:
    """Number of token ids the model can embed: ``cfg.d_vocab``, or fewer if the embedding is smaller."""
    n = int(bridge.cfg.d_vocab)
    with contextlib.suppress(Exception):
        emb = bridge.original_model.get_input_embeddings()
        n = min(n, int(emb.weight.shape[0]))
    return n


def _drop_added_tokens(tok: Any, n_vocab: int) -> list[str]:
    """Remove the tokenizer's added tokens with ids >= ``n_vocab`` from its backend; return their strings.

    Raises TokenizerVocabularyError when the tokenizer has no ``tokenizers`` backend to edit.
    """
    import json

    from tokenizers import Tokenizer

    bad = {i: t for i, t in dict(getattr(tok, "added_tokens_decoder", {}) or {}).items() if i >= n_vocab}
    if not bad:
        return []
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None or not hasattr(tok, "_tokenizer"):
        raise TokenizerVocabularyError(
            f"the tokenizer ({type(tok).__name__}) has tokens with ids outside the model's vocabulary of "
            f"{n_vocab} ({', '.join(f'{t.content!r}={i}' for i, t in bad.items())}) and is not a fast tokenizer "
            "whose added tokens lmfacts can remove: these ids would index past the embedding"
        )
    spec = json.loads(backend.to_str())
    spec["added_tokens"] = [t for t in spec.get("added_tokens", []) if int(t["id"]) < n_vocab]
    tok._tokenizer = Tokenizer.from_str(json.dumps(spec))
    return [str(t.content) for t in bad.values()]


def _keep_special_ids_in_vocab(bridge: Any, notes: list[str]) -> None:
    """Make sure no special-token id outside the model's vocabulary can reach the model.

    TransformerBridge gives a tokenizer without EOS/BOS/PAD the string ``<|endoftext|>``; when that string
    is not in the vocabulary it becomes a new id (= d_vocab) that indexes past the embedding. Here such
    added tokens are removed from the tokenizer, special-token attributes whose id is >= d_vocab are
    cleared, and then: with no BOS left the bridge stops prepending one (``cfg.default_prepend_bos =
    False``); with no PAD left the pad token becomes an in-vocabulary token (EOS or UNK if the model has
    one, else id 0; lmfacts masks padding by known lengths, so the id only has to be embeddable). What
    was changed goes into ``notes``. Tokenizers whose special ids are all inside the vocabulary are not
    touched.

    Raises TokenizerVocabularyError if an out-of-vocabulary id can still be produced afterwards.
    """
    tok = bridge.tokenizer
    if tok is None:
        return
    n_vocab = _vocab_rows(bridge)

    def bad_attrs() -> dict[str, int]:
        return {a: int(i) for a in _SPECIAL_ATTRS if (i := getattr(tok, f"{a}_id", None)) is not None
                and not 0 <= int(i) < n_vocab}

    bad = bad_attrs()
    strings = {getattr(tok, a) for a in bad} | {
        str(t.content) for i, t in dict(getattr(tok, "added_tokens_decoder", {}) or {}).items() if i >= n_vocab}
    if not bad and not strings:
        return
    dropped = _drop_added_tokens(tok, n_vocab)
    for attr in {**bad, **bad_attrs()}:
        setattr(tok, attr, None)
    changes = [f"tokenizer ids outside the model's vocabulary ({n_vocab}) removed: "
               + ", ".join(f"{a}={i}" for a, i in bad.items())
               + (f"; added tokens dropped: {', '.join(dropped)}" if dropped else "")]
    if "bos_token" in bad or getattr(tok, "bos_token_id", None) is None:
        if getattr(bridge.cfg, "default_prepend_bos", False):
            changes.append("no BOS token in the vocabulary, so none is prepended (cfg.default_prepend_bos=False)")
        bridge.cfg.default_prepend_bos = False
    if getattr(tok, "pad_token_id", None) is None:
        fallback = next((getattr(tok, a) for a in ("eos_token", "unk_token")
                         if getattr(tok, f"{a}_id", None) is not None), None)
        tok.pad_token = fallback if fallback is not None else tok.convert_ids_to_tokens(0)
        changes.append(f"pad token set to in-vocabulary {tok.pad_token!r} (id {tok.pad_token_id}); padding "
                       "positions are masked from known lengths, so its value does not enter any statistic")
    _check_token_ids(bridge, n_vocab, sorted(s for s in strings if s))
    notes.extend(changes)


def _check_token_ids(bridge: Any, n_vocab: int, probe_strings: list[str]) -> None:
    """Raise TokenizerVocabularyError if tokenising (and padding) text that contains ``probe_strings``
    yields an id outside ``[0, n_vocab)``."""
    tok = bridge.tokenizer
    pad = getattr(tok, "pad_token_id", None)
    if pad is None or not 0 <= int(pad) < n_vocab:
        raise TokenizerVocabularyError(f"the tokenizer has no pad token inside the model's vocabulary ({n_vocab})")
    texts = [" ".join(["Hello", *probe_strings, "world"]), "a"]
    ids = bridge.to_tokens(texts, move_to_device=False, truncate=False)
    outside = sorted({int(i) for i in ids.reshape(-1).tolist() if not 0 <= int(i) < n_vocab})
    if outside:
        names = tok.convert_ids_to_tokens(outside[:5]) if hasattr(tok, "convert_ids_to_tokens") else outside[:5]
        where, fix = "", "save the model's own tokenizer next to its weights, or resize the embedding to cover them"
        with contextlib.suppress(Exception):  # the template is the source when plain text alone stays inside
            bare = tok(texts, add_special_tokens=False)["input_ids"]
            if all(0 <= int(i) < n_vocab for row in bare for i in row):
                where = (" its post-processor (tokenizer.json 'post_processor', a template such as "
                         f"'{names[0]} $A') adds them to every text;")
                fix = ("remove them from that template or give them ids inside the vocabulary, or resize the "
                       "embedding to cover them")
        raise TokenizerVocabularyError(
            f"the tokenizer still produces ids {outside} ({names}) outside the model's vocabulary of {n_vocab} "
            f"after removing its out-of-vocabulary special tokens;{where} they would index past the embedding: "
            f"{fix}"
        )


def apply_prepend_bos(bridge: Any, info: ModelInfo, policy: str) -> None:
    """Apply ``--prepend-bos POLICY`` to a booted bridge and its ``info`` (in place), before any tokenisation.

    ``auto``: the bridge's ``cfg.default_prepend_bos`` (TransformerLens 4.3 prepends BOS for GPT-2, Llama,
    BERT's [CLS]…, not for GPT-NeoX), already in ``info.prepends_bos``. ``always`` / ``never``: sets
    ``cfg.default_prepend_bos`` and ``info.prepends_bos`` to True / False, so every tokenisation site
    (they all pass ``info.prepends_bos`` to :func:`lmfacts.probe.batching.tokenize_one`) and any direct
    ``bridge.to_tokens`` call follow it. ``info.bridge_prepends_bos`` keeps what ``auto`` would use.

    Raises:
        ModelOptionError: ``always`` on a model whose tokenizer has no BOS token inside the vocabulary
            (the message names the model); ValueError: an unknown policy.
    """
    if policy not in PREPEND_BOS_CHOICES:
        raise ValueError(f"prepend_bos must be one of {PREPEND_BOS_CHOICES}, not {policy!r}")
    info.bridge_prepends_bos = bool(info.prepends_bos)
    info.prepend_bos_policy = policy
    if policy == "auto":
        return
    if policy == "always" and info.bos_token_id is None:
        tok = bridge.tokenizer
        raise ModelOptionError(
            f"--prepend-bos always: model {info.name!r} has no BOS token to prepend (its tokenizer "
            f"{type(tok).__name__ if tok is not None else None} has bos_token="
            f"{getattr(tok, 'bos_token', None)!r}, none inside the vocabulary of {info.d_vocab}). "
            "Use --prepend-bos auto or never for this model.")
    bridge.cfg.default_prepend_bos = policy == "always"
    info.prepends_bos = policy == "always"


def _boot_path(
    model_dir: Path,
    *,
    trust_remote_code: bool,
    boot_kwargs: dict[str, Any],
    label: str | None = None,
) -> Any:
    """Boot a local HF directory by path.

    Raises UnsupportedArchitectureError (a ModelUnavailableError) before any weight is read when
    TransformerBridge supports no architecture that ``model_dir/config.json`` declares (not checked with
    ``trust_remote_code``: remote code may register one), and UnusableTokenizerError when the directory holds
    no tokenizer file. ``label``: the model as the user named it.
    """
    from transformer_lens.model_bridge import TransformerBridge

    from lmfacts.models.support import check_dir_supported, check_tokenizer_files

    hub.check_remote_code(model_dir / "config.json", trust_remote_code, str(model_dir))
    if not trust_remote_code:  # remote code may register an architecture the config alone does not show
        check_dir_supported(label or str(model_dir), model_dir)
    check_tokenizer_files(label or str(model_dir), model_dir)
    from lmfacts.models.bridge_build import explain_bridge_build_failure

    with _quiet(), _seeded(), explain_bridge_build_failure(label or str(model_dir), model_dir):
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
) -> tuple[Any, Path, dict[str, Any]]:
    """Convert (first time) and boot a GGUF file; return (bridge, converted dir, formats).

    ``formats`` holds the ``quantization`` (the storage summary if some weight matrix is quantised, else
    None) and ``weight_format`` (the storage summary, e.g. ``"GGUF F32"``) keywords for :func:`_finish`.

    Raises UnreadableModelFileError / UnsupportedArchitectureError (:func:`lmfacts.models.support.check_gguf`)
    before converting a file that cannot be read or converted, and ModelUnavailableError naming the file
    and the cause when the conversion itself fails.
    """
    from lmfacts.models.support import check_gguf, gguf_conversion_cached

    if not gguf_conversion_cached(path):
        with _quiet():
            check_gguf(str(path), path)  # a truncated / corrupt / unconvertible file: a clear error, no traceback
    try:
        with _quiet():
            converted, meta, now = gguf_cache.ensure_gguf_converted(path, hint)
    except MemoryError:
        raise
    except gguf_cache.IncompleteGGUFError as exc:  # already one paragraph naming the file and what to fix
        raise ModelUnavailableError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - transformers' GGUF loader fails in many ways; each means the same
        raise ModelUnavailableError(
            f"the GGUF file {str(path)!r} could not be converted to a Hugging Face model by transformers' GGUF "
            f"loader: {type(exc).__name__}: {str(exc)[:500]}") from exc
    notes.append(
        f"GGUF converted to {converted} in {meta.get('convert_s')} s"
        if now
        else f"GGUF booted from cached conversion {converted}"
    )
    bridge = _boot_path(converted, trust_remote_code=False, boot_kwargs=boot_kwargs)
    formats = {"quantization": meta["summary"] if meta["quantized"] else None, "weight_format": meta["summary"]}
    if not meta["quantized"]:
        notes.append(f"GGUF weight matrices are stored as floats ({meta['summary']}): not quantised")
    return bridge, converted, formats


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
    weight_format: str | None = None,
    prepend_bos: str = "auto",
) -> LoadedModel:
    """Put the bridge in eval mode, check its head and tokenizer, apply ``prepend_bos``
    (:func:`apply_prepend_bos`) and return the :class:`LoadedModel`.

    ``has_lm_head`` None: judged from the checkpoint in ``model_dir``. ``weight_format`` None: read from
    the checkpoint in ``model_dir`` (if any).

    Raises UnsupportedArchitectureError (a ModelUnavailableError) when the bridge has no single stack of
    blocks (an encoder-decoder: :func:`lmfacts.models.support.check_bridge_single_stack`);
    TokenizerVocabularyError (a ModelUnavailableError) if the tokenizer would feed the model ids
    outside its vocabulary and cannot be fixed; UnusableTokenizerError (a ModelUnavailableError) for a
    degenerate tokenizer that cannot spell text (:func:`lmfacts.models.support.check_tokenizer_spells_text`)
    or that turns ordinary text into ids past the embedding (:func:`~lmfacts.models.support.check_tokenizer_fits_embedding`)
    or that raises on ordinary text (:func:`~lmfacts.models.support.check_tokenizer_encodes_text`);
    ModelOptionError for ``prepend_bos="always"`` on a model without a BOS token.
    """
    from lmfacts.models.bridge_repair import drop_phantom_components
    from lmfacts.models.support import (
        check_bridge_single_stack,
        check_tokenizer_encodes_text,
        check_tokenizer_fits_embedding,
        check_tokenizer_spells_text,
    )

    bridge.eval()
    check_bridge_single_stack(ref.display_name, bridge)  # an encoder-decoder booted without a readable config
    notes.extend(drop_phantom_components(bridge))  # a module the adapter maps but the HF model lacks (post-LN OPT)
    if model_dir is not None and getattr(bridge.cfg, "attention_dir", "causal") == "bidirectional":
        restore_encoder_template(bridge, model_dir, notes)
    check_tokenizer_encodes_text(ref.display_name, bridge.tokenizer)
    check_tokenizer_spells_text(ref.display_name, bridge.tokenizer, _vocab_rows(bridge))
    check_tokenizer_fits_embedding(ref.display_name, bridge.tokenizer, _vocab_rows(bridge))
    _keep_special_ids_in_vocab(bridge, notes)
    if has_lm_head is None:
        has_lm_head = _has_lm_head(bridge, model_dir, notes)
    if weight_format is None:
        weight_format = checkpoint_weight_format(model_dir)
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
        weight_format=weight_format,
    )
    check_bos_fed(bridge, info)
    apply_prepend_bos(bridge, info, prepend_bos)
    return LoadedModel(bridge, info)


def restore_encoder_template(bridge: Any, model_dir: Path | str, notes: list[str]) -> bool:
    """Give an encoder's tokenizer back the special-token template its files define (``[CLS] … [SEP]``), when
    the bridge's copy lost it; return True when it was restored (a line goes into ``notes``).

    TransformerLens loads every tokenizer with ``add_bos_token=True``; for a generic fast tokenizer
    (``PreTrainedTokenizerFast`` / ``TokenizersBackend``) whose template adds ``[CLS]`` and ``[SEP]`` and which
    declares no BOS, transformers then rebuilds the template as the bare text, so every prompt would reach the
    encoder without the class and separator tokens it was pre-trained with (and no position is the
    ``[CLS]``). The tokenizer saved in ``model_dir`` is loaded as is and, when its ids for
    :data:`lmfacts.models.support.PROBE_TEXT` are the bridge's ids wrapped in special tokens, its post-processor
    replaces the bridge's and ``cfg.tokenizer_prepends_bos`` / ``tokenizer_appends_eos`` are detected again
    (TransformerLens' ``detect_tokenizer_bos_eos``). Anything else (the same ids, a different text split, a
    tokenizer that cannot be loaded) changes nothing. Encoders only: decoders keep TransformerBridge's choice.
    """
    from transformers import AutoTokenizer

    from lmfacts.models.support import PROBE_TEXT

    tok = bridge.tokenizer
    try:
        with _quiet():
            plain = AutoTokenizer.from_pretrained(str(model_dir))
        ours, theirs = list(tok(PROBE_TEXT)["input_ids"]), list(plain(PROBE_TEXT)["input_ids"])
        backend, source = tok.backend_tokenizer, plain.backend_tokenizer
    except Exception:  # noqa: BLE001 - a tokenizer that cannot be reloaded: keep the bridge's
        return False
    specials = {int(i) for i in (getattr(plain, "all_special_ids", None) or [])}
    if ours == theirs or len(theirs) <= len(ours):
        return False
    k = next((i for i in range(len(theirs) - len(ours) + 1) if theirs[i:i + len(ours)] == ours), None)
    if k is None or not all(i in specials for i in theirs[:k] + theirs[k + len(ours):]):
        return False
    backend.post_processor = source.post_processor
    try:
        from transformer_lens.model_bridge.sources._bridge_builder import detect_tokenizer_bos_eos

        bridge.cfg.tokenizer_prepends_bos, bridge.cfg.tokenizer_appends_eos = detect_tokenizer_bos_eos(tok)
    except ImportError:  # pragma: no cover - another TransformerLens layout
        bridge.cfg.tokenizer_prepends_bos = k > 0
    added = plain.convert_ids_to_tokens(theirs[:k]) + ["…"] + plain.convert_ids_to_tokens(theirs[k + len(ours):])
    notes.append(f"tokenizer template restored from {model_dir}: TransformerLens' add_bos_token reload had dropped "
                 f"the special tokens it wraps every prompt in ({' '.join(map(str, added))})")
    return True


def check_bos_fed(bridge: Any, info: ModelInfo) -> None:
    """Measure that ``info.bos_token_id`` is a real token that a BOS-prepending tokenisation puts first; if not,
    record that the model has no usable BOS (in place: ``info.prepends_bos`` False, ``bos_token_id`` and
    ``bos_note`` None, a line in ``info.notes``; ``bridge.cfg.default_prepend_bos`` False).

    :func:`lmfacts.models.metadata.build_model_info` reads ``prepends_bos`` off ``cfg.default_prepend_bos`` and
    the BOS id off the tokenizer. Two tokenizers make that false, and every prompt's first word would then be
    classed as BOS (RN-2's BOS norm, AS-1's sink, MA-2's "first" measured on a word; RS/BF content without it):

    * the BOS string is not in the vocabulary and maps to the unknown token (TransformerBridge gives a tokenizer
      without BOS/EOS ``'<|endoftext|>'``; with an ``<unk>`` its id is the unknown token's, inside the vocabulary);
    * TransformerBridge does not prepend it: ``to_tokens`` skips a BOS string that is not one token of the
      vocabulary, and an encoder's tokenizer may have lost the ``[CLS] … [SEP]`` template its files define
      (TransformerLens reloads tokenizers with ``add_bos_token=True``, which rebuilds a generic template).

    Measured on :data:`lmfacts.models.support.PROBE_TEXT` with :func:`lmfacts.probe.batching.token_ids`, the
    tokenisation every claim uses. Raises nothing of its own.
    """
    from lmfacts.models.support import PROBE_TEXT
    from lmfacts.probe.batching import token_ids

    bos, tok = info.bos_token_id, bridge.tokenizer
    if bos is None or tok is None:
        return
    name = tok.cls_token if info.is_encoder and getattr(tok, "cls_token_id", None) == bos else tok.bos_token
    unk = getattr(tok, "unk_token_id", None)
    why = None
    if unk is not None and bos == unk and str(name) != str(tok.unk_token):
        why = f"its BOS {str(name)!r} is not in the vocabulary: it maps to the unknown token {tok.unk_token!r} (id {unk})"
    else:
        ids = token_ids(bridge, PROBE_TEXT, prepend_bos=True)
        if not ids or ids[0] != bos:
            first = tok.convert_ids_to_tokens(ids[:1]) if ids else []
            why = (f"a tokenisation that prepends a BOS starts with {first} (id {ids[0] if ids else None}), not its "
                   f"BOS {str(name)!r} (id {bos}): TransformerBridge does not put it in front"
                   + (" (the tokenizer lost the class-token template its files define)" if info.is_encoder else ""))
    if why is None:
        return
    if info.bos_note:  # the EOS-for-BOS sentence no longer applies
        info.notes = [n for n in info.notes if not n.startswith(info.bos_note)]
    info.notes.append(f"no usable BOS: {why}; prompts run without one (prepends_bos false, bos_token_id none), "
                      "so no position is classed as BOS and claims resting on one skip")
    info.bos_token_id, info.bos_note, info.prepends_bos = None, None, False
    bridge.cfg.default_prepend_bos = False
    if unk is not None and bos == unk and not info.is_encoder:
        tok.bos_token = None  # so no real unknown token in a prompt is classed as a BOS (batching.special_ids)


def build_tiny_model(
    name: str,
    *,
    seed: int = 0,
    config_overrides: dict[str, Any] | None = None,
    hf_model_transform: Callable[[Any], Any] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    prepend_bos: str = "auto",
) -> LoadedModel:
    """Build a tiny random model (``tiny-gpt2`` etc.), optionally editing the HF model before booting.

    ``hf_model_transform(hf_model)`` may modify the model in place (return None) or return a
    replacement; use it to plant known structure (e.g. rescale layer l's writing weights).
    ``prepend_bos``: see :func:`apply_prepend_bos`.
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
        prepend_bos=prepend_bos,
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
    prepend_bos: str = "auto",
) -> LoadedModel:
    """Load a model by name or :class:`ModelRef` and return it booted, in eval mode, with metadata.

    ``prepend_bos`` (``auto`` | ``always`` | ``never``): whether prompts get a BOS token, see
    :func:`apply_prepend_bos`; the result is ``info.prepends_bos``.

    Raises:
        UnknownModelError: the name matches no accepted form.
        ModelUnavailableError: the weights cannot be obtained here (message says how to provide them).
        TokenizerVocabularyError: (a ModelUnavailableError) the tokenizer would feed ids outside the
            model's vocabulary and cannot be made consistent.
        ModelOptionError: ``prepend_bos="always"`` and the model has no BOS token.
    """
    t0 = time.perf_counter()
    ref = parse_model_name(ref_or_name) if isinstance(ref_or_name, str) else ref_or_name
    if ref.kind == "tiny":
        loaded = build_tiny_model(ref.target, device=device, dtype=dtype, prepend_bos=prepend_bos)
        loaded.info.name = ref.display_name
        return loaded
    kwargs = _boot_kwargs(device, dtype, n_devices, device_map)
    notes: list[str] = []
    common = dict(ref=ref, device=device, dtype=dtype, t0=t0, notes=notes, prepend_bos=prepend_bos)

    if ref.kind == "packaged":
        pkg = PACKAGED[ref.target]
        path = _package_file(pkg)
        if pkg.kind == "gguf":
            bridge, converted, formats = _load_gguf_file(path, pkg.architecture_class, kwargs, notes)
            return _finish(bridge, source="packaged", hf_id_or_path=pkg.hf_label, revision=None,
                           model_dir=converted, **formats, **common)
        model_dir = _extract_zip(path, ref.target)
        bridge = _boot_path(model_dir, trust_remote_code=trust_remote_code, boot_kwargs=kwargs)
        return _finish(bridge, source="packaged", hf_id_or_path=pkg.hf_label, revision=None,
                       model_dir=model_dir, quantization=None, **common)

    if ref.kind == "gguf-file":
        bridge, converted, formats = _load_gguf_file(Path(ref.target), None, kwargs, notes)
        return _finish(bridge, source="gguf-file", hf_id_or_path=ref.target, revision=None,
                       model_dir=converted, **formats, **common)

    if ref.kind == "local-dir":
        model_dir = Path(ref.target)
        bridge = _boot_path(model_dir, trust_remote_code=trust_remote_code, boot_kwargs=kwargs, label=ref.target)
        return _finish(bridge, source="local-dir", hf_id_or_path=ref.target, revision=revision,
                       model_dir=model_dir, quantization=_config_quantization(model_dir), **common)

    return _load_hub(ref, revision=revision, trust_remote_code=trust_remote_code, boot_kwargs=kwargs,
                     common=common)


def _config_quantization(model_dir: Path) -> str | None:
    """Describe a ``quantization_config`` in an HF config.json, if present."""
    import json

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config_quantization(config) if isinstance(config, dict) else None


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
    if plan.config_path is not None and not trust_remote_code:
        from lmfacts.models.support import check_dir_supported

        check_dir_supported(ref.target, plan.config_path.parent)
    ctx = hub.offline_mode() if plan.offline else contextlib.nullcontext()
    from lmfacts.models.bridge_build import explain_bridge_build_failure

    try:
        with ctx, _quiet(), _seeded(), explain_bridge_build_failure(ref.target, plan.config_path):
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
