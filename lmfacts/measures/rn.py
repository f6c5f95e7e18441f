"""Measurements of the residual-norm claims RN-1 … RN-9 (seed: "Residual stream norms grow
exponentially over the forward pass", cited as ``RN §…``).

Conventions shared by every function here:

* Points: index ``l`` in ``0..L-1`` is ``blocks.{l}.hook_resid_pre``; index ``L`` is the final
  ``blocks.{L-1}.hook_resid_post`` (the stream entering the final norm). A window ``(lo, hi)`` is
  an inclusive range of these indices.
* Position classes: *content* = real tokens except the prepended BOS; *bos* = the prepended BOS
  (wherever padding puts it: with left padding it is the first *real* position, not index 0);
  *pad* = padding.
* Default window: ``[round(0.1·L), round(0.85·L)]`` (skips the first tenth of the network, where
  the embedding-to-stream transient lives, and the last 15 %, where the post saw the growth stop;
  for gpt2-xl's 48 layers this gives [5, 41], exactly the post's window). It is widened to at
  least 3 points so a rate and an R² exist on 4-layer test models.
* Random "normalised Gaussian" inputs: x ~ N(0, I_d), normalised the way the sublayer's norm
  normalises (LayerNorm: centred and scaled to unit variance; RMSNorm: scaled to unit RMS), then
  multiplied by the norm's gain (+ bias). Under compat processing the gains are folded into the
  next weights, so the norm output is the normalised vector itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lmfacts.stats.growth import fit_growth_rate, growth_curvature, per_layer_rates, two_point_rate

if TYPE_CHECKING:  # torch is imported lazily: collecting the claims must not import it
    import torch


def default_window(n_points: int) -> tuple[int, int]:
    """The default inclusive window over ``n_points`` points (L + 1 residual points, or L blocks).

    ``[round(0.1·(n-1)), round(0.85·(n-1))]``, widened to >= 3 points; see the module docstring.
    """
    last = n_points - 1
    lo, hi = round(0.1 * last), round(0.85 * last)
    while hi - lo < 2 and (lo > 0 or hi < last):
        if hi < last:
            hi += 1
        else:
            lo -= 1
    return int(lo), int(hi)


def window_from(exp: Any, n_points: int, key: str = "window") -> tuple[int, int]:
    """The expectation's window ``key`` if set, else :func:`default_window`; clipped to the points."""
    w = exp.get(key) if exp is not None else None
    if w is None:
        return default_window(n_points)
    lo, hi = int(w[0]), int(w[1])
    if not 0 <= lo < hi < n_points:
        raise ValueError(f"expectation {key}={w} does not fit a curve of {n_points} points")
    return lo, hi


def rate_band(exp: Any, prefix: str = "rate") -> tuple[float | None, float | None]:
    """(low, high) band of a growth rate from the resolved expectation params.

    ``{prefix}`` ± ``{prefix}_tol`` when a point value is set (published / measured), else
    ``{prefix}_min`` / ``{prefix}_max`` (the general predicate; their defaults are the claim's
    declared ones, e.g. RN-1's ``rate_min`` 1.0). ``None`` (unset) = an open end.
    """
    p = exp.params if exp is not None else {}
    if p.get(prefix) is not None:
        tol = float(p[f"{prefix}_tol"])
        return float(p[prefix]) - tol, float(p[prefix]) + tol
    return p.get(f"{prefix}_min"), p.get(f"{prefix}_max")


def in_band(value: float, band: tuple[float | None, float | None]) -> bool:
    """True when ``value`` is strictly inside the (possibly open-ended) band."""
    lo, hi = band
    return math.isfinite(value) and (lo is None or value > lo) and (hi is None or value < hi)


# --------------------------------------------------------------------------------------------
# RN-1 / RN-3: growth of the stream and of the sublayer outputs (corpus level, from the probe)
# --------------------------------------------------------------------------------------------
def measure_rn1(probe: Any, exp: Any) -> dict[str, Any]:
    """RN-1 over the corpus: LSQ and two-point growth rate of the mean content resid_pre norm.

    Returns ``rate`` (exp of the OLS slope of log mean norm vs point over the window, fitted to the
    mean over prompts of each prompt's content mean, so the bootstrap CI resamples it), ``r2`` and ``r2_ci`` (its
    percentile bootstrap CI over prompts, the same resamples; None with one prompt),
    ``ci`` (seeded bootstrap over prompts, :func:`lmfacts.stats.verdict.bootstrap_ci`; with one prompt the
    OLS t-interval) with ``ci_level``, ``ci_n_resamples`` and ``ci_method``, ``two_point_rate`` (the post's by-eye estimator), ``window``,
    ``norms`` (the mean content norm at every point, L + 1 values), ``bos_norms``, ``pad_norms``,
    ``per_layer_rates`` and the curvature fit (``curvature_c``, ``superexponential``).
    """
    norms = probe.resid.mean("content")
    n_points = norms.shape[0]
    lo, hi = window_from(exp, n_points)
    per_prompt = probe.resid.prompt_means()
    per_prompt = per_prompt[np.isfinite(per_prompt).all(axis=1)]
    fit = fit_growth_rate(per_prompt if per_prompt.shape[0] > 1 else norms, (lo, hi), seed=0)
    out: dict[str, Any] = {
        "rate": fit.rate, "r2": fit.r_squared, "ci": list(fit.ci) if fit.ci else None,
        "r2_ci": list(fit.r_squared_ci) if fit.r_squared_ci else None,
        "ci_level": fit.ci_level, "ci_n_resamples": fit.n_boot,
        "ci_method": fit.boot_method if fit.ci_method == "bootstrap_prompts" else fit.ci_method,
        "fit_slope": fit.slope, "fit_intercept": fit.intercept,
        "two_point_rate": two_point_rate(norms, lo, hi), "window": [lo, hi],
        "norms": norms.tolist(), "bos_norms": probe.resid.mean("bos").tolist(),
        "pad_norms": probe.resid.mean("pad").tolist(),
        "per_layer_rates": per_layer_rates(norms).tolist(), "n_prompts": int(probe.n_prompts),
    }
    if hi - lo >= 3:
        curv = growth_curvature(norms, (lo, hi))
        out.update(curvature_c=curv.c, curvature_p=curv.p_value, superexponential=curv.superexponential,
                   subexponential=curv.subexponential, rate_start=curv.rate_start, rate_end=curv.rate_end)
    return out


def measure_rn3(probe: Any, exp: Any) -> dict[str, Any]:
    """RN-3: growth rates of mean content ‖attn_out‖ and ‖mlp_out‖ per block vs the stream's rate.

    Block ``l``'s outputs are compared with the stream over the same block indices (the stream's
    points 0..L-1 are the resid_pre of the blocks). Windows: ``attn_window`` / ``mlp_window`` from
    the expectation (gpt2-xl: attn_out stops growing after ~30), else the default window over L blocks.

    With per-prompt content means of at least 2 prompts (the probe keeps them for resid, attn_out and
    mlp_out), ``rate`` and ``resid_rate`` are fitted to the prompt-weighted curves (mean over prompts
    of each prompt's content mean, as RN-1) and each kind gets seeded bootstrap CIs over prompts
    (:func:`lmfacts.stats.verdict.bootstrap_ci`, the sublayer's and the stream's curves resampled
    together): ``rate_ci`` and ``rate_diff_ci`` (of ``rate − resid_rate``), with ``ci_level``,
    ``ci_n_resamples``, ``ci_method`` and ``n_prompts``. Otherwise (one prompt) the token-weighted
    curves give point estimates and the CIs are ``None``.
    """
    from lmfacts.stats.growth import window_rates
    from lmfacts.stats.verdict import bootstrap_ci

    L = probe.n_layers
    out: dict[str, Any] = {}
    resid = probe.resid.mean("content")[:L]
    resid_pp = probe.resid.prompt_means()[:, :L]
    for kind in ("attn_out", "mlp_out"):
        norms = getattr(probe, kind).mean("content")
        key = f"{kind.split('_')[0]}_window"
        lo, hi = window_from(exp, L, key) if exp is not None and exp.get(key) else window_from(exp, L)
        fit = fit_growth_rate(norms, (lo, hi))
        rfit = fit_growth_rate(resid, (lo, hi))
        out[kind] = {"rate": fit.rate, "r2": fit.r_squared, "window": [lo, hi], "resid_rate": rfit.rate,
                     "rate_ratio": fit.rate / rfit.rate, "norms": norms.tolist(),
                     "peak_layer": int(np.nanargmax(norms)), "rate_ci": None, "rate_diff_ci": None,
                     "weighting": "tokens"}
        sub_pp = getattr(probe, kind).prompt_means()
        keep = np.isfinite(sub_pp).all(axis=1) & np.isfinite(resid_pp).all(axis=1)
        if keep.sum() < 2:
            continue
        sub_k, resid_k = sub_pp[keep], resid_pp[keep]
        pfit = fit_growth_rate(sub_k.mean(axis=0), (lo, hi))
        prfit = fit_growth_rate(resid_k.mean(axis=0), (lo, hi))
        rate_boot = bootstrap_ci(sub_k, lambda a, w=(lo, hi): window_rates(a.mean(axis=1), w), n_resamples=1000)
        diff_boot = bootstrap_ci([sub_k, resid_k], lambda a, r, w=(lo, hi): window_rates(a.mean(axis=1), w)
                                 - window_rates(r.mean(axis=1), w), n_resamples=1000)
        out[kind].update(rate=pfit.rate, r2=pfit.r_squared, resid_rate=prfit.rate, rate_ratio=pfit.rate / prfit.rate,
                         rate_ci=list(rate_boot.ci), rate_diff_ci=list(diff_boot.ci), ci_level=rate_boot.level,
                         ci_n_resamples=rate_boot.n_resamples, ci_method=rate_boot.method,
                         n_prompts=rate_boot.n_prompts, weighting="prompts")
    return out


