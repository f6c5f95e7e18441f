"""Logit-lens claims LL-1, LL-2 (sources: nostalgebraist, "interpreting GPT: the logit lens", LessWrong
2020; Belrose et al., "Eliciting Latent Predictions from Transformers with the Tuned Lens", arXiv
2303.08112; catalogue ../shared/claims-catalogue.md §Beyond the seeds).

Shared conventions. The residual stream at point l (``blocks.{l}.hook_resid_pre``, the stream entering
block l = after block l−1; point L = the last block's ``hook_resid_post``) is decoded like the final one:
the model's final norm, then its unembedding (tuned-lens ``Unembed.forward = unembedding(final_norm(h))``).
The final distribution is the model's unembedding of the model's own final-norm output (``unembed.hook_in``,
captured in the forward pass, which stops before the unembedding; ``unembed.hook_out`` where a pass computes
logits), so KL at point L is 0 only if that decoding *is* the model's head path (checked here, and against the
model's returned logits by the ``lens_readout`` premise). KL(p_final ‖ p_lens) in nats per token (tuned-lens' direction).
Tokens: up to 8 content positions per prompt (no BOS, no special token, no padding), drawn with
``numpy.random.default_rng([0, corpus index])``, over the MA / AS / LL sample (up to 64 corpus prompts, first
128 positions; :mod:`lmfacts.measures.beyond`), reduced inside the session's one probe pass: 8 × 64 = 512
tokens at most, the lens decoding (``[n, d] → [n, V]``) run on those rows only.

Window (decided from the catalogue's statement, not from a model's curve): "decoding the residual stream
after block ℓ" is points 1 … L (the embedding, point 0, is no block's output; it is reported, not judged),
and "falls with depth (ρ strongly negative)" is the Spearman ρ of mean KL against depth over that whole
window, ρ ≤ −0.8. Rises of the curve (``kl_increases``) are reported, never failed by themselves (Belrose et
al.: the logit lens is brittle in early layers of some families). A model whose KL rises through its middle
layers fails the whole-depth statement; that is a finding, and ``window`` can be narrowed per model by an
expectation entry that says why.

Premises: ``causal_decoder`` (next-token distributions; an encoder's head predicts masked tokens),
``trained_lm_head`` (a lens through an untrained head reads nothing) and ``lens_readout`` (the decoding of the
last block's output, and the final distribution, reproduce the logits the model returns: a head that rescales or
soft-caps its logits after the unembedding, which the decoding leaves out, would be read at another temperature,
and KL at point L would still be 0, since both sides leave it out). Control: the random twin's curve,
reported (a random model's lens is uninformative, no predicate); ``twin_also_shows`` says when the twin's
curve satisfies the predicate too (a residual stream that accumulates its blocks' writes moves towards its
final value even untrained, so the trend alone is weak evidence about training).
"""

from __future__ import annotations

from typing import Any

from lmfacts.claims import CORRELATION, SHARE, Domain, Param, claim
from lmfacts.context import ClaimContext
from lmfacts.measures.beyond import LENS_PER_PROMPT, session_beyond

WINDOW = Param("window", list[int], None, "point index",
               "inclusive points judged; unset: [1, L] (the outputs of blocks 0 … L−1)")
PREMISES = ("causal_decoder", "trained_lm_head", "lens_readout")


def _lens(ctx: ClaimContext, *, twin: bool = False, **kwargs: Any) -> tuple[Any, Any]:
    from lmfacts.stats.logit_lens import logit_lens_stats

    bp = session_beyond(ctx, twin=twin)
    assert bp.lens is not None, "the logit-lens reduction did not run (no final norm / unembedding hooks)"
    return logit_lens_stats(bp.lens.acc, **kwargs), bp


