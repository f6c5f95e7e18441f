"""Massive-activation claims MA-1 … MA-4 (source: Sun, Chen, Kolter, Liu, "Massive Activations in Large
Language Models", COLM 2024, arXiv 2402.17762, code locuslab/massive-activations; thresholds and the
reset intervention as coded in Owen et al. 2025, arXiv 2503.22329, bluorion-com/refine_massive_activations;
catalogue: ../shared/claims-catalogue.md §Beyond the seeds).

Shared conventions. Activations: the *output of each block*, ``blocks.{l}.hook_resid_post`` (Sun's
layer-wise plots), every real position (padding excluded), raw weights. A massive activation at block l:
``|a| > abs_threshold`` (100) and ``|a| > rel_threshold`` (1000) × the median |a| over every token and
dimension of that block (strict, as the refinement's ``utils/model.py``). The reductions (per-prompt top-8
|a| with position, dimension and position class; a log10|a| histogram for the median, within ±0.58 %) are
:class:`lmfacts.measures.beyond.MassiveReduction`, reduced inside the session's one probe pass (the forward
passes every claim shares) over a sample of up to 64 corpus prompts (every prompt of ≥ 64 tokens, then a
seeded choice of the others; in causal models the first 128 positions, what the prompt truncated to 128
tokens gives), shared by MA, AS and LL. Position classes: ``first`` (the first real position: the
prepended BOS), ``delimiter`` ("." / "\\n" ids), ``special`` (other special tokens), ``other``.

Premises: ``residual_sum`` (the stream is a plain sum of the sublayers' outputs, never re-normalised; a
post-LN encoder re-normalises the stream after every sublayer, so its block outputs are LayerNorm outputs
bounded by √d·|γ| + |β| and the claim does not apply, e.g. MiniLM: largest |a| / median 43; a norm after
each sublayer inside the residual branch, as in Gemma 2 / OLMo 2, or a residual multiplier, as in Granite,
leaves the stream a sum and the claims apply); MA-3 / MA-4 also ``has_massive_activations`` (measured on
the same pass). The weights' storage format is not a premise: a dequantised GGUF model computes its
activations in float like any other (the format is recorded in the conventions). Control: the randomly
initialised twin (:mod:`lmfacts.models.twin`, seed 0) run through the same pass on 32 prompts of the sample
(its long prompts first): a claim about what training produces must not hold for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmfacts.claims import COUNT, SAMPLE_SIZE, SHARE, Domain, Param, claim
from lmfacts.context import ClaimContext
from lmfacts.measures.beyond import MA_CLASSES, MAX_TOKENS, finite_massive, session_beyond

ABS_THRESHOLD = Param("abs_threshold", float, 100.0, "activation",
                      "massive: |a| above this (Sun et al.; refinement MASSIVE_ACTIVATION_ABS_THRESHOLD)")
REL_THRESHOLD = Param("rel_threshold", float, 1000.0, "× layer median",
                      "and above this multiple of the block's median |a| (refinement ..._REL_THRESHOLD)")
MIN_SHARE = Param("min_share", float, 0.5, "share of prompts",
                  "a (block, class, dimension) site counts when massive in at least this share of prompts", SHARE)
HOOK = "blocks.{l}.hook_resid_post (output of block l)"


def _massive(ctx: ClaimContext, *, twin: bool = False) -> Any:
    """The MA statistics of the model (or its twin) under the claim's thresholds."""
    from lmfacts.stats.massive import massive_activations

    exp = ctx.expectation
    bp = session_beyond(ctx, twin=twin)
    kwargs = {"abs_threshold": exp["abs_threshold"], "rel_threshold": exp["rel_threshold"]}
    if "min_share" in exp.params:
        kwargs["min_share"] = exp["min_share"]
    ma = massive_activations(bp.massive.acc, **kwargs)
    finite_massive(ma, "the random twin's " if twin else "")
    return ma, bp