# --------------------------------------------------------------------------------------------
# RN-4: the contribution bound over the corpus (from the probe)
# --------------------------------------------------------------------------------------------
def measure_rn4(probe: Any) -> dict[str, Any]:
    """RN-4 over the corpus: the probe's per-block minimum relative slack of the triangle bound.

    Returns ``min_slack`` (per block: min over real tokens of (‖attn‖ + ‖mlp‖ − (‖post‖ − ‖pre‖)) / ‖pre‖),
    ``min_slack_overall`` and ``worst_block`` (its min and argmin), ``checked`` / ``checked_per_block``
    (tokens the bound was checked at), ``unchecked_blocks`` (blocks with no token checked) and
    ``tokens_below_1e-4`` (tokens whose slack is below the float32 threshold −1e-4·‖pre‖).
    """
    slack = np.asarray(probe.bound_min_slack, dtype=float)
    checked = np.asarray(probe.bound_checked)
    return {"min_slack": slack.tolist(), "min_slack_overall": float(np.min(slack)),
            "worst_block": int(np.argmin(slack)), "checked": int(checked.sum()),
            "checked_per_block": checked.tolist(), "unchecked_blocks": int(np.sum(checked <= 0)),
            "tokens_below_1e-4": int(np.asarray(probe.bound_violations).sum())}


# --------------------------------------------------------------------------------------------
# One prompt at a time (Hypothesis claims RN-1p, RN-2p, RN-4p)
# --------------------------------------------------------------------------------------------
@dataclass
class PromptPass:
    """Per-token norms of one prompt's forward pass (no batching, no padding)."""

    tokens: list[int]
    resid: np.ndarray  # [L + 1, p] ‖resid‖ per point and position
    attn_out: np.ndarray  # [L, p]
    mlp_out: np.ndarray  # [L, p]
    bos: np.ndarray | None  # [L + 1, d] the BOS position's residual vectors (float64), None without BOS
    content_from: int  # first position after the prepended BOS (1 with a prepended BOS, else 0)
    # [p] class of every position, as in the probe (lmfacts.probe.batching: BOS = the prepended BOS,
    # BOS_MID = the BOS id from the text, SPECIAL = other special tokens, CONTENT = the rest)
    classes: np.ndarray | None = None

    def content_means(self) -> np.ndarray:
        """Mean content-token ‖resid‖ at every point, [L + 1] (NaN if the prompt has no content token).

        Content excludes the prepended BOS, the BOS id anywhere in the text and other special tokens.
        """
        if self.classes is None:
            c = self.resid[:, self.content_from:]
        else:
            from lmfacts.probe.batching import CONTENT

            c = self.resid[:, self.classes == CONTENT]
        return c.mean(axis=1) if c.shape[1] else np.full(c.shape[0], np.nan)

    @property
    def position_counts(self) -> dict[str, int]:
        """Positions of each class: ``content``, ``bos``, ``bos_mid``, ``special``, ``pad`` (always 0 here)."""
        from lmfacts.probe.batching import CLASS_NAMES

        if self.classes is None:
            raise ValueError("this PromptPass was built without a class map")
        return {name: int((self.classes == c).sum()) for name, c in CLASS_NAMES.items()}

    def bound_slack(self) -> tuple[np.ndarray, np.ndarray]:
        """RN-4 per block and token: slack = ‖attn‖ + ‖mlp‖ − (‖post‖ − ‖pre‖) and its float scale.

        The scale is ‖pre‖ + ‖attn‖ + ‖mlp‖ + ‖post‖, the size of the numbers whose float32 rounding
        the slack inherits. Returns ``(slack, scale)``, each [L, p].
        """
        pre, post = self.resid[:-1], self.resid[1:]
        slack = self.attn_out + self.mlp_out - (post - pre)
        return slack, pre + post + self.attn_out + self.mlp_out


