"""Attention sinks (AS-1, AS-2): streaming attention share on sink positions per layer and head.

Convention (Gu et al., "When Attention Sink Emerges in Language Models", ICLR 2025, arXiv
2410.10781, code sail-sg/Attention-Sink ``eval_sink_open_source.py``): the *importance* of key k
for a head is its attention weight averaged over the queries that can see it; a (layer, head) is
a sink for a prompt when the first token's importance exceeds ε = 0.3 (strict ``>``); the sink
rate is the share of (prompt, layer, head) triples that are sinks (64-token inputs there). Xiao et
al. (ICLR 2024, arXiv 2309.17453) describe the same phenomenon on the initial tokens.

Here the sink is a *set* of key positions per prompt (``sink_keys``, ``[b, k]`` bool), taken as an
argument rather than fixed at index 0 because:

* with left padding the first real token (the prepended BOS) is not at index 0;
* encoders have no BOS and attend bidirectionally; their sinks are [CLS] (first) and [SEP] (last
  real token; Clark et al. 2019, "What Does BERT Look At?": over half of BERT-base's attention in
  layers 6–10 goes to [SEP]), and [SEP]'s index depends on the prompt's length;
* AS-2 asks whether sinks sit on the positions carrying massive activations, which are a
  per-prompt key set (first token and some delimiters).

Per query q the **sink mass** is ``Σ_{k ∈ sink} A[q, k]`` (:func:`sink_mass`); the caller says which
queries count (``query_mask``): by default (:func:`counted_queries`) every real query that is not
itself a sink position, i.e. queries ≥ 1 for a BOS sink, because query 0 of a causal model sees
only itself (A[0, 0] = 1 is forced by the mask, not learned) and would add 1/T to every head.
Gu et al.'s code includes that query (``include_sink_queries=True`` reproduces it). In a causal
model a sink set beyond position 0 is only visible to later queries: mask earlier ones out.

Per prompt and head the importance is the mean sink mass over its counted queries. The
accumulator (:class:`SinkAccumulator`) keeps, per (layer, head), the sum of per-prompt
importances, the number of prompts, the number of prompts whose importance exceeds ε, and the
pooled sum of sink mass over all counted queries with its count: all additive, so batch by batch
equals one shot up to float summation order. Memory O(layers × heads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import DegenerateSample, as_finite_array, check_int

__all__ = [
    "AS_EPSILON",
    "sink_mass",
    "counted_queries",
    "key_importance",
    "top_key_hits",
    "SinkAccumulator",
    "SinkStats",
    "sink_stats",
]

AS_EPSILON = 0.3


def _bool_mask(x: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(x)
    if m.dtype != bool:
        raise ValueError(f"{name}: expected a bool mask, got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {m.shape}")
    return m


def _pattern(attn: object) -> np.ndarray:
    a = as_finite_array(attn, "attn", ndim=4)
    if np.any(a < -1e-6) or np.any(a > 1 + 1e-6):
        raise ValueError("attn: attention weights must lie in [0, 1]; pass softmax probabilities, not scores")
    return a


def sink_mass(attn: object, sink_keys: object) -> np.ndarray:
    """Attention mass on the sink keys per query: ``[b, H, q]`` from ``attn`` ``[b, H, q, k]``.

    ``attn``: softmax probabilities (rows sum to 1 over real keys); ``sink_keys``: ``[b, k]`` bool.
    Raises ``ValueError`` on NaN, weights outside [0, 1] or shape mismatch.
    """
    a = _pattern(attn)
    s = _bool_mask(sink_keys, "sink_keys", (a.shape[0], a.shape[3]))
    return np.einsum("bhqk,bk->bhq", a, s.astype(np.float64))


def counted_queries(valid: object, sink_keys: object, *, include_sink_queries: bool = False) -> np.ndarray:
    """Default query mask ``[b, q]``: real (``valid``) queries that are not sink positions.

    With a single BOS sink this is "queries ≥ 1"; ``include_sink_queries=True`` keeps the sink
    queries too (Gu et al.'s convention). Query and key axes are the same positions here.
    """
    v = np.asarray(valid)
    if v.dtype != bool or v.ndim != 2:
        raise ValueError(f"valid: expected a [b, p] bool mask, got {v.dtype} {v.shape}")
    s = _bool_mask(sink_keys, "sink_keys", v.shape)
    return v.copy() if include_sink_queries else v & ~s


def key_importance(attn: object, query_mask: object, *, causal: bool = True) -> np.ndarray:
    """Gu et al.'s importance of every key: ``[b, H, k]`` from ``attn`` ``[b, H, q, k]``.

    Mean of ``A[q, k]`` over counted queries (``query_mask`` ``[b, q]``) that can see key k
    (q ≥ k when ``causal``); NaN for a key no counted query sees.
    """
    a = _pattern(attn)
    b, _, q, k = a.shape
    qm = _bool_mask(query_mask, "query_mask", (b, q)).astype(np.float64)
    see = np.tril(np.ones((q, k))) if causal else np.ones((q, k))
    w = qm[:, :, None] * see[None]  # [b, q, k]
    num = np.einsum("bhqk,bqk->bhk", a, w)
    den = w.sum(1)[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def top_key_hits(importance: object, target_keys: object, *, heads: object | None = None) -> tuple[int, int]:
    """AS-2 count: in how many (prompt, head) pairs the most important key is a target key.

    ``importance``: ``[b, H, k]`` from :func:`key_importance` (NaN keys are ignored);
    ``target_keys``: ``[b, k]`` bool (e.g. positions carrying a massive activation);
    ``heads``: optional ``[H]`` bool selecting heads (e.g. the sink heads). Returns
    ``(hits, total)``; both add over batches. Prompts whose keys are all NaN are skipped.
    """
    imp = np.asarray(importance, dtype=np.float64)
    if imp.ndim != 3:
        raise ValueError(f"importance: expected [b, H, k], got shape {imp.shape}")
    if np.any(np.isinf(imp)):
        raise ValueError("importance: contains inf")
    t = _bool_mask(target_keys, "target_keys", (imp.shape[0], imp.shape[2]))
    h = np.ones(imp.shape[1], dtype=bool) if heads is None else _bool_mask(heads, "heads", (imp.shape[1],))
    sel = imp[:, h]
    ok = ~np.all(np.isnan(sel), axis=-1)  # [b, H']
    top = np.argmax(np.where(np.isnan(sel), -np.inf, sel), axis=-1)  # [b, H']
    hit = np.take_along_axis(np.broadcast_to(t[:, None, :], sel.shape), top[..., None], -1)[..., 0]
    return int((hit & ok).sum()), int(ok.sum())


class SinkAccumulator:
    """Per (layer, head) additive sums of the sink share (module docstring).

    :meth:`add` takes the sink mass ``[b, H, q]`` (from :func:`sink_mass`, or computed inside an
    attention hook without keeping the pattern) and the counted-query mask ``[b, q]``;
    :meth:`add_pattern` computes both from a full pattern.
    """

    def __init__(self, n_layers: int, n_heads: int, *, epsilon: float = AS_EPSILON) -> None:
        """Zero sums for ``n_layers`` × ``n_heads``; ``epsilon`` is the per-prompt sink threshold."""
        self.n_layers = check_int(n_layers, "n_layers", minimum=1)
        self.n_heads = check_int(n_heads, "n_heads", minimum=1)
        if not (0.0 < float(epsilon) < 1.0):
            raise ValueError(f"epsilon: must lie strictly between 0 and 1, got {epsilon!r}")
        self.epsilon = float(epsilon)
        shape = (self.n_layers, self.n_heads)
        self.importance_sum = np.zeros(shape)
        self.above = np.zeros(shape, dtype=np.int64)
        self.n_prompts = np.zeros(self.n_layers, dtype=np.int64)
        self.skipped_prompts = np.zeros(self.n_layers, dtype=np.int64)
        self.mass_sum = np.zeros(shape)
        self.n_queries = np.zeros(self.n_layers, dtype=np.int64)

    def add(self, layer: int, mass: object, query_mask: object) -> None:
        """Add one batch at ``layer``: ``mass`` ``[b, H, q]`` in [0, 1], ``query_mask`` ``[b, q]`` bool.

        A prompt with no counted query is skipped (counted in ``skipped_prompts``).
        """
        if isinstance(layer, bool) or not (0 <= int(layer) < self.n_layers):
            raise ValueError(f"layer: must lie in [0, {self.n_layers}), got {layer!r}")
        m = as_finite_array(mass, "mass", ndim=3)
        b, h, q = m.shape
        if h != self.n_heads:
            raise ValueError(f"mass: {h} heads, expected {self.n_heads}")
        if np.any(m < -1e-6) or np.any(m > 1 + 1e-6):
            raise ValueError("mass: attention mass must lie in [0, 1]")
        qm = _bool_mask(query_mask, "query_mask", (b, q))
        n_q = qm.sum(1)  # [b]
        ok = n_q > 0
        per_prompt = (m * qm[:, None, :]).sum(-1)  # [b, H] summed sink mass
        imp = per_prompt[ok] / n_q[ok, None]
        self.importance_sum[layer] += imp.sum(0)
        self.above[layer] += (imp > self.epsilon).sum(0)
        self.n_prompts[layer] += int(ok.sum())
        self.skipped_prompts[layer] += int((~ok).sum())
        self.mass_sum[layer] += per_prompt.sum(0)
        self.n_queries[layer] += int(n_q.sum())

    def add_pattern(self, layer: int, attn: object, sink_keys: object, query_mask: object) -> None:
        """:meth:`add` from a full pattern ``attn`` ``[b, H, q, k]`` and ``sink_keys`` ``[b, k]``."""
        self.add(layer, sink_mass(attn, sink_keys), query_mask)

    def merge(self, other: SinkAccumulator) -> None:
        """Add another accumulator with the same shape and ε."""
        if (other.n_layers, other.n_heads, other.epsilon) != (self.n_layers, self.n_heads, self.epsilon):
            raise ValueError("merge: accumulators differ in shape or epsilon")
        for name in ("importance_sum", "above", "n_prompts", "skipped_prompts", "mass_sum", "n_queries"):
            getattr(self, name).__iadd__(getattr(other, name))

    def result(self, *, threshold: float | None = None) -> SinkStats:
        """:func:`sink_stats` of this accumulator."""
        return sink_stats(self, threshold=threshold)


@dataclass(frozen=True)
class SinkStats(ResultMixin):
    """AS-1 statistics; ``[L][H]`` lists are per layer and head.

    * ``share``: mean over prompts of the per-prompt importance (mean sink mass over counted queries).
    * ``token_share``: sink mass pooled over every counted query of every prompt.
    * ``sink_rate``: Gu et al.'s metric, share of (prompt, layer, head) with importance > ε.
    * ``sink_heads``: [layer, head] pairs whose mean ``share`` > ``threshold`` (default ε);
      ``head_sink_rate`` = their share of all heads.
    * ``layer_share`` / ``layer_sink_rate``: per layer, mean of ``share`` over heads / share of
      (prompt, head) pairs above ε.
    """

    share: list[list[float]]
    token_share: list[list[float]]
    sink_rate: float
    sink_heads: list[list[int]]
    head_sink_rate: float
    layer_share: list[float]
    layer_sink_rate: list[float]
    n_prompts: int
    skipped_prompts: int
    epsilon: float
    threshold: float


def sink_stats(acc: SinkAccumulator, *, threshold: float | None = None) -> SinkStats:
    """AS-1 statistics from a filled :class:`SinkAccumulator` (definitions in :class:`SinkStats`).

    ``threshold`` (default ε) decides ``sink_heads`` on the mean share. Raises
    :class:`DegenerateSample` when a layer saw no prompt with a counted query.
    """
    thr = acc.epsilon if threshold is None else float(threshold)
    if not (0.0 < thr < 1.0):
        raise ValueError(f"threshold: must lie strictly between 0 and 1, got {threshold!r}")
    if np.any(acc.n_prompts == 0):
        bad = [int(v) for v in np.flatnonzero(acc.n_prompts == 0)]
        raise DegenerateSample(f"sink_stats: layer(s) {bad} saw no prompt with a counted query")
    n = acc.n_prompts[:, None].astype(np.float64)
    share = acc.importance_sum / n
    token_share = acc.mass_sum / acc.n_queries[:, None]
    heads = np.argwhere(share > thr)
    return SinkStats(
        share=share.tolist(),
        token_share=token_share.tolist(),
        sink_rate=float(acc.above.sum() / (acc.n_prompts.sum() * acc.n_heads)),
        sink_heads=[[int(a), int(b)] for a, b in heads],
        head_sink_rate=float(heads.shape[0] / share.size),
        layer_share=share.mean(1).tolist(),
        layer_sink_rate=(acc.above.sum(1) / (acc.n_prompts * acc.n_heads)).tolist(),
        n_prompts=int(acc.n_prompts.max()),
        skipped_prompts=int(acc.skipped_prompts.max()),
        epsilon=acc.epsilon,
        threshold=thr,
    )