def _window(ctx: ClaimContext, n_points: int) -> tuple[int, int]:
    w = ctx.expectation["window"]
    # a model with fewer than 3 blocks has no depth trend in the default window 1 … L: not applicable (a window
    # given by an expectation entry that does not fit the model stays an error naming it)
    ctx.require(w is not None or n_points - 1 >= 3,
                f"the model has {n_points - 1} block(s): the default window 1 … {n_points - 1} holds "
                f"{max(n_points - 1, 0)} point(s), too few for a depth trend (need ≥ 3)")
    lo, hi = w if w is not None else [1, n_points - 1]
    if not (0 <= lo < hi <= n_points - 1) or hi - lo < 2:
        raise ValueError(f"window [{lo}, {hi}] must hold ≥ 3 points within [0, {n_points - 1}]")
    return lo, hi


def _judge_rho(ctx: ClaimContext, bp: Any, which: str, rho: float, lo: int, hi: int, band: tuple[Any, Any],
               point_ok: bool, point_message: str, *, flat: bool = False, **operands: Any) -> None:
    """The depth-trend verdict: with ≥ 2 prompts, ρ's bootstrap CI over prompts against ``band``
    (:func:`lmfacts.stats.logit_lens.lens_spearman_ci`), a closed band as the bound is "at most" / "at least" and ρ
    over a few points takes few values (passed when the whole CI lies inside, inconclusive when it straddles the
    edge); with one prompt, or a curve that is the same at every point of the window (``flat``: ρ
    is 0 with no spread to resample), the point estimate (``point_ok``, ``point_message``)."""
    from lmfacts.stats.logit_lens import lens_spearman_ci

    name = f"{which}_spearman"
    if flat or len(bp.lens.acc.per_prompt) < 2:
        ctx.check(point_ok, point_message, **operands)
        return
    boot = lens_spearman_ci(bp.lens.acc, which, (lo, hi))
    ctx.measured(**{f"{name}_ci": list(boot.ci)})
    ctx.interval(name, rho, boot.ci, band, closed=True, n_resamples=boot.n_resamples, method=boot.method,
                 level=boot.level,
                 label=f"Spearman ρ of the mean {'KL' if which == 'kl' else 'top-1 agreement'} with depth on "
                       f"points {lo}–{hi}")


def _spearman(values: list[float], lo: int, hi: int) -> float:
    """ρ of ``values[lo … hi]`` with depth (NaN where one is not finite)."""
    from lmfacts.stats.trends import depth_spearman

    return depth_spearman(values[lo:hi + 1])


def _conventions(ctx: ClaimContext, bp: Any, lo: int, hi: int) -> None:
    ctx.conventions(hook="blocks.{l}.hook_resid_pre (points 0 … L−1), last block's hook_resid_post (point L)",
                    decode="final norm, unembedding, then the head's output transform (soft-capping, logits_scaling, logit_scale; none on most heads): the logits the model returns (tuned-lens Unembed)",
                    final=", ".join(sorted(bp.lens.final_source)), divergence="KL(p_final ‖ p_lens), nats/token",
                    positions=f"≤ {LENS_PER_PROMPT} content tokens per prompt, seeded by corpus index",
                    sample=f"{bp.n_prompts} corpus prompts (reduced in the shared probe pass)", window=[lo, hi], processing="raw")


# ---------------------------------------------------------------------------------------------
@claim("LL-1", title="logit-lens KL to the final distribution falls with depth and is 0 at the last layer",
       source="nostalgebraist 2020 'interpreting GPT: the logit lens'; Belrose et al. 2023 (arXiv 2303.08112) §2",
       requires=PREMISES, headline=("kl_spearman", "kl_first", "kl_last"),
       params=(WINDOW,
               Param("max_rho", float, -0.8, "", "'strongly negative': Spearman ρ(mean KL, depth) over the window "
                                                 "at most this", CORRELATION),
               Param("kl_threshold", float, 0.1, "nats", "kl_from: first point from which mean KL stays ≤ this",
                     Domain(0, None, "a KL divergence")),
               Param("kl_last_tol", float, 1e-4, "nats (float32)",
                     "KL at the last point at most this (0 by construction when the decoding is the model's head); "
                     "scaled to the dtype")))
