"""Convert a GGUF file once into a plain Hugging Face directory, cached by the file's sha256.

The first load dequantises the GGUF with transformers' GGUF loader (slow: ~15 s for 135M params),
strips the quantizer markers and saves an fp32 HF directory (model + tokenizer) under
``<cache>/gguf/<sha256 prefix>-<converter tag>/`` (the tag names the transformers version and the
conversion's version). Later loads boot that directory by path (~1 s). The storage summary of the
weight matrices and whether any is quantised (read with ``gguf.GGUFReader``) are stored next to it in
``lmfacts-gguf.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from lmfacts.models.cache import build_dir_atomic, cache_root, sha256_file, write_json_atomic

META_FILE = "lmfacts-gguf.json"
META_VERSION = 2  # 2: "quantized" flag, summary over weight matrices only
_FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}
_GROUP_ORDER = ["attention", "MLP", "embeddings", "unembedding", "other", "norms"]


def _tensor_group(name: str) -> str:
    """Map a GGUF tensor name (``blk.3.attn_q.weight``) to a coarse group name."""
    parts = name.split(".")
    stem = parts[2] if parts[0] == "blk" and len(parts) > 2 else parts[0]
    if "norm" in stem:
        return "norms"
    if stem in ("token_embd", "token_types", "position_embd"):
        return "embeddings"
    if stem == "output":
        return "unembedding"
    if stem.startswith("attn"):
        return "attention"
    if stem.startswith("ffn"):
        return "MLP"
    return "other"


def summarise_gguf_quantization(path: Path) -> dict[str, Any]:
    """Read the tensor storage types of a GGUF file and summarise those of its weight matrices.

    Only tensors with two or more dimensions count as weight matrices (norm gains and biases are
    stored as F32 in every GGUF and say nothing about quantisation).

    Returns a dict with
      * ``summary``: the matrices' storage, most common type first, e.g.
        ``"GGUF Q4_1 (attention/MLP), Q8_0 (embeddings)"`` or, for float files, ``"GGUF F32"`` /
        ``"GGUF F16 (attention/MLP), F32 (embeddings)"``;
      * ``quantized``: True if some weight matrix is stored in a non-float type (Q*, IQ*, K-quants, ...),
        False if all are F32/F16/BF16/F64;
      * ``tensor_types``: {group: {type: count}} over all tensors; ``gguf_architecture``.
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    by_type: dict[str, set[str]] = defaultdict(set)
    type_weight: Counter[str] = Counter()
    for tensor in reader.tensors:
        group, qtype = _tensor_group(tensor.name), tensor.tensor_type.name
        counts[group][qtype] += 1
        if sum(int(d) > 1 for d in tensor.shape) >= 2:
            by_type[qtype].add(group)
            type_weight[qtype] += 1
    arch_field = reader.fields.get("general.architecture")
    gguf_arch = bytes(arch_field.parts[arch_field.data[0]]).decode() if arch_field is not None else None

    quantised = any(t not in _FLOAT_TYPES for t in type_weight)
    order = sorted(type_weight, key=lambda t: (t in _FLOAT_TYPES, -type_weight[t], t))
    if len(order) == 1 and not quantised:
        summary = f"GGUF {order[0]}"
    else:
        summary = "GGUF " + ", ".join(
            f"{t} ({'/'.join(sorted(by_type[t], key=_GROUP_ORDER.index))})" for t in order
        )
    return {
        "summary": summary,
        "quantized": quantised,
        "tensor_types": {g: dict(c) for g, c in counts.items()},
        "gguf_architecture": gguf_arch,
        "meta_version": META_VERSION,
    }


class IncompleteGGUFError(RuntimeError):
    """transformers' GGUF loader built a model some of whose parameters the file did not fill."""


def check_gguf_load_complete(path: Path, architecture: str, info: dict[str, Any]) -> None:
    """Raise :class:`IncompleteGGUFError` unless every parameter of the loaded model came from the file.

    ``info`` is ``from_pretrained(..., output_loading_info=True, ignore_mismatched_sizes=True)``'s second
    value: ``missing_keys`` (parameters the file does not hold, or that transformers' GGUF name map does not
    reach) and ``mismatched_keys`` ((name, shape in the file, shape the header's config asks for)). transformers
    only logs both and initialises those parameters at random, so the model would be partly random and every
    claim on it a statement about random weights (seen: a Bloom GGUF without its ``token_embd_norm``/``ffn_norm``
    tensors; a Qwen3 GGUF whose header lacks ``attention.key_length``, so ``head_dim`` defaults to 128).
    """
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda t: str(t[0]))
    if not missing and not mismatched:
        return
    parts = []
    if missing:
        shown = ", ".join(missing[:6]) + (f", … ({len(missing)} in all)" if len(missing) > 6 else "")
        parts.append(f"{len(missing)} parameter(s) are not in the file (or not mapped by this transformers' GGUF "
                     f"loader) and would be initialised at random: {shown}")
    if mismatched:
        shown = "; ".join(f"{name}: {tuple(a)} in the file, {tuple(b)} expected" for name, a, b in mismatched[:3])
        more = f"; … ({len(mismatched)} in all)" if len(mismatched) > 3 else ""
        parts.append(f"{len(mismatched)} tensor(s) have another shape than the {architecture} built from the "
                     f"file's header (a hyper-parameter such as head_dim / attention.key_length, the head counts "
                     f"or the context length is missing from or wrong in the header, or this transformers' GGUF loader reads it "
                     f"into another config field, as 5.x does GPT-2's context_length): {shown}{more}")
    raise IncompleteGGUFError(
        f"the GGUF file {str(path)!r} does not fill every parameter of the {architecture} transformers builds "
        f"from it: " + "; and ".join(parts) + ". lmfacts will not judge a partly random model: write the missing "
        "tensors / header keys into the GGUF (llama.cpp's convert_hf_to_gguf.py writes them), or pass the "
        "original Hugging Face checkpoint directory instead.")