def _conventions(ctx: ClaimContext, bp: Any, ma: Any) -> None:
    info = ctx.info
    ctx.conventions(hook=HOOK, positions="every real position (padding excluded)", processing="raw",
                    threshold=f"|a| > {ma.abs_threshold:g} and |a| > {ma.rel_threshold:g} × block median |a| (strict)",
                    median=f"log10|a| histogram, within ±{100 * ma.median_rel_error:.2f} %",
                    position_classes="first = first real position (the BOS where prepended), delimiter = '.'/'\\n' ids, "
                                     "special = other special tokens, other",
                    sample=f"{bp.n_prompts} corpus prompts (every prompt of ≥ 64 tokens first, then seeded; causal "
                           f"models: first {MAX_TOKENS} positions), reduced in the shared probe pass",
                    weights=str(info.quantization or "float"), bos_prepended=bool(info.prepends_bos))


def _twin_control(ctx: ClaimContext) -> Any:
    tw, tbp = _massive(ctx, twin=True)
    ctx.control(any_massive=tw.any_massive, max_ratio=float(np.max(tw.ratio)), max_abs=float(np.max(tw.top1)),
                n_prompts=tbp.n_prompts, seed=0)
    return tw


def _onset(ma: Any) -> tuple[int, int, float]:
    """(onset, end, plateau): onset = first block whose top-1 reaches half the plateau (the median top-1 over the
    massive blocks), i.e. where the plateau-scale massive activations appear (the block from which
    :func:`lmfacts.stats.massive.massive_activations` counts ``rise_layers``); end = last block of the
    contiguous run of massive blocks from the onset."""
    top1 = np.asarray(ma.top1, dtype=float)
    plateau = float(np.median(top1[np.asarray(ma.has_massive, dtype=bool)]))
    onset = int(np.flatnonzero(top1 >= 0.5 * plateau)[0])
    end = onset
    while end + 1 < len(top1) and ma.has_massive[end + 1]:
        end += 1
    return onset, end, plateau


def _ma_figure(ctx: ClaimContext, fid: str, title: str, ma: Any, tw: Any | None, span: tuple[int, int] | None) -> None:
    x = list(range(len(ma.top1)))
    series = [{"label": f"top-{j + 1} |a|", "x": x, "y": [t[j] if len(t) > j else None for t in ma.top3],
               "style": "line" if j == 0 else "dashed"} for j in range(3)]
    series.append({"label": "median |a|", "x": x, "y": ma.median, "style": "points"})
    if tw is not None:
        series.append({"label": "random twin top-1", "x": x, "y": tw.top1, "style": "dashed"})
    ctx.figure({"id": fid, "title": title, "xlabel": "block (output)", "ylabel": "|activation|", "logy": True,
                "logx": False, "series": series,
                "vspans": [{"lo": span[0], "hi": span[1], "label": "massive"}] if span else []})


# ---------------------------------------------------------------------------------------------
@claim("MA-1", title="some block output carries massive activations (≥ 1000× the median)",
       source="Sun et al. 2024 §2 (arXiv 2402.17762); thresholds: Owen et al. 2025 refine_massive_activations "
              "utils/model.py", requires=("residual_sum",),
       headline=("max_ratio", "max_abs", "max_layer"),
       params=(ABS_THRESHOLD, REL_THRESHOLD,
               Param("expected_max_abs", float, None, "activation",
                     "published largest |a| over the blocks (unset: not compared)"),
               Param("max_abs_rtol", float, 0.25, "relative", "tolerance of expected_max_abs")))