def single_prompt_pass(lm: Any, text: str) -> PromptPass:
    """Run ``text`` alone through ``lm.bridge`` and reduce every hook point on the fly.

    Hooks: ``blocks.{l}.hook_resid_pre``, ``hook_attn_out``, ``hook_mlp_out`` for every block and
    the last block's ``hook_resid_post``; the pass stops at ``ln_final.hook_in`` (no logits).
    Positions are classed as the probe classes them (:mod:`lmfacts.probe.batching`).
    Raises :class:`lmfacts.probe.batching.PromptError` for an empty prompt and
    :class:`~lmfacts.probe.batching.OutOfVocabularyError` for an id the model cannot embed.
    """
    import torch

    from lmfacts.probe.batching import position_classes, special_ids, tokenize_one
    from lmfacts.probe.probe import stop_before_unembed_hook

    bridge, info = lm.bridge, lm.info
    L = bridge.cfg.n_layers
    ids, _ = tokenize_one(bridge, text, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    classes = position_classes(ids, prepend_bos=info.prepends_bos, specials=special_ids(bridge)).numpy()
    p = len(ids)
    resid = np.zeros((L + 1, p))
    attn = np.zeros((L, p))
    mlp = np.zeros((L, p))
    bos = np.zeros((L + 1, bridge.cfg.d_model)) if info.prepends_bos else None

    def rec(kind: str, i: int):
        def hook(x: torch.Tensor, hook: Any) -> None:
            xf = x.detach()[0].float()
            norms = xf.norm(dim=-1).double().cpu().numpy()
            if kind == "resid":
                resid[i] = norms
                if bos is not None:
                    bos[i] = xf[0].double().cpu().numpy()
            elif kind == "attn":
                attn[i] = norms
            else:
                mlp[i] = norms
        return hook

    hooks: list[tuple[str, Any]] = []
    for i in range(L):
        hooks += [(f"blocks.{i}.hook_resid_pre", rec("resid", i)), (f"blocks.{i}.hook_attn_out", rec("attn", i)),
                  (f"blocks.{i}.hook_mlp_out", rec("mlp", i))]
    hooks.append((f"blocks.{L - 1}.hook_resid_post", rec("resid", L)))
    if "ln_final.hook_in" in bridge.hook_dict:
        hooks.append(stop_before_unembed_hook())
    tokens = torch.tensor([ids], dtype=torch.long, device=info.device)
    with torch.inference_mode():
        bridge.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
    return PromptPass(ids, resid, attn, mlp, bos, 1 if info.prepends_bos else 0, classes)


# --------------------------------------------------------------------------------------------
# Weights: RN-5 (W_OV), RN-6 (random inputs), RN-7 (activation share), RN-8 (Frobenius identity)
# --------------------------------------------------------------------------------------------
def layer_weight_stats(views: Any, normalization: str | None, n_random: int = 256,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """Per-layer weight statistics for RN-5/6/7, one pass over the layers.

    ``ov_fro_mean`` / ``ov_fro_sum``: mean / sum over heads of ‖W_V W_O‖_F; ``b_o_norm``: ‖b_O‖ (NaN
    without b_O); ``mlp_random_norm``: mean ‖MLP(x)‖ on random normalised Gaussian inputs;
    ``ov_random_norm``: mean ‖Σ_h x W_OV_h‖ on the same kind of inputs (ln1 gain applied);
    ``random_active_share``: share of MLP pre-activations > 0 on those inputs. The OV statistics are NaN at a
    block whose attention has no per-head W_V (multi-head latent attention; RN-5 skips on ``ov_rebuild``), the
    two MLP statistics at a block whose MLP has no single W_in / W_out (a mixture of experts; RN-6/RN-7 skip there on the
    ``mlp_rebuild`` premise).
    """
    import torch

    L = views.n_layers
    d = views.cfg.d_model
    out = {k: np.full(L, np.nan) for k in ("ov_fro_mean", "ov_fro_sum", "b_o_norm", "mlp_random_norm",
                                            "ov_random_norm", "random_active_share")}
    from lmfacts.rebuild import (
        activation_of,
        mlp_forward,
        mlp_pre,
        ov_summed_output,
        random_normalised_inputs,
    )

    x = random_normalised_inputs(n_random, d, normalization, seed)
    with torch.no_grad():
        for i, lw in views.layers():
            if lw.b_O is not None:
                out["b_o_norm"][i] = float(lw.b_O.norm())
            ov_out = ov_summed_output(lw, x)
            if ov_out is not None:  # else no per-head W_V (multi-head latent attention: lw.attn_note), NaN
                fro = views.ov_frobenius(lw).double()
                out["ov_fro_mean"][i] = float(fro.mean())
                out["ov_fro_sum"][i] = float(fro.sum())
                out["ov_random_norm"][i] = float(ov_out.norm(dim=-1).mean())
            if lw.W_in is None or lw.W_out is None:  # a mixture of experts (lw.mlp_note): no single MLP, NaN
                continue
            out["mlp_random_norm"][i] = float(mlp_forward(lw, x, activation_of(views.bridge, i)).norm(dim=-1).mean())
            out["random_active_share"][i] = float((mlp_pre(lw, x) > 0).double().mean())
    return out


def fitted_rate(values: Sequence[float] | np.ndarray, window: tuple[int, int]) -> tuple[float, float]:
    """(rate, R²) of a per-layer curve over an inclusive window (NaN, NaN if not positive there)."""
    arr = np.asarray(values, dtype=float)[window[0]:window[1] + 1]
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        return float("nan"), float("nan")
    fit = fit_growth_rate(np.asarray(values, dtype=float)[: window[1] + 1], window)
    return fit.rate, fit.r_squared


def ratio_to_corpus_rate(numerator_rate: float, sums: Any, window: tuple[int, int], *,
                         n_resamples: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """``numerator_rate`` / (growth rate of a corpus norm curve), with a bootstrap CI over prompts.

    ``sums``: a probe :class:`~lmfacts.probe.accumulators.NormSums` (attn_out, mlp_out, …); its
    per-prompt content means (prompts with a NaN dropped) give the prompt-weighted mean curve, whose
    LSQ rate over the inclusive ``window`` is the denominator; ``numerator_rate`` (a weight
    statistic) is fixed. Returns ``{"corpus_rate", "ratio", "ratio_ci", "ci_level", "ci_n_resamples",
    "ci_method", "n_prompts"}``, or ``None`` with fewer than 2 usable prompts (no CI then).
    """
    from lmfacts.stats.growth import window_rates
    from lmfacts.stats.verdict import bootstrap_ci

    pp = sums.prompt_means()
    pp = pp[np.isfinite(pp).all(axis=1)]
    if pp.shape[0] < 2 or not math.isfinite(numerator_rate):
        return None
    boot = bootstrap_ci(pp, lambda a: numerator_rate / window_rates(a.mean(axis=1), window),
                        n_resamples=n_resamples, seed=seed)
    return {"corpus_rate": numerator_rate / boot.value, "ratio": boot.value, "ratio_ci": list(boot.ci),
            "ci_level": boot.level, "ci_n_resamples": boot.n_resamples, "ci_method": boot.method,
            "n_prompts": boot.n_prompts}


def measure_rn5(views: Any, probe: Any, exp: Any, normalization: str | None) -> dict[str, Any]:
    """RN-5: fitted growth rate of mean-over-heads ‖W_OV‖_F vs the fitted rate of mean content ‖attn_out‖.

    Window: ``window`` of the expectation, else the default over L blocks. Also ‖b_O‖ relative to the
    mean content ‖attn_out‖ per layer. With ≥ 2 prompts' content means, ``attn_rate`` is the rate of
    the prompt-weighted curve and ``rate_ratio_ci`` its bootstrap CI over prompts
    (:func:`ratio_to_corpus_rate`); ``attn_r2`` stays the token-weighted curve's fit.
    """
    L = probe.n_layers
    lo, hi = window_from(exp, L)
    ws = layer_weight_stats(views, normalization)
    attn = probe.attn_out.mean("content")
    r_ov, r2_ov = fitted_rate(ws["ov_fro_mean"], (lo, hi))
    r_attn, r2_attn = fitted_rate(attn, (lo, hi))
    with np.errstate(invalid="ignore"):
        b_rel = ws["b_o_norm"] / attn
    in_win = b_rel[lo:hi + 1]
    boot = ratio_to_corpus_rate(r_ov, probe.attn_out, (lo, hi))
    ci_part: dict[str, Any] = {"rate_ratio_ci": None, "attn_weighting": "tokens"}
    if boot is not None:  # the attn_out rate of the prompt-weighted curve, the ratio's CI over prompts
        r_attn = boot["corpus_rate"]
        ci_part = {"rate_ratio_ci": boot["ratio_ci"], "ci_level": boot["ci_level"],
                   "ci_n_resamples": boot["ci_n_resamples"], "ci_method": boot["ci_method"],
                   "n_prompts": boot["n_prompts"], "attn_weighting": "prompts"}
    return {"window": [lo, hi], "ov_rate": r_ov, "ov_r2": r2_ov, "attn_rate": r_attn, "attn_r2": r2_attn,
            "rate_ratio": r_ov / r_attn, **ci_part, "ov_fro_mean": ws["ov_fro_mean"].tolist(),
            "ov_fro_sum": ws["ov_fro_sum"].tolist(), "attn_out_norms": attn.tolist(),
            "b_o_rel": [None if not np.isfinite(v) else float(v) for v in b_rel],
            "b_o_rel_max_in_window": float(np.nanmax(in_win)) if np.isfinite(in_win).any() else None,
            "_weights": ws}


# --------------------------------------------------------------------------------------------
# RN-9: ‖x‖ = std(x)·√d for a zero-mean stream (and the centred_stream premise)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CentringStats:
    """Per residual point (L + 1 values), over the probe's sample of content token vectors.

    ``mean_over_std[l]``: max over sampled tokens of |mean(x)| / std(x) (mean and population std
    across the d_model entries of one token); ``identity_error[l]``: max over sampled tokens of
    |‖x‖ / (std(x)·√d) − 1|; ``n_tokens[l]``: sampled tokens at the point (NaN statistics where 0).
    Both are computed in float64 from the sampled (float32) vectors. Since ‖x‖²/d = std² + mean²,
    ``identity_error`` = sqrt(1 + (mean/std)²) − 1 ≤ ½·(mean/std)² token by token: the identity
    holds exactly as far as the stream is centred.
    """

    mean_over_std: list[float]
    identity_error: list[float]
    n_tokens: list[int]

    @property
    def max_mean_over_std(self) -> float:
        """Max over points with a sample (NaN when no point has one, or when one of them is NaN)."""
        return self._max(self.mean_over_std)

    @property
    def max_identity_error(self) -> float:
        """Max over points with a sample (NaN when no point has one, or when one of them is NaN)."""
        return self._max(self.identity_error)

    def _max(self, values: list[float]) -> float:
        vals = [v for v, n in zip(values, self.n_tokens, strict=True) if n > 0]
        return float(np.max(vals)) if vals else float("nan")


def centring_stats(probe: Any) -> CentringStats:
    """RN-9's statistics from ``probe.points[l].sample`` (≤ 512 content tokens per point)."""
    prem: list[float] = []
    ident: list[float] = []
    counts: list[int] = []
    d = probe.d_model
    for point in probe.points:
        x = point.sample
        if x is None or x.shape[0] == 0:
            prem.append(float("nan"))
            ident.append(float("nan"))
            counts.append(0)
            continue
        x = x.double()
        mu, sd = x.mean(-1), x.std(-1, unbiased=False)
        prem.append(float((mu.abs() / sd).max()))
        ident.append(float((x.norm(dim=-1) / (sd * math.sqrt(d)) - 1).abs().max()))
        counts.append(int(x.shape[0]))
    return CentringStats(prem, ident, counts)


def measure_rn9(probe: Any) -> dict[str, Any]:
    """RN-9's measurement, from :func:`centring_stats` on the probe's sample.

    Returns ``max_identity_error`` (the verdict's value), ``max_mean_over_std`` (the premise's value,
    which the ``centred_stream`` premise measures itself with :func:`centring_stats` before the claim
    runs), their per-point values (``identity_error_per_point``, ``mean_over_std_per_point``) and
    ``n_sampled_tokens`` per point.
    """
    stats = centring_stats(probe)
    return {"max_mean_over_std": stats.max_mean_over_std, "max_identity_error": stats.max_identity_error,
            "mean_over_std_per_point": list(stats.mean_over_std), "identity_error_per_point": list(stats.identity_error),
            "n_sampled_tokens": list(stats.n_tokens)}
