"""Sublayers rebuilt from their weights, and the check that a rebuild reproduces the hooks.

Some claims compute a statistic from the weights instead of reading it from a hook: W_OV = W_V·W_O
(RN-5, RN-8), the MLP applied to random normalised inputs (RN-6, RN-7). Such a rebuild is only
believed after it reproduces what the model computed on real corpus inputs:
:func:`measure_rebuild` runs a few corpus prompts through the model with hooks and compares, block by
block, the hooked activations with the same quantities computed from :class:`lmfacts.weights.WeightViews`
and the model's own norm convention (LayerNorm or RMSNorm, gain stored directly or as an offset
``1 + w``, the model's ``eps``) and activation function (the HF module's own, not its config name).
What is compared (relative error ‖rebuilt − hooked‖_F / ‖hooked‖_F over all positions of the
prompts, max over blocks):

- ``residual_add``: resid_mid = resid_pre + attn_out and resid_post = resid_mid + mlp_out
  (parallel blocks: resid_post = resid_pre + attn_out + mlp_out): the stream is a plain sum.
- ``attn_out_is_o_proj`` / ``mlp_out_is_down_proj``: hook_attn_out equals the output projection
  (``attn.o.hook_out``), hook_mlp_out the down projection (``mlp.out.hook_out``, or ``mlp.dense_out.hook_out``
  for a dense block that TransformerLens wraps in its MoEBridge; for a mixture of
  experts, which has no one down projection, the MoE module's output ``mlp.hook_out``): no norm,
  multiplier or other map between a sublayer and the stream.
- ``v_from_ln1``: ln1(resid_pre)·W_V (+ b_V) vs ``attn.hook_v`` (grouped K/V expanded); where
  resid_pre·W_V itself matches better (post-norm blocks, no norm before attention) that is used and
  noted.
- ``o_from_z``: Σ_h z_h·W_O[h] (+ b_O) vs the output projection.
- ``mlp_pre_from_ln2``: ln2(MLP input)·W_gate or W_in (+ b_in) vs ``mlp.hook_pre``.
- ``mlp_from_ln2``: the whole MLP on ln2(MLP input) vs the down projection.

Together: ``v_from_ln1`` and ``o_from_z`` make W_OV the model's OV circuit; ``mlp_pre_from_ln2`` and
``mlp_from_ln2`` make "the MLP on a normalised input" the model's MLP; ``residual_add`` with the two
``*_is_*_proj`` checks make hook_attn_out / hook_mlp_out what the pre-norm residual picture says
they are (RN §Analyzing the MLP weights, §W_OV). Source of the norm conventions: Ba et al. 2016
(LayerNorm), Zhang & Sennrich 2019 (RMSNorm); Gemma's ``1 + w`` gain (Gemma report §2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

#: Checks whose failure means the named rebuild cannot be trusted (see the module docstring).
REBUILD_CHECKS: dict[str, tuple[str, ...]] = {
    "residual_sum": ("residual_add",),
    "additive_residual": ("residual_add", "attn_out_is_o_proj", "mlp_out_is_down_proj"),
    "ov_rebuild": ("v_from_ln1", "o_from_z"),
    "mlp_rebuild": ("mlp_pre_from_ln2", "mlp_from_ln2"),
}
#: Rebuild tolerance in float32 (relative error); scaled with the dtype by :func:`lmfacts.tolerances.float_tol`.
REBUILD_TOL_F32 = 1e-3
#: Checks a scalar multiplier can explain (see :func:`scalar_multiplier_note`): the hook and the reference it is compared with.
SCALAR_CHECKS: dict[str, tuple[str, str]] = {
    "attn_out_is_o_proj": ("hook_attn_out", "the output projection (attn.o.hook_out)"),
    "mlp_out_is_down_proj": ("hook_mlp_out", "the down projection (mlp.out.hook_out)"),
}
REBUILD_ULPS = 4.0
N_PROMPTS = 3
MAX_TOKENS = 48


# --------------------------------------------------------------------------------------------
# Rebuilding a sublayer from its weights
# --------------------------------------------------------------------------------------------
def normalise(x: torch.Tensor, normalization: str | None, eps: float = 1e-5) -> torch.Tensor:
    """Normalise rows of ``x`` [..., d] as the model's norm does before its gain.

    ``"LN"``: centre, then divide by sqrt(var + eps) (Ba et al. 2016); otherwise (``"RMS"``): divide
    by sqrt(mean(x²) + eps) (Zhang & Sennrich 2019). Returns a tensor of ``x``'s shape.
    """
    if normalization == "LN":
        x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def random_normalised_inputs(n: int, d: int, normalization: str | None, seed: int) -> torch.Tensor:
    """``n`` random N(0, I_d) vectors normalised as the model's norm would: [n, d] float32."""
    g = torch.Generator().manual_seed(seed)
    return normalise(torch.randn(n, d, generator=g), normalization)