def test_ma1_massive_activations_exist(ctx: ClaimContext) -> None:
    """MA-1: some block has a massive activation; the random twin has none.

    Statistic: per block l, the top-1/2/3 |a| of the block output over every real position and
    dimension of the sample, the median |a| (histogram estimate) and ratio = top-1 / median; a block has a
    massive activation when its top-1 exceeds both thresholds. Headline: the largest ratio, its |a| and
    block. Hook: ``blocks.{l}.hook_resid_post``; positions: all real positions; window: every block.
    Where an expectation gives ``expected_max_abs`` (a published magnitude), the largest top-1 must lie
    within ``max_abs_rtol`` of it. Control: the twin must have no massive activation.
    References: Sun et al. 2024 §2, Fig. 1–2; Owen et al. 2025 (thresholds).
    Source: Sun et al. 2024 §2 (arXiv 2402.17762); thresholds: Owen et al. 2025 refine_massive_activations utils/model.py.
    """
    exp = ctx.expectation
    ma, bp = _massive(ctx)
    tw = _twin_control(ctx)
    layer = int(np.argmax(ma.ratio))
    ctx.statistic("per block: top-1/2/3 |a| of the block output and its ratio to the block's median |a|; massive = "
                  "|a| > abs_threshold and ratio > rel_threshold")
    _conventions(ctx, bp, ma)
    ctx.measured(any_massive=ma.any_massive, max_ratio=float(ma.ratio[layer]), max_abs=float(max(ma.top1)),
                 max_layer=layer, massive_layers=[i for i, h in enumerate(ma.has_massive) if h],
                 top1=ma.top1, median=ma.median, ratio=ma.ratio, n_prompts=ma.n_prompts,
                 saturated_layers=ma.saturated_layers)
    ctx.expected(any_massive=True, twin_any_massive=False,
                 **({"max_abs": exp["expected_max_abs"]} if exp["expected_max_abs"] is not None else {}))
    ctx.tolerance(median_rel_error=ma.median_rel_error, max_abs_rtol=exp["max_abs_rtol"])
    massive = [i for i, h in enumerate(ma.has_massive) if h]
    _ma_figure(ctx, "ma1-topk", "MA-1 top-k |a| and median per block", ma, tw,
               (massive[0], massive[-1]) if massive else None)
    ctx.check(ma.any_massive, f"no massive activation: the largest top-1 |a| / median is {ma.ratio[layer]:.4g} "
                              f"(|a| = {ma.top1[layer]:.4g}) at block {layer}; need |a| > {ma.abs_threshold:g} and "
                              f"ratio > {ma.rel_threshold:g}", max_ratio=ma.ratio[layer], max_abs=ma.top1[layer],
              ratio=ma.ratio, top1=ma.top1)
    ctx.check(not tw.any_massive, f"the random twin has massive activations too (max ratio {max(tw.ratio):.4g}): not "
                                  f"evidence about training", twin_max_ratio=max(tw.ratio), twin_ratio=tw.ratio)
    if exp["expected_max_abs"] is not None:
        want, rtol = exp["expected_max_abs"], exp["max_abs_rtol"]
        got = float(max(ma.top1))
        ctx.check(abs(got / want - 1) <= rtol, f"largest |a| {got:.5g} is not within {rtol:.0%} of the published "
                                               f"{want:.5g}", max_abs=got, expected_max_abs=want)


# ---------------------------------------------------------------------------------------------
@claim("MA-2", title="massive activations sit at the first token and delimiters, in a few fixed dimensions",
       source="Sun et al. 2024 §2.2 (arXiv 2402.17762): 'starting word token and delimiter tokens', fixed feature "
              "dimensions", requires=("residual_sum", "has_massive_activations"),
       headline=("dims", "class_share", "top_site.share"),
       params=(ABS_THRESHOLD, REL_THRESHOLD, MIN_SHARE,
               Param("classes", list[str], ["first", "delimiter"], "position class",
                     "the position classes massive activations must sit at"),
               Param("min_class_share", float, 0.9, "share of massive entries",
                     "at least this share of all massive (prompt, block, position, dim) entries in those classes",
                     SHARE),
               Param("max_dims", int, 8, "dimensions", "'a handful': at most this many dimensions (dims)", COUNT),
               Param("expected_dims", list[int], None, "dimension",
                     "published dimensions that must be among dims (unset: not compared)", COUNT)))
