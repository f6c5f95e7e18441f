"""Build the tiny, randomly initialised models (``tiny-*``) and their byte-level tokenizer, offline.

Configs live in ``fixtures/tiny_models/<name>.json`` with keys ``model_type``, ``auto_class``
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