def test_ll1_kl_falls_with_depth(ctx: ClaimContext) -> None:
    """LL-1: the KL from the final output distribution to the logit lens at point l falls with depth.

    Statistic (:func:`lmfacts.stats.logit_lens.logit_lens_stats`): mean KL(p_final ‖ p_lens,l) over the sampled
    tokens at every point l = 0 … L; Spearman ρ of the mean against the point index over the window (default
    1 … L); ``kl_last`` at point L; ``kl_from`` (first point from which mean KL ≤ ``kl_threshold``) and
    ``kl_increases`` (points where the mean rises > 10 % over the previous) reported. Claim: ρ ≤ ``max_rho``
    — judged by its 95% bootstrap CI over prompts (:func:`lmfacts.stats.logit_lens.lens_spearman_ci`, 2000
    resamples, percentile; passed when the whole CI is ≤ ``max_rho``, failed when all of it lies above,
    inconclusive when it straddles; one prompt: the point estimate) — and kl_last ≤
    ``kl_last_tol`` (dtype-scaled). Hooks, positions, window: module docstring. Control: the
    twin's ρ and curve, reported. References: nostalgebraist 2020; Belrose et al. 2023.
    Source: nostalgebraist 2020 'interpreting GPT: the logit lens'; Belrose et al. 2023 (arXiv 2303.08112) §2.
    """
    exp = ctx.expectation
    ll, bp = _lens(ctx, kl_threshold=exp["kl_threshold"])
    n = len(ll.kl_mean)
    lo, hi = _window(ctx, n)
    rho = _spearman(ll.kl_mean, lo, hi)
    tw, _ = _lens(ctx, twin=True, kl_threshold=exp["kl_threshold"])
    trho = _spearman(tw.kl_mean, lo, hi)
    tol = ctx.float_tol(exp["kl_last_tol"])
    ctx.statistic("Spearman ρ of the mean KL(final ‖ logit lens) against depth over the window, and the KL at the "
                  "last point")
    _conventions(ctx, bp, lo, hi)
    ctx.measured(kl_spearman=rho, kl_spearman_all_points=ll.kl_spearman, kl_first=ll.kl_mean[lo], kl_last=ll.kl_last,
                 kl_mean=ll.kl_mean, kl_sem=ll.kl_sem, kl_from=ll.kl_from, kl_increases=ll.kl_increases,
                 n_tokens=ll.n_tokens)
    ctx.expected(max_rho=exp["max_rho"], kl_last=0.0)
    ctx.tolerance(kl_last_tol=tol)
    ctx.control(kl_spearman=trho, kl_mean=tw.kl_mean, n_tokens=tw.n_tokens, seed=0,
                note="reported only: a random model's lens is uninformative")
    ctx.measured(twin_also_shows=bool(trho <= exp["max_rho"]))
    x = list(range(n))
    ctx.figure({"id": "ll1-kl", "title": "LL-1 KL(final ‖ logit lens) per point", "xlabel": "point (stream entering "
                "block l; L = final)", "ylabel": "mean KL (nats)", "logy": True, "logx": False,
                "series": [{"label": "model", "x": x, "y": [max(v, 1e-6) for v in ll.kl_mean], "style": "line"},
                           {"label": "random twin", "x": x, "y": [max(v, 1e-6) for v in tw.kl_mean],
                            "style": "dashed"}],
                "vspans": [{"lo": lo, "hi": hi, "label": "judged"}]})
    ctx.check(ll.kl_last <= tol, f"KL at the last point is {ll.kl_last:.3g} nats (> {tol:.3g}): the lens decoding "
                                 f"(final norm + unembedding) is not the model's head", kl_last=ll.kl_last)
    rises = [p for p in ll.kl_increases if lo <= p <= hi]
    _judge_rho(ctx, bp, "kl", rho, lo, hi, (None, exp["max_rho"]), rho <= exp["max_rho"],
               f"KL does not fall steadily with depth: ρ = {rho:.3f} over points {lo}–{hi} (need ≤ {exp['max_rho']}); "
               f"it rises at points {rises[:8]}", kl_spearman=rho, kl_mean=ll.kl_mean[lo:hi + 1])


