"""A supported architecture whose configuration TransformerBridge cannot build: one clear error, not a traceback per claim.

TransformerBridge's adapters support an architecture by its class name (``FalconForCausalLM``,
``PhiForCausalLM``), but some configurations of a supported class are beyond them. In transformer_lens 4.3:

* Falcon with ``new_decoder_architecture=True`` and ``num_kv_heads > 1`` (Falcon-40B/180B's grouped K/V):
  the adapter splits the fused ``query_key_value`` weight as if there were one K/V head and raises
  ``RuntimeError: split_with_sizes expects split_sizes to sum exactly to 128 … [64, 16, 16]``;
* Phi with ``qk_layernorm=True``: the adapter declares no ``q_norm``/``k_norm`` and the bridge refuses to
  wrap the attention (``RuntimeError: … HF module has 'q_layernorm' but adapter did not declare 'q_norm'``).

The config-only check (:func:`lmfacts.models.support.check_config_supported`) passes such a model, the bridge
raises while wiring its components, and before this module every claim test showed that exception with a
40-frame traceback: nothing said the model's *configuration* was the cause or that the limitation is the
bridge's. :func:`explain_bridge_build_failure` wraps a boot and turns an exception raised inside
transformer_lens (the innermost frame outside torch lies in the transformer_lens package) into
:class:`BridgeBuildError`, a :class:`~lmfacts.models.names.ModelUnavailableError`: the plugin reports it on
every test of that model as one line without a traceback (``cannot load MODEL: …``), naming the model, its
architecture, the configuration switches set away from their transformers defaults (where the variant
usually shows), the transformer_lens version, where in transformer_lens it failed and its message.

Left alone (re-raised as they are): errors raised by transformers or huggingface_hub while reading the
checkpoint (a missing file, a corrupt tensor: they already say what is wrong), ``OSError`` (files and
network, which the hub loader explains itself), memory exhaustion (``MemoryError``, ``torch.OutOfMemoryError``:
a resource, not the configuration) and lmfacts' own ``ModelUnavailableError``.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lmfacts.models.names import ModelUnavailableError

#: Longest part of the bridge's own message kept in the error (its split-size lists can be long).
MAX_MESSAGE_CHARS = 600


class BridgeBuildError(ModelUnavailableError):
    """TransformerBridge supports the model's architecture but raised while building this configuration of it
    (a limitation of transformer_lens, not a finding; the message names the model, the configuration switches
    and where transformer_lens failed)."""


def _package_dir(name: str) -> str | None:
    """The directory of an importable package (with a trailing separator), or None."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return os.path.join(os.path.realpath(locations[0]), "") if locations else None


def bridge_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The frame of ``exc``'s traceback where transformer_lens raised it, or None when it was not raised there.

    That is the innermost frame outside torch (a torch op failing on arguments transformer_lens gave it, as the
    Falcon split does, counts as transformer_lens' failure) when that frame's file lies inside the installed
    transformer_lens package. Frames in transformers, huggingface_hub or lmfacts give None. Reads only the
    traceback; raises nothing.
    """
    tl_dir, torch_dir = _package_dir("transformer_lens"), _package_dir("torch")
    if tl_dir is None:
        return None
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        path = os.path.realpath(fr.filename)
        if torch_dir is not None and path.startswith(torch_dir):
            continue
        return fr if path.startswith(tl_dir) else None
    return None


def changed_switches(config: Mapping[str, Any]) -> dict[str, bool]:
    """The boolean entries of the HF config dict ``config`` that differ from the default of transformers'
    configuration class for its ``model_type`` (``{"new_decoder_architecture": True}``, ``{"qk_layernorm":
    True}``): the switches that select an architecture's variant. ``{}`` when the model_type is unknown to
    transformers or its config class cannot be built without arguments. Imports transformers' config mapping."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        return {}
    try:
        from transformers import CONFIG_MAPPING

        defaults = CONFIG_MAPPING[model_type]().to_dict()
    except Exception:  # noqa: BLE001 - an unknown model_type, or a config class that needs arguments: no defaults
        return {}
    skip = {"return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_cache",
            "tie_word_embeddings", "is_decoder", "is_encoder_decoder", "add_cross_attention"}
    return {k: v for k, v in sorted(config.items()) if isinstance(v, bool) and k not in skip
            and k in defaults and isinstance(defaults[k], bool) and defaults[k] != v}


def read_config(path: Path | str | None) -> dict[str, Any]:
    """The HF config dict at ``path`` (a ``config.json`` or the directory holding one); ``{}`` when absent or
    unreadable (the error message then names fewer details; the preflight reports unreadable files itself)."""
    if path is None:
        return {}
    p = Path(path)
    p = p / "config.json" if p.is_dir() else p
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def build_failure_message(model: str, exc: BaseException, frame: traceback.FrameSummary,
                          config: Mapping[str, Any]) -> str:
    """The text of :class:`BridgeBuildError` for ``model`` whose boot raised ``exc`` at ``frame`` (inside
    transformer_lens); ``config``: its HF config dict (may be empty)."""
    from lmfacts.versions import package_version

    tl_version = package_version("transformer_lens") or "unknown version"  # None: a source checkout
    declared = [a for a in (config.get("architectures") or []) if isinstance(a, str)]
    arch = declared[0] if declared else (f"model_type {config['model_type']!r}" if config.get("model_type")
                                         else "its architecture")
    switches = changed_switches(config)
    variant = (f"; its configuration sets {', '.join(f'{k}={v}' for k, v in switches.items())} (not the "
               "transformers default)" if switches else "")
    tl_dir = _package_dir("transformer_lens") or ""
    where = os.path.realpath(frame.filename)
    where = "transformer_lens/" + where[len(tl_dir):] if tl_dir and where.startswith(tl_dir) else frame.filename
    text = " ".join(str(exc).split())
    text = text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + " …"
    return (f"model {model!r} cannot be run: TransformerBridge (transformer_lens {tl_version}) supports {arch} "
            f"but failed to build this configuration of it{variant}. It raised {type(exc).__name__} in "
            f"{where}:{frame.lineno} ({frame.name}): {text}\n"
            "This is a limitation of TransformerLens' adapter for this configuration, not a finding about the "
            "model: no claim can be measured on it. Use a transformer_lens release whose adapter supports it, "
            f"or remove --model {model}.")


@contextlib.contextmanager
def explain_bridge_build_failure(model: str, config: Mapping[str, Any] | Path | str | None = None) -> Iterator[None]:
    """Run a TransformerBridge boot; an exception transformer_lens raises in it becomes :class:`BridgeBuildError`.

    ``model``: the model as the user named it; ``config``: its HF config dict, or the path of its
    ``config.json`` / directory (read only if the boot fails). Which exceptions are converted: see
    :func:`bridge_frame` (raised inside transformer_lens), except ``MemoryError``, ``torch.OutOfMemoryError``,
    ``OSError`` (files, network) and :class:`~lmfacts.models.names.ModelUnavailableError`, which pass through
    unchanged, as does every
    exception raised elsewhere (transformers, huggingface_hub, lmfacts). The original exception is the new
    one's ``__cause__``. Yields nothing.
    """
    try:
        yield
    except (MemoryError, OSError, ModelUnavailableError):
        raise
    except Exception as exc:
        import torch

        oom = getattr(torch, "OutOfMemoryError", None)
        if oom is not None and isinstance(exc, oom):
            raise
        frame = bridge_frame(exc)
        if frame is None:
            raise
        cfg = dict(config) if isinstance(config, Mapping) else read_config(config)
        raise BridgeBuildError(build_failure_message(model, exc, frame, cfg)) from exc
