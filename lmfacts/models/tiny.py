"""Build the tiny, randomly initialised models (``tiny-*``) and their byte-level tokenizer, offline.

Configs live in ``fixtures/tiny_models/<name>.json`` (``lmfacts/fixtures/tiny_models/`` in an installed
wheel; :data:`lmfacts.models.names.TINY_CONFIG_DIR`) with keys ``model_type``, ``auto_class``
(``AutoModelForCausalLM`` or ``AutoModelForMaskedLM``) and ``config`` (HF config kwargs).
``vocab_size`` always comes from the tokenizer (257 tokens: ``<|endoftext|>`` = 0 plus one per byte).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmfacts.models.cache import build_dir_atomic, cache_root
from lmfacts.models.names import TINY, UnknownModelError, accepted_forms_text

BYTE_TOKENIZER_NAME = "bytelevel-257-v1"
_SPECIAL = "<|endoftext|>"


def _build_byte_tokenizer(out: Path) -> None:
    """Save a 257-token byte-level BPE tokenizer (no merges; BOS = EOS = PAD = id 0) into ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {_SPECIAL: 0}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=_SPECIAL, eos_token=_SPECIAL, pad_token=_SPECIAL
    ).save_pretrained(str(out))


def byte_tokenizer_dir() -> Path:
    """Return the cached directory of the byte-level tokenizer, creating it atomically on first use."""
    return build_dir_atomic(cache_root() / "tokenizers" / BYTE_TOKENIZER_NAME, _build_byte_tokenizer)


def load_byte_tokenizer() -> Any:
    """Load the byte-level tokenizer from disk (the bridge needs a tokenizer with a real name_or_path)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(byte_tokenizer_dir()))


def tiny_spec(name: str) -> dict[str, Any]:
    """Read ``fixtures/tiny_models/<name>.json``."""
    if name not in TINY:
        raise UnknownModelError(f"Unknown tiny model {name!r}.\n" + accepted_forms_text())
    return json.loads(TINY[name].config_path(name).read_text())


def build_tiny_hf_model(
    name: str, *, seed: int = 0, config_overrides: dict[str, Any] | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Build a tiny HF model with a fixed seed, in eval mode: return ``(model, tokenizer, spec)``.

    The global torch RNG state is left untouched (the seed is applied inside ``fork_rng``).
    """
    import torch
    import transformers
    from transformers import AutoConfig

    spec = tiny_spec(name)
    tok = load_byte_tokenizer()
    kwargs = dict(spec["config"])
    kwargs["vocab_size"] = len(tok)
    kwargs.update(config_overrides or {})
    config = AutoConfig.for_model(spec["model_type"], **kwargs)
    auto_cls = getattr(transformers, spec["auto_class"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto_cls.from_config(config)
    return model.eval(), tok, spec


#: The commit hash the test caches' ``refs/main`` points at (any 40 hex digits do; offline loading reads refs).
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hf_cache(name: str, hub_cache: Path | str, hf_id: str, *, seed: int = 0, revision: str = "main",
                   commit: str = FAKE_COMMIT, config_overrides: dict[str, Any] | None = None) -> Path:
    """Save the tiny random model ``name`` (``tiny-neox`` …) into a Hugging Face hub cache under ``hf_id``.

    Layout (what ``huggingface_hub`` reads offline): ``HUB_CACHE/models--ORG--NAME/snapshots/COMMIT/``
    holding ``config.json``, ``model.safetensors`` (``save_pretrained``) and the byte-level tokenizer's
    files (BOS = EOS = PAD = ``<|endoftext|>`` = id 0), plus ``refs/REVISION`` containing ``COMMIT``.
    The weights are those of ``build_tiny_hf_model(name, seed=seed)``, so a model loaded from this cache
    equals the in-memory tiny model. Point ``HF_HUB_CACHE`` at ``hub_cache`` to use it. Returns the
    snapshot directory. Raises UnknownModelError for an unknown tiny name, ValueError for an ``hf_id``
    not of the form ``org/name``.
    """
    if hf_id.count("/") != 1 or not all(hf_id.split("/")):
        raise ValueError(f"hf_id must look like org/name, not {hf_id!r}")
    model, tok, _ = build_tiny_hf_model(name, seed=seed, config_overrides=config_overrides)
    repo = Path(hub_cache) / ("models--" + hf_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(snapshot))
    tok.save_pretrained(str(snapshot))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot
