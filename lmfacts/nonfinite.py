"""Why a model produced NaN/inf: the first module whose output is not finite, named in the claim's error.

A claim whose measurements are not finite is an error (E), never a failure; but the message a claim raises
says where *it* met the NaN ("rebuild check residual_add: relative error nan", "non-finite next-token loss",
"compat processing … moved by nan") and not why. Most often the cause is the dtype: float16 holds at most
65504, and a model whose stream or MLP reaches that (large-norm residual streams, massive activations,
Gemma/T5-style models trained in bfloat16) overflows to inf, then NaN after the next norm, while float32 and
bfloat16 run it fine. :func:`diagnose_nonfinite` finds the cause once per loaded model, only when a claim has
already errored on a non-finite value (:func:`is_nonfinite_error`): a weight that is not finite, else the
first module (in execution order) whose output is not finite on a short check text or on one of the run's
prompts, with the largest finite magnitude seen before it and the dtype's range. The plugin appends it to the
error of every such claim of that model.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from lmfacts import compat_check

#: Check text fed first (the compat check's); then up to :data:`MAX_PROMPTS` of the run's prompts.
CHECK_TEXT = compat_check.CHECK_TEXT
MAX_PROMPTS = 8

_CACHE: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def is_nonfinite_error(exc: BaseException | None) -> bool:
    """True when ``exc`` reports a NaN/inf measurement: a ``FloatingPointError`` (the probe's
    ``NonFiniteActivationError``, a non-finite loss), :class:`lmfacts.context.NonFiniteMeasurement`, or an
    exception whose message names a NaN/inf (``compat processing … moved by nan``)."""
    if exc is None:
        return False
    from lmfacts.context import NonFiniteMeasurement

    if isinstance(exc, (FloatingPointError, NonFiniteMeasurement)):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("non-finite", "nan/inf", "by nan", "by inf", " nan ", " nan)", " inf "))


def _first_tensor(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor) and o.is_floating_point():
                return o
    for name in ("last_hidden_state", "logits"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return None


def _hf_name(name: str) -> str:
    """The HF model's own name of a module or parameter inside TransformerBridge's wrappers."""
    return name.replace("._original_component", "").replace("_original_component.", "")


def first_nonfinite_module(model: Any, input_ids: Any) -> tuple[str, str, float, str] | None:
    """Run ``model`` (a torch module taking ``input_ids`` ``[1, T]``) once and return the first module, in
    execution order, whose floating output is not finite: ``(module name, "inf" | "NaN", largest finite |value|
    of any module output before it, the module where that value was)``; None when every output is finite.
    Module names are the HF model's (``model.layers.0.mlp.down_proj``). Raises what the forward raises."""
    import torch

    state: dict[str, Any] = {"max": 0.0, "max_at": "", "hit": None}

    def make(name: str) -> Any:
        def hook(_module: Any, _inputs: Any, out: Any) -> None:
            if state["hit"] is not None:
                return
            t = _first_tensor(out)
            if t is None or not t.is_floating_point() or t.numel() == 0:
                return
            if bool(torch.isfinite(t).all()):
                a = t.detach().abs()
                a = a[a < torch.finfo(t.dtype).max]  # a mask's fill value (the dtype's min) is no activation
                m = float(a.max()) if a.numel() else 0.0
                if m > state["max"]:
                    state["max"], state["max_at"] = m, name
                return
            kind = "NaN" if bool(torch.isnan(t).any()) and not bool(torch.isinf(t).any()) else "inf"
            state["hit"] = (name, kind, state["max"], state["max_at"])
        return hook

    # TransformerBridge wraps the HF modules (``layers.0._original_component.mlp``) and adds HookPoints; the
    # names shown are the HF model's own, and HookPoints (identities) are not hooked
    modules = [(_hf_name(n), m) for n, m in model.named_modules() if n and type(m).__name__ != "HookPoint"]
    handles = [m.register_forward_hook(make(n)) for n, m in modules]
    try:
        with torch.inference_mode():
            model(input_ids=input_ids)
    finally:
        for h in handles:
            h.remove()
    return state["hit"]