def test_ma2_where_massive_activations_sit(ctx: ClaimContext) -> None:
    """MA-2: massive activations occur at the first token (and delimiters) in a handful of fixed dimensions.

    Statistic: every massive entry kept by the reduction (per prompt and block, the top-8 |a| with position,
    dimension and class) grouped into sites (block, class, dimension) with the share of prompts in which each
    is massive; ``dims`` = dimensions massive in ≥ ``min_share`` of prompts at some block; ``class_share`` =
    share of massive entries in ``classes``. Claim: class_share ≥ ``min_class_share``, 1 ≤ |dims| ≤
    ``max_dims`` and, where published, ``expected_dims`` ⊆ dims. Hook: ``blocks.{l}.hook_resid_post``;
    positions: all real, classed (module docstring); window: every block. The first real position is the
    prepended BOS where the tokenizer prepends one (recorded as ``bos_prepended``), else the first word.
    Control: the twin (no site expected). References: Sun et al. 2024 §2.2; catalogue MA-2 (GPT-2 dim 447,
    gemma-3-1b-pt dims 1125/1038, LLaMA-2-7B dims 1415/2533).
    Source: Sun et al. 2024 §2.2 (arXiv 2402.17762): 'starting word token and delimiter tokens', fixed feature dimensions.
    """
    exp = ctx.expectation
    ma, bp = _massive(ctx)
    tw = _twin_control(ctx)
    allowed = list(exp["classes"])
    unknown = sorted(set(allowed) - set(MA_CLASSES))
    if unknown:
        raise ValueError(f"classes: unknown position class(es) {unknown}; known: {list(MA_CLASSES)}")
    total = sum(ma.class_counts.values())
    in_cls = sum(v for k, v in ma.class_counts.items() if k in allowed)
    class_share = in_cls / total if total else float("nan")
    sites = sorted(ma.sites, key=lambda s: (-s["share"], -s["max_abs"]))
    dims_share = {d: max(s["share"] for s in ma.sites if s["dim"] == d) for d in ma.dims}
    ctx.statistic("massive entries grouped by (block, position class, dimension): share of prompts per site, the "
                  "dimensions massive in ≥ min_share of prompts, the share of entries at the allowed classes")
    _conventions(ctx, bp, ma)
    ctx.measured(dims=ma.dims, dims_share=dims_share, class_counts=ma.class_counts, class_share=class_share,
                 top_site=sites[0] if sites else None, sites=sites[:20], n_sites=len(sites), n_prompts=ma.n_prompts,
                 saturated_layers=ma.saturated_layers)
    ctx.expected(classes=allowed, min_class_share=exp["min_class_share"], max_dims=exp["max_dims"],
                 **({"dims": exp["expected_dims"]} if exp["expected_dims"] is not None else {}))
    ctx.control(n_sites=len(tw.sites), dims=tw.dims)
    ctx.check(class_share >= exp["min_class_share"],
              f"only {class_share:.2f} of the {total} massive entries are at {allowed} (classes: {ma.class_counts})",
              class_share=class_share, min_class_share=exp["min_class_share"])
    ctx.check(1 <= len(ma.dims) <= exp["max_dims"],
              f"{len(ma.dims)} dimensions are massive in ≥ {ma.min_share:.0%} of prompts ({ma.dims[:12]}); 'a "
              f"handful' means 1 … {exp['max_dims']}", n_dims=len(ma.dims), max_dims=exp["max_dims"])
    if exp["expected_dims"] is not None:
        missing = sorted(set(exp["expected_dims"]) - set(ma.dims))
        ctx.check(not missing, f"published dimension(s) {missing} are not among the measured {ma.dims}",
                  n_missing=len(missing))


# ---------------------------------------------------------------------------------------------
@claim("MA-3", title="massive activations appear abruptly, early, and stay nearly constant",
       source="Sun et al. 2024 §2.1 (arXiv 2402.17762): 'appear abruptly … remain nearly constant in the middle "
              "layers'", requires=("residual_sum", "has_massive_activations"),
       headline=("emergence_layer", "jump", "rise_layers", "plateau_ratio"),
       params=(ABS_THRESHOLD, REL_THRESHOLD,
               Param("max_rise_layers", int, 2, "blocks", "'within one or two layers': rise from < 5 % to ≥ 50 % "
                                                          "of the plateau in at most this many blocks", COUNT),
               Param("max_emergence_frac", float, 0.5, "share of depth", "'early': first massive block ≤ this × L",
                     SHARE),
               Param("max_plateau_ratio", float, 2.0, "×",
                     "'nearly constant': max / min top-1 over the run of massive blocks at most this",
                     Domain(1, None, "a max / min ratio")),
               Param("expected_layer", int, None, "block", "published first massive block (unset: not compared)",
                     COUNT),
               Param("layer_tol", int, 1, "blocks", "tolerance of expected_layer")))
def test_ma3_emergence_and_plateau(ctx: ClaimContext) -> None:
    """MA-3: massive activations appear abruptly in an early block and stay nearly constant after it.

    Statistic (from :func:`lmfacts.stats.massive.massive_activations`): plateau = median top-1 over the massive
    blocks; ``emergence_layer`` e = the first block whose top-1 reaches half the plateau (where the
    plateau-scale activations appear; it must itself be a massive block); ``rise_layers`` = blocks from the
    last block below 5 % of the plateau to e; ``plateau_ratio`` = max / min top-1 over the contiguous run of
    massive blocks from e; ``jump`` = top1[e] / top1[e−1] (reported). The first block that crosses the
    thresholds at all is reported as ``first_massive_block``: a model can have small activations just over
    1000× the median well before the large ones (SmolLM2-135M: top-1 ≈ 870 at ≈ 1000× from block 2, ≈ 25,000
    from block 11), and the claim is about the large ones. Claim: rise_layers ≤ ``max_rise_layers``, e ≤
    ``max_emergence_frac`` · L, plateau_ratio ≤ ``max_plateau_ratio``; the published block where given. Hook: ``blocks.{l}.hook_resid_post``; positions: all real; window: every
    block (Sun: they fade in the last blocks, so the plateau is the run from e). Control: the twin (has none).
    References: Sun et al. 2024 §2.1 (LLaMA-2-7B: from layer 2).
    Source: Sun et al. 2024 §2.1 (arXiv 2402.17762): 'appear abruptly … remain nearly constant in the middle layers'.
    """
    exp = ctx.expectation
    ma, bp = _massive(ctx)
    tw = _twin_control(ctx)
    L = len(ma.top1)
    assert ma.emergence_layer is not None  # has_massive_activations holds
    e, end, plateau = _onset(ma)
    run = np.asarray(ma.top1[e:end + 1], dtype=float)
    plateau_ratio = float(run.max() / run.min())
    jump = float(ma.top1[e] / ma.top1[e - 1]) if e > 0 else None
    frac = e / L
    ctx.statistic("first block with a massive activation, blocks of the rise (5 % → 50 % of the plateau), max/min "
                  "top-1 over the contiguous massive run")
    _conventions(ctx, bp, ma)
    ctx.measured(emergence_layer=e, emergence_frac=frac, jump=jump, rise_layers=ma.rise_layers,
                 plateau_ratio=plateau_ratio, plateau_blocks=[e, end], plateau=plateau, n_blocks=L, top1=ma.top1,
                 first_massive_block=ma.emergence_layer, first_massive_top1=ma.top1[ma.emergence_layer],
                 first_massive_ratio=ma.ratio[ma.emergence_layer])
    ctx.expected(max_rise_layers=exp["max_rise_layers"], max_emergence_frac=exp["max_emergence_frac"],
                 max_plateau_ratio=exp["max_plateau_ratio"],
                 **({"emergence_layer": exp["expected_layer"]} if exp["expected_layer"] is not None else {}))
    ctx.control(emergence_layer=tw.emergence_layer)
    _ma_figure(ctx, "ma3-emergence", "MA-3 emergence and plateau of the top-1 |a|", ma, tw, (e, end))
    ctx.check(bool(ma.has_massive[e]), f"block {e}, where the top-1 reaches half the plateau ({plateau:.4g}), is not "
                                       f"itself massive (ratio {ma.ratio[e]:.4g})", ratio=ma.ratio[e])
    ctx.check(ma.rise_layers <= exp["max_rise_layers"],
              f"the rise takes {ma.rise_layers} blocks (need ≤ {exp['max_rise_layers']}); jump ×{jump}",
              rise_layers=ma.rise_layers, max_rise_layers=exp["max_rise_layers"])
    ctx.check(frac <= exp["max_emergence_frac"],
              f"first massive block {e} of {L} ({frac:.2f} of the depth) is not early (≤ {exp['max_emergence_frac']})",
              emergence_frac=frac, max_emergence_frac=exp["max_emergence_frac"])
    ctx.check(plateau_ratio <= exp["max_plateau_ratio"],
              f"top-1 varies ×{plateau_ratio:.3g} over the massive blocks {e}–{end} (need ≤ "
              f"{exp['max_plateau_ratio']})", plateau_ratio=plateau_ratio,
              max_plateau_ratio=exp["max_plateau_ratio"])
    if exp["expected_layer"] is not None:
        ctx.check(abs(e - exp["expected_layer"]) <= exp["layer_tol"],
                  f"first massive block {e}, published {exp['expected_layer']} ± {exp['layer_tol']}",
                  emergence_layer=e, expected_layer=exp["expected_layer"])


