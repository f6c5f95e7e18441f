"""Distribution claims BF-1 … BF-8 (source: "Basic Facts about Language Model Internals", Conjecture;
seeds/basic-facts-about-lm-internals.txt).

Shared conventions: weights are the raw HF weights (``processing="raw"``; TransformerLens compat
processing would fold norms into them); activations are read by the corpus probe at
``blocks.{l}.hook_resid_pre`` (point l, the stream entering block l) and the final ``resid_post``
(point L), over content positions only (BOS and padding excluded). On BERT-style post-LN encoders
``resid_pre`` of block l>0 is the LayerNorm output of block l-1 and point 0 is the embedding
LayerNorm output. Claims about what training produces (BF-3, BF-7, BF-8) are also computed on a
randomly initialised twin of the model (same config, seed 0; :mod:`lmfacts.models.twin`).

Baselines: a model's recorded baseline (``fixtures/baselines/<model>.toml``, :mod:`lmfacts.baselines`)
guards each claim's headline values (``headline=``) and marks its known findings; the plugin applies it
around the body, which judges only the catalogue's predicates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmfacts.claims import CORRELATION, R_SQUARED, SAMPLE_SIZE, SHARE, Domain, Param, claim
from lmfacts.context import ClaimContext, NonFiniteMeasurement
from lmfacts.stats import DegenerateSample

# Parameters shared by several claims (each claim's registration lists the ones it reads).
BULK_TOL = Param("bulk_tol", float, 0.03, "KS distance",
                 "a 'Gaussian bulk': robust-standardised KS distance to N(0,1) over the central 99% at most this "
                 "(lmfacts.stats.gaussianity)", Domain(0, 1, "a Kolmogorov–Smirnov distance"))
OUTLIER_FACTOR = Param("outlier_factor", float, 1.5, "× E[max|Z|]",
                       "'outliers': max|z| at least this × a Gaussian sample's expected max")
R2_MIN = Param("r2_min", float, 0.95, "", "power-law fit R² over the bulk ranks at least this", R_SQUARED)
MP_TOL = Param("mp_tol", float, 0.1, "RMS log σ", "'unlike Marchenko–Pastur': RMS log distance above this "
                                                  "(lmfacts.stats.spectrum)")
MIN_RHO = Param("min_rho", float, 0.5, "", "Spearman ρ(layer, value) at least this ('grows with depth')",
                CORRELATION)

SAMPLE_VALUES = 65_536  # values per matrix / gradient / activation sample for KS, max|z| and tail fits
TAIL_FIT_VALUES = 20_000  # values per sample for the (slow) Gaussian / Laplace / logistic MLE fits


def _subsample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size <= n:
        return x
    return np.random.default_rng(seed).choice(x, n, replace=False)


def _shape_stats(x: np.ndarray, *, bulk_tol: float, outlier_factor: float, what: str) -> dict[str, Any]:
    """Gaussianity verdict, excess kurtosis, tail family and Hill index of one flattened sample.

    A NaN or inf in the sample (``what`` names it) raises :class:`NonFiniteMeasurement`: an invalid
    measurement is an error naming the value, never a sample the statistics reject as bad input.
    """
    from lmfacts.stats.gaussianity import (
        gaussian_with_outliers,
        hill_tail_index,
        ks_sampling_bound,
        tail_comparison,
    )
    from lmfacts.stats.moments import kurtosis

    full = np.asarray(x, dtype=np.float64).ravel()
    n_bad = int(full.size - np.count_nonzero(np.isfinite(full)))
    if n_bad:
        raise NonFiniteMeasurement(f"non-finite value(s) the verdict depends on: {what}: {n_bad} of {full.size} "
                                   f"values are NaN/inf")
    s = _subsample(full, SAMPLE_VALUES)
    # a bulk tolerance below the KS sampling noise of n values would call Gaussian samples of that size
    # non-Gaussian: small samples (n ≲ 3000 at bulk_tol 0.03) are judged at the 1% Kolmogorov bound instead
    bound = ks_sampling_bound(s.size) if s.size else bulk_tol
    tol = bulk_tol if bound <= bulk_tol else bound  # a non-finite bound stays non-finite (and raises below)
    v = gaussian_with_outliers(s, bulk_tol=tol, outlier_factor=outlier_factor)
    tails = tail_comparison(_subsample(s, TAIL_FIT_VALUES, seed=1))
    return {"n": v.n, "bulk_tol_effective": v.bulk_tol, "bulk_ks": v.bulk_ks, "max_abs_z": v.max_abs_z,
            "expected_max_abs_z": v.expected_max_abs_z,
            "outlier_excess": v.outlier_excess, "bulk_gaussian": v.bulk_gaussian, "has_outliers": v.has_outliers,
            "gaussian_with_outliers": v.gaussian_with_outliers,
            "excess_kurtosis": float(kurtosis(full)) - 3.0,
            "best_tail_family": tails.best, "loglik_per_sample": tails.loglik_per_sample,
            "hill_tail_index": hill_tail_index(s, max(10, s.size // 100))}


BF3_OPERANDS = ("excess_kurtosis", "bulk_ks", "outlier_excess")
SPECTRUM_OPERANDS = ("r2", "mp_log_distance")


def _row_operands(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list[float]]:
    """The per-row values a share is computed from, as ``ctx.check`` operands: a NaN in any row is an
    error naming the value, not a row that silently fails its test."""
    return {k: [r[k] for r in rows] for k in keys}


def _excluded_text(excluded: dict[str, str], limit: int = 3) -> str:
    """``"W_O@1: reason; W_K@0: reason; …"`` — the first ``limit`` exclusions, for reasons and skips."""
    items = list(excluded.items())
    shown = "; ".join(f"{k}: {v}" for k, v in items[:limit])
    return shown + ("; …" if len(items) > limit else "")


def _record_exclusions(ctx: ClaimContext, excluded: dict[str, str], n_judged: int, what: str,
                       control: bool = False) -> None:
    """Record which samples a statistic could not judge, with the reason of each, and the counts.

    A sample (a weight matrix, a norm vector, a residual point, a gradient) the statistic cannot
    judge — too few values, no spread, rank deficiency inside the fitted ranks — is left out of the
    verdict (:class:`lmfacts.stats.DegenerateSample`); the claim judges the rest.
    """
    values = {"excluded": dict(excluded), "n_excluded": len(excluded), "n_judged": n_judged}
    if control:
        ctx.control(**values)
    else:
        ctx.measured(**values)
        ctx.conventions(exclusion=f"{what} a statistic cannot judge (too few values, no spread, rank deficiency "
                                  "inside the fitted ranks) are excluded with their reason and counted; the "
                                  "verdict is on the rest")


def _require_judged(ctx: ClaimContext, n_judged: int, excluded: dict[str, str], what: str) -> None:
    """Skip (not applicable, with the evidence) when the statistic could judge nothing."""
    ctx.require(n_judged > 0, f"no {what} can be judged: all {len(excluded)} excluded ({_excluded_text(excluded)})"
                if excluded else f"no {what} to judge")


def _twin_note(ctx: ClaimContext, twin_shows: bool, why: str) -> None:
    ctx.measured(twin_also_shows=twin_shows)
    if twin_shows:
        ctx.measured(twin_note=f"the randomly initialised twin shows this too, so it is not evidence about "
                               f"training: {why}")


# ---------------------------------------------------------------------------------------------
@claim("BF-1", title="residual activations are nearly Gaussian with outliers",
       source="BF §Activations Are Nearly Gaussian With Outliers", headline=("share",),
       params=(Param("window", list[int], None, "point index", "inclusive points judged; unset: [1, L-1]"),
               BULK_TOL, OUTLIER_FACTOR,
               Param("min_share", float, 0.5, "share of points", "most (≥ this share of) judged points must pass",
                     SHARE)))
def test_bf1_gaussian_with_outliers(ctx: ClaimContext) -> None:
    """BF-1: the bulk of residual activations is Gaussian, the extremes are far beyond a Gaussian's.

    Statistic, per residual point l in the window (default: resid_pre of blocks 1 … L-1; the
    embedding point 0 and the final point are reported but not judged): all entries of a uniform
    sample of ≤512 content token vectors (tokens × d_model values pooled, as the post's histogram "across
    a sequence at a block"), robust-standardised (median, IQR/1.349). Bulk: KS distance to N(0,1) over
    the central 99% ≤ ``bulk_tol`` (or the 1% Kolmogorov bound 1.63/√n for a sample too small to resolve
    it); outliers: max|z| ≥ ``outlier_factor`` × E[max|Z|] for n Gaussian
    draws. The claim holds if at least ``min_share`` of the window's points pass both. Hook:
    ``blocks.{l}.hook_resid_pre``; positions: content (no BOS, no pad); processing: raw.
    Contested (BF comments: exponential / logistic tails): the best of Gaussian / Laplace / logistic
    MLE fits and the Hill tail index are reported beside the verdict. Alternative convention:
    each dimension z-scored by its own corpus mean/std before pooling (removes per-dimension scale).
    Source: BF §Activations Are Nearly Gaussian With Outliers.
    """
    exp = ctx.expectation
    info = ctx.info
    L = info.n_layers
    lo, hi = exp["window"] if exp["window"] is not None else [1, max(1, L - 1)]
    bulk_tol, factor = exp["bulk_tol"], exp["outlier_factor"]
    min_share = exp["min_share"]
    probe = ctx.probe()
    per_point: list[dict[str, Any]] = []
    alt_pass: list[bool] = []
    excluded: dict[str, str] = {}
    for p in range(L + 1):
        st = probe.points[p]
        if st.sample is None:
            continue
        x = st.sample.double().numpy()
        mean, sd = st.moments.mean(), np.sqrt(np.maximum(st.moments.variance(), 1e-30))
        try:
            s = _shape_stats(x, bulk_tol=bulk_tol, outlier_factor=factor, what=f"residual point {p} sample")
            s_alt = _shape_stats((x - mean) / sd, bulk_tol=bulk_tol, outlier_factor=factor,
                                 what=f"residual point {p} sample, per-dimension standardised")
        except DegenerateSample as exc:
            excluded[f"point {p}"] = str(exc)
            continue
        s["point"] = p
        s["per_dimension_standardised"] = {k: s_alt[k] for k in ("bulk_ks", "outlier_excess", "gaussian_with_outliers",
                                                                 "best_tail_family")}
        per_point.append(s)
        if lo <= p <= hi:
            alt_pass.append(bool(s_alt["gaussian_with_outliers"]))
    judged = [s for s in per_point if lo <= s["point"] <= hi]
    window_excluded = {k: v for k, v in excluded.items() if lo <= int(k.split()[1]) <= hi}
    _record_exclusions(ctx, excluded, len(judged), "residual points whose samples")
    _require_judged(ctx, len(judged), window_excluded, f"residual point in the window {lo}–{hi}")
    share = float(np.mean([s["gaussian_with_outliers"] for s in judged]))
    share_alt = float(np.mean(alt_pass))
    holds, holds_alt = share >= min_share, share_alt >= min_share
    families = [s["best_tail_family"] for s in judged]
    ctx.statistic("share of residual points (window) whose pooled activations have a Gaussian bulk (robust KS over "
                  "the central 99%) and max|z| beyond the Gaussian expectation for n")
    ctx.conventions(hook="blocks.{l}.hook_resid_pre (+ final resid_post)", positions="content (no BOS, no pad)",
                    pooling="all dims of ≤512 sampled tokens pooled (post's histogram)", standardise="robust",
                    processing="raw", encoder_semantics="post-LN: resid_pre = previous block's LayerNorm output"
                    if info.is_encoder else "pre-norm residual stream")
    ctx.measured(share=share, window=[lo, hi], per_point=per_point,
                 bulk_gaussian_share=float(np.mean([s["bulk_gaussian"] for s in judged])),
                 outlier_share=float(np.mean([s["has_outliers"] for s in judged])),
                 tail_family_counts={f: families.count(f) for f in sorted(set(families))},
                 median_hill_tail_index=float(np.median([s["hill_tail_index"] for s in judged])),
                 alternatives={"per_dimension_standardised": {"share": share_alt, "holds": holds_alt}})
    ctx.robust(holds == holds_alt)
    ctx.expected(min_share=min_share)
    ctx.tolerance(bulk_tol=bulk_tol, outlier_factor=factor)
    ctx.figure({"id": "bf1-shape", "title": "BF-1 bulk KS and outlier excess per point", "xlabel": "point",
                "ylabel": "value", "logy": True, "logx": False,
                "series": [{"label": "bulk KS", "x": [s["point"] for s in per_point],
                            "y": [s["bulk_ks"] for s in per_point], "style": "line"},
                           {"label": "max|z| / E[max|Z|]", "x": [s["point"] for s in per_point],
                            "y": [s["outlier_excess"] for s in per_point], "style": "dashed"}],
                "vspans": [{"lo": lo, "hi": hi, "label": "judged"}]})
    m = ctx.record.measured
    ctx.check(holds, f"only {share:.2f} of points {lo}–{hi} are Gaussian-in-the-bulk with outliers (need ≥ "
                     f"{min_share}); bulk-Gaussian share {m['bulk_gaussian_share']:.2f}, "
                     f"outlier share {m['outlier_share']:.2f}", share=share, min_share=min_share,
              bulk_ks=[s["bulk_ks"] for s in judged], outlier_excess=[s["outlier_excess"] for s in judged])


# ---------------------------------------------------------------------------------------------
@claim("BF-2", title="outlier dimensions are consistent across positions and blocks",
       source="BF §Outliers Are Consistent Through The Residual Stream",
       headline=("across_positions", "across_blocks"),
       params=(Param("window", list[int], None, "point index", "inclusive points compared; unset: [1, L-1]"),
               Param("min_overlap", float, 0.25, "", "mean top-k overlap at least this", SHARE),
               Param("chance_factor", float, 5.0, "× chance", "and at least this × the overlap of random dims")))
def test_bf2_consistent_outlier_dims(ctx: ClaimContext) -> None:
    """BF-2: the few largest-magnitude dimensions are the same across token positions and blocks.

    Statistic: mean pairwise top-k overlap across positions and across blocks, as below.

    Across positions, per residual point: mean pairwise overlap |A∩B|/k of the top-k (k = 8) |x|
    dimension sets of every pair of content tokens, computed exactly from the probe's per-dimension
    counts (``PointStats.topk_counts``); averaged over the window (default points 1 … L-1).
    Across blocks: top-k dimensions of each window point by mean |x| over content tokens, mean
    pairwise overlap over points. Both must reach ``min_overlap`` (default 0.25: on average 2 of 8 dims
    shared, the post's "one positive one negative" outlier pair) and exceed ``chance_factor`` × the
    chance level k/d (where ``chance_factor`` × k/d ≥ 1, e.g. d_model ≤ 40 at k = 8, no overlap can
    exceed it: skipped as not applicable, with the figures). Hook: ``blocks.{l}.hook_resid_pre``;
    positions: content; processing: raw.
    Alternative: across blocks with k = 2.
    Source: BF §Outliers Are Consistent Through The Residual Stream.
    """
    from lmfacts.probe.probe import TOPK_DIMS
    from lmfacts.stats.overlap import consistency_across, top_k_dims
    from lmfacts.stats.trends import overlap_from_counts

    exp = ctx.expectation
    info = ctx.info
    L, d = info.n_layers, info.d_model
    lo, hi = exp["window"] if exp["window"] is not None else [1, max(1, L - 1)]
    min_overlap, chance_factor = exp["min_overlap"], exp["chance_factor"]
    probe = ctx.probe()
    k = min(TOPK_DIMS, d)
    pos_overlap, mean_abs = [], []
    for p in range(lo, hi + 1):
        st = probe.points[p]
        n = int(st.n_tokens)
        if n < 2:
            continue
        pos_overlap.append(overlap_from_counts(st.topk_counts, n, k))
        mean_abs.append(st.abs_sum / n)
    ctx.require(hi > lo, f"the window {lo}–{hi} holds 1 residual point: the overlap across blocks needs 2")
    ctx.require(len(pos_overlap) >= 2, f"only {len(pos_overlap)} residual point(s) in {lo}–{hi} have ≥ 2 content "
                                       f"tokens (content tokens per point: "
                                       f"{[int(probe.points[p].n_tokens) for p in range(lo, hi + 1)]}); need 2")
    across_pos = float(np.mean(pos_overlap))
    blocks_k = consistency_across(top_k_dims(np.stack(mean_abs), k), d)
    blocks_2 = consistency_across(top_k_dims(np.stack(mean_abs), 2), d)
    chance = k / d
    ctx.statistic("mean pairwise top-8 |x| dimension-set overlap across content tokens (per point, averaged) and "
                  "across blocks (top-8 by mean |x|), vs chance k/d")
    ctx.conventions(hook="blocks.{l}.hook_resid_pre", positions="content (no BOS, no pad)", k=k, magnitude="|x|",
                    processing="raw")
    ctx.measured(across_positions=across_pos, across_blocks=blocks_k.mean_overlap, chance=chance,
                 per_point_across_positions=pos_overlap, window=[lo, hi], top_dims_across_blocks=blocks_k.top_dims,
                 top_dim_frequency=blocks_k.top_dim_frequency,
                 alternatives={"across_blocks_k2": blocks_2.mean_overlap})
    need = max(min_overlap, chance_factor * chance)
    ctx.require(need < 1, f"d_model {d} is too small for this test: top-{k} sets overlap by chance {chance:.3f}, and "
                          f"{chance_factor}× chance = {chance_factor * chance:.3f} ≥ 1 cannot be exceeded by any overlap")
    holds = across_pos >= need and blocks_k.mean_overlap >= need
    ctx.robust(holds == (across_pos >= need and blocks_2.mean_overlap >= max(min_overlap, chance_factor * 2 / d)))
    ctx.expected(min_overlap=need)
    ctx.figure({"id": "bf2-overlap", "title": "BF-2 top-8 overlap across positions", "xlabel": "point",
                "ylabel": "mean pairwise overlap", "logy": False, "logx": False,
                "series": [{"label": "across positions", "x": list(range(lo, lo + len(pos_overlap))),
                            "y": pos_overlap, "style": "line"},
                           {"label": "chance k/d", "x": [lo, hi], "y": [chance, chance], "style": "dashed"}],
                "vspans": []})
    ctx.check(across_pos >= need, f"top-{k} overlap across positions {across_pos:.3f} < {need:.3f} "
                                  f"(chance {chance:.3f})", across_positions=across_pos, need=need)
    ctx.check(blocks_k.mean_overlap >= need, f"top-{k} overlap across blocks {blocks_k.mean_overlap:.3f} < "
                                             f"{need:.3f} (chance {chance:.3f})",
              across_blocks=blocks_k.mean_overlap, need=need)


# ---------------------------------------------------------------------------------------------
def _degenerate_reason(exc: DegenerateSample, m: np.ndarray) -> str:
    """The statistic's message plus what is degenerate about the matrix (its share of exact zeros)."""
    zeros = float(np.mean(m == 0)) if m.size else 0.0
    return f"{exc}" + (f" ({zeros:.0%} of its {m.size} entries are exactly 0)" if zeros > 0 else "")


BLOCK_MATRICES = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_gate", "W_out")


def _stored_matrix(bridge: Any, name: str, layer: int) -> Any:
    """Block ``layer``'s ``name`` as one 2-D float32 matrix as stored: W_Q/W_K/W_V [d_model, heads·d_head] with
    grouped K/V heads *not* repeated (a repeated head would count its entries twice), W_O [heads·d_head,
    d_model], MLP matrices as they are; None where the block has no such matrix (:func:`lmfacts.weights.attn_weight`:
    a multi-head latent attention has no W_Q / W_K / W_V)."""
    from lmfacts.weights import attn_weight

    blk = bridge.blocks[layer]
    if name in ("W_Q", "W_K", "W_V", "W_O"):
        w = attn_weight(blk.attn, name, int(bridge.cfg.n_heads), int(bridge.cfg.d_model))
    else:
        w = getattr(blk.mlp, name, None)
    if w is None:
        return None
    w = w.detach().float()
    if name in ("W_Q", "W_K", "W_V"):
        return w.permute(1, 0, 2).reshape(w.shape[1], -1)
    if name == "W_O":
        return w.reshape(-1, w.shape[-1])
    return w


def block_matrices(bridge: Any, layer: int) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    """Every weight matrix of block ``layer`` as stored (``(name, 2-D float32 matrix)``) and ``{name@layer: reason}``
    for those that cannot be read. A dense block: :data:`BLOCK_MATRICES` (:func:`_stored_matrix`). A block whose
    MLP is a mixture of experts (no single W_in / W_out): the attention matrices plus every matrix inside the MoE
    module (:func:`lmfacts.weights.moe_matrices`: each expert's ``mlp.experts.gate_proj[e]`` / ``up_proj[e]`` /
    ``down_proj[e]``, the router ``mlp.gate``, a shared expert's projections), so the experts, most of such a
    model's weights, are judged rather than silently left out. A block whose attention has no per-head W_Q
    (multi-head latent attention: :func:`lmfacts.weights.attention_structure`): every matrix of the attention
    module as stored instead (``attn.q_a_proj``, ``attn.q_b_proj``, ``attn.kv_a_proj_with_mqa``,
    ``attn.kv_b_proj``, ``attn.o_proj``), not W_Q … W_O (which it has not, and which raised there)."""
    from lmfacts.weights import attn_weight, moe_matrices

    d_model = int(bridge.cfg.d_model)
    attn, mlp = bridge.blocks[layer].attn, bridge.blocks[layer].mlp
    per_head = attn_weight(attn, "W_Q", int(bridge.cfg.n_heads), d_model) is not None
    dense = getattr(mlp, "W_in", None) is not None or getattr(mlp, "W_out", None) is not None
    names = (("W_Q", "W_K", "W_V", "W_O") if per_head else ()) + (("W_in", "W_gate", "W_out") if dense else ())
    mats = [(n, m) for n in names if (m := _stored_matrix(bridge, n, layer)) is not None]
    unread: dict[str, str] = {}
    for prefix, module, take in (("attn", attn, not per_head), ("mlp", mlp, not dense)):
        if take:
            more, why = moe_matrices(module, d_model)
            mats += [(f"{prefix}.{n}", m) for n, m in more]
            unread |= {f"{prefix}.{n}@{layer}": w for n, w in why.items()}
    return mats, unread


def weight_gaussianity(bridge: Any, *, kurt_tol: float, bulk_tol: float, factor: float) -> dict[str, Any]:
    """BF-3's per-matrix statistics; matrices the statistic cannot judge go to ``excluded`` with their reason."""
    import torch

    rows = []
    excluded: dict[str, str] = {}
    mats: list[tuple[str, int, Any]] = []
    with torch.no_grad():
        for i in range(bridge.cfg.n_layers):
            block, unread = block_matrices(bridge, i)
            mats += [(n, i, w) for n, w in block]
            excluded.update(unread)
    for name, layer, w in mats:
        if w is None:
            continue
        m = w.numpy()
        try:
            s = _shape_stats(m, bulk_tol=bulk_tol, outlier_factor=factor, what=f"weight {name}@{layer}")
        except DegenerateSample as exc:
            excluded[f"{name}@{layer}"] = _degenerate_reason(exc, m)
            continue
        ok = abs(s["excess_kurtosis"]) <= kurt_tol and s["bulk_gaussian"] and not s["has_outliers"]
        rows.append({"weight": name, "layer": layer, "n": int(m.size), "excess_kurtosis": s["excess_kurtosis"],
                     "bulk_ks": s["bulk_ks"], "bulk_tol_effective": s["bulk_tol_effective"],
                     "outlier_excess": s["outlier_excess"],
                     "best_tail_family": s["best_tail_family"], "gaussian_no_outliers": bool(ok)})
    if not rows:
        return {"share": None, "median_abs_excess_kurtosis": None, "median_bulk_ks": None, "share_with_outliers": None,
                "matrices": rows, "excluded": excluded}
    share = float(np.mean([r["gaussian_no_outliers"] for r in rows]))
    return {"share": share, "median_abs_excess_kurtosis": float(np.median([abs(r["excess_kurtosis"]) for r in rows])),
            "median_bulk_ks": float(np.median([r["bulk_ks"] for r in rows])),
            "share_with_outliers": float(np.mean([r["outlier_excess"] >= factor for r in rows])), "matrices": rows,
            "excluded": excluded}


@claim("BF-3", title="weight matrices are nearly Gaussian without outliers", source="BF §Weights Are Nearly Gaussian",
       requires=("float_weights",), headline=("share",), inputs="weights",
       params=(Param("kurt_tol", float, 1.0, "excess kurtosis", "|excess kurtosis| of a Gaussian matrix at most this"),
               BULK_TOL, OUTLIER_FACTOR,
               Param("min_share", float, 0.9, "share of matrices", "'highly consistent across all the weight "
                                                                   "matrices': at least this share pass", SHARE)))
def test_bf3_weights_gaussian(ctx: ClaimContext) -> None:
    """BF-3: the entries of every weight matrix are close to Gaussian and have no outliers.

    Statistic, per block and per matrix (W_Q, W_K, W_V, W_O, W_in, W_gate, W_out; K/V as stored, grouped
    heads not repeated, so no entry is counted twice; a mixture-of-experts MLP contributes every expert's
    gate / up / down projection, its router and any shared expert, :func:`block_matrices`): excess kurtosis of all entries (|·| ≤ ``kurt_tol``),
    robust KS distance of the central 99% to N(0,1) (≤ ``bulk_tol``, on a ≤65 536-entry sample; for
    samples too small to resolve ``bulk_tol`` the 1% Kolmogorov bound 1.63/√n, recorded per matrix as
    ``bulk_tol_effective``) and no outliers (max|z| < ``outlier_factor`` × E[max|Z|]). Holds if at
    least ``min_share`` of the matrices pass all three. Weights: raw HF weights. Control: the random
    twin (HF init is Gaussian, so it passes by construction; the claim is that training keeps it so).
    Quantised weights: not applicable (premise ``float_weights``: the values are quantiser levels).
    A matrix the statistic cannot judge (over half its entries equal, e.g. a pruned head's zeroed
    columns: interquartile range 0) is excluded with its reason and counted; the share is over the rest.
    Window: every block (all layers), every weight matrix.
    Source: BF §Weights Are Nearly Gaussian.
    """
    from lmfacts.models.twin import random_twin

    exp = ctx.expectation
    kurt_tol, bulk_tol = exp["kurt_tol"], exp["bulk_tol"]
    factor, min_share = exp["outlier_factor"], exp["min_share"]
    lm = ctx.model()
    res = weight_gaussianity(lm.bridge, kurt_tol=kurt_tol, bulk_tol=bulk_tol, factor=factor)
    twin = weight_gaussianity(random_twin(lm).bridge, kurt_tol=kurt_tol, bulk_tol=bulk_tol, factor=factor)
    ctx.statistic("share of weight matrices with |excess kurtosis| ≤ tol, bulk KS ≤ tol and no outliers")
    ctx.conventions(weights="raw HF weights", matrices="W_Q W_K W_V W_O W_in (W_gate) W_out per block (a mixture "
                    "of experts: each expert's gate/up/down projection, the router, a shared expert)",
                    standardise="robust", sample=f"{SAMPLE_VALUES} entries per matrix for KS/max|z|", blocks="all")
    excluded = res.pop("excluded")
    ctx.measured(**res)
    _record_exclusions(ctx, excluded, len(res["matrices"]), "weight matrices")
    ctx.control(share=twin["share"], median_abs_excess_kurtosis=twin["median_abs_excess_kurtosis"],
                median_bulk_ks=twin["median_bulk_ks"], seed=0)
    _record_exclusions(ctx, twin["excluded"], len(twin["matrices"]), "weight matrices", control=True)
    _twin_note(ctx, twin["share"] is not None and twin["share"] >= min_share,
               "HF initialises these matrices from a Gaussian")
    ctx.expected(min_share=min_share)
    ctx.tolerance(kurt_tol=kurt_tol, bulk_tol=bulk_tol, outlier_factor=factor)
    _require_judged(ctx, len(res["matrices"]), excluded, "weight matrix")
    bad = [f"{r['weight']}@{r['layer']}" for r in res["matrices"] if not r["gaussian_no_outliers"]][:8]
    ctx.check(res["share"] >= min_share, f"only {res['share']:.2f} of weight matrices are Gaussian without "
                                         f"outliers (need ≥ {min_share}); e.g. {bad}"
                                         + (f"; {len(excluded)} excluded" if excluded else ""),
              share=res["share"], min_share=min_share, **_row_operands(res["matrices"], BF3_OPERANDS))


# ---------------------------------------------------------------------------------------------
@claim("BF-4", title="norm gains and biases are heavy-tailed with outliers", source="BF §Except For LayerNorm Parameters",
       headline=("median_gain_outlier_excess",), inputs="weights",
       params=(OUTLIER_FACTOR,
               Param("center", float, None, "gain", "if set: the median gain of block center_block's norms "
                                                    "(gpt2-medium block 5 ≈ 0.45), with a left tail"),
               Param("center_tol", float, None, "gain", "absolute tolerance of center"),
               Param("center_block", int, 5, "block index", "the block whose gains center describes")))
def test_bf4_norm_parameters_heavy_tailed(ctx: ClaimContext) -> None:
    """BF-4: LayerNorm/RMSNorm gains (and biases) are heavy-tailed with outliers, unlike the matrices.

    Statistic, per norm vector — every norm of the model (:meth:`lmfacts.weights.WeightViews.norm_parameters`:
    ln1/ln2 of every block, extra sublayer norms such as Gemma 2's ln1_post/ln2_post and q_norm/k_norm
    where present, embedding and final norms), effective gains (1 + w where gains are stored as offsets)
    and, for LayerNorm, biases: excess kurtosis and max|z| / E[max|Z|] (robust z). Holds if the median
    gain vector has outlier excess ≥ ``outlier_factor`` (and, for biases where present, too). Where the
    expectation gives a published centre (gpt2-medium, block 5: ≈0.45 with a left tail towards 0), the
    median gain of that block must lie within ``center_tol`` of it and more of its |z| > 3 outliers must
    lie below the median than above. A vector the statistic cannot judge (constant, e.g. untrained gains
    all 1; over half its entries equal; too short) is excluded with its reason and counted. Weights: raw
    (compat folding would set gains to 1). Norm parameters are stored unquantised (F32) even in GGUF
    files, so this runs on quantised models (the quantisation covers attention/MLP matrices and
    embeddings).
    Window: every norm vector of the model.
    Source: BF §Except For LayerNorm Parameters.
    """
    from lmfacts.weights import WeightViews

    exp = ctx.expectation
    factor = exp["outlier_factor"]
    lm = ctx.model()
    rows, excluded = norm_vector_rows(WeightViews(lm.bridge, "raw"))
    gains, biases = rows["weight"], rows["bias"]
    n_bias_vectors = len(biases) + sum(k.endswith(".bias") for k in excluded)
    _record_exclusions(ctx, excluded, len(gains) + len(biases), "norm vectors")
    gain_excluded = {k: v for k, v in excluded.items() if not k.endswith(".bias")}
    _require_judged(ctx, len(gains), gain_excluded, "norm gain vector")
    med_gain = float(np.median([r["outlier_excess"] for r in gains]))
    med_bias = float(np.median([r["outlier_excess"] for r in biases])) if biases else None
    ctx.statistic("median over norm vectors of max|z| / E[max|Z|] (robust z), gains and biases separately")
    ctx.conventions(weights="raw", vectors="every norm module of the model (blocks' ln1/ln2 and any extra sublayer "
                    "norms, embedding and final norms); effective gains (1 + w where stored as offsets)",
                    gain_offset=WeightViews(lm.bridge, "raw").gain_offset,
                    quantisation="norm parameters are unquantised (F32) in GGUF files" if ctx.info.quantization
                    else "none")
    ctx.measured(median_gain_outlier_excess=med_gain, median_bias_outlier_excess=med_bias,
                 median_gain_excess_kurtosis=float(np.median([r["excess_kurtosis"] for r in gains])),
                 median_gain=float(np.median([r["median"] for r in gains])), gains=gains, biases=biases,
                 has_biases=n_bias_vectors > 0, norm_vectors=[r["name"] for r in gains + biases] + list(excluded))
    ctx.expected(outlier_factor=factor)
    _bf4_checks(ctx, exp, gains, med_gain, med_bias, factor)


def norm_vector_rows(views: Any) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """BF-4's per-vector statistics over ``views.norm_parameters()``: ``({"weight": rows, "bias": rows},
    excluded)``; a vector the statistic cannot judge goes to ``excluded`` (name → reason) instead."""
    from lmfacts.stats.gaussianity import outlier_excess, robust_standardise
    from lmfacts.stats.moments import kurtosis

    rows: dict[str, list[dict[str, Any]]] = {"weight": [], "bias": []}
    excluded: dict[str, str] = {}
    for name, v in views.norm_parameters():
        x = v.double().numpy()
        kind = "bias" if name.endswith(".bias") else "weight"
        if x.size and np.ptp(x) == 0:
            excluded[name] = f"constant vector (every entry {x[0]:.6g}): no distribution to judge"
            continue
        try:
            z = robust_standardise(x)
            oe = outlier_excess(x)
        except DegenerateSample as exc:
            excluded[name] = str(exc)
            continue
        rows[kind].append({"name": name, "median": float(np.median(x)), "excess_kurtosis": float(kurtosis(x)) - 3,
                           "outlier_excess": oe, "max_abs_z": float(np.max(np.abs(z))),
                           "left_outliers": int((z < -3).sum()),
                           "right_outliers": int((z > 3).sum())})
    return rows, excluded


def _bf4_checks(ctx: ClaimContext, exp: Any, gains: list[dict[str, Any]], med_gain: float, med_bias: float | None,
                factor: float) -> None:
    """BF-4's own predicate (and the published centre where the expectation gives one)."""
    ctx.check(med_gain >= factor, f"norm gains are not heavy-tailed: median outlier excess {med_gain:.2f} < {factor}",
              median_gain_outlier_excess=med_gain, outlier_factor=factor)
    if med_bias is not None:
        ctx.check(med_bias >= factor, f"norm biases are not heavy-tailed: median outlier excess {med_bias:.2f} < "
                                      f"{factor}", median_bias_outlier_excess=med_bias, outlier_factor=factor)
    if exp["center"] is not None:
        block = exp["center_block"]
        sel = [r for r in gains if r["name"].startswith(f"blocks.{block}.")]
        ctx.require(bool(sel), f"block {block} has no judged norm gains (judged: "
                               f"{sorted({r['name'].split('.')[1] for r in gains if r['name'].startswith('blocks.')})})")
        centre = float(np.median([r["median"] for r in sel]))
        left = sum(r["left_outliers"] for r in sel)
        right = sum(r["right_outliers"] for r in sel)
        ctx.measured(block_center=centre, block_left_outliers=left, block_right_outliers=right)
        ctx.expected(center=exp["center"], center_block=block)
        ctx.tolerance(center_tol=exp["center_tol"])
        ctx.check(abs(centre - exp["center"]) <= exp["center_tol"],
                  f"block {block} gains centred at {centre:.3f}, expected {exp['center']} ± {exp['center_tol']}",
                  block_center=centre, center=exp["center"], center_tol=exp["center_tol"])
        ctx.check(left > right, f"block {block} gain outliers are not left-tailed ({left} below vs {right} above)",
                  block_left_outliers=left, block_right_outliers=right, max_abs_z=[r["max_abs_z"] for r in sel])


# ---------------------------------------------------------------------------------------------
@claim("BF-5", title="writing weights grow with depth, reading weights do not",
       source="BF §Writing Weights Grow Throughout The Network And Reading Weights Are Constant",
       headline=("trends.W_O.spearman", "trends.W_out.spearman"), inputs="weights",
       params=(MIN_RHO, Param("flat_tol", float, 0.01, "×/layer", "reading weights 'constant': late per-layer "
                                                                   "rate of ‖W‖_F within 1 ± this")))
def test_bf5_writing_weights_grow(ctx: ClaimContext) -> None:
    """BF-5: Frobenius norms of the writing weights (W_O, W_out) rise with depth; reading weights
    (W_Q, W_K, W_in) are flat, or drop early and then stay flat.

    Statistic: per block Frobenius norm of each matrix (K as stored, GQA heads not repeated). Writing:
    Spearman ρ(layer, norm) ≥ ``min_rho`` for both W_O and W_out. Reading: over the late window
    (blocks ≥ round(L/4), after any early drop) the per-layer rate exp(slope of log-norm vs layer)
    lies within 1 ± ``flat_tol`` for W_Q, W_K and W_in. Weights: raw (compat's centring changes W_O and
    W_out on LayerNorm models). Quantised weights: norms are kept by the quantiser to well under 1%, so the
    claim runs (the quantisation is recorded).
    Source: BF §Writing Weights Grow Throughout The Network And Reading Weights Are Constant.
    """
    from lmfacts.stats.trends import depth_trend

    exp = ctx.expectation
    min_rho, flat_tol = exp["min_rho"], exp["flat_tol"]
    lm = ctx.model()
    b = lm.bridge
    L = ctx.info.n_layers
    ctx.require(L >= 4, f"the model has {L} layers: too few for a depth trend (need ≥ 4)")
    norms: dict[str, list[float]] = {n: [] for n in ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_gate", "W_out")}
    import torch

    from lmfacts.weights import attention_structure, attn_weight, mlp_structure

    with torch.no_grad():
        for i in range(L):
            blk = b.blocks[i]
            for n in norms:
                if n in ("W_Q", "W_K", "W_V", "W_O"):  # W_O of a multi-head latent attention: its o projection
                    w = attn_weight(blk.attn, n, int(b.cfg.n_heads), int(b.cfg.d_model))
                else:
                    w = getattr(blk.mlp, n, None)
                if w is not None:
                    norms[n].append(float(w.detach().float().norm()))
    norms = {n: v for n, v in norms.items() if len(v) == L}

    # a mixture-of-experts block has no one W_in / W_out whose norm is the block's (its experts are judged by
    # BF-3 and BF-7): say so, instead of dropping the MLP weights without a word
    moe = {f"{n}@{i}": mlp_structure(b.blocks[i].mlp, f"blocks.{i}.mlp") for i in range(L)
           if getattr(b.blocks[i].mlp, "W_out", None) is None for n in ("W_in", "W_out")}
    # a multi-head latent attention has no W_Q / W_K / W_V whose norm is the block's: say so too
    moe |= {f"{n}@{i}": attention_structure(b.blocks[i].attn, f"blocks.{i}.attn") for i in range(L)
            if attn_weight(b.blocks[i].attn, "W_Q", int(b.cfg.n_heads), int(b.cfg.d_model)) is None
            for n in ("W_Q", "W_K", "W_V")}
    start = round(L / 4)
    # a block whose matrix is all zeros (a pruned sublayer) has no log-norm: excluded from that weight's trend
    excluded = {f"{n}@{i}": "all entries are 0 (‖W‖_F = 0): not on a log-norm trend"
                for n, v in norms.items() for i, x in enumerate(v) if not x > 0} | moe
    kept = {n: [i for i, x in enumerate(v) if x > 0] for n, v in norms.items()}
    # the verdict reads the trends' floats (a NaN stays a NaN and reaches ctx.check's operands); their
    # JSON form (NaN → None) is only recorded
    trend_fits, late_fits = {}, {}
    for n, v in norms.items():
        if len(kept[n]) >= 3:
            trend_fits[n] = depth_trend([v[i] for i in kept[n]], kept[n])
        else:
            excluded[n] = f"only {len(kept[n])} block(s) with a non-zero {n}: no depth trend"
        late_idx = [i for i in kept[n] if i >= start]
        if len(late_idx) >= 3:
            late_fits[n] = depth_trend([v[i] for i in late_idx], late_idx)
    trends = {n: t.to_dict() for n, t in trend_fits.items()}
    late = {n: t.to_dict() for n, t in late_fits.items()}
    _record_exclusions(ctx, excluded, sum(len(k) for k in kept.values()), "blocks whose matrices")
    missing = [n for n in ("W_O", "W_out") if n not in trends]
    ctx.require(not missing, f"no depth trend for the writing weight(s) {missing}: "
                             f"{_excluded_text({k: v for k, v in excluded.items() if k.split('@')[0] in missing})}")
    rhos = {n: float(trend_fits[n].spearman) for n in ("W_O", "W_out")}
    rates = {n: float(late_fits[n].rate) for n in ("W_Q", "W_K", "W_in") if n in late_fits}
    writing_ok = {n: bool(r >= min_rho) for n, r in rhos.items()}
    reading_ok = {n: bool(abs(r - 1) <= flat_tol) for n, r in rates.items()}
    ctx.statistic("writing: Spearman ρ(layer, ‖W‖_F); reading: per-layer rate of ‖W‖_F over blocks ≥ L/4")
    ctx.conventions(weights="raw", norm="Frobenius", late_window=[start, L - 1],
                    quantisation=ctx.info.quantization or "none")
    ctx.measured(norms=norms, trends=trends, late_trends=late, writing_rises=writing_ok, reading_flat=reading_ok)
    ctx.expected(min_rho=min_rho)
    ctx.tolerance(flat_tol=flat_tol)
    ctx.figure({"id": "bf5-norms", "title": "BF-5 weight Frobenius norms per block", "xlabel": "block",
                "ylabel": "‖W‖_F", "logy": True, "logx": False,
                "series": [{"label": n, "x": list(range(L)), "y": v,
                            "style": "line" if n in ("W_O", "W_out") else "dashed"} for n, v in norms.items()],
                "vspans": [{"lo": start, "hi": L - 1, "label": "reading-flat window"}]})
    ctx.check(all(writing_ok.values()), f"writing weights do not rise with depth: ρ = "
              f"{ {n: round(r, 3) for n, r in rhos.items()} } (need ≥ {min_rho})",
              **{f"rho_{n}": r for n, r in rhos.items()}, min_rho=min_rho)
    ctx.check(all(reading_ok.values()), f"reading weights are not flat after block {start}: rates "
              f"{ {n: round(r, 4) for n, r in rates.items()} } (need 1 ± {flat_tol})",
              **{f"late_rate_{n}": r for n, r in rates.items()}, flat_tol=flat_tol)


# ---------------------------------------------------------------------------------------------
@claim("BF-6", title="per-example gradients are nearly Gaussian with zero mean", source="BF §Gradients Are Highly Gaussian",
       requires=("causal_decoder", "trained_lm_head"), headline=("share",),
       params=(Param("n_prompts", int, 4, "prompts", "stratified corpus prompts (seed 0), one gradient each "
                                                      "(the post: a single example)", SAMPLE_SIZE),
               BULK_TOL,
               Param("mean_tol", float, 0.05, "std", "'zero mean': |mean|/std of a gradient at most this"),
               OUTLIER_FACTOR,
               Param("min_share", float, 0.5, "share of gradients", "at least this share pass", SHARE)))
def test_bf6_gradients_gaussian(ctx: ClaimContext) -> None:
    """BF-6: per-example gradients of the attention QKV weights are Gaussian with zero mean (few outliers).

    Statistic: for ``n_prompts`` corpus prompts (default 4, a stratified sample, one prompt per
    backward pass so nothing is averaged) and blocks {0, L/2, L-1}, the gradient of the prompt's mean
    next-token loss w.r.t. the Q, K and V weights of the block, all entries pooled. Zero mean:
    |mean|/std ≤ ``mean_tol``; Gaussian bulk: robust KS of the central 99% ≤ ``bulk_tol`` (or the 1%
    Kolmogorov bound 1.63/√n for a sample too small to resolve it). Holds if at
    least ``min_share`` of (prompt, block) gradients pass both. Outliers (max|z| vs E[max|Z|]) and the
    best of Gaussian / Laplace / logistic fits are reported. Weights: raw. Premises: a causal decoder with
    a trained LM head (the next-token loss is its training objective). A gradient the statistic cannot
    judge (over half its entries equal, e.g. zero for pruned heads) is excluded with its reason.
    Window: blocks {0, L/2, L-1}.
    Verdict: the share (a prompt's gradients resampled together; band > min_share)'s 95% bootstrap CI over prompts (2000 resamples, percentile, seed 0; ``record.intervals``)
    against the band: inside → pass, outside → fail, straddling an edge → inconclusive (a skip). With
    fewer than 2 prompts the point estimate decides.
    Source: BF §Gradients Are Highly Gaussian.
    """
    from lmfacts.gradients import per_example_qkv_gradients

    info = ctx.info
    exp = ctx.expectation
    n_prompts, bulk_tol = exp["n_prompts"], exp["bulk_tol"]
    mean_tol, min_share = exp["mean_tol"], exp["min_share"]
    factor = exp["outlier_factor"]
    L = info.n_layers
    layers = sorted({0, L // 2, L - 1})
    ctx.require_content()  # a corpus of special tokens only: an error, not gradients of their losses
    texts = list(ctx.session.corpus.sample(n_prompts, seed=0).texts)
    lm = ctx.model()
    examples = per_example_qkv_gradients(lm.bridge, texts, layers, prepend_bos=info.prepends_bos,
                                         n_ctx=min(info.n_ctx, 128), device=info.device)
    rows = []
    excluded: dict[str, str] = {}
    for j, ex in enumerate(examples):
        for layer, g in ex.grads.items():
            try:
                s = _shape_stats(g, bulk_tol=bulk_tol, outlier_factor=factor,
                                 what=f"gradient of prompt {j} at block {layer} (prompt loss {ex.loss:.4g})")
            except DegenerateSample as exc:
                excluded[f"prompt {j} block {layer}"] = _degenerate_reason(exc, np.asarray(g))
                continue
            mean_ratio = float(abs(g.mean()) / max(g.std(), 1e-30))
            rows.append({"prompt": j, "layer": layer, "mean_over_std": mean_ratio, "bulk_ks": s["bulk_ks"],
                         "outlier_excess": s["outlier_excess"], "excess_kurtosis": s["excess_kurtosis"],
                         "best_tail_family": s["best_tail_family"],
                         "passes": bool(mean_ratio <= mean_tol and s["bulk_gaussian"])})
    _record_exclusions(ctx, excluded, len(rows), "per-example gradients")
    ctx.require(bool(examples), f"none of the {len(texts)} prompts has two or more tokens: no next-token loss")
    _require_judged(ctx, len(rows), excluded, "per-example gradient")
    share = float(np.mean([r["passes"] for r in rows]))
    families = [r["best_tail_family"] for r in rows]
    ctx.statistic("share of per-example QKV weight gradients with |mean|/std ≤ tol and a Gaussian bulk (robust KS)")
    ctx.conventions(loss="mean next-token cross-entropy of one prompt", params="Q,K,V weights (no biases)",
                    layers=layers, prompts=f"{len(examples)} stratified corpus prompts (seed 0), ≤128 tokens",
                    weights="raw")
    ctx.measured(share=share, gradients=rows, losses=[ex.loss for ex in examples],
                 median_bulk_ks=float(np.median([r["bulk_ks"] for r in rows])),
                 median_outlier_excess=float(np.median([r["outlier_excess"] for r in rows])),
                 tail_family_counts={f: families.count(f) for f in sorted(set(families))},
                 param_names={str(k): v for k, v in examples[0].param_names.items()})
    ctx.expected(min_share=min_share)
    ctx.tolerance(bulk_tol=bulk_tol, mean_tol=mean_tol)
    m = ctx.record.measured
    judged = sorted({r["prompt"] for r in rows})
    if len(judged) >= 2:  # interval verdict: the share's bootstrap CI over prompts (a prompt's rows together)
        from lmfacts.stats.verdict import bootstrap_ci

        passes = np.array([sum(r["passes"] for r in rows if r["prompt"] == j) for j in judged], dtype=float)
        counts = np.array([sum(r["prompt"] == j for r in rows) for j in judged], dtype=float)
        boot = bootstrap_ci([passes, counts], lambda p, n: p.sum(axis=1) / n.sum(axis=1))
        ctx.interval("share", boot.value, boot.ci, (min_share, None), n_resamples=boot.n_resamples,
                     method=boot.method, level=boot.level,
                     label=f"share of per-example QKV gradients zero-mean Gaussian in the bulk (median bulk KS "
                           f"{m['median_bulk_ks']:.3f})")
    else:
        ctx.check(share >= min_share, f"only {share:.2f} of per-example QKV gradients are zero-mean Gaussian in "
                                      f"the bulk (need ≥ {min_share}); median bulk KS {m['median_bulk_ks']:.3f}",
                  share=share, min_share=min_share, mean_over_std=[r["mean_over_std"] for r in rows],
                  bulk_ks=[r["bulk_ks"] for r in rows])


# ---------------------------------------------------------------------------------------------
def _batched_singular_values(mats: Any, device: str) -> np.ndarray:
    """Singular values of a [b, m, n] stack, descending: ``torch.linalg.svdvals`` on an accelerator; on CPU
    sqrt of ``eigvalsh`` of the float64 Gram matrix of the smaller side (≈50× faster than CPU svdvals;
    accurate for σ_k/σ_max ≫ 1e-8)."""
    import torch

    if str(device).startswith("cpu"):
        w = mats.double()
        g = w @ w.transpose(1, 2) if w.shape[1] <= w.shape[2] else w.transpose(1, 2) @ w
        lam = torch.linalg.eigvalsh(g).clamp(min=0).flip(-1)
        return lam.sqrt().numpy()
    return torch.linalg.svdvals(mats.to(device)).double().cpu().numpy()


def weight_spectra(bridge: Any, device: str) -> list[tuple[str, int, tuple[int, int], np.ndarray]]:
    """Singular values of every block matrix; svdvals batched over layers per weight type on ``device``."""
    import torch

    out: list[tuple[str, int, tuple[int, int], np.ndarray]] = []
    groups: dict[tuple[str, tuple[int, ...]], list[tuple[int, Any]]] = {}
    with torch.no_grad():
        for i in range(bridge.cfg.n_layers):  # a name missing at some blocks (dense and MoE blocks mixed) keeps the rest
            for name, m in block_matrices(bridge, i)[0]:
                groups.setdefault((name, tuple(m.shape)), []).append((i, m))
        for (name, _), mats in groups.items():
            sv = _batched_singular_values(torch.stack([m for _, m in mats]), device)
            out += [(name, i, tuple(m.shape), sv[j]) for j, (i, m) in enumerate(mats)]
    return out


def sv_rank_floor(sv_max: float, shape: tuple[int, int], device: str) -> float:
    """The rounding bound below which a computed singular value is a numerical zero.

    NumPy's ``matrix_rank`` default, ``max · max(shape) · eps``, applied to the matrix the values
    were computed from: on CPU the float64 Gram matrix (eigenvalue bound λ_max · n · eps64, so
    σ ≤ σ_max · sqrt(n · eps64)); on an accelerator ``svdvals`` of the float32 matrix (σ_max · n ·
    eps32). The weights themselves are exact in float32 whatever the model's dtype (a bfloat16
    matrix with zeroed heads has exact zeros), so the bound follows the dtype of the computation.
    """
    import math

    from lmfacts.tolerances import machine_eps

    n = max(shape)
    if str(device).startswith("cpu"):
        return float(sv_max) * math.sqrt(n * machine_eps("float64"))
    return float(sv_max) * n * machine_eps("float32")


def spectrum_rows(spectra: list[tuple[str, int, tuple[int, int], np.ndarray]], device: str, *, r2_min: float,
                  mp_tol: float) -> dict[str, Any]:
    """BF-7's verdict per matrix; a spectrum the statistic cannot judge (fewer than 10 singular values, zeros
    — numerical rank deficiency — inside the bulk ranks) goes to ``excluded`` (``"W_O@1"`` → reason)."""
    from lmfacts.stats.spectrum import (
        compare_to_marchenko_pastur,
        marchenko_pastur_singular_values,
        zero_below_floor,
    )
    from lmfacts.stats.trends import tail_falloff

    rows = []
    excluded: dict[str, str] = {}
    example: dict[str, Any] | None = None
    for name, layer, shape, sv_raw in spectra:
        floor = sv_rank_floor(float(np.max(sv_raw)) if sv_raw.size else 0.0, shape, device)
        sv, rank = zero_below_floor(sv_raw, floor)
        try:
            c = compare_to_marchenko_pastur(sv, shape, r2_min=r2_min, mp_tol=mp_tol)
        except DegenerateSample as exc:
            excluded[f"{name}@{layer}"] = (f"{shape[0]}×{shape[1]} matrix, {sv.size} singular values, numerical rank "
                                           f"{rank} (σ ≤ {floor:.3g} counted as 0): {exc}")
            continue
        row = {"weight": name, "layer": layer, "shape": list(shape), "exponent": c.fit.exponent,
               "r2": c.fit.r_squared, "mp_log_distance": c.mp_log_distance, "is_power_law": c.is_power_law,
               "tail_falloff": tail_falloff(sv, c.fit.exponent, c.fit.intercept)}
        if rank < sv.size:
            row["numerical_rank"] = rank
        rows.append(row)
        if np.isfinite(c.mp_sigma) and (example is None or (name == "W_out" and example["weight"] != "W_out")):
            # one spectrum to draw: the first W_out (else the first matrix), with its scaled MP baseline (a
            # non-finite fit draws nothing: its values reach the verdict's operands, an error naming them)
            ranks = np.unique(np.geomspace(1, sv.size, num=min(200, sv.size)).astype(int))
            mp = marchenko_pastur_singular_values(shape[0], shape[1], sigma=c.mp_sigma)
            example = {"weight": name, "layer": layer, "ranks": ranks.tolist(),
                       "sv": np.sort(sv)[::-1][ranks - 1].tolist(), "mp": np.sort(mp)[::-1][ranks - 1].tolist()}
    if not rows:
        return {"example": None, "share": None, "median_exponent": None, "median_r2": None,
                "median_mp_log_distance": None, "median_tail_falloff": None, "matrices": rows, "excluded": excluded}
    return {"example": example, "share": float(np.mean([r["is_power_law"] for r in rows])),
            "median_exponent": float(np.median([r["exponent"] for r in rows])),
            "median_r2": float(np.median([r["r2"] for r in rows])),
            "median_mp_log_distance": float(np.median([r["mp_log_distance"] for r in rows])),
            "median_tail_falloff": float(np.median([r["tail_falloff"] for r in rows])), "matrices": rows,
            "excluded": excluded}


@claim("BF-7", title="weight singular values follow a power law, unlike Marchenko–Pastur",
       source="BF §All Weight Parameters Show The Same Singular Value Pattern (Power Law)", requires=("float_weights",),
       headline=("share", "median_exponent"), inputs="weights",
       params=(R2_MIN, MP_TOL,
               Param("min_share", float, 0.9, "share of matrices", "at least this share are power-law and far "
                                                                   "from MP", SHARE)))
def test_bf7_weight_spectra_power_law(ctx: ClaimContext) -> None:
    """BF-7: singular values vs rank are a power law over the bulk with a sharp fall-off at the end,
    clearly unlike the Marchenko–Pastur spectrum of a Gaussian matrix of the same shape.

    Statistic, per block matrix (W_Q, W_K, W_V as stored — GQA K/V not repeated —, W_O, W_in, W_gate,
    W_out; a mixture-of-experts MLP: every expert's projections, the router, a shared expert —
    :func:`block_matrices`): all singular values (``torch.linalg.svdvals`` batched over layers on the model's device),
    OLS of log σ_k on log k over the bulk ranks [5%, 50%] (R² ≥ ``r2_min``) and the RMS log distance to
    the MP baseline of the same shape scaled over the same ranks (≥ ``mp_tol``): ``is_power_law`` needs
    both (a Gaussian matrix fits a line on a narrow range but matches MP). Holds if at least
    ``min_share`` of matrices are power laws. The fall-off (mean log gap of the last 5% of ranks below
    the fitted power law) is reported. Control: the random twin (Gaussian init: must look like MP).
    Singular values below the computation's rounding bound (:func:`sv_rank_floor`) are numerical zeros;
    a matrix the statistic cannot judge — fewer than 10 singular values (e.g. one 8-dim KV head), or
    zeros inside the bulk ranks (rank-deficient, e.g. pruned heads) — is excluded with its reason and
    counted, and the share is over the rest. Quantised weights: not applicable (premise
    ``float_weights``: quantisation noise lifts the tail of the spectrum).
    Window: every block, every weight matrix.
    Source: BF §All Weight Parameters Show The Same Singular Value Pattern (Power Law).
    """
    from lmfacts.models.twin import random_twin

    exp = ctx.expectation
    r2_min, mp_tol, min_share = exp["r2_min"], exp["mp_tol"], exp["min_share"]
    lm = ctx.model()
    dev = ctx.info.device
    res = spectrum_rows(weight_spectra(lm.bridge, dev), dev, r2_min=r2_min, mp_tol=mp_tol)
    twin = spectrum_rows(weight_spectra(random_twin(lm).bridge, dev), dev, r2_min=r2_min, mp_tol=mp_tol)
    ctx.statistic("share of weight matrices whose singular values fit a power law over bulk ranks (R²) and are far "
                  "from the Marchenko–Pastur spectrum of the same shape (RMS log distance)")
    ctx.conventions(weights="raw", ranks="bulk [ceil(5%), floor(50%)] of min(shape)", svd="batched over layers per weight type: "
                    + ("eigvalsh of the float64 Gram matrix (CPU)" if dev.startswith("cpu") else f"svdvals on {dev}"), mp_baseline="expected MP quantiles, scale fitted "
                    "over the bulk ranks", blocks="all",
                    rank_floor="σ ≤ σ_max·sqrt(n·eps64) (CPU Gram) / σ_max·n·eps32 (svdvals) counted as 0 "
                               "(NumPy matrix_rank default for the computed matrix)")
    excluded = res.pop("excluded")
    ctx.measured(**res)
    _record_exclusions(ctx, excluded, len(res["matrices"]), "weight matrices whose spectra")
    ctx.control(share=twin["share"], median_mp_log_distance=twin["median_mp_log_distance"],
                median_r2=twin["median_r2"], median_exponent=twin["median_exponent"], seed=0)
    _record_exclusions(ctx, twin["excluded"], len(twin["matrices"]), "weight matrices", control=True)
    _twin_note(ctx, twin["share"] is not None and twin["share"] >= min_share,
               "a Gaussian-initialised twin already has a power-law-like, non-MP spectrum by this test")
    ctx.expected(min_share=min_share)
    ctx.tolerance(r2_min=r2_min, mp_tol=mp_tol)
    ctx.figure({"id": "bf7-summary", "title": "BF-7 distance from Marchenko–Pastur per matrix (block 0 … L-1)",
                "xlabel": "matrix index", "ylabel": "RMS log distance to MP", "logy": False, "logx": False,
                "series": [{"label": "model", "x": list(range(len(res["matrices"]))),
                            "y": [r["mp_log_distance"] for r in res["matrices"]], "style": "line"},
                           {"label": "random twin", "x": list(range(len(twin["matrices"]))),
                            "y": [r["mp_log_distance"] for r in twin["matrices"]], "style": "dashed"}],
                "vspans": []})
    ex, tex = res["example"], twin["example"]
    if ex is not None and tex is not None:
        ctx.figure({"id": "bf7-spectrum", "title": f"BF-7 singular values of block {ex['layer']} {ex['weight']}",
                    "xlabel": "rank k", "ylabel": "σ_k", "logx": True, "logy": True,
                    "series": [{"label": "model", "x": ex["ranks"], "y": ex["sv"], "style": "line"},
                               {"label": "Marchenko–Pastur (same shape, fitted scale)", "x": ex["ranks"],
                                "y": ex["mp"], "style": "dashed"},
                               {"label": "random twin", "x": tex["ranks"], "y": tex["sv"], "style": "points"}],
                    "vspans": []})
    _require_judged(ctx, len(res["matrices"]), excluded, "weight matrix spectrum")
    _require_judged(ctx, len(twin["matrices"]), twin["excluded"], "spectrum of the random twin (the control)")
    note = f"; {len(excluded)} matrices excluded ({_excluded_text(excluded, 2)})" if excluded else ""
    ctx.check(twin["share"] < min_share, f"the random twin passes too ({twin['share']:.2f} of matrices): the "
                                         "test cannot tell a Gaussian matrix from a power law here",
              twin_share=twin["share"], min_share=min_share,
              **{f"twin_{k}": v for k, v in _row_operands(twin["matrices"], SPECTRUM_OPERANDS).items()})
    ctx.check(res["share"] >= min_share, f"only {res['share']:.2f} of weight matrices have a power-law, non-MP "
                                         f"spectrum (need ≥ {min_share}); median MP distance "
                                         f"{res['median_mp_log_distance']:.3f}, median R² {res['median_r2']:.3f}"
                                         + note, share=res["share"], min_share=min_share,
              **_row_operands(res["matrices"], SPECTRUM_OPERANDS))


# ---------------------------------------------------------------------------------------------
def _covariance_spectra(probe: Any, device: str, lo: int, hi: int, r2_min: float, mp_tol: float) -> dict[str, Any]:
    """BF-8's verdict per residual point; a spectrum the statistic cannot judge goes to ``excluded``."""
    import torch

    from lmfacts.stats.spectrum import compare_to_marchenko_pastur, eigvals_to_singular, zero_below_floor
    from lmfacts.tolerances import float_tol

    excluded: dict[str, str] = {}
    pts = []
    for p in range(lo, hi + 1):
        n = int(probe.points[p].n_tokens)
        if n > 1 and probe.has_covariance(p):
            pts.append(p)
        elif n > 1:  # a documented subset of points under --probe-memory (probe.memory says which)
            excluded[f"point {p}"] = f"covariance not kept under --probe-memory ({probe.memory.get('covariance')})"
        else:
            excluded[f"point {p}"] = f"{n} content token(s): no covariance"
    rows = []
    if pts:
        covs = torch.from_numpy(np.stack([probe.covariance(p) for p in pts])).to(device)
        eig = torch.linalg.eigvalsh(covs).cpu().numpy()
    for p, lam in zip(pts, eig if pts else [], strict=True):
        n = int(probe.points[p].n_tokens)
        mu = np.asarray(probe.points[p].moments.mean(), dtype=np.float64)
        lam = np.sort(np.clip(lam, 0, None))[::-1]
        # numerical zeros: below the float32 rounding of the uncentred second moments the probe accumulates
        # (‖E[xxᵀ]‖ ≤ λ_max + ‖μ‖²), and every rank beyond n - 1 (n centred tokens span ≤ n - 1 directions)
        floor = float_tol(0.0, "float32") * (float(lam[0]) + float(mu @ mu))
        lam, rank = zero_below_floor(lam, floor)
        lam[max(n - 1, 0):] = 0.0
        rank = min(rank, n - 1)
        sv = eigvals_to_singular(lam, n, ddof=0)
        d = sv.size
        sv = sv[: min(n, d)]  # an n × d data matrix has min(n, d) singular values: fewer tokens than d_model
        try:
            c = compare_to_marchenko_pastur(sv, (n, d), r2_min=r2_min, mp_tol=mp_tol)
        except DegenerateSample as exc:  # e.g. zeros inside the bulk ranks (fewer tokens than dims)
            excluded[f"point {p}"] = f"{n} tokens × {d} dims, numerical rank {rank}: {exc}"
            continue
        lo_r, hi_r = c.fit.rank_range
        rows.append({"point": p, "exponent": c.fit.exponent, "r2": c.fit.r_squared,
                     "mp_log_distance": c.mp_log_distance, "is_power_law": c.is_power_law,
                     "top_sv_per_token": float(sv[0] / np.sqrt(n)),
                     "bulk_log_sv_per_token": float(np.mean(np.log(sv[lo_r - 1:hi_r] / np.sqrt(n)))), "n_tokens": n,
                     "numerical_rank": rank})
    share = float(np.mean([r["is_power_law"] for r in rows])) if rows else None
    return {"share": share, "points": rows, "excluded": excluded}


@claim("BF-8", title="activation covariance spectra follow a power law, growing with depth",
       source="BF §Activation Covariances Show The Same Power Law Pattern Of Singular Values",
       headline=("share", "depth_spearman"),
       params=(Param("window", list[int], None, "point index", "inclusive points judged; unset: [1, L]"),
               R2_MIN, MP_TOL,
               Param("min_share", float, 0.75, "share of points", "at least this share are power-law and far "
                                                                  "from MP", SHARE),
               MIN_RHO))
def test_bf8_covariance_spectra(ctx: ClaimContext) -> None:
    """BF-8: the covariance of residual activations has a power-law spectrum, larger in later layers.

    Statistic, per residual point in the window (default 1 … L): covariance of content token vectors
    from the probe's streaming accumulators (``ProbeResult.covariance``), eigenvalues by
    ``torch.linalg.eigvalsh`` on the model's device, turned into singular values of the centred data
    matrix (σ_k = sqrt(n λ_k)); power law = R² ≥ ``r2_min`` over the bulk ranks and RMS log distance ≥
    ``mp_tol`` from the MP spectrum of an n × d Gaussian data matrix. Holds if at least ``min_share`` of
    points are power laws and the spectra grow with depth: Spearman ρ(point, mean bulk log σ_k/√n) ≥
    ``min_rho``. Hook: ``blocks.{l}.hook_resid_pre`` (+ final); positions: content; processing: raw.
    Control: the random twin's own probe on 32 prompts. Post-LN encoders: the points are LayerNorm
    outputs, whose scale is fixed by the norm, so the growth half is about LN gains there.
    Eigenvalues below the float32 rounding of the probe's second moments, and ranks beyond n - 1, are
    numerical zeros; a point whose spectrum has zeros inside the bulk ranks (fewer tokens than ranks, a
    rank-deficient stream) is excluded with its reason and counted; the share is over the rest. With
    fewer content tokens n than d_model the n × d data matrix has n singular values, compared with the
    MP spectrum of an n × d Gaussian (bulk ranks of min(n, d)).
    Source: BF §Activation Covariances Show The Same Power Law Pattern Of Singular Values.
    """
    from lmfacts.models.twin import session_twin_pass
    from lmfacts.stats.trends import depth_trend

    exp = ctx.expectation
    info = ctx.info
    L = info.n_layers
    lo, hi = exp["window"] if exp["window"] is not None else [1, L]
    r2_min, mp_tol = exp["r2_min"], exp["mp_tol"]
    min_share, min_rho = exp["min_share"], exp["min_rho"]
    res = _covariance_spectra(ctx.probe(), info.device, lo, hi, r2_min, mp_tol)
    ok_rows = res["points"]
    _record_exclusions(ctx, res["excluded"], len(ok_rows), "residual points whose covariance spectra")
    ctx.require(len(ok_rows) >= 3, f"only {len(ok_rows)} point(s) in {lo}–{hi} have a covariance spectrum the "
                                   f"statistic can judge (need 3 for a depth trend)"
                                   + (f"; excluded: {_excluded_text(res['excluded'])}" if res["excluded"] else ""))
    trend = depth_trend(np.exp([r["bulk_log_sv_per_token"] for r in ok_rows]), [r["point"] for r in ok_rows])
    twin = _covariance_spectra(session_twin_pass(ctx)[0], info.device, lo, hi, r2_min, mp_tol)
    twin_ok = twin["points"]
    _record_exclusions(ctx, twin["excluded"], len(twin_ok), "residual points", control=True)
    twin_trend = depth_trend(np.exp([r["bulk_log_sv_per_token"] for r in twin_ok]),
                             [r["point"] for r in twin_ok]) if len(twin_ok) >= 3 else None
    ctx.statistic("share of residual points whose covariance spectrum is a power law far from MP; Spearman ρ of "
                  "the bulk spectrum level vs depth")
    ctx.conventions(hook="blocks.{l}.hook_resid_pre (+ final resid_post)", positions="content (no BOS, no pad)",
                    covariance="population covariance over all corpus content tokens", processing="raw",
                    ranks="bulk [ceil(5%), floor(50%)] of min(content tokens, d_model)")
    ctx.measured(share=res["share"], depth_spearman=trend.spearman, depth_rate=trend.rate, points=res["points"],
                 window=[lo, hi])
    ctx.control(share=twin["share"], depth_spearman=None if twin_trend is None else twin_trend.spearman,
                n_prompts=min(32, len(ctx.texts)), seed=0)
    twin_shows = (twin["share"] is not None and twin["share"] >= min_share and twin_trend is not None
                  and twin_trend.spearman >= min_rho)
    _twin_note(ctx, twin_shows, "an untrained twin's activations have the same spectral shape and depth trend")
    ctx.expected(min_share=min_share, min_rho=min_rho)
    ctx.tolerance(r2_min=r2_min, mp_tol=mp_tol)
    ctx.figure({"id": "bf8-level", "title": "BF-8 covariance spectrum level per point", "xlabel": "point",
                "ylabel": "mean bulk log σ_k/√n", "logy": False, "logx": False,
                "series": [{"label": "model", "x": [r["point"] for r in ok_rows],
                            "y": [r["bulk_log_sv_per_token"] for r in ok_rows], "style": "line"},
                           {"label": "random twin", "x": [r["point"] for r in twin_ok],
                            "y": [r["bulk_log_sv_per_token"] for r in twin_ok], "style": "dashed"}],
                "vspans": []})
    ctx.check(res["share"] >= min_share, f"only {res['share']:.2f} of points have a power-law, non-MP "
                                         f"covariance spectrum (need ≥ {min_share})"
                                         + (f"; {len(res['excluded'])} point(s) excluded" if res["excluded"] else ""),
              share=res["share"], min_share=min_share, **_row_operands(ok_rows, SPECTRUM_OPERANDS))
    ctx.check(trend.spearman >= min_rho, f"covariance spectra do not grow with depth: ρ = {trend.spearman:.2f} "
                                         f"< {min_rho}", depth_spearman=trend.spearman, min_rho=min_rho)
