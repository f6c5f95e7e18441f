"""The one registration site for premises: what a claim assumes about a model before it measures.

A claim declares the premises it rests on in its registration, ``@claim("RN-6", …,
requires=("causal_decoder", "additive_residual", "mlp_rebuild"))``; the plugin evaluates them on
the loaded model before the claim's body runs and skips the claim, naming the premise and its
measured evidence, when one does not hold ("not applicable" is not a finding about the model).

Every premise is read off the loaded model itself — its modules, its tokenizer, its checkpoint, a
forward pass over corpus prompts — never off its architecture's name:

========================  =================================================================
``causal_decoder``        no attention mass on later positions (a causal mask), measured on
                          one corpus prompt (:func:`lmfacts.rebuild.measure_causal_leak`)
``bos_prepended``         the tokenizer prepends a BOS token whose id is inside the vocabulary
``trained_lm_head``       the unembedding was loaded from the checkpoint, not initialised
``float_weights``         no weight matrix is stored in a quantised type
``additive_residual``     pre-norm blocks: hook_attn_out / hook_mlp_out are the output
                          projections and are added to the stream unnormalised
                          (:mod:`lmfacts.rebuild`, ``residual_add`` + ``*_is_*_proj``)
``ov_rebuild``            W_V·W_O from the weights reproduces the hooked v and o-projection
``mlp_rebuild``           the MLP rebuilt from its weights (norm convention, activation)
                          reproduces mlp.hook_pre and the down projection
``residual_sum``          resid_post = resid_pre + attn_out + mlp_out (the ``residual_add``
                          check alone: the stream is never re-normalised)
``centred_stream``        max |mean|/std across d_model of sampled content tokens ≤ 1e-4
                          (dtype-scaled), measured on the probe
``attention_patterns``    blocks.{l}.attn.hook_pattern fires at every block and its rows sum
                          to 1 (dtype-scaled 1e-4), measured by the MA/AS/LL reductions
``sink_visible``          no query of the AS window has its attention on the first position
                          masked at every head (a sliding window narrower than the window),
                          measured on one corpus prompt (:mod:`lmfacts.measures.attention_window`)
``has_massive_activations`` some block output has |a| > 100 and > 1000 × its median |a|,
                          measured by the MA/AS/LL reductions (:func:`lmfacts.measures.beyond.session_beyond`,
                          which ride on the one probe pass)
``lens_readout``          the logit lens's decoding (final norm → unembedding) of the last
                          block's output reproduces the model's output logits, logit scaling
                          and soft-capping included (:func:`lmfacts.rebuild.measure_lens_readout`)
========================  =================================================================

Tolerances follow the model's dtype (:mod:`lmfacts.tolerances`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PremiseResult:
    """Whether a premise holds for one model, and the measured evidence (shown in the report)."""

    holds: bool
    evidence: str
    values: dict[str, Any] | None = None


@dataclass(frozen=True)
class Premise:
    """A named assumption a claim rests on; ``check(ctx, processing)`` measures it on the model."""

    name: str
    statement: str
    check: Callable[[Any, str], PremiseResult]


PREMISES: dict[str, Premise] = {}


def premise(name: str, statement: str) -> Callable[[Callable[[Any, str], PremiseResult]],
                                                    Callable[[Any, str], PremiseResult]]:
    """Register ``check(ctx, processing) -> PremiseResult`` as premise ``name`` (a duplicate is an error)."""

    def decorate(fn: Callable[[Any, str], PremiseResult]) -> Callable[[Any, str], PremiseResult]:
        if name in PREMISES:
            raise ValueError(f"premise {name!r} is registered twice")
        PREMISES[name] = Premise(name, statement, fn)
        return fn

    return decorate


def unknown_premises(names: tuple[str, ...]) -> list[str]:
    """The names in ``names`` that are not registered premises."""
    return [n for n in names if n not in PREMISES]


# --------------------------------------------------------------------------------------------
# The premises
# --------------------------------------------------------------------------------------------
@premise("causal_decoder", "a decoder with a causal attention mask")
def _causal_decoder(ctx: Any, processing: str) -> PremiseResult:
    check = ctx.session.causal_check(ctx.target, processing)
    dev, tol, holds = check.leak, check.tol, check.causal
    verdict = "causal" if holds else "not causal: bidirectional attention, as in an encoder"
    return PremiseResult(holds, f"{verdict}; {check.how}: {dev:.3g} (tolerance {tol:.3g}, {check.n_tokens}-token "
                                f"corpus prompt)", {"causal_leak": dev})


@premise("bos_prepended", "a BOS token (inside the vocabulary) is prepended to every prompt")
def _bos_prepended(ctx: Any, processing: str) -> PremiseResult:
    """Measured: tokenise the first corpus prompt the way the probe does and look at its first id."""
    from lmfacts.probe.batching import tokenize_one

    info = ctx.info
    bos = info.bos_token_id
    if bos is None or not 0 <= bos < info.d_vocab:
        return PremiseResult(False, f"the tokenizer has no BOS token inside the vocabulary (bos_token_id={bos}, "
                                    f"d_vocab {info.d_vocab})")
    text = ctx.texts[0]
    ids, _ = tokenize_one(ctx.model(processing).bridge, text, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    if ids and ids[0] == bos:
        note = getattr(info, "bos_note", None)  # an EOS standing in for an undeclared BOS; an encoder's [CLS]
        return PremiseResult(True, f"BOS id {bos} is the first token of the prompts" + (f" ({note})" if note else ""))
    from lmfacts.models.metadata import bos_convention

    return PremiseResult(False, f"prompts reach the model without a BOS: {text[:24]!r} starts with id "
                                f"{ids[0] if ids else None}, not the BOS id {bos} ({bos_convention(info)})")


@premise("trained_lm_head", "the unembedding (LM head) was loaded from the checkpoint")
def _trained_lm_head(ctx: Any, processing: str) -> PremiseResult:
    info = ctx.info
    if info.has_lm_head:
        return PremiseResult(True, "LM head loaded from the checkpoint")
    why = [n for n in info.notes if "head" in n.lower()]
    return PremiseResult(False, why[0] if why else "the LM head's parameters are not in the checkpoint")


@premise("float_weights", "weights stored as floats (no quantised weight matrix)")
def _float_weights(ctx: Any, processing: str) -> PremiseResult:
    q = ctx.info.quantization
    return PremiseResult(q is None, "float weights" if q is None else f"weights are quantised ({q})")


def _rebuild_premise(group: str) -> Callable[[Any, str], PremiseResult]:
    def check(ctx: Any, processing: str) -> PremiseResult:
        report = ctx.session.rebuild(ctx.target, processing)
        holds, evidence = report.holds(group)
        return PremiseResult(holds, evidence, report.to_dict())
    return check


premise("additive_residual", "pre-norm blocks: hook_attn_out and hook_mlp_out are the sublayers' output projections, "
        "added to the stream unnormalised")(_rebuild_premise("additive_residual"))
premise("ov_rebuild", "W_OV = W_V·W_O rebuilt from the weights reproduces the hooked v and o-projection")(
    _rebuild_premise("ov_rebuild"))
premise("mlp_rebuild", "the MLP rebuilt from its weights reproduces mlp.hook_pre and its output on corpus inputs")(
    _rebuild_premise("mlp_rebuild"))


# --------------------------------------------------------------------------------------------
# Premises of the residual-norm claims (RN)
# --------------------------------------------------------------------------------------------
#: Float32 tolerance of ``centred_stream`` (max |mean|/std); scaled to the run's dtype.
CENTRED_TOL_F32 = 1e-4


#: Float32 tolerance of ``norms_folded`` (relative distance of a block norm's output from the parameter-free
#: LayerNorm / RMS normalisation of the same input); scaled to the run's dtype.
FOLDED_TOL_F32 = 1e-3


def unfolded_norms(bridge: Any, tol: float, *, n_rows: int = 8, seed: int = 0) -> list[tuple[str, float]]:
    """The block norms of ``bridge`` (``blocks.{l}.ln1`` / ``ln2``) whose output on random inputs is not a
    parameter-free normalisation: ``[(name, relative distance)]``, empty when every norm's gain and bias were
    folded into the weights that read it (TransformerLens ``fold_ln``) or never differed from 1 and 0.

    Measured, not read off the architecture: ``x`` ~ N(0, I) [n_rows, d_model] (seeded) goes through each
    norm module; the distance is min over LayerNorm ``(x − mean)/std`` and RMS ``x/rms`` of
    ``‖norm(x) − ref‖ / ‖ref‖``, and a norm counts as unfolded when it exceeds ``tol``. Norms the bridge does
    not have (a parallel block's missing ln2) are skipped. Raises nothing for a norm that cannot be called
    (it is reported with distance ``nan``).
    """
    import torch

    out: list[tuple[str, float]] = []
    for i, block in enumerate(bridge.blocks):
        for name in ("ln1", "ln2"):
            mod = getattr(block, name, None)
            if mod is None:
                continue
            p = next(iter(mod.parameters()), None)
            if p is None:
                continue  # parameter-free (OLMo's LayerNorm, LayerNormPre after fold_ln)
            d = p.shape[-1]
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(1, n_rows, d, generator=g, dtype=torch.float32).to(p.device, p.dtype)
            try:
                with torch.inference_mode():
                    y = mod(x).float()
            except Exception:  # noqa: BLE001 - reported as not measurable
                out.append((f"blocks.{i}.{name}", float("nan")))
                continue
            xf = x.float()
            c = xf - xf.mean(-1, keepdim=True)
            refs = (c / c.pow(2).mean(-1, keepdim=True).sqrt(), xf / xf.pow(2).mean(-1, keepdim=True).sqrt())
            dist = min(float((y - r).norm() / r.norm()) for r in refs)
            if not dist <= tol:
                out.append((f"blocks.{i}.{name}", dist))
    return out


@premise("norms_folded", "every block norm (ln1, ln2) is parameter-free after compat processing: its gain and bias "
         "are folded into the weights that read it (TransformerLens fold_ln), so W_V, W_in on normalised "
         "inputs are the model's")
def _norms_folded(ctx: Any, processing: str) -> PremiseResult:
    from lmfacts.tolerances import float_tol

    lm = ctx.model(processing)
    tol = float_tol(FOLDED_TOL_F32, lm.info.dtype)
    bad = unfolded_norms(lm.bridge, tol)
    if not bad:
        return PremiseResult(True, f"every block norm is a parameter-free normalisation (tolerance {tol:.3g}, "
                                   f"{processing} weights)")
    why = [n for n in lm.info.notes if "fold_ln" in n]
    shown = ", ".join(f"{n} {v:.3g}" for n, v in bad[:4]) + (f", … ({len(bad)} norms)" if len(bad) > 4 else "")
    return PremiseResult(False, f"norm output differs from a parameter-free normalisation of the same input by "
                                f"{shown} (relative, tolerance {tol:.3g}, {processing} weights): its gain/bias "
                                "is not folded into the weights that read it" + (f" ({why[0]})" if why else ""),
                         {"unfolded": [n for n, _ in bad]})


premise("residual_sum", "the stream is a plain sum: resid_post = resid_pre + attn_out + mlp_out at every block "
        "(never re-normalised)")(_rebuild_premise("residual_sum"))
# Weaker than additive_residual: it says nothing about what hook_attn_out / hook_mlp_out are (a norm
# after the sublayer, as in Gemma 2, is allowed), only that the stream is their sum and so is never
# re-normalised (a post-LN block fails it). Claims about the stream's own norm (RN-1, RN-2, RN-4)
# rest on it; claims about the sublayers' weights need additive_residual.


@premise("centred_stream", "the residual stream is zero-mean across d_model at every point (content tokens)")
def _centred_stream(ctx: Any, processing: str) -> PremiseResult:
    """Measured on the probe's sample of content token vectors (≤ 512 per residual point):
    max |mean(x)|/std(x) over tokens and points ≤ ``float_tol(1e-4)``.

    TransformerLens compat processing (center_writing_weights) centres every write into the stream
    of a LayerNorm model; an RMSNorm model's stream, or an encoder's (post-LN outputs carry the
    LayerNorm bias), is not centred. The verdict is the measurement, not the norm type (which only
    annotates the evidence). Raises ``ValueError`` when the probe sampled no content token and
    :class:`lmfacts.context.NonFiniteMeasurement` when the statistic is NaN/inf (an ``error``
    outcome: an invalid measurement is not a premise that fails).
    """
    from lmfacts.measures.rn import centring_stats
    from lmfacts.tolerances import float_tol

    stats = centring_stats(ctx.probe(processing))
    worst, n = stats.max_mean_over_std, sum(stats.n_tokens)
    if n == 0:
        raise ValueError("centred_stream: the probe sampled no content token vector")
    if not np.isfinite(worst):
        from lmfacts.context import NonFiniteMeasurement

        raise NonFiniteMeasurement(f"centred_stream: max |mean|/std over the sampled content tokens is {worst} "
                                   f"(a NaN/inf activation, or a token with std 0)")
    tol = float_tol(CENTRED_TOL_F32, ctx.dtype)
    holds = bool(worst <= tol)
    point = int(np.nanargmax(stats.mean_over_std))
    norm = getattr(ctx.info, "normalization", None)
    return PremiseResult(holds, f"max |mean|/std over {n} sampled content tokens at {len(stats.n_tokens)} points "
                                f"= {worst:.3g}{'' if holds else f' (point {point})'} (tolerance {tol:.3g}, "
                                f"{ctx.dtype}, {processing} weights, normalization {norm})",
                         {"max_mean_over_std": worst, "tol": tol, "n_tokens": n})


# --------------------------------------------------------------------------------------------
# Premises of the massive-activation / attention-sink / logit-lens claims (MA, AS, LL)
# --------------------------------------------------------------------------------------------
#: Float32 tolerance of ``attention_patterns`` (max |Σ_k A[q, k] − 1| over real queries); scaled to the dtype.
PATTERN_ROWSUM_TOL_F32 = 1e-4


@premise("attention_patterns", "the bridge exposes softmax attention patterns (blocks.{l}.attn.hook_pattern) whose "
         "rows sum to 1")
def _attention_patterns(ctx: Any, processing: str) -> PremiseResult:
    """Measured by the MA/AS/LL reductions on the probe pass (:func:`lmfacts.measures.beyond.session_beyond`): the hook exists at every block, fired,
    and max |Σ_k A[q, k] − 1| over the real queries of the AS prompts ≤ ``float_tol(1e-4)``. A fused
    (non-eager) attention kernel never materialises the pattern: the hook is absent or does not fire."""
    from lmfacts.measures.beyond import session_beyond
    from lmfacts.tolerances import float_tol

    bp = session_beyond(ctx, processing=processing)
    L = ctx.info.n_layers
    if bp.sinks is None:
        return PremiseResult(False, f"blocks.{{l}}.attn.hook_pattern is not exposed at every one of the {L} blocks "
                                    f"(no eager attention pattern to read)")
    fired = sorted(bp.sinks.fired)
    if len(fired) != L:
        return PremiseResult(False, f"attn.hook_pattern fired at {len(fired)} of {L} blocks (blocks "
                                    f"{sorted(set(range(L)) - set(fired))[:5]} never did)")
    if bp.sinks.n_rows_checked == 0:
        return PremiseResult(True, f"attn.hook_pattern fires at all {L} blocks (no prompt of ≥ {bp.sinks.n_tokens} "
                                   f"tokens to check its rows on)", {"n_rows_checked": 0})
    dev = bp.sinks.max_row_dev
    tol = float_tol(PATTERN_ROWSUM_TOL_F32, ctx.dtype)
    return PremiseResult(bool(np.isfinite(dev) and dev <= tol),
                         f"attn.hook_pattern at all {L} blocks; max |row sum − 1| = {dev:.3g} over "
                         f"{bp.sinks.n_rows_checked} (head, query) rows (tolerance {tol:.3g})",
                         {"max_row_sum_deviation": dev, "tol": tol})


@premise("sink_visible", "every query of the attention-sink window can see the first position at every block "
         "(no sliding window narrower than the window)")
def _sink_visible(ctx: Any, processing: str) -> PremiseResult:
    """Measured on the first corpus prompt with ≥ 64 tokens (else the longest), as the AS reduction feeds it (a
    causal model: its first 64 tokens; an encoder: the whole prompt): the queries whose
    ``blocks.{l}.attn.hook_pattern`` weight on position 0 is exactly 0 at every head (masked), per block
    (:func:`lmfacts.measures.attention_window.measure_sink_visibility`). It holds when there is none. Gu et al.'s
    importance averages over the queries that can see the key; the AS reduction averages over every query of
    its window, which is the same statistic only when every query sees the sink."""
    from lmfacts.measures.attention_window import measure_sink_visibility
    from lmfacts.measures.beyond import SINK_TOKENS
    from lmfacts.probe.batching import tokenize_one

    causal = ctx.session.causal_check(ctx.target, processing).causal

    def measure(lm: Any) -> Any:
        info = lm.info
        best: list[int] = []
        for text in ctx.texts:
            ids, _ = tokenize_one(lm.bridge, text, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
            if len(ids) > len(best):
                best = ids
            if len(ids) >= SINK_TOKENS:
                break
        note = ""
        if len(best) < 2:  # every prompt one token (one-word lines, --prepend-bos never): the mask is the model's
            best, _ = tokenize_one(lm.bridge, SINK_CHECK_TEXT, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
            note = f" (measured on a check sentence: every corpus prompt is a single token here, {SINK_CHECK_TEXT!r})"
        return measure_sink_visibility(lm.bridge, best[:SINK_TOKENS] if causal else best, device=info.device), note

    check, note = ctx.session.model_check("sink_visible", ctx.target, processing, measure)
    return PremiseResult(check.visible, check.evidence() + note, check.to_dict())


#: What ``sink_visible`` measures on when no corpus prompt has two tokens (the attention mask is the model's).
SINK_CHECK_TEXT = "The cat sat on the mat, and the dog slept by the door until the rain stopped in the evening."


@premise("has_massive_activations", "some block output has a massive activation (|a| > 100 and > 1000 × the "
         "layer's median |a|, Sun et al. 2024)")
def _has_massive_activations(ctx: Any, processing: str) -> PremiseResult:
    """Measured by the MA/AS/LL reductions on the probe pass with Sun et al.'s thresholds (:func:`lmfacts.measures.beyond.massive_summary`,
    not the claims' own statistic). A NaN value raises :class:`lmfacts.context.NonFiniteMeasurement` (an
    ``error``, not a premise that fails)."""
    from lmfacts.measures.beyond import massive_summary, session_beyond

    bp = session_beyond(ctx, processing=processing)
    ma = massive_summary(bp.massive.acc)
    ratios, top1 = np.asarray(ma["ratio"], dtype=float), np.asarray(ma["top1"], dtype=float)
    if not (np.isfinite(ratios).all() and np.isfinite(top1).all()):
        from lmfacts.context import NonFiniteMeasurement

        raise NonFiniteMeasurement("has_massive_activations: non-finite top-1 |a| or ratio to the median")
    layer = int(np.argmax(ratios))
    text = (f"largest top-1 |a| / median = {ratios[layer]:.4g} (|a| = {top1[layer]:.4g}) at block {layer} over "
            f"{bp.n_prompts} prompts")
    if ma["any_massive"]:
        return PremiseResult(True, f"{text}; massive from block {ma['first_massive_block']}",
                             {"max_ratio": float(ratios[layer]), "first_massive_block": ma["first_massive_block"]})
    return PremiseResult(False, f"no massive activation: {text} (need |a| > {ma['abs_threshold']:g} and ratio > "
                                f"{ma['rel_threshold']:g})", {"max_ratio": float(ratios[layer])})


@premise("lens_readout", "the logit lens's decoding (final norm, unembedding, then the head's output transform: "
         "soft-capping or logit scaling, where the head has one) of the last block's output "
         "reproduces the model's output logits")
def _lens_readout(ctx: Any, processing: str) -> PremiseResult:
    """Measured on the first corpus prompt (:func:`lmfacts.rebuild.measure_lens_readout`): the decoding the
    logit-lens reduction applies (:func:`lmfacts.measures.beyond.bridge_decode` on the last ``hook_resid_post``,
    and :func:`lmfacts.measures.beyond.bridge_unembed` on ``unembed.hook_in``, its final distribution) against the
    logits the model returns. Both apply the head's output transform as TransformerBridge declares it (Granite
    ``logits_scaling``, Cohere ``logit_scale``, Gemma 2 ``final_logit_softcapping``); a head that rescales or
    soft-caps in a way the bridge does not declare makes the lens decode another distribution than the model's
    (KL and the final distribution at the wrong temperature), and the premise fails. A NaN/inf error
    raises :class:`lmfacts.context.NonFiniteMeasurement` (an ``error``, not a premise that fails)."""
    from lmfacts.measures.beyond import bridge_decode, bridge_readout_path, bridge_unembed
    from lmfacts.rebuild import measure_lens_readout

    path = ctx.session.model_check("readout_path", ctx.target, processing, lambda lm: bridge_readout_path(lm.bridge))

    def measure(lm: Any) -> Any:
        info = lm.info
        return measure_lens_readout(lm.bridge, ctx.texts[0], bridge_decode(lm.bridge, path), unembed=bridge_unembed(lm.bridge),
                                    dtype=ctx.dtype, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx,
                                    device=info.device)

    check = ctx.session.model_check("lens_readout", ctx.target, processing, measure)
    if not np.isfinite(check.rel_error):
        from lmfacts.context import NonFiniteMeasurement

        raise NonFiniteMeasurement(f"lens_readout: relative error {check.rel_error} (non-finite logits)")
    return PremiseResult(check.holds, check.evidence(), check.to_dict())


# --------------------------------------------------------------------------------------------
# Premises from the configuration alone (``python -m lmfacts claims show ID --model NAME``)
# --------------------------------------------------------------------------------------------
#: What the run-time check of each premise reads, for premises a configuration cannot decide.
RUNTIME_NEEDS: dict[str, str] = {
    "causal_decoder": "activations (attention on one corpus prompt)",
    "bos_prepended": "the tokenizer and the bridge's BOS convention",
    "trained_lm_head": "weights (the head's values against the checkpoint)",
    "additive_residual": "weights and activations (rebuild checks)",
    "ov_rebuild": "weights and activations (rebuild checks)",
    "mlp_rebuild": "weights and activations (rebuild checks)",
    "norms_folded": "weights (the compat model's block norms on random inputs)",
    "residual_sum": "activations (rebuild checks)",
    "centred_stream": "activations (the probe)",
    "attention_patterns": "activations (the probe pass)",
    "has_massive_activations": "activations (the probe pass)",
    "sink_visible": "activations (attention patterns on one corpus prompt)",
    "lens_readout": "activations and logits (one corpus prompt)",
}


def from_config(name: str, facts: Any) -> PremiseResult | None:
    """Premise ``name``'s verdict from a model's configuration alone, or None where it needs the model.

    ``facts``: a :class:`lmfacts.models.metadata.ConfigFacts` (read without loading weights). Only
    ``float_weights`` is decided here: the run-time check reads ``ModelInfo.quantization``, which is
    built from the same sources (GGUF tensor types, ``quantization_config``), so the two agree.
    Raises ``KeyError`` for an unregistered premise.
    """
    if name not in PREMISES:
        raise KeyError(f"unknown premise {name!r}; registered: {sorted(PREMISES)}")
    if name == "float_weights":
        q = facts.quantization
        where = facts.evidence.get("quantization", "the configuration")
        return PremiseResult(q is None, f"float weights ({where})" if q is None
                             else f"weights are quantised ({q}; {where})")
    return None


def config_hint(name: str, facts: Any) -> str:
    """What a configuration suggests about a premise it cannot decide ("" when it says nothing).

    ``facts``: a :class:`lmfacts.models.metadata.ConfigFacts`. ``causal_decoder``: the config's encoder /
    causal-LM marker (the run-time check measures attention on later positions). ``mlp_rebuild``: a
    mixture-of-experts MLP (``facts.structure["experts"]``). ``sink_visible``: a sliding window
    (``facts.structure["sliding_window"]``) against the 64-token AS window.
    """
    structure = getattr(facts, "structure", None) or {}
    if name == "causal_decoder":
        what = "an encoder: expect it not to hold" if facts.is_encoder else "a causal LM"
        return f"the configuration names {what} ({facts.evidence.get('is_encoder', 'config')})"
    if name == "mlp_rebuild" and "experts" in structure:
        return (f"the configuration names a mixture-of-experts MLP ({structure['experts'][1]}): no single "
                f"W_in / W_out to rebuild, expect it not to hold")
    if name == "sink_visible" and "sliding_window" in structure:
        from lmfacts.measures.beyond import SINK_TOKENS

        w, _, _, text = structure["sliding_window"]
        if w < SINK_TOKENS:
            return (f"the configuration sets a sliding window narrower than the {SINK_TOKENS}-token window "
                    f"({text}): expect it not to hold")
        return f"the configuration's sliding window is at least the {SINK_TOKENS}-token window ({text})"
    return ""