# ---------------------------------------------------------------------------------------------
def _site_values(ma: Any, layer: int) -> dict[int, tuple[float, float]]:
    """Per massive dimension at ``layer`` (sites massive in ≥ min_share of prompts): (mean signed value, mean
    |a|) over its sites, weighted by prompts."""
    out: dict[int, list[tuple[float, float]]] = {}
    for s in ma.sites:
        if s["layer"] == layer and s["share"] >= ma.min_share:
            out.setdefault(s["dim"], []).extend([(s["mean_value"], s["mean_abs"])] * s["n_prompts"])
    return {d: (float(np.mean([v for v, _ in rows])), float(np.mean([a for _, a in rows]))) for d, rows in out.items()}


def _reset_hook(layer: int, values: dict[int, tuple[float, float]], mode: str) -> tuple[str, Any]:
    """Forward hook on block ``layer``'s output setting the massive entries of ``values``' dims to their mean
    (``mode="mean"``) or to 0 (``"zero"``): in each dim, the entries with |a| > half the dim's mean massive |a|,
    located per prompt."""
    import torch

    dims = sorted(values)
    fill = torch.tensor([values[d][0] for d in dims])
    cut = torch.tensor([0.5 * values[d][1] for d in dims])

    def hook(x: Any, hook: Any) -> Any:
        sub = x[..., dims]
        mask = sub.abs() > cut.to(x.dtype).to(x.device)
        repl = torch.zeros_like(sub) if mode == "zero" else fill.to(x.dtype).to(x.device).expand_as(sub)
        x[..., dims] = torch.where(mask, repl, sub)
        return x

    return f"blocks.{layer}.hook_resid_post", hook


