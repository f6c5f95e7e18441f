"""A randomly initialised twin of a loaded model: the control for claims about what training produces.

The twin has the loaded model's HF config (``lm.bridge.original_model.config``) and class, is
initialised by HF under a fixed seed (no download, no checkpoint), put in ``eval()`` mode and booted
with ``TransformerBridge`` using the loaded model's own tokenizer. A claim such as "weights are nearly
Gaussian" or "the residual basis is privileged" is only evidence about *training* if the twin does
not show it too.

One twin is kept per process (the last one asked for), with its probe results on a small corpus
subset, because BF-3, BF-7, BF-8 and RS-1 all use it; :func:`release_twin` drops it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lmfacts.models.loading import LoadedModel, _quiet, torch_dtype
from lmfacts.models.metadata import build_model_info

TWIN_SEED = 0
TWIN_PROBE_PROMPTS = 32


@dataclass
class _TwinCache:
    key: tuple[str, str, str, int]
    twin: LoadedModel
    probes: dict[int, Any] = field(default_factory=dict)


_CACHE: _TwinCache | None = None


def _twin_key(lm: LoadedModel, seed: int) -> tuple[str, str, str, int]:
    info = lm.info
    return (info.name, info.device, info.dtype, seed)


def build_random_twin(lm: LoadedModel, seed: int = TWIN_SEED) -> LoadedModel:
    """A new same-config, randomly initialised copy of ``lm`` (seeded, eval mode, raw processing).

    The HF model class of ``lm`` (e.g. ``LlamaForCausalLM``, ``BertForMaskedLM``) is instantiated
    from a copy of its config with any quantisation config removed; the global torch RNG is not
    disturbed (the whole build runs inside ``fork_rng``).
    """
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    t0 = time.perf_counter()
    original = lm.bridge.original_model
    config = copy.deepcopy(original.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    cls = type(original)
    with torch.random.fork_rng(devices=[]), _quiet():  # booting draws from the RNG too: keep the caller's
        torch.manual_seed(seed)
        model = cls(config)
        model = model.to(device=lm.info.device, dtype=torch_dtype(lm.info.dtype)).eval()
        bridge = TransformerBridge.boot_transformers(
            f"lmfacts-twin/{lm.info.name}", hf_model=model, device=lm.info.device, dtype=torch_dtype(lm.info.dtype),
            tokenizer=copy.deepcopy(lm.tokenizer),  # booting re-runs its set-up on it: the model's stays as checked
        )
    bridge.eval()
    from lmfacts.models.bridge_repair import drop_phantom_components

    drop_phantom_components(bridge)  # as the loader does: a module the adapter maps but the HF model lacks
    info = build_model_info(
        bridge, name=f"{lm.info.name} (random twin, seed {seed})", source="random-twin",
        hf_id_or_path=lm.info.hf_id_or_path, revision=None, has_lm_head=lm.info.has_lm_head,
        quantization=None, device=lm.info.device, dtype=lm.info.dtype, load_s=time.perf_counter() - t0,
        notes=[f"{cls.__name__}(config) under torch.manual_seed({seed}); HF default initialisation"],
    )
    return LoadedModel(bridge, info)


def random_twin(lm: LoadedModel, seed: int = TWIN_SEED) -> LoadedModel:
    """The cached random twin of ``lm`` (built on first use; a different model replaces the cache)."""
    global _CACHE
    key = _twin_key(lm, seed)
    if _CACHE is None or _CACHE.key != key:
        release_twin()
        _CACHE = _TwinCache(key, build_random_twin(lm, seed))
    return _CACHE.twin


def twin_probe(lm: LoadedModel, texts: Sequence[str], *, n_prompts: int = TWIN_PROBE_PROMPTS,
               seed: int = TWIN_SEED, batch_size: int = 16) -> Any:
    """The probe result of the twin on the first ``n_prompts`` of ``texts`` (computed once per twin).

    It uses the loaded model's tokenisation settings (BOS, padding side, pad id, context length).
    """
    from lmfacts.probe.probe import run_probe

    twin = random_twin(lm, seed)
    assert _CACHE is not None
    n = min(n_prompts, len(texts))
    if n not in _CACHE.probes:
        info = lm.info
        _CACHE.probes[n] = run_probe(
            twin.bridge, list(texts[:n]), prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
            pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx,
            device=info.device, batch_size=batch_size,
        )
    return _CACHE.probes[n]


def session_twin_pass(ctx: Any) -> tuple[Any, Any]:
    """The random twin's one probe pass for ``ctx``'s target: ``(probe result, beyond pass or None)``.

    The probe accumulators see the first :data:`TWIN_PROBE_PROMPTS` of the session's probe prompts (what
    :func:`twin_probe` gives: the control of RS-1 and BF-8); where the session wants the MA / AS / LL
    reductions (``session.wants_beyond``), the same forward passes feed them over the twin's beyond prompts
    (:func:`lmfacts.measures.beyond.twin_texts`: 32 prompts of the model's beyond sample, the ≥ 64-token ones
    first), those not among the first 32 run as reduction-only batches. One forward pass per twin prompt,
    instead of a probe pass and a second beyond pass. Cached by the session's per-target model checks; the
    probe result also lands in :func:`twin_probe`'s cache. Raw processing, seed :data:`TWIN_SEED`.
    """
    from lmfacts.measures.beyond import attach_sample, session_beyond, twin_texts
    from lmfacts.probe.probe import run_probe

    session, target = ctx.session, ctx.target

    def measure(lm: LoadedModel) -> tuple[Any, Any]:
        info = lm.info
        texts = list(ctx.texts)[:TWIN_PROBE_PROMPTS]
        twin = random_twin(lm)
        extra: list[str] = []
        attached = None
        if getattr(session, "wants_beyond", False):
            causal = session.causal_check(target, "raw").causal
            btexts = twin_texts(session_beyond(ctx, processing="raw"))
            where = {t: i for i, t in reversed(list(enumerate(texts)))}
            pass_index = []
            for t in btexts:
                if t not in where:
                    where[t] = len(texts) + len(extra)
                    extra.append(t)
                pass_index.append(where[t])
            attached = attach_sample(twin.bridge, btexts, pass_index, causal=causal,
                                     lens=causal and bool(info.has_lm_head), prepend_bos=info.prepends_bos,
                                     n_ctx=info.n_ctx, choose=False)
        o = session.options
        res = run_probe(twin.bridge, texts, prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
                        pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx,
                        device=info.device, batch_size=o.batch_size, batch_tokens=o.batch_tokens,
                        reductions=attached.reductions if attached else (), extra_texts=extra,
                        extra_n_ctx=attached.max_tokens if attached else None)
        assert _CACHE is not None
        _CACHE.probes[len(texts)] = res
        bp = None if attached is None else attached.result(
            res.seconds, f"reduced inside the twin's probe pass ({len(extra)} of its {len(attached.texts)} prompts "
                         f"as reduction-only batches)")
        return res, bp

    def measure_limited(lm: LoadedModel) -> tuple[Any, Any]:
        from lmfacts.heap import fragmentation_limited

        with fragmentation_limited():  # the run's peak RSS: two models resident (lmfacts.heap)
            return measure(lm)

    return session.model_check("twin-pass", target, "raw", measure_limited)


def release_twin() -> None:
    """Drop the cached twin and its probe results."""
    global _CACHE
    if _CACHE is not None:
        _CACHE.twin.release()
    _CACHE = None
