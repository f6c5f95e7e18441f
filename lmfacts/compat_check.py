"""TransformerLens compat processing must not change what the model computes: checked when it is applied.

Claims registered with ``processing="compat"`` (RN-1 … RN-9) measure the model after TransformerLens'
``enable_compatibility_mode`` (fold_ln, centre_writing_weights, centre_unembed, fold_value_biases). Each step
is an identity of the function: the logits move by a per-row constant at most (``centre_unembed``; softmax
ignores it) and the stream only by its mean across d_model (``centre_writing_weights``, LayerNorm models).
Where a step misses part of a block — TransformerLens 4.3 folds ln2's gain into a Qwen2-MoE block's router
and routed experts but not into its shared expert, so the shared expert reads an unscaled input — the
"compat model" is another function, and every compat claim would report numbers about a model nobody
trained. :func:`checked_compat_processing` runs one check prompt before and after the processing and
raises :class:`CompatProcessingError` (an error, E, for every compat claim of that model; raw claims are
unaffected) when the row-centred logits moved by more than :func:`compat_tol` relative (1e-3 in float32; rounding over the blocks in bfloat16 / float16), naming
the first block whose centred stream moved too.
"""

from __future__ import annotations

import math
from typing import Any

import torch

#: The check prompt (any text the tokenizer spells; short, so the two passes cost nothing).
CHECK_TEXT = "The quick brown fox jumps over the lazy dog, and 12 birds sang: done!"
#: Float32 tolerance of the relative change of the row-centred logits; scaled to the dtype.
COMPAT_TOL_F32 = 1e-3
COMPAT_ULPS = 4.0


def compat_tol(dtype: str, n_blocks: int) -> float:
    """Tolerance of the relative change of the row-centred logits after ``n_blocks`` blocks, in ``dtype``.

    ``float_tol(COMPAT_TOL_F32, dtype, COMPAT_ULPS · √(n_blocks + 1))``: the passes before and after an exact
    fold round differently at every block, and their difference grows like a random walk over the blocks (on
    CPU, smollm2-135m, 30 blocks: 0.0375 = 0.86 · eps · √31 in bfloat16 and 0.0037 = 0.67 · eps · √31 in
    float16; minilm-l6, 6 blocks: 0.67 · eps · √7), so a fixed 4 ulps (0.031 in bfloat16) called smollm2's exact
    fold a changed function. Float32 keeps 1e-3 (its rounding is far below). Dimensionless; raises
    ``ValueError`` for an unknown dtype (:func:`lmfacts.tolerances.machine_eps`)."""
    from lmfacts.tolerances import float_tol

    return float_tol(COMPAT_TOL_F32, dtype, COMPAT_ULPS * math.sqrt(max(int(n_blocks), 0) + 1))


class CompatProcessingError(RuntimeError):
    """TransformerLens compat processing changed the model's function (see the module docstring)."""


class NonFiniteLogitsError(FloatingPointError):
    """The unprocessed model's logits on the check prompt are NaN/inf (float16 overflow, damaged weights): the
    compat check cannot compare anything (an error, E, of every compat claim; its cause is named by
    :mod:`lmfacts.nonfinite`)."""


def _centred(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().double().cpu()
    return x - x.mean(-1, keepdim=True)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm().clamp_min(1e-300))


def _pass(bridge: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(row-centred logits [T, V], per block the row-centred hook_resid_post [T, d]) of one prompt."""
    L = int(bridge.cfg.n_layers)
    streams: dict[int, torch.Tensor] = {}

    def make(i: int) -> Any:
        def hook(x: torch.Tensor, hook: Any) -> None:
            streams[i] = _centred(x[0])
        return hook

    names = [(f"blocks.{i}.hook_resid_post", make(i)) for i in range(L) if f"blocks.{i}.hook_resid_post" in bridge.hook_dict]
    with torch.inference_mode():
        logits = bridge.run_with_hooks(tokens, fwd_hooks=names, return_type="logits")
    return _centred(logits[0]), [streams[i] for i in sorted(streams)]


def checked_compat_processing(lm: Any) -> float:
    """Apply compat processing to the loaded model ``lm`` (:meth:`LoadedModel.apply_compat_processing`) and check
    that it kept the function; return the seconds spent (0.0 when it was already applied).

    Compared on :data:`CHECK_TEXT` (tokenised as the run tokenises prompts): relative Frobenius change of the
    logits, each row centred over the vocabulary, in float64. Raises :class:`CompatProcessingError` when the change is above
    :func:`compat_tol` (dtype, block count) or not finite; the model is left processed (the caller must not hand it out as compat).
    Raises :class:`NonFiniteLogitsError` (before processing anything) when the model's own logits are not finite.
    """
    from lmfacts.probe.batching import tokenize_one

    info = lm.info
    if info.weight_processing == "compat":
        return 0.0
    bridge = lm.bridge
    ids, _ = tokenize_one(bridge, CHECK_TEXT, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    tokens = torch.tensor([ids], dtype=torch.long, device=info.device)
    before = _pass(bridge, tokens)
    if not bool(torch.isfinite(before[0]).all()):  # the model itself, before any processing: not compat's doing
        raise NonFiniteLogitsError(
            f"{info.name} computes NaN/inf logits on a {len(ids)}-token check prompt in {info.dtype} before any "
            "compat processing, so whether compat processing keeps its function cannot be checked")
    seconds = lm.apply_compat_processing()
    after = _pass(lm.bridge, tokens)
    err = _rel(before[0], after[0])
    tol = compat_tol(info.dtype, int(bridge.cfg.n_layers))
    if err == err and err <= tol:  # finite and within tolerance (NaN fails the first test)
        return seconds
    moved = [(i, _rel(a, b)) for i, (a, b) in enumerate(zip(before[1], after[1], strict=True))]
    first = next(((i, e) for i, e in moved if not e <= compat_tol(info.dtype, i + 1)), None)
    where = (f"; the first block whose stream (centred across d_model) moved is {first[0]} "
             f"(blocks.{first[0]}.hook_resid_post, {first[1]:.3g})" if first is not None else "")
    raise CompatProcessingError(
        f"TransformerLens compat processing (enable_compatibility_mode: fold_ln, centring, fold_value_biases) "
        f"changed what {info.name} computes: its logits on a {len(ids)}-token check prompt moved by {err:.3g} "
        f"(relative, each row centred; tolerance {tol:.3g}, {info.dtype}){where}. A fold that misses part of a "
        f"block (a norm gain not folded into every module that reads the norm) makes the compat model another "
        f"function, so claims on compat weights are not judged on this model; raw-weight claims are unaffected.")