# ---------------------------------------------------------------------------------------------
@claim("LL-2", title="the logit lens's top-1 token agrees with the final top-1 on a share that rises with depth",
       source="nostalgebraist 2020 'interpreting GPT: the logit lens'; Belrose et al. 2023 (arXiv 2303.08112)",
       requires=PREMISES, headline=("agreement_spearman", "agreement_first", "agreement_before_last"),
       params=(WINDOW,
               Param("min_rho", float, 0.8, "", "Spearman ρ(top-1 agreement, depth) over the window at least this",
                     CORRELATION),
               Param("agreement_threshold", float, 0.9, "share", "agreement_from: first point from which the share "
                                                                 "stays ≥ this", SHARE)))
def test_ll2_top1_agreement_rises(ctx: ClaimContext) -> None:
    """LL-2: the share of tokens whose lens top-1 equals the final top-1 rises with depth.

    Statistic: per point, the share of sampled tokens whose argmax of the lens logits equals the argmax of the
    model's logits; Spearman ρ against the point index over the window (default 1 … L, as LL-1);
    ``agreement_from`` reported. Claim: ρ ≥ ``min_rho``, judged by its 95% bootstrap CI over prompts as LL-1
    (one prompt: the point estimate). Hooks, positions, window: module docstring.
    Control: the twin's ρ, reported. References: nostalgebraist 2020; Belrose et al. 2023.
    Source: nostalgebraist 2020 'interpreting GPT: the logit lens'; Belrose et al. 2023 (arXiv 2303.08112).
    """
    exp = ctx.expectation
    ll, bp = _lens(ctx, agreement_threshold=exp["agreement_threshold"])
    n = len(ll.agreement)
    lo, hi = _window(ctx, n)
    rho = _spearman(ll.agreement, lo, hi)
    tw, _ = _lens(ctx, twin=True, agreement_threshold=exp["agreement_threshold"])
    ctx.statistic("Spearman ρ of the logit lens's top-1 agreement with the final top-1 against depth over the window")
    _conventions(ctx, bp, lo, hi)
    ctx.measured(agreement_spearman=rho, agreement=ll.agreement, agreement_first=ll.agreement[lo],
                 agreement_before_last=ll.agreement[-2], agreement_from=ll.agreement_from, n_tokens=ll.n_tokens)
    ctx.expected(min_rho=exp["min_rho"])
    trho = _spearman(tw.agreement, lo, hi)
    ctx.control(agreement_spearman=trho, agreement=tw.agreement, seed=0, note="reported only")
    ctx.measured(twin_also_shows=bool(trho >= exp["min_rho"]))
    x = list(range(n))
    ctx.figure({"id": "ll2-agreement", "title": "LL-2 top-1 agreement with the final output per point",
                "xlabel": "point", "ylabel": "share of tokens", "logy": False, "logx": False,
                "series": [{"label": "model", "x": x, "y": ll.agreement, "style": "line"},
                           {"label": "random twin", "x": x, "y": tw.agreement, "style": "dashed"}],
                "vspans": [{"lo": lo, "hi": hi, "label": "judged"}]})
    window = ll.agreement[lo:hi + 1]
    flat = (f"; agreement is {window[0]:.3f} at every point of the window: it does not change with depth, so ρ is 0 "
            "(no trend)") if max(window) == min(window) else ""
    _judge_rho(ctx, bp, "agreement", rho, lo, hi, (exp["min_rho"], None), rho >= exp["min_rho"],
               f"top-1 agreement does not rise steadily with depth: ρ = {rho:.3f} over points {lo}–{hi} (need ≥ "
               f"{exp['min_rho']}){flat}", flat=bool(flat), agreement_spearman=rho, agreement=window)