def nonfinite_weights(model: Any, limit: int = 3) -> list[str]:
    """Names (with counts) of up to ``limit`` parameters or buffers of ``model`` that hold NaN/inf."""
    import torch

    bad: list[str] = []
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_floating_point() and p.numel() and not bool(torch.isfinite(p).all()):
            n = int((~torch.isfinite(p)).sum())
            bad.append(f"{_hf_name(name)} ({n} of {p.numel()} values NaN/inf)")
            if len(bad) >= limit:
                break
    return bad


def diagnose_nonfinite(lm: Any, texts: Sequence[str] = ()) -> str | None:
    """One sentence on why ``lm`` (a :class:`lmfacts.models.loading.LoadedModel`) produces NaN/inf, or None
    when no cause is found (every weight finite and every module output finite on :data:`CHECK_TEXT` and the
    first :data:`MAX_PROMPTS` of ``texts``). Cached per loaded model (a model is diagnosed once). Never raises:
    a failure of the diagnosis itself returns None (the claim's own error stands)."""
    if lm in _CACHE:
        return _CACHE[lm]
    try:
        result = _diagnose(lm, texts)
    except Exception:  # noqa: BLE001 - a diagnosis must never replace the claim's own error
        result = None
    _CACHE[lm] = result
    return result


def _diagnose(lm: Any, texts: Sequence[str]) -> str | None:
    import torch

    from lmfacts.probe.batching import PromptError, tokenize_one

    info, model = lm.info, lm.bridge.original_model
    dtype = str(info.dtype)
    bad = nonfinite_weights(model)
    if bad:
        return (f"the model's weights hold NaN/inf ({'; '.join(bad)}): the checkpoint is damaged or was "
                f"converted wrongly, whatever the dtype")
    device = next(model.parameters()).device
    for text in [CHECK_TEXT, *list(texts)[:MAX_PROMPTS]]:
        try:
            ids, _ = tokenize_one(lm.bridge, text, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
        except PromptError:
            continue
        hit = first_nonfinite_module(model, torch.tensor([ids], dtype=torch.long, device=device))
        if hit is None:
            continue
        name, kind, before, before_at = hit
        top = float(torch.finfo(getattr(torch, dtype.removeprefix("torch."))).max)
        prompt = "the check text" if text == CHECK_TEXT else f"prompt {text[:40]!r}"
        seen = (f"; the largest finite |value| before it was {before:.4g} ({before_at})" if before_at else "")
        if dtype == "float16":
            advice = (f"float16 holds at most {top:.6g}, so this is most likely float16 overflow: run the model "
                      "with --dtype bfloat16 or --dtype float32")
        else:
            advice = f"{dtype} holds up to {top:.3g}: the model itself computes {kind} here"
        return (f"cause: running in {dtype}, the output of {name} is {kind} on {prompt} ({len(ids)} tokens), "
                f"the first module whose output is not finite{seen}; {advice}")
    return None


def explain_error(error: dict[str, str], exc: BaseException, context: Any) -> dict[str, str]:
    """A claim's error record (``{"type", "message"}``) with the cause of its NaN/inf appended to ``message``
    (``… — cause: running in float16, the output of model.layers.0.mlp.down_proj is inf …``) when ``exc`` is a
    non-finite error (:func:`is_nonfinite_error`) and the claim's model (``context``: its
    :class:`lmfacts.context.ClaimContext`, or None) is still loaded; else ``error`` unchanged. Never raises."""
    from lmfacts.context import ClaimContext

    if not is_nonfinite_error(exc) or not isinstance(context, ClaimContext):
        return error
    try:
        session = context.session
        loaded = session.pool.resident(context.target)
        if loaded is None:
            return error
        cause = diagnose_nonfinite(loaded, session.probe_texts())
    except Exception:  # noqa: BLE001 - the claim's own error stands
        return error
    if not cause or cause in error.get("message", ""):
        return error
    return {**error, "message": f"{error.get('message', '')} — {cause}"}