def apply_gain(x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    """``x · w + b`` with the *effective* gain ``w`` (already ``1 + w`` for offset norms); None skips a term."""
    if w is not None:
        x = x * w
    if b is not None:
        x = x + b
    return x


def mlp_pre(lw: Any, x_norm: torch.Tensor) -> torch.Tensor | None:
    """The pre-activation at ``mlp.hook_pre`` for normalised inputs ``x_norm`` [n, d_model] → [n, d_mlp].

    Gated MLPs: the gate projection x·W_gate + b_gate (TransformerLens convention; b_gate where there is one);
    else x·W_in + b_in. None where the block has no single MLP matrix (a mixture of experts: ``lw.mlp_note``).
    """
    if lw.W_in is None or lw.W_out is None:
        return None
    x = apply_gain(x_norm, lw.ln2_w, lw.ln2_b)
    if lw.W_gate is not None:
        gate = x @ lw.W_gate
        return gate + lw.b_gate if lw.b_gate is not None else gate
    pre = x @ lw.W_in
    return pre + lw.b_in if lw.b_in is not None else pre


def mlp_forward(lw: Any, x_norm: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """The MLP's down-projection output for normalised inputs ``x_norm`` [n, d_model] → [n, d_model].

    ``act`` is the model's activation function (see :func:`activation_of`). None where the block has no single
    MLP matrix (a mixture of experts: ``lw.mlp_note``).
    """
    if lw.W_in is None or lw.W_out is None:
        return None
    x = apply_gain(x_norm, lw.ln2_w, lw.ln2_b)
    b_in = lw.b_in if lw.b_in is not None else 0
    b_gate = lw.b_gate if lw.b_gate is not None else 0
    h = act(x @ lw.W_gate + b_gate) * (x @ lw.W_in + b_in) if lw.W_gate is not None else act(x @ lw.W_in + b_in)
    out = h @ lw.W_out
    return out + lw.b_out if lw.b_out is not None else out


def ov_summed_output(lw: Any, x_norm: torch.Tensor) -> torch.Tensor | None:
    """Σ_h ln1(x)·W_OV_h for normalised inputs [n, d_model] → [n, d_model] (no b_O): every head attending to x.
    None where the attention has no per-head W_V (multi-head latent attention: ``lw.attn_note``)."""
    if lw.W_V is None or lw.W_O is None:
        return None
    x = apply_gain(x_norm, lw.ln1_w, lw.ln1_b)
    return torch.einsum("nd,hdk,hke->ne", x, lw.W_V, lw.W_O)


_ACT_ATTRS = ("act_fn", "act", "activation_fn", "intermediate_act_fn", "activation")


def _activation_child(module: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The one parameter-free child module of the HF MLP ``module`` that is neither a dropout nor an identity
    (BLOOM's ``gelu_impl``, a ``BloomGelu``: an activation stored under a name no list anticipates), or None
    when there is none or more than one (then nothing can be told from the structure)."""
    if not isinstance(module, torch.nn.Module):
        return None
    found = [child for _, child in module.named_children()
             if not isinstance(child, (torch.nn.Dropout, torch.nn.Identity))
             and next(child.parameters(), None) is None and not list(child.children())]
    return found[0] if len(found) == 1 else None


def activation_of(bridge: Any, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function block ``layer``'s MLP actually applies.

    Read from the HF module the bridge wraps (``act_fn``, ``act``, … attributes, else its one parameter-free
    child module that is no dropout: BLOOM's ``gelu_impl``), because config names and computed functions
    differ between releases (``gelu`` vs ``gelu_new`` vs ``gelu_pytorch_tanh``), and TransformerLens' cfg.act_fn
    can name another function altogether (``relu`` for BLOOM, whose MLP applies a tanh GELU); falls back to
    ``transformers.activations.ACT2FN[cfg.act_fn]``. Raises
    ``ValueError`` when neither exists. Whether it is right is checked by :func:`measure_rebuild`.
    """
    mlp = bridge.blocks[layer].mlp
    modules = (getattr(mlp, "original_component", None), getattr(mlp, "_original_component", None))
    for module in modules:
        for name in _ACT_ATTRS:
            fn = getattr(module, name, None) if module is not None else None
            if callable(fn) and not isinstance(fn, type):
                return fn
    for module in modules:
        fn = _activation_child(module)
        if fn is not None:
            return fn
    from transformers.activations import ACT2FN

    name = getattr(bridge.cfg, "act_fn", None)
    if name not in ACT2FN:
        raise ValueError(f"cannot tell which activation block {layer}'s MLP applies (cfg.act_fn={name!r})")
    return ACT2FN[name]


# --------------------------------------------------------------------------------------------
# The self-check
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RebuildReport:
    """How well weights + conventions reproduce the hooked activations (see the module docstring).

    ``errors[check]``: relative error per block ([L]; ``None`` where the check is not measurable
    because the model has no such hook, e.g. no ``attn.hook_v``; NaN / inf only where activations or
    weights were non-finite); ``max_error(check)``: its max over blocks. ``tol``: the dtype-scaled
    tolerance a check must meet. ``n_tokens``: positions compared per block. ``notes``: which
    conventions the rebuild found (e.g. whether attention reads ln1(resid_pre) or resid_pre).
    """

    errors: dict[str, list[float | None]]
    tol: float
    n_tokens: int
    dtype: str
    processing: str
    notes: list[str] = field(default_factory=list)

    def max_error(self, check: str) -> float | None:
        """Max over blocks of ``check``'s relative error; None when some block could not be measured,
        NaN / inf when some block's error is non-finite."""
        vals = self.errors.get(check, [])
        if not vals or any(v is None for v in vals):
            return None
        bad = [v for v in vals if not np.isfinite(v)]
        return float(bad[0]) if bad else float(max(vals))

    def holds(self, group: str) -> tuple[bool, str]:
        """Whether every check of ``group`` (a key of :data:`REBUILD_CHECKS`) is within ``tol``, and why.

        A check that cannot be measured (a missing hook) does not hold. Raises
        :class:`lmfacts.context.NonFiniteMeasurement` when a check's error is NaN or inf: non-finite
        activations are an error, not a premise that fails.
        """
        from lmfacts.context import NonFiniteMeasurement

        parts, ok = [], True
        for check in REBUILD_CHECKS[group]:
            err = self.max_error(check)
            if err is None:
                ok = False
                parts.append(f"{check} not measurable (hook or weights absent)")
                continue
            if not np.isfinite(err):
                raise NonFiniteMeasurement(f"rebuild check {check}: relative error {err} (non-finite activations "
                                           f"or weights)")
            good = err <= self.tol
            ok &= good
            worst = int(np.argmax(self.errors[check]))
            parts.append(f"{check} {err:.3g}" + ("" if good else f" (block {worst})"))
        conventions = f"; {'; '.join(self.notes)}" if self.notes else ""
        return ok, f"max relative error {', '.join(parts)} (tolerance {self.tol:.3g}, {self.dtype}, " \
                   f"{self.processing} weights, {self.n_tokens} corpus tokens{conventions})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: max error per check, tolerance, sample size, conventions found."""
        return {"max_error": {k: self.max_error(k) for k in self.errors}, "tol": self.tol,
                "n_tokens": self.n_tokens, "dtype": self.dtype, "processing": self.processing, "notes": self.notes}


def measure_rebuild(bridge: Any, texts: Sequence[str], *, processing: str, dtype: str,
                    prepend_bos: bool, n_ctx: int, device: str) -> RebuildReport:
    """Compare weight rebuilds with hooked activations on the first :data:`N_PROMPTS` of ``texts``.

    Each prompt runs alone (no padding), truncated to :data:`MAX_TOKENS` tokens; the pass stops
    before the unembedding. Weights come from ``WeightViews(bridge, processing)`` (so ``processing``
    must be the bridge's current processing). Tolerance: ``float_tol(1e-3, dtype, 4)``. Raises
    ``ValueError`` when ``texts`` is empty.
    """
    from lmfacts.probe.batching import tokenize_one
    from lmfacts.probe.probe import stop_before_unembed_hook
    from lmfacts.tolerances import float_tol
    from lmfacts.weights import WeightViews

    if not texts:
        raise ValueError("measure_rebuild needs at least one corpus prompt")
    cfg = bridge.cfg
    L = cfg.n_layers
    views = WeightViews(bridge, processing)
    eps = float(getattr(cfg, "eps", 1e-5) or 1e-5)
    norm = getattr(cfg, "normalization_type", None)
    hook_names = set(bridge.hook_dict)
    parallel = "blocks.0.hook_resid_mid" not in hook_names
    wanted = ["hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
              "attn.o.hook_out", "mlp.out.hook_out", "attn.hook_v", "attn.hook_z", "mlp.hook_pre", "mlp.hook_out",
              "mlp.dense_out.hook_out"]
    checks = ("residual_add", "attn_out_is_o_proj", "mlp_out_is_down_proj", "v_from_ln1", "v_from_resid",
              "o_from_z", "mlp_pre_from_ln2", "mlp_pre_from_resid", "mlp_from_ln2")
    num = {c: np.zeros(L) for c in checks}
    den = {c: np.zeros(L) for c in checks}
    seen = {c: np.zeros(L, dtype=bool) for c in checks}
    dot = {c: np.zeros(L) for c in SCALAR_CHECKS}  # ⟨reference, hooked⟩ and ‖reference‖²: the best scalar fit
    ref_sq = {c: np.zeros(L) for c in SCALAR_CHECKS}
    acts = [_activation_or_none(bridge, i) for i in range(L)]
    n_tokens = 0
    mlp_notes: list[str] = []  # why a block's MLP cannot be rebuilt (a mixture of experts), one per kind
    mlp_blocks: set[int] = set()
    moe_out_blocks: set[int] = set()  # blocks whose mlp_out_is_down_proj reference is the MoE module's output
    attn_notes: dict[int, str] = {}  # blocks whose attention has no per-head W_V (multi-head latent attention)
    for text in list(texts)[:N_PROMPTS]:
        ids, _ = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=min(n_ctx, MAX_TOKENS))
        cache: dict[str, torch.Tensor] = {}

        def grab(name: str, store: dict[str, torch.Tensor] = cache) -> Any:
            def hook(x: torch.Tensor, hook: Any) -> None:
                store[name] = x.detach()[0].float()
            return hook

        hooks = [(f"blocks.{i}.{w}", grab(f"blocks.{i}.{w}")) for i in range(L) for w in wanted
                 if f"blocks.{i}.{w}" in hook_names]
        if "ln_final.hook_in" in hook_names:
            hooks.append(stop_before_unembed_hook())
        tokens = torch.tensor([ids], dtype=torch.long, device=device)
        with torch.inference_mode():
            bridge.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
        n_tokens += len(ids)
        with torch.no_grad():
            for i, lw in views.layers():
                def get(w: str, i: int = i, store: dict[str, torch.Tensor] = cache) -> torch.Tensor | None:
                    t = store.get(f"blocks.{i}.{w}")
                    return None if t is None else t.cpu()

                pre, mid, post = get("hook_resid_pre"), get("hook_resid_mid"), get("hook_resid_post")
                attn_out, mlp_out = get("hook_attn_out"), get("hook_mlp_out")
                o_out, down = get("attn.o.hook_out"), get("mlp.out.hook_out")
                if down is None:  # a dense block inside TransformerLens' MoEBridge (DeepSeek's first_k_dense_replace
                    down = get("mlp.dense_out.hook_out")  # blocks, GLM-4 MoE …) names its down projection dense_out
                o_ref = o_out if o_out is not None else attn_out
                down_ref = down if down is not None else mlp_out
                mlp_in = pre if parallel else mid
                pairs: dict[str, tuple[torch.Tensor | None, torch.Tensor | None]] = {}
                if parallel:
                    pairs["residual_add"] = (None if pre is None or attn_out is None or mlp_out is None
                                             else pre + attn_out + mlp_out, post)
                else:
                    pairs["residual_add"] = (None if pre is None or attn_out is None or mid is None or mlp_out is None
                                             else torch.cat([pre + attn_out, mid + mlp_out]),
                                             None if mid is None or post is None else torch.cat([mid, post]))
                pairs["attn_out_is_o_proj"] = (o_out, attn_out)
                if down is None and lw.mlp_note is not None:
                    # a mixture of experts has no one down projection: its output is the router-weighted sum of the
                    # experts' down projections, the MoE module's own output (mlp.hook_out); a norm or multiplier
                    # the block applies after it (a re-pointed hook_mlp_out) still shows as a mismatch
                    down = get("mlp.hook_out")
                    moe_out_blocks.add(i)
                pairs["mlp_out_is_down_proj"] = (down, mlp_out)
                v, z = get("attn.hook_v"), get("attn.hook_z")
                if lw.attn_note is not None:
                    attn_notes[i] = lw.attn_note
                if v is not None and pre is not None and lw.W_V is not None:
                    v_hooked = v.reshape(v.shape[0], -1, v.shape[-1]) if v.dim() == 3 else v
                    v_hooked = v_hooked.repeat_interleave(lw.W_V.shape[0] // v_hooked.shape[1], dim=1)
                    # pre-norm attention reads ln1(resid_pre); post-norm blocks (BERT) read resid_pre itself
                    for check, x_in in (("v_from_ln1", apply_gain(normalise(pre, norm, eps), lw.ln1_w, lw.ln1_b)),
                                        ("v_from_resid", pre)):
                        v_rebuilt = torch.einsum("pd,hdk->phk", x_in, lw.W_V)
                        pairs[check] = (v_rebuilt + lw.b_V if lw.b_V is not None else v_rebuilt, v_hooked)
                if z is not None and o_ref is not None and lw.W_O is not None:
                    o_rebuilt = torch.einsum("phk,hke->pe", z.reshape(z.shape[0], lw.W_O.shape[0], -1), lw.W_O)
                    pairs["o_from_z"] = (o_rebuilt + lw.b_O if lw.b_O is not None else o_rebuilt, o_ref)
                if mlp_in is not None:
                    x2 = normalise(mlp_in, norm, eps)
                    pairs["mlp_pre_from_ln2"] = (mlp_pre(lw, x2), get("mlp.hook_pre"))
                    # no norm before the MLP (OLMo 2: norms after the sublayers): the MLP reads the stream itself
                    pairs["mlp_pre_from_resid"] = (mlp_pre(replace(lw, ln2_w=None, ln2_b=None), mlp_in),
                                                   get("mlp.hook_pre"))
                    act = acts[i]
                    pairs["mlp_from_ln2"] = (None if act is None else mlp_forward(lw, x2, act), down_ref)
                if lw.mlp_note is not None:
                    mlp_blocks.add(i)
                    if lw.mlp_note.split(" is ", 1)[-1] not in [n.split(" is ", 1)[-1] for n in mlp_notes]:
                        mlp_notes.append(lw.mlp_note)
                for c, (a, b) in pairs.items():
                    if a is None or b is None or a.shape != b.shape:
                        continue
                    seen[c][i] = True
                    num[c][i] += float((a.double() - b.double()).pow(2).sum())
                    den[c][i] += float(b.double().pow(2).sum())
                    if c in dot:
                        dot[c][i] += float((a.double() * b.double()).sum())
                        ref_sq[c][i] += float(a.double().pow(2).sum())
    errors: dict[str, list[float | None]] = {}
    for c in checks:
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.sqrt(num[c]) / np.sqrt(den[c])
        rel = np.where(seen[c] & (den[c] == 0) & (num[c] == 0), 0.0, rel)
        errors[c] = [float(v) if seen[c][i] else None for i, v in enumerate(rel)]
    # which input attention reads is measured, not assumed: keep the better of the two conventions
    from_resid = errors.pop("v_from_resid")
    mlp_raw = errors.pop("mlp_pre_from_resid")
    notes = []
    if all(v is not None for v in errors["v_from_ln1"] + from_resid) and \
            float(np.sum(np.square(from_resid))) < float(np.sum(np.square(errors["v_from_ln1"]))):
        errors["v_from_ln1"] = from_resid
        notes.append("attention reads resid_pre unnormalised (no norm before attention)")
    tol = float_tol(REBUILD_TOL_F32, dtype, REBUILD_ULPS)
    # reported, not substituted: the MLP claims feed *normalised* random inputs, which such an MLP never reads
    raw_err = [float(v) for v in mlp_raw if v is not None]
    ln2_err = [float(v) for v in errors["mlp_pre_from_ln2"] if v is not None]
    if raw_err and len(raw_err) == len(mlp_raw) and len(ln2_err) == len(raw_err) and \
            np.isfinite(raw_err + ln2_err).all() and max(raw_err) <= tol < max(ln2_err):
        notes.append(f"the MLP reads its input unnormalised (no norm before the MLP: mlp.hook_pre = the raw stream "
                     f"× W, max error {max(raw_err):.2g}), so an MLP on normalised inputs is not this model's")
    if mlp_notes:
        notes.append(f"MLP of block(s) {_blocks_text(sorted(mlp_blocks))} not rebuilt: {mlp_notes[0]}"
                     + (f" (and {len(mlp_notes) - 1} other MLP kind(s))" if len(mlp_notes) > 1 else ""))
    if attn_notes:
        first = attn_notes[min(attn_notes)]
        notes.append(f"attention of block(s) {_blocks_text(sorted(attn_notes))} has no W_OV to rebuild: {first}")
    if moe_out_blocks:
        notes.append(f"mlp_out_is_down_proj at block(s) {_blocks_text(sorted(moe_out_blocks))} compares hook_mlp_out "
                     f"with the mixture of experts' own output (mlp.hook_out: the router-weighted sum of its experts' "
                     f"down projections)")
    for c in SCALAR_CHECKS:
        note = scalar_multiplier_note(c, errors[c], dot[c], ref_sq[c], den[c], tol)
        if note:
            notes.append(note)
    return RebuildReport(errors=errors, tol=tol, n_tokens=n_tokens, dtype=dtype, processing=processing, notes=notes)


def _blocks_text(blocks: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0–2, 5"``."""
    runs: list[list[int]] = []
    for b in blocks:
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs) or "none"


def _activation_or_none(bridge: Any, layer: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """:func:`activation_of`, or None where block ``layer``'s MLP has no activation to read (a mixture of
    experts keeps it inside its experts) and the config names none: that block's MLP is not rebuilt."""
    try:
        return activation_of(bridge, layer)
    except ValueError:
        return None


def scalar_multiplier_note(check: str, errors: Sequence[float | None], dot: np.ndarray, ref_sq: np.ndarray,
                           hooked_sq: np.ndarray, tol: float) -> str:
    """Why ``check`` (one of :data:`SCALAR_CHECKS`) misses, where a scalar per block explains it; else ``""``.

    Per block, the least-squares c_b in hooked ≈ c_b · reference is ``dot[b] / ref_sq[b]`` and its relative
    residual sqrt(‖hooked‖² − c_b·⟨reference, hooked⟩) / ‖hooked‖ (``hooked_sq`` = ‖hooked‖²; arrays [L], sums
    over the compared positions). When the check fails (some finite error > ``tol``) and every block's residual
    is ≤ ``tol``, the hook carries a multiplier the output projection does not (Granite's residual_multiplier:
    the block adds c·o_proj, and TransformerLens' bridge exposes c·o_proj at hook_attn_out); the note names c
    (one value when all blocks agree within ``tol``, else its range). Raises nothing.
    """
    vals = [v for v in errors if v is not None]
    if not vals or len(vals) != len(errors) or not all(np.isfinite(vals)) or max(vals) <= tol or (ref_sq <= 0).any():
        return ""
    c = dot / ref_sq
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = np.sqrt(np.clip(hooked_sq - c * dot, 0.0, None) / hooked_sq)
    if not np.isfinite(resid).all() or float(resid.max()) > tol:
        return ""
    hook, ref = SCALAR_CHECKS[check]
    same = float(np.ptp(c)) <= tol * float(np.abs(c).max())
    scale = f"{float(c[0]):.4g} ×" if same else f"c_b × (c_b from {float(c.min()):.4g} to {float(c.max()):.4g})"
    return (f"{hook} = {scale} {ref} at every block (residual {float(resid.max()):.2g}): a multiplier between the "
            f"sublayer and the stream")


@dataclass(frozen=True)
class CausalCheck:
    """Attention a query position pays to later positions (0 under a causal mask)."""

    leak: float
    tol: float
    n_tokens: int
    how: str

    @property
    def causal(self) -> bool:
        """The mask is causal: a finite ``leak`` within ``tol``."""
        return bool(math.isfinite(self.leak) and self.leak <= self.tol)


def measure_causal_leak(bridge: Any, text: str, *, dtype: str, prepend_bos: bool, n_ctx: int,
                        device: str) -> CausalCheck:
    """Measure whether the model's attention is causal, on one prompt.

    Where the bridge exposes ``attn.hook_pattern``: ``leak`` = max over blocks, heads and query
    positions q of Σ_{k>q} pattern[q, k] (attention mass on later tokens; exactly 0 under a causal
    mask, O(1) in a bidirectional encoder). Otherwise: the prompt is run again with its last token
    replaced and ``leak`` = max over earlier positions of ‖Δ resid_post‖/‖resid_post‖ at the last
    block. Tolerance ``float_tol(1e-6, dtype, 1)``. Raises ``ValueError`` if ``text`` has fewer than
    2 tokens.
    """
    from lmfacts.probe.batching import tokenize_one
    from lmfacts.tolerances import float_tol

    ids, _ = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=min(n_ctx, MAX_TOKENS))
    if len(ids) < 2:
        raise ValueError(f"causal check needs a prompt of at least 2 tokens, got {len(ids)}")
    tol = float_tol(1e-6, dtype, 1.0)
    L = bridge.cfg.n_layers
    patterns = [f"blocks.{i}.attn.hook_pattern" for i in range(L) if f"blocks.{i}.attn.hook_pattern" in bridge.hook_dict]
    leaks: list[float] = []
    tokens = torch.tensor([ids], dtype=torch.long, device=device)
    if patterns:
        def mass(x: torch.Tensor, hook: Any) -> None:
            later = torch.triu(torch.ones(x.shape[-2:], dtype=torch.bool, device=x.device), 1)
            leaks.append(float((x[0].float() * later).sum(-1).max()))

        with torch.inference_mode():
            bridge.run_with_hooks(tokens, fwd_hooks=[(n, mass) for n in patterns], return_type=None)
        return CausalCheck(max(leaks), tol, len(ids), "max attention mass on later positions")
    vocab = int(bridge.cfg.d_vocab)
    changed = list(ids)
    changed[-1] = (changed[-1] + 1 + vocab // 2) % vocab
    out: list[torch.Tensor] = []

    def grab(x: torch.Tensor, hook: Any) -> None:
        out.append(x.detach()[0, :-1].double().cpu())

    with torch.inference_mode():
        for seq in (ids, changed):
            bridge.run_with_hooks(torch.tensor([seq], dtype=torch.long, device=device),
                                  fwd_hooks=[(f"blocks.{L - 1}.hook_resid_post", grab)], return_type=None)
    a, b = out
    rel = (a - b).norm(dim=-1) / a.norm(dim=-1).clamp_min(1e-30)
    return CausalCheck(float(rel.max()), float_tol(1e-4, dtype), len(ids),
                       "change of earlier positions' final residual when the last token changes")


# --------------------------------------------------------------------------------------------
# The logit lens's readout against the model's own output
# --------------------------------------------------------------------------------------------
#: Float32 tolerance of :func:`measure_lens_readout` (relative error of row-centred logits); dtype-scaled.
READOUT_TOL_F32 = 1e-3


@dataclass(frozen=True)
class ReadoutCheck:
    """How well a lens decoding of the last block's output reproduces the model's output logits.

    ``rel_error``: ‖ĉ(decoded) − ĉ(logits)‖_F / ‖ĉ(logits)‖_F, ĉ = centring each row over the vocabulary
    (softmax ignores a per-row shift, e.g. TransformerLens' ``center_unembed``), max over the decodings
    checked. ``kl_max``: max over positions of KL(p_model ‖ p_decoded), nats. ``scale``: least-squares c in
    ĉ(logits) ≈ c·ĉ(decoded) and ``scale_residual`` its relative residual (a small residual with c ≠ 1 is a
    logit multiplier the decoding leaves out: Granite's 1/logits_scaling, Cohere's logit_scale). ``tol``:
    the dtype-scaled tolerance ``rel_error`` must meet. ``n_tokens``: positions compared. ``checked``:
    which decodings were compared with the logits.
    """

    rel_error: float
    kl_max: float
    scale: float
    scale_residual: float
    tol: float
    n_tokens: int
    checked: tuple[str, ...]

    @property
    def holds(self) -> bool:
        """The decoding is the model's head path: a finite ``rel_error`` within ``tol``."""
        return bool(math.isfinite(self.rel_error) and self.rel_error <= self.tol)

    def evidence(self) -> str:
        """One sentence with the numbers (for the premise's evidence)."""
        head = (f"relative error of the decoded logits {self.rel_error:.3g} (tolerance {self.tol:.3g}), max KL(model ‖ "
                f"decoded) {self.kl_max:.3g} nats over {self.n_tokens} tokens; compared: {', '.join(self.checked)}")
        if self.holds:
            return head
        if self.scale_residual <= self.tol and abs(self.scale - 1.0) > self.tol:
            return (f"{head}: the model's logits are {self.scale:.4g} × the decoded ones (residual "
                    f"{self.scale_residual:.2g}), a logit multiplier the decoding leaves out")
        return f"{head}: a post-unembedding map (e.g. logit soft-capping) the decoding leaves out"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values."""
        return {"rel_error": self.rel_error, "kl_max": self.kl_max, "scale": self.scale,
                "scale_residual": self.scale_residual, "tol": self.tol, "n_tokens": self.n_tokens,
                "checked": list(self.checked)}


def measure_lens_readout(bridge: Any, text: str, decode: Callable[[torch.Tensor], torch.Tensor], *,
                         unembed: Callable[[torch.Tensor], torch.Tensor] | None = None, dtype: str,
                         prepend_bos: bool, n_ctx: int, device: str) -> ReadoutCheck:
    """Compare a logit-lens decoding with the model's output logits on one prompt (≤ :data:`MAX_TOKENS` tokens).

    ``decode``: ``[n, d_model] → [n, V]``, applied to the last block's ``hook_resid_post`` (what the lens does
    at its last point); ``unembed``: ``[n, d_model] → [n, V]``, applied to ``unembed.hook_in`` (the model's own
    final-norm output; how the lens builds the final distribution when its pass stops before the unembedding),
    skipped when None or the hook is absent. Both are compared with the logits the bridge's forward returns
    (``return_type="logits"``: the model's output, after any logit scaling or soft-capping of its head).
    Statistics in float64: see :class:`ReadoutCheck`. Tolerance ``float_tol(1e-3, dtype, 4)``. Raises
    ``ValueError`` for a prompt without tokens.
    """
    from lmfacts.probe.batching import tokenize_one
    from lmfacts.tolerances import float_tol

    ids, _ = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=min(n_ctx, MAX_TOKENS))
    if not ids:
        raise ValueError("measure_lens_readout needs a prompt with at least one token")
    last = f"blocks.{bridge.cfg.n_layers - 1}.hook_resid_post"
    store: dict[str, torch.Tensor] = {}

    def grab(name: str) -> Callable[[torch.Tensor, Any], None]:
        def hook(x: torch.Tensor, hook: Any) -> None:  # keyed by the name asked for (hook.name may be an alias's)
            store[name] = x.detach()[0]
        return hook

    names = [n for n in (last, "unembed.hook_in") if n in bridge.hook_dict]
    with torch.inference_mode():
        logits = bridge.run_with_hooks(torch.tensor([ids], dtype=torch.long, device=device),
                                       fwd_hooks=[(n, grab(n)) for n in names], return_type="logits")[0]
        decoded = {f"decode({last})": decode(store[last])}
        if unembed is not None and "unembed.hook_in" in store:
            decoded["unembed(unembed.hook_in)"] = unembed(store["unembed.hook_in"])
    ref = logits.double().cpu()
    ref_c = ref - ref.mean(-1, keepdim=True)
    lp_ref = torch.log_softmax(ref, -1)
    rel = kl = scale = resid = 0.0
    for out in decoded.values():
        d = out.double().cpu()
        d_c = d - d.mean(-1, keepdim=True)
        r = float((d_c - ref_c).norm() / ref_c.norm().clamp_min(1e-300))
        k = float((lp_ref.exp() * (lp_ref - torch.log_softmax(d, -1))).sum(-1).max())
        c = float((d_c * ref_c).sum() / (d_c * d_c).sum().clamp_min(1e-300))
        res = float((c * d_c - ref_c).norm() / ref_c.norm().clamp_min(1e-300))
        if not math.isfinite(r) or r >= rel:
            rel, kl, scale, resid = r, k, c, res
    return ReadoutCheck(rel_error=rel, kl_max=kl, scale=scale, scale_residual=resid,
                        tol=float_tol(READOUT_TOL_F32, dtype, REBUILD_ULPS), n_tokens=len(ids),
                        checked=tuple(decoded))