def load_gguf_direct(path: Path, dtype: Any = None) -> tuple[Any, Any]:
    """Dequantise a GGUF file with transformers: return ``(hf_model in eval mode, tokenizer)``.

    Raises :class:`IncompleteGGUFError` when some parameter of the model is not filled from the file
    (:func:`check_gguf_load_complete`), and whatever transformers' loader raises otherwise.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except KeyError as exc:  # transformers' tokenizer builders index the header's tokenizer.ggml.* fields
        field = exc.args[0] if exc.args else "?"
        raise IncompleteGGUFError(
            f"the GGUF file {str(path)!r} lacks the tokenizer field tokenizer.ggml.{field} that transformers needs "
            f"to build its tokenizer (KeyError {field!r}; a BPE vocabulary needs tokenizer.ggml.merges or "
            "tokenizer.ggml.scores, a SentencePiece one tokenizer.ggml.scores): write it into the GGUF (llama.cpp's "
            "convert_hf_to_gguf.py does), or pass the original Hugging Face checkpoint directory instead.") from exc
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=dtype or torch.float32,
            output_loading_info=True, ignore_mismatched_sizes=True,
        )
    except AssertionError as exc:
        if "padding_idx" not in str(exc).lower():
            raise
        raise IncompleteGGUFError(
            f"the GGUF file {str(path)!r} could not be converted: its header has no tokenizer.ggml.padding_token_id "
            f"inside its {len(tok)}-token vocabulary, so transformers falls back to the architecture's default pad id "
            "(Phi-3: 32000), which lies past the embedding (nn.Embedding: 'Padding_idx must be within "
            "num_embeddings'): write tokenizer.ggml.padding_token_id (any id below the vocabulary size, e.g. the "
            "EOS id) into the GGUF, or pass the original Hugging Face checkpoint directory instead.") from exc
    check_gguf_load_complete(path, type(model).__name__, info)
    return model.eval(), tok


def _architecture_class(model: Any, hint: str | None) -> str:
    """Return the HF architecture class name of a GGUF-loaded model (its concrete class)."""
    name = type(model).__name__
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return name
    if hint:
        return hint
    raise RuntimeError(f"Cannot determine the HF architecture class of the GGUF model ({name}).")


def _convert(path: Path, out: Path, sha256: str, architecture_hint: str | None) -> None:
    """Dequantise ``path`` and save it, its tokenizer and the metadata file into ``out``."""
    t0 = time.perf_counter()
    model, tok = load_gguf_direct(path)
    arch = _architecture_class(model, architecture_hint)
    model.config.architectures = [arch]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    del model
    meta = summarise_gguf_quantization(path)
    meta.update(
        source=str(path.resolve()),
        sha256=sha256,
        converter=converter_tag(),
        architecture_class=arch,
        convert_s=round(time.perf_counter() - t0, 2),
    )
    write_json_atomic(out / META_FILE, meta)


#: Bump when :func:`_convert` changes what it writes (a conversion by an older lmfacts is then redone).
CONVERT_VERSION = 2  # 2: a conversion leaving parameters randomly initialised is refused


def converter_tag() -> str:
    """The converter a cached conversion was made by: ``"tf<transformers version>-c<CONVERT_VERSION>"``.

    transformers' GGUF loader does the dequantisation, the tensor renaming (and Llama's q/k un-permutation) and
    builds the tokenizer from the header; its releases change all three (a new tokenizer builder, a fixed
    dequantiser), so a conversion made by another version may not be the model this transformers would load.
    Read from the installed package's metadata (no import of transformers or torch). Raises nothing: an
    unreadable version reads ``"tfunknown"``.
    """
    from lmfacts.versions import package_version

    return f"tf{package_version('transformers') or 'unknown'}-c{CONVERT_VERSION}"


def converted_dir_for(path: Path) -> Path:
    """Return the cache directory a GGUF file converts into (whether or not it exists yet):
    ``<cache>/gguf/<sha256 prefix>-<converter_tag()>``, so a changed file (another digest) or another
    converter (a transformers upgrade, a new lmfacts conversion) gets a fresh conversion. Raises OSError when
    ``path`` cannot be read."""
    return cache_root() / "gguf" / f"{sha256_file(path)[:24]}-{converter_tag()}"


def ensure_gguf_converted(path: Path, architecture_hint: str | None = None) -> tuple[Path, dict[str, Any], bool]:
    """Return ``(hf_dir, metadata, converted_now)`` for a GGUF file, converting it on first use.

    ``metadata`` holds the keys of :func:`summarise_gguf_quantization` plus ``source``, ``sha256``,
    ``converter`` (:func:`converter_tag`), ``architecture_class`` and ``convert_s``. Metadata written by an older lmfacts is re-read from the
    GGUF file (the conversion itself is kept).
    """
    path = Path(path)
    final = converted_dir_for(path)
    converted_now = False
    if not (final / META_FILE).is_file():
        if final.is_dir():  # not written by us (our writes are atomic): rebuild it
            shutil.rmtree(final)
        sha = sha256_file(path)
        build_dir_atomic(final, lambda tmp: _convert(path, tmp, sha, architecture_hint))
        converted_now = True
    meta = json.loads((final / META_FILE).read_text())
    if meta.get("meta_version") != META_VERSION:
        meta.update(summarise_gguf_quantization(path))
        write_json_atomic(final / META_FILE, meta)
    return final, meta, converted_now