@claim("MA-4", title="massive activations act as biases: set to their mean the loss barely moves, set to zero it rises",
       source="Sun et al. 2024 §3 (arXiv 2402.17762), Table 2; Owen et al. 2025 refine_massive_activations "
              "(reset_first_massive_activations)",
       requires=("causal_decoder", "trained_lm_head", "residual_sum", "has_massive_activations"),
       headline=("delta_zero", "delta_mean", "zero_minus_mean"),
       params=(ABS_THRESHOLD, REL_THRESHOLD, MIN_SHARE,
               Param("n_prompts", int, 16, "prompts", "prompts of the sample the three loss runs use", SAMPLE_SIZE),
               Param("max_mean_delta", float, 0.02, "nats/token", "'mean ≈ clean': |loss(mean) − loss(clean)| below this"),
               Param("min_zero_over_mean", float, 5.0, "×", "'zero ≫ mean': Δzero ≥ this × |Δmean|"),
               Param("expected_ppl", dict, None, "perplexity",
                     "published {clean, mean, zero} perplexities (on the paper's data: reported, not judged)")))
def test_ma4_massive_activations_act_as_biases(ctx: ClaimContext) -> None:
    """MA-4: replacing the massive activations by their mean leaves the loss ≈ unchanged; zeroing them raises it.

    Intervention (Sun et al. §3; the refinement's ``reset_first_massive_activations``): a forward hook on the
    output of the block e where the massive activations appear (MA-3's emergence block: the first block whose
    top-1 reaches half the plateau; ``blocks.{e}.hook_resid_post``) replaces, in every massive dimension of e
    (sites massive in ≥ ``min_share`` of prompts), each entry whose |a| exceeds half that dimension's mean
    massive |a| by the dimension's mean signed value over the sample's prompts ("mean"), or by 0 ("zero");
    the entries are located per prompt by value, so the first token and any delimiter carrying one are both
    reset. Statistic: mean next-token loss (nats/token,
    :func:`lmfacts.ablation.next_token_loss`) on ``n_prompts`` prompts of the sample, clean / mean / zero;
    ``delta_mean``, ``delta_zero`` and their paired bootstrap CIs over prompts
    (:func:`lmfacts.stats.massive.bias_ablation_effect`, 2000 resamples, 95 %). Verdict: the CI of Δmean inside
    (−max_mean_delta, max_mean_delta); the CI of Δzero − Δmean above 0; Δzero ≥ ``min_zero_over_mean`` ×
    |Δmean|. Published perplexities (WikiText) are reported beside ours, not compared (other data).
    Hooks: ``blocks.{l}.hook_resid_post`` (the pass), ``blocks.{e}.hook_resid_post`` (the reset); positions:
    every real target token (the loss), the massive entries of block e (the reset); window: block e only.
    Control: the twin has no massive activation to reset (its count is reported).
    References: Sun et al. 2024 §3; catalogue MA-4 (gemma-3-1b-pt 9.79 / 9.79 / 10.21; GPT-2 30.42 / – / 30.57).
    Source: Sun et al. 2024 §3 (arXiv 2402.17762), Table 2; Owen et al. 2025 refine_massive_activations (reset_first_massive_activations).
    """
    from lmfacts.ablation import next_token_loss, tokenize_texts
    from lmfacts.stats.massive import bias_ablation_effect

    exp = ctx.expectation
    ma, bp = _massive(ctx)
    tw = _twin_control(ctx)
    assert ma.emergence_layer is not None
    e = _onset(ma)[0]
    keep = _site_values(ma, e)
    ctx.require(bool(keep), f"no massive site at block {e} is massive in ≥ {ma.min_share:.0%} of prompts: nothing to "
                            f"reset consistently")
    lm = ctx.model()
    info = lm.info
    texts = bp.texts[: exp["n_prompts"]]
    n_ctx = min(info.n_ctx, MAX_TOKENS)
    kw = dict(prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
              pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=n_ctx, device=info.device,
              batch_size=ctx.session.options.batch_size or 16)
    rows = tokenize_texts(lm.bridge, texts, prepend_bos=info.prepends_bos, n_ctx=n_ctx)  # once for the three runs
    clean = next_token_loss(lm.bridge, texts, rows=rows, **kw)
    mean = next_token_loss(lm.bridge, texts, fwd_hooks=[_reset_hook(e, keep, "mean")], rows=rows, **kw)
    zero = next_token_loss(lm.bridge, texts, fwd_hooks=[_reset_hook(e, keep, "zero")], rows=rows, **kw)
    targets = [len(r) - 1 for r in rows]
    ok = [i for i, n in enumerate(targets) if n > 0]
    res = bias_ablation_effect([clean.per_prompt[i] for i in ok], [mean.per_prompt[i] for i in ok],
                               [zero.per_prompt[i] for i in ok], weights=[targets[i] for i in ok])
    zmm = res.delta_zero - res.delta_mean
    ctx.statistic("next-token loss with the massive activations of the first massive block set to their mean vs to "
                  "zero, minus the clean loss (paired over prompts)")
    _conventions(ctx, bp, ma)
    ctx.conventions(intervention=f"blocks.{e}.hook_resid_post: dims {sorted(keep)}, entries with |a| > half the "
                                 f"dim's mean massive |a| {({d: round(v[1] / 2, 1) for d, v in keep.items()})} set to "
                                 f"the mean signed value {({d: round(v[0], 2) for d, v in keep.items()})} or 0",
                    loss=f"mean next-token cross-entropy over real targets, {len(texts)} prompts ≤ {n_ctx} tokens")
    ctx.measured(loss_clean=res.clean, loss_mean=res.mean, loss_zero=res.zero, ppl_clean=res.ppl_clean,
                 ppl_mean=res.ppl_mean, ppl_zero=res.ppl_zero, delta_mean=res.delta_mean, delta_zero=res.delta_zero,
                 zero_minus_mean=zmm, delta_mean_ci=res.delta_mean_ci, delta_zero_ci=res.delta_zero_ci,
                 zero_minus_mean_ci=res.zero_minus_mean_ci, n_prompts=res.n_prompts, layer=e, dims=sorted(keep),
                 published_ppl=exp["expected_ppl"])
    ctx.expected(max_mean_delta=exp["max_mean_delta"], min_zero_over_mean=exp["min_zero_over_mean"],
                 ordering="zero ≫ mean ≈ clean")
    ctx.control(any_massive=tw.any_massive, note="the random twin has no massive activation to reset"
                if not tw.any_massive else "the random twin has massive activations")
    ctx.figure({"id": "ma4-loss", "title": "MA-4 next-token loss: clean, set to mean, set to zero", "xlabel": "run",
                "ylabel": "loss (nats/token)", "logy": False, "logx": False,
                "series": [{"label": "loss", "x": [0, 1, 2], "y": [res.clean, res.mean, res.zero], "style": "points"}],
                "vspans": []})
    band = (-exp["max_mean_delta"], exp["max_mean_delta"])
    kw_ci = {"n_resamples": 2000, "method": "percentile", "level": res.ci_level}
    if res.delta_mean_ci is not None and res.zero_minus_mean_ci is not None:
        ctx.interval("delta_mean", res.delta_mean, res.delta_mean_ci, band,
                     label="loss(mean) − loss(clean) [nats/token]", **kw_ci)
        ctx.interval("zero_minus_mean", zmm, res.zero_minus_mean_ci, (0.0, None),
                     label="loss(zero) − loss(mean) [nats/token]", **kw_ci)
    else:
        ctx.check(band[0] < res.delta_mean < band[1], f"Δmean {res.delta_mean:.4g} outside {band}",
                  delta_mean=res.delta_mean)
        ctx.check(zmm > 0, f"zeroing does not raise the loss above the mean reset (Δzero − Δmean {zmm:.4g})",
                  zero_minus_mean=zmm)
    ctx.check(res.delta_zero >= exp["min_zero_over_mean"] * abs(res.delta_mean),
              f"Δzero {res.delta_zero:.4g} < {exp['min_zero_over_mean']} × |Δmean| {abs(res.delta_mean):.4g} nats/token",
              delta_zero=res.delta_zero, delta_mean=res.delta_mean)
