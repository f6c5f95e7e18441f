"""Attention-sink claims AS-1, AS-2 (sources: Xiao et al., "Efficient Streaming Language Models with
Attention Sinks", ICLR 2024, arXiv 2309.17453; Gu et al., "When Attention Sink Emerges in Language Models",
ICLR 2025, arXiv 2410.10781, code sail-sg/Attention-Sink ``eval_sink_open_source.py``; encoders: Clark et
al. 2019, "What Does BERT Look At?"; Sun et al. 2024 §4 for AS-2; catalogue ../shared/claims-catalogue.md
§Beyond the seeds).

Shared conventions. Patterns: ``blocks.{l}.attn.hook_pattern`` (softmax probabilities; the
``attention_patterns`` premise checks that the hook fires at every block and its rows sum to 1). Inputs:
the prompts of the MA / AS / LL sample (:mod:`lmfacts.measures.beyond`, reduced inside the session's one
probe pass; the pattern hooks are the forward's own eager attention, no pattern is kept) with at least 64
tokens, as Gu et al.'s 64-token inputs: in a causal model the first 64 query and key positions, which are
exactly what a 64-token input gives; shorter prompts are not used (a uniform head gives the first token
(H_T − 1)/(T − 1) of a query's attention on average: 0.36 at T = 4, 0.06 at T = 64, so short inputs would
make every head look like a sink). Importance of a key for a head (Gu): its attention averaged over the
queries that see it; a (prompt, layer, head) is a sink when the sink positions' importance exceeds ε = 0.3.
The reduction averages over every query of the window, which is that statistic only where every query sees
the sink: premise ``sink_visible`` skips a model whose sliding attention window (Mistral, Gemma 2/3 local
layers) is narrower than the window, measured on the pattern (:mod:`lmfacts.measures.attention_window`).

Which token is the sink. Decoders (``causal_decoder`` holds): the first real position, the BOS where the
tokenizer prepends one. Encoders (bidirectional): there is no BOS; Clark et al. found BERT's heads parking
attention on [SEP] (and [CLS]), so the claim measures [CLS] (first position), [SEP] (the tokenizer's sep id,
the last real token) and both together, judges the set ``sink_tokens`` (default both) and reports all three.
The branch is chosen by the *measured* causal check, not by the architecture's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmfacts.claims import COUNT, SHARE, Param, claim
from lmfacts.context import ClaimContext
from lmfacts.measures.beyond import SINK_TOKENS, session_beyond

EPSILON = Param("epsilon", float, 0.3, "attention share",
                "a (prompt, layer, head) is a sink when the sink positions' importance exceeds this (Gu et al.)",
                SHARE)
MIN_PROMPTS = Param("min_prompts", int, 5, "prompts", f"at least this many prompts of ≥ {SINK_TOKENS} tokens",
                    COUNT)
HOOK = "blocks.{l}.attn.hook_pattern"


def _sinks(ctx: ClaimContext, *, twin: bool = False) -> Any:
    bp = session_beyond(ctx, twin=twin)
    assert bp.sinks is not None  # attention_patterns holds
    return bp, bp.sinks


def _require_prompts(ctx: ClaimContext, bp: Any, red: Any) -> None:
    n, need = len(red.prompt_ids), ctx.expectation["min_prompts"]
    ctx.require(n >= need, f"only {n} of the {bp.n_prompts} sampled prompts have ≥ {red.n_tokens} tokens (need "
                           f"{need}); run on more prompts (--max-prompts) or a corpus with longer prompts")


def _stats(red: Any, name: str, epsilon: float, include: bool) -> Any:
    from lmfacts.stats.sinks import SinkAccumulator, sink_stats

    acc = (red.acc_incl if include else red.acc)[name]
    if acc.epsilon != epsilon:  # re-threshold: the per-prompt counts depend on ε, rebuild from the same sums
        raise ValueError(f"epsilon {epsilon} differs from the pass's ε = {acc.epsilon}; the per-prompt sink counts "
                         f"are kept for ε = {acc.epsilon} only")
    assert isinstance(acc, SinkAccumulator)
    return sink_stats(acc)


# ---------------------------------------------------------------------------------------------
@claim("AS-1", title="trained models park attention on a sink token (substantial sink rate; the twin has none)",
       source="Gu et al. 2025 (arXiv 2410.10781) §3, eval_sink_open_source.py; Xiao et al. 2024; encoders: Clark et "
              "al. 2019 §3", requires=("attention_patterns", "sink_visible"),
       headline=("sink_rate", "head_sink_rate"),
       params=(EPSILON, MIN_PROMPTS,
               Param("min_sink_rate", float, 0.2, "share of (prompt, layer, head)", "'substantial': sink rate at least "
                                                                                   "this", SHARE),
               Param("twin_max_sink_rate", float, 0.05, "share", "the random twin's sink rate below this", SHARE),
               Param("include_sink_query", bool, False, "",
                     "count the sink position's own query (Gu's code: True; query 0 of a causal model sees only "
                     "itself, A[0,0] = 1 is forced)"),
               Param("sink_tokens", str, "cls+sep", "", "encoders: the sink set judged ('cls', 'sep', 'cls+sep')"),
               Param("layer_window", list[int], None, "block",
                     "inclusive blocks whose mean sink share is also judged (unset: none)"),
               Param("min_layer_share", float, 0.5, "attention share",
                     "with layer_window: mean attention share on the sink over those blocks at least this", SHARE)))
def test_as1_sink_rate(ctx: ClaimContext) -> None:
    """AS-1: a substantial share of (prompt, layer, head) triples are attention sinks; the random twin's are not.

    Statistic (:func:`lmfacts.stats.sinks.sink_stats`): per prompt, layer and head the importance of the
    sink set = its attention mass averaged over the counted queries (real queries; the sink's own excluded
    unless ``include_sink_query``); ``sink_rate`` = share of triples with importance > ε (Gu's metric);
    ``head_sink_rate`` = share of heads whose mean importance > ε; ``layer_share`` per layer. Claim:
    sink_rate ≥ ``min_sink_rate``; the twin's < ``twin_max_sink_rate``; with ``layer_window`` (e.g. Clark et
    al.'s BERT-base layers 6–10) the mean of layer_share over it ≥ ``min_layer_share``. Hook:
    ``blocks.{l}.attn.hook_pattern``; positions: queries and keys of the first 64 tokens (decoder) or the
    whole prompt (encoder) of prompts with ≥ 64 tokens; window: every layer. Sink: first real position
    (decoder), [CLS] / [SEP] / both (encoder, module docstring). Both conventions (sink query excluded /
    included) are recorded; ``robust`` says whether they agree. References: Gu et al. 2025; Clark et al. 2019.
    Source: Gu et al. 2025 (arXiv 2410.10781) §3, eval_sink_open_source.py; Xiao et al. 2024; encoders: Clark et al. 2019 §3.
    """
    exp = ctx.expectation
    eps = exp["epsilon"]
    bp, red = _sinks(ctx)
    _require_prompts(ctx, bp, red)
    if red.causal:
        judged = "first"
    else:
        judged = exp["sink_tokens"]
        if judged not in red.sets:
            raise ValueError(f"sink_tokens: {judged!r} is not one of {list(red.sets)}")
    include = exp["include_sink_query"]
    st = _stats(red, judged, eps, include)
    alt = _stats(red, judged, eps, not include)
    per_set = {s: {"sink_rate": (r := _stats(red, s, eps, include)).sink_rate, "head_sink_rate": r.head_sink_rate,
                   "layer_share": r.layer_share} for s in red.sets}
    tbp, tred = _sinks(ctx, twin=True)
    tw = _stats(tred, judged, eps, include) if tred.prompt_ids else None
    ctx.statistic(f"share of (prompt, layer, head) whose attention importance on the sink ({judged}) exceeds ε "
                  f"(Gu et al.'s sink rate), and of heads whose mean importance does")
    ctx.conventions(hook=HOOK, sink=("first real position (the BOS where prepended)" if red.causal else
                                     f"{judged} (encoder: [CLS] first position, [SEP] the tokenizer's sep id; "
                                     f"bidirectional attention has no BOS)"),
                    queries=("real queries except the sink's own" if not include else "every real query (Gu's code)"),
                    inputs=(f"{len(red.prompt_ids)} prompts with ≥ {red.n_tokens} tokens: first {red.n_tokens} "
                            f"positions" if red.causal else f"{len(red.prompt_ids)} whole prompts with ≥ "
                                                            f"{red.n_tokens} tokens"),
                    threshold=f"importance > {eps} (strict), per prompt", processing="raw")
    ctx.measured(sink_rate=st.sink_rate, head_sink_rate=st.head_sink_rate, layer_share=st.layer_share,
                 layer_sink_rate=st.layer_sink_rate, sink_heads=st.sink_heads, n_prompts=st.n_prompts,
                 per_sink_set=per_set, judged_set=judged,
                 alternatives={"include_sink_query" if not include else "exclude_sink_query":
                               {"sink_rate": alt.sink_rate, "head_sink_rate": alt.head_sink_rate}})
    ctx.robust((st.sink_rate >= exp["min_sink_rate"]) == (alt.sink_rate >= exp["min_sink_rate"]))
    ctx.expected(min_sink_rate=exp["min_sink_rate"], twin_max_sink_rate=exp["twin_max_sink_rate"])
    ctx.tolerance(epsilon=eps)
    ctx.control(sink_rate=None if tw is None else tw.sink_rate, head_sink_rate=None if tw is None else tw.head_sink_rate,
                n_prompts=len(tred.prompt_ids), seed=0)
    x = list(range(len(st.layer_share)))
    series = [{"label": f"sink share ({judged})", "x": x, "y": st.layer_share, "style": "line"},
              {"label": "sink rate (> ε)", "x": x, "y": st.layer_sink_rate, "style": "dashed"}]
    if not red.causal:
        series += [{"label": f"share on {s}", "x": x, "y": per_set[s]["layer_share"], "style": "points"}
                   for s in red.sets if s != judged]
    if tw is not None:
        series.append({"label": "random twin sink share", "x": x, "y": tw.layer_share, "style": "dashed"})
    lw = exp["layer_window"]
    ctx.figure({"id": "as1-share", "title": "AS-1 attention share on the sink per layer", "xlabel": "layer",
                "ylabel": "mean attention share", "logy": False, "logx": False, "series": series,
                "vspans": [{"lo": lw[0], "hi": lw[1], "label": "judged"}] if lw else []})
    ctx.check(st.sink_rate >= exp["min_sink_rate"],
              f"sink rate {st.sink_rate:.3f} on {judged} < {exp['min_sink_rate']} (head-level {st.head_sink_rate:.3f})",
              sink_rate=st.sink_rate, min_sink_rate=exp["min_sink_rate"])
    ctx.require(tw is not None, f"the twin's sample has no prompt of ≥ {tred.n_tokens} tokens (control not measured)")
    ctx.check(tw.sink_rate < exp["twin_max_sink_rate"],
              f"the random twin has sink rate {tw.sink_rate:.3f} ≥ {exp['twin_max_sink_rate']}: not evidence about "
              f"training", twin_sink_rate=tw.sink_rate)
    if lw is not None:
        lo, hi = lw
        share = float(np.mean(st.layer_share[lo:hi + 1]))
        ctx.measured(window_share=share)
        ctx.check(share >= exp["min_layer_share"], f"mean sink share {share:.3f} over layers {lo}–{hi} < "
                                                   f"{exp['min_layer_share']}", window_share=share)


# ---------------------------------------------------------------------------------------------
@claim("AS-2", title="the positions that receive sink attention carry the massive activations",
       source="Sun et al. 2024 §4 (arXiv 2402.17762): attention concentrates on the tokens with massive activations",
       requires=("attention_patterns", "sink_visible", "has_massive_activations"),
       headline=("hit_share", "chance"),
       params=(EPSILON, MIN_PROMPTS,
               Param("abs_threshold", float, 100.0, "activation", "massive: |a| above this (as MA-1)"),
               Param("rel_threshold", float, 1000.0, "× layer median", "and above this × the block's median |a|"),
               Param("min_hit_share", float, 0.8, "share of sink (prompt, layer, head)",
                     "at least this share of sinks have their top key on a massive position", SHARE)))
def test_as2_sinks_on_massive_activations(ctx: ClaimContext) -> None:
    """AS-2: where a head parks its attention, the key carries a massive activation.

    Statistic: for every (prompt, layer, head) of the AS prompts, the key with the largest Gu importance
    among the keys at least half of the queries see (decoder: the first 32 of the 64 positions; encoder:
    every key; so late keys seen by one or two queries cannot win by noise). It is a *sink* when that
    importance exceeds ε, wherever the key is. ``hit_share`` = share of sinks whose top key is a position
    carrying a massive activation in that prompt (|a| > thresholds at any block, the MA reduction of the same
    pass); ``chance`` = mean share of massive positions among the candidate keys. Claim: hit_share ≥
    ``min_hit_share`` and hit_share > chance. Hooks: ``blocks.{l}.attn.hook_pattern``,
    ``blocks.{l}.hook_resid_post``; window: every layer. Control: the twin's hit share (no massive
    activation expected, so no hit). References: Sun et al. 2024 §4.
    Source: Sun et al. 2024 §4 (arXiv 2402.17762): attention concentrates on the tokens with massive activations.
    """
    exp = ctx.expectation
    eps = exp["epsilon"]
    bp, red = _sinks(ctx)
    _require_prompts(ctx, bp, red)
    res = _hits(bp, red, eps, exp["abs_threshold"], exp["rel_threshold"])
    tres = _hits(*_sinks(ctx, twin=True), eps, exp["abs_threshold"], exp["rel_threshold"])
    ctx.statistic("share of sink (prompt, layer, head) — top-importance key among the keys ≥ half the queries see, "
                  "importance > ε — whose key carries a massive activation; chance = share of such keys")
    ctx.conventions(hook=f"{HOOK} + blocks.{{l}}.hook_resid_post", candidates=(
        f"first {red.n_tokens // 2} of {red.n_tokens} positions" if red.causal else "every real key"),
        massive=f"|a| > {exp['abs_threshold']:g} and > {exp['rel_threshold']:g} × block median, at any block",
        processing="raw")
    ctx.measured(**{k: v for k, v in res.items() if k != "per_layer"}, per_layer_sinks=res["per_layer"])
    ctx.expected(min_hit_share=exp["min_hit_share"])
    ctx.control(hit_share=tres["hit_share"], n_sinks=tres["n_sinks"], n_massive_positions=tres["n_massive_positions"])
    ctx.require(res["n_sinks"] > 0, f"no (prompt, layer, head) has a key with importance > {eps} among its "
                                    f"candidates: no sink to locate")
    ctx.figure({"id": "as2-sinks", "title": "AS-2 sinks per layer: on a massive position vs elsewhere",
                "xlabel": "layer", "ylabel": "sink (prompt, head) pairs", "logy": False, "logx": False,
                "series": [{"label": "on a massive position", "x": list(range(len(res["per_layer"]))),
                            "y": [r[0] for r in res["per_layer"]], "style": "line"},
                           {"label": "elsewhere", "x": list(range(len(res["per_layer"]))),
                            "y": [r[1] - r[0] for r in res["per_layer"]], "style": "dashed"}], "vspans": []})
    ctx.check(res["hit_share"] >= exp["min_hit_share"] and res["hit_share"] > res["chance"],
              f"only {res['hit_share']:.3f} of {res['n_sinks']} sinks sit on a massive position (need ≥ "
              f"{exp['min_hit_share']} and > chance {res['chance']:.3f}); top sink positions {res['top_positions']}",
              hit_share=res["hit_share"], chance=res["chance"], min_hit_share=exp["min_hit_share"])


def _hits(bp: Any, red: Any, eps: float, abs_threshold: float, rel_threshold: float) -> dict[str, Any]:
    """AS-2 counts from the sink reduction's top keys and the MA reduction's kept entries (same pass)."""
    from collections import Counter

    from lmfacts.measures.beyond import finite_massive
    from lmfacts.stats.massive import massive_activations

    acc = bp.massive.acc
    ma = massive_activations(acc, abs_threshold=abs_threshold, rel_threshold=rel_threshold)
    finite_massive(ma)
    massive: dict[int, set[int]] = {}
    for layer in range(acc.n_layers):
        e = acc.entries(layer)
        m = e[(e[:, 0] > abs_threshold) & (e[:, 0] > rel_threshold * ma.median[layer])]
        for pid, pos in zip(m[:, 2].astype(int), m[:, 3].astype(int), strict=True):
            massive.setdefault(int(pid), set()).add(int(pos))
    top = red.top_keys()
    if top.size and not np.isfinite(top[:, 4][~np.isnan(top[:, 4])]).all():
        raise ValueError("AS-2: non-finite key importance")
    sink = top[top[:, 4] > eps] if top.size else top
    hits, chance = [], []
    per_layer = [[0, 0] for _ in range(red.n_layers)]
    for pid, layer, _h, pos, _imp, n_cand in sink:
        mp = massive.get(int(pid), set())
        hit = int(pos) in mp
        hits.append(hit)
        chance.append(sum(1 for p in mp if p < n_cand) / n_cand)
        per_layer[int(layer)][0] += int(hit)
        per_layer[int(layer)][1] += 1
    n = len(hits)
    return {"hit_share": float(np.mean(hits)) if n else float("nan"), "chance": float(np.mean(chance)) if n else
            float("nan"), "n_sinks": n, "n_triples": int(top.shape[0]), "per_layer": per_layer,
            "n_massive_positions": sum(len(v) for v in massive.values()),
            "top_positions": [int(p) for p, _ in Counter(sink[:, 3].astype(int).tolist()).most_common(5)] if n else []}
