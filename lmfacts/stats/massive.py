"""Massive activations (MA-1 … MA-4): streaming reductions of a residual stream and their verdicts.

Convention (Sun, Chen, Kolter, Liu, "Massive Activations in Large Language Models", COLM 2024,
arXiv 2402.17762; thresholds as coded in Owen et al. 2025, arXiv 2503.22329,
``utils/model.py``: ``MASSIVE_ACTIVATION_ABS_THRESHOLD = 100``, ``..._REL_THRESHOLD = 1000``): the
activations are the *output of each block* (the residual stream after block l); at a layer,
an activation ``a`` is **massive** when ``|a| > 100`` and ``|a| > 1000 × median|a|`` (strict, as in
that code), the median taken over every token and dimension of the layer. Sun et al.'s layer-wise
plot is the top-1/2/3 |a| and the median per layer.

Streaming reductions (:class:`MassiveAccumulator`), fed batch by batch with bounded memory:

* **median** of |a| per layer from a fixed-bin histogram of log10|a| (:class:`LogAbsHistogram`):
  bins of width ``w`` (default 0.005) on [10^lo, 10^hi) (default 1e-10 … 1e10), plus an underflow
  bin (|a| < 10^lo, zeros included) and an overflow bin (|a| ≥ 10^hi). The estimate is the
  geometric centre of the bin holding the *lower* median (rank ⌈n/2⌉, as ``torch.median``), so
  ``|estimate / exact − 1| ≤ 10^(w/2) − 1`` (0.58 % at w = 0.005), up to float rounding of
  log10 at a bin edge. A median in the underflow/overflow bin raises :class:`DegenerateSample`.
  Histogram counts add, so batch-by-batch equals one shot exactly.
* **per-prompt top-k** |a| at each layer (default k = 8), each with its signed value, prompt,
  token position (in the prompt), dimension and position class. Memory O(prompts × layers × k).
  Because every prompt keeps its own top-k, the corpus top-1/2/3 per layer are exact, and so is
  every massive activation unless a prompt has more than k of them at a layer; that case is
  reported (``saturated_layers``), never hidden.

Position classes are caller-defined integer codes (default names ``first``, ``delimiter``,
``other``; :func:`position_classes` builds them from token ids); code −1 marks a position to ignore
(padding). Pass prompt-relative ``positions`` when the batch is left-padded.

Verdict statistics (:func:`massive_activations` → :class:`MassiveActivations`):

* MA-1: per layer ``top1``, ``median``, ``ratio = top1 / median``, ``has_massive``; ``any_massive``.
* MA-2: ``sites``: one record per (layer, class, dimension) with a massive activation: the share of
  prompts in which it is massive, the mean signed value and mean |a| over those prompts, the most
  common token positions; ``dims`` (dimensions massive in ≥ ``min_share`` of prompts at some
  layer) and ``class_counts`` (massive entries per position class over all layers).
* MA-3: ``emergence_layer`` (first layer with one), ``jump`` = top1[e] / top1[e − 1],
  ``rise_layers`` = a − b where a is the first layer with top1 ≥ 0.5 × plateau and b the last layer
  before a with top1 < 0.05 × plateau (−1 if none: massive from the input on); plateau = median of
  top1 over the massive layers. ``plateau_ratio`` = max / min top1 over the contiguous run of
  massive layers starting at e.
* MA-4: :func:`bias_ablation_effect` compares next-token losses with the massive activations set
  to their mean over prompts vs set to zero (the intervention itself lives in
  :mod:`lmfacts.ablation`); the published claim is the ordering zero ≫ mean ≈ clean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._result import ResultMixin
from ._validation import DegenerateSample, as_finite_array, check_int, check_positive

__all__ = [
    "MA_ABS_THRESHOLD",
    "MA_REL_THRESHOLD",
    "MA_CLASS_NAMES",
    "LogAbsHistogram",
    "MassiveAccumulator",
    "MassiveActivations",
    "massive_activations",
    "position_classes",
    "BiasAblation",
    "bias_ablation_effect",
]

MA_ABS_THRESHOLD = 100.0
MA_REL_THRESHOLD = 1000.0
MA_CLASS_NAMES: tuple[str, ...] = ("first", "delimiter", "other")


class LogAbsHistogram:
    """Per-layer fixed-bin histogram of log10|a| for an approximate median (module docstring).

    ``counts`` has shape ``(n_layers, n_bins + 2)``: index 0 is the underflow bin (|a| < 10^lo,
    zeros included), 1 … n_bins the regular bins, the last one the overflow bin (|a| ≥ 10^hi).
    """

    def __init__(self, n_layers: int, *, lo: float = -10.0, hi: float = 10.0, width: float = 0.005) -> None:
        """Empty histograms for ``n_layers`` layers; bins of ``width`` decades on [10^lo, 10^hi)."""
        self.n_layers = check_int(n_layers, "n_layers", minimum=1)
        self.width = check_positive(width, "width")
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"lo, hi: need finite lo < hi (log10 units), got ({lo!r}, {hi!r})")
        self.lo, self.hi = float(lo), float(hi)
        self.n_bins = int(np.ceil((self.hi - self.lo) / self.width))
        self.counts = np.zeros((self.n_layers, self.n_bins + 2), dtype=np.int64)

    @property
    def relative_error_bound(self) -> float:
        """Bound on |median estimate / exact lower median − 1|: 10^(width/2) − 1."""
        return float(10.0 ** (self.width / 2) - 1.0)

    def bin_index(self, abs_values: np.ndarray) -> np.ndarray:
        """Bin index (0 = underflow, n_bins + 1 = overflow) of each |a| (any shape, >= 0)."""
        a = np.asarray(abs_values, dtype=np.float64)
        with np.errstate(divide="ignore"):
            z = (np.log10(a) - self.lo) / self.width
        idx = np.where(a < 10.0**self.lo, -1, np.floor(np.where(np.isfinite(z), z, -1)))
        idx = np.where(a >= 10.0**self.hi, self.n_bins, idx)
        return (np.clip(idx, -1, self.n_bins) + 1).astype(np.int64)

    def add(self, layer: int, abs_values: object) -> None:
        """Count the finite, non-negative ``abs_values`` (any shape) into ``layer``'s histogram."""
        a = as_finite_array(abs_values, "abs_values", min_size=0)
        if np.any(a < 0):
            raise ValueError("abs_values: must be |activation| values (>= 0); take np.abs first")
        self._check_layer(layer)
        self.counts[layer] += np.bincount(self.bin_index(a.ravel()), minlength=self.n_bins + 2)

    def add_counts(self, layer: int, counts: object) -> None:
        """Add precomputed bin counts (from :meth:`bin_index` on another device) to ``layer``."""
        c = np.asarray(counts)
        if c.shape != (self.n_bins + 2,) or np.any(c < 0):
            raise ValueError(f"counts: expected {self.n_bins + 2} non-negative bin counts, got shape {c.shape}")
        self._check_layer(layer)
        self.counts[layer] += c.astype(np.int64)

    def merge(self, other: LogAbsHistogram) -> None:
        """Add another histogram with the same bins (e.g. from another worker)."""
        if (other.lo, other.hi, other.width, other.n_layers) != (self.lo, self.hi, self.width, self.n_layers):
            raise ValueError("merge: histograms differ in bins or layer count")
        self.counts += other.counts

    def _check_layer(self, layer: int) -> None:
        if isinstance(layer, bool) or not (0 <= int(layer) < self.n_layers):
            raise ValueError(f"layer: must lie in [0, {self.n_layers}), got {layer!r}")

    def median(self, layer: int) -> float:
        """Approximate lower median of |a| at ``layer`` (error bound: :attr:`relative_error_bound`).

        Raises :class:`DegenerateSample` when the layer saw no values or the median lies in the
        underflow (|a| < 10^lo, e.g. mostly zeros) or overflow bin, where no bound holds.
        """
        self._check_layer(layer)
        c = self.counts[layer]
        n = int(c.sum())
        if n == 0:
            raise DegenerateSample(f"median: layer {layer} has no values; add activations first")
        rank = (n + 1) // 2  # lower median: the ⌈n/2⌉-th smallest value
        b = int(np.searchsorted(np.cumsum(c), rank))
        if b == 0:
            raise DegenerateSample(f"median: over half the |a| at layer {layer} are below 1e{self.lo:g} (zeros?)")
        if b == self.n_bins + 1:
            raise DegenerateSample(f"median: over half the |a| at layer {layer} are >= 1e{self.hi:g}")
        return float(10.0 ** (self.lo + (b - 0.5) * self.width))

    def total(self, layer: int) -> int:
        """Number of values counted at ``layer``."""
        self._check_layer(layer)
        return int(self.counts[layer].sum())


def position_classes(
    token_ids: object, valid: object, first: object, delimiter_ids: Sequence[int]
) -> np.ndarray:
    """Class codes for :class:`MassiveAccumulator` with the default names (first, delimiter, other).

    ``token_ids``, ``valid`` (bool, False = padding) and ``first`` (bool, True at each prompt's
    first real position: the BOS where one is prepended) are ``[b, p]``; ``delimiter_ids`` are the
    ids counted as delimiters (Sun et al.: "." and "\\n"). Returns int64 ``[b, p]``: 0 first,
    1 delimiter, 2 other, −1 padding.
    """
    ids = np.asarray(token_ids)
    v, f = np.asarray(valid, dtype=bool), np.asarray(first, dtype=bool)
    if ids.ndim != 2 or v.shape != ids.shape or f.shape != ids.shape:
        raise ValueError(f"token_ids, valid, first: need equal [b, p] shapes, got {ids.shape}, {v.shape}, {f.shape}")
    out = np.full(ids.shape, 2, dtype=np.int64)
    out[np.isin(ids, list(delimiter_ids))] = 1
    out[f] = 0
    out[~v] = -1
    return out


class MassiveAccumulator:
    """Streaming MA reductions: per-layer log|a| histogram and per-prompt top-k entries.

    Call :meth:`add` once per (batch, layer) with the block output ``acts`` ``[b, p, d]`` and the
    class codes ``[b, p]``; every layer must see the batches in the same order (prompt ids then
    agree), or pass ``prompt_ids``. Then :meth:`result` (or :func:`massive_activations`).
    """

    def __init__(
        self,
        n_layers: int,
        *,
        k: int = 8,
        class_names: Sequence[str] = MA_CLASS_NAMES,
        hist_lo: float = -10.0,
        hist_hi: float = 10.0,
        hist_width: float = 0.005,
    ) -> None:
        """Empty reductions for ``n_layers`` layers keeping the top ``k`` |a| of each prompt."""
        self.n_layers = check_int(n_layers, "n_layers", minimum=1)
        self.k = check_int(k, "k", minimum=1)
        self.class_names = tuple(class_names)
        if not self.class_names:
            raise ValueError("class_names: need at least one position class")
        self.hist = LogAbsHistogram(self.n_layers, lo=hist_lo, hi=hist_hi, width=hist_width)
        self._entries: list[list[np.ndarray]] = [[] for _ in range(self.n_layers)]
        self._next_prompt = [0] * self.n_layers
        self.d: int | None = None

    def add(self, layer: int, acts: object, classes: object, *, positions: object | None = None,
            prompt_ids: object | None = None) -> None:
        """Reduce one batch at one layer.

        ``acts``: ``[b, p, d]`` activations (any float dtype; NaN/inf raise ``ValueError``).
        ``classes``: ``[b, p]`` int codes into ``class_names``, −1 = ignore (padding).
        ``positions``: ``[b, p]`` prompt-relative token positions (default 0 … p−1).
        ``prompt_ids``: ``[b]`` ints (default: a running counter per layer).
        """
        self.hist._check_layer(layer)
        x = as_finite_array(acts, "acts", ndim=3)
        b, p, d = x.shape
        if self.d is None:
            self.d = d
        elif d != self.d:
            raise ValueError(f"acts: d = {d} differs from d = {self.d} seen before")
        cls = np.asarray(classes)
        if cls.shape != (b, p) or not np.issubdtype(cls.dtype, np.integer):
            raise ValueError(f"classes: expected int codes of shape {(b, p)}, got {cls.dtype} {cls.shape}")
        if np.any((cls < -1) | (cls >= len(self.class_names))):
            raise ValueError(f"classes: codes must lie in [-1, {len(self.class_names)})")
        pos = np.broadcast_to(np.arange(p), (b, p)) if positions is None else np.asarray(positions)
        if pos.shape != (b, p):
            raise ValueError(f"positions: expected shape {(b, p)}, got {pos.shape}")
        if prompt_ids is None:
            pid = np.arange(self._next_prompt[layer], self._next_prompt[layer] + b)
        else:
            pid = np.asarray(prompt_ids, dtype=np.int64)
            if pid.shape != (b,):
                raise ValueError(f"prompt_ids: expected shape {(b,)}, got {pid.shape}")
        valid = cls >= 0
        a = np.abs(x)
        self.hist.add(layer, a[valid])
        flat = np.where(valid[:, :, None], a, -1.0).reshape(b, p * d)
        kk = min(self.k, p * d)
        top = np.argpartition(-flat, kk - 1, axis=1)[:, :kk]
        rows = np.arange(b)[:, None]
        ti, di = np.divmod(top, d)
        self.add_topk(layer, flat[rows, top], x.reshape(b, p * d)[rows, top], pos[rows, ti], di, cls[rows, ti],
                      prompt_ids=pid)

    def add_topk(self, layer: int, abs_values: object, values: object, positions: object, dims: object,
                 classes: object, *, prompt_ids: object) -> None:
        """Add per-prompt top-k candidates reduced elsewhere (e.g. ``torch.topk`` on the device).

        All arrays are ``[b, k']`` with k' ≤ k: |a| (entries < 0 mark "no entry", e.g. padding),
        signed a, prompt-relative position, dimension, class code; ``prompt_ids`` ``[b]``. The
        caller adds the same layer's histogram with ``hist.add_counts`` (bins from
        :meth:`LogAbsHistogram.bin_index`). :meth:`add` is this plus the histogram, in numpy.
        """
        self.hist._check_layer(layer)
        av = as_finite_array(abs_values, "abs_values", ndim=2, min_size=0)
        b, kk = av.shape
        if kk > self.k:
            raise ValueError(f"abs_values: {kk} candidates per prompt, more than k = {self.k}")
        arrs = [as_finite_array(v, n, ndim=2, min_size=0) for v, n in
                ((values, "values"), (positions, "positions"), (dims, "dims"), (classes, "classes"))]
        if any(v.shape != av.shape for v in arrs):
            raise ValueError(f"values, positions, dims, classes: need shape {av.shape} like abs_values")
        pid = np.asarray(prompt_ids, dtype=np.int64)
        if pid.shape != (b,):
            raise ValueError(f"prompt_ids: expected shape {(b,)}, got {pid.shape}")
        if b:
            self._next_prompt[layer] = max(self._next_prompt[layer], int(pid.max()) + 1)
        keep = av >= 0
        codes = arrs[3][keep]
        if np.any((codes < 0) | (codes >= len(self.class_names)) | (codes != np.round(codes))):
            raise ValueError(f"classes: kept candidates need integer codes in [0, {len(self.class_names)})")
        rec = np.stack([np.broadcast_to(pid[:, None].astype(np.float64), av.shape), *arrs[1:]], axis=-1)[keep]
        self._entries[layer].append(np.column_stack([av[keep], arrs[0][keep], rec]))

    def merge(self, other: MassiveAccumulator) -> None:
        """Add another accumulator's reductions (disjoint prompt ids are the caller's business)."""
        if (other.n_layers, other.k, other.class_names) != (self.n_layers, self.k, self.class_names):
            raise ValueError("merge: accumulators differ in n_layers, k or class_names")
        self.hist.merge(other.hist)
        for mine, theirs in zip(self._entries, other._entries, strict=True):
            mine.extend(theirs)

    def entries(self, layer: int) -> np.ndarray:
        """``[n, 6]`` float array of the kept entries at ``layer``: |a|, a, prompt, position, dim, class."""
        self.hist._check_layer(layer)
        rows = self._entries[layer]
        return np.concatenate(rows) if rows else np.zeros((0, 6))

    def result(self, **kwargs: Any) -> MassiveActivations:
        """:func:`massive_activations` of this accumulator (same keyword arguments)."""
        return massive_activations(self, **kwargs)


@dataclass(frozen=True)
class MassiveActivations(ResultMixin):
    """Per-layer MA statistics and massive sites; every definition is in the module docstring.

    Per-layer lists have one entry per layer; ``median`` is approximate within
    ``median_rel_error`` (relative); ``top3`` are the corpus top-1/2/3 |a|.
    """

    top1: list[float]
    top3: list[list[float]]
    median: list[float]
    ratio: list[float]
    has_massive: list[bool]
    any_massive: bool
    emergence_layer: int | None
    jump: float | None
    rise_layers: int | None
    plateau_ratio: float | None
    sites: list[dict[str, Any]]
    dims: list[int]
    class_counts: dict[str, int]
    n_prompts: int
    saturated_layers: list[int]
    abs_threshold: float
    rel_threshold: float
    min_share: float
    median_rel_error: float


def massive_activations(
    acc: MassiveAccumulator,
    *,
    abs_threshold: float = MA_ABS_THRESHOLD,
    rel_threshold: float = MA_REL_THRESHOLD,
    min_share: float = 0.5,
) -> MassiveActivations:
    """Find the massive activations in a filled :class:`MassiveAccumulator` (module docstring).

    ``abs_threshold`` (activation units) and ``rel_threshold`` (× layer median) are Sun et al.'s
    100 and 1000 by default, compared strictly. ``min_share`` (0 < s ≤ 1): a dimension joins
    ``dims`` when it is massive in at least that share of prompts at some layer.
    Raises ``ValueError`` if nothing was added and :class:`DegenerateSample` from a layer median
    that cannot be judged.
    """
    abs_threshold = check_positive(abs_threshold, "abs_threshold")
    rel_threshold = check_positive(rel_threshold, "rel_threshold")
    if not (0.0 < float(min_share) <= 1.0):
        raise ValueError(f"min_share: must lie in (0, 1], got {min_share!r}")
    L = acc.n_layers
    empty = [layer for layer in range(L) if acc.hist.total(layer) == 0]
    if empty:
        raise ValueError(f"massive_activations: no activations were added at layer(s) {empty}")
    all_ids: set[int] = set()  # prompts with at least one counted position
    top1, top3, med, ratio, has, saturated = [], [], [], [], [], []
    sites: list[dict[str, Any]] = []
    class_counts: Counter[str] = Counter()
    dims: set[int] = set()
    for layer in range(L):
        e = acc.entries(layer)
        all_ids.update(int(v) for v in np.unique(e[:, 2]))
        order = np.argsort(-e[:, 0], kind="stable")
        t3 = [float(v) for v in e[order[:3], 0]]
        m = acc.hist.median(layer)
        t1 = t3[0]
        top1.append(t1)
        top3.append(t3)
        med.append(m)
        ratio.append(t1 / m)
        massive = (e[:, 0] > abs_threshold) & (e[:, 0] > rel_threshold * m)
        has.append(bool(massive.any()))
        # a prompt whose k-th kept entry is massive may have more massive entries than were kept
        if massive.any():
            per_prompt = Counter(int(v) for v in e[massive, 2])
            if any(c >= acc.k for c in per_prompt.values()):
                saturated.append(layer)
        me = e[massive]
        for cls_code in np.unique(me[:, 5]).astype(int) if me.size else []:
            in_cls = me[me[:, 5] == cls_code]
            class_counts[acc.class_names[cls_code]] += int(in_cls.shape[0])
            for dim in np.unique(in_cls[:, 4]).astype(int):
                s = in_cls[in_cls[:, 4] == dim]
                prompts = np.unique(s[:, 2])
                # one value per prompt: the largest |a| of that prompt at this (class, dim)
                best = {}
                for row in s[np.argsort(-s[:, 0], kind="stable")]:
                    best.setdefault(int(row[2]), row)
                rows = np.array(list(best.values()))
                sites.append({
                    "layer": layer,
                    "class": acc.class_names[cls_code],
                    "dim": int(dim),
                    "n_prompts": int(prompts.size),
                    "max_abs": float(rows[:, 0].max()),
                    "mean_abs": float(rows[:, 0].mean()),
                    "mean_value": float(rows[:, 1].mean()),
                    "positions": [int(p) for p, _ in Counter(rows[:, 3].astype(int).tolist()).most_common(5)],
                })
    n_prompts = len(all_ids)
    for s in sites:
        s["share"] = s["n_prompts"] / n_prompts if n_prompts else 0.0
        if s["share"] >= min_share:
            dims.add(s["dim"])
    t1a = np.asarray(top1)
    emergence = next((layer for layer in range(L) if has[layer]), None)
    jump = rise = plateau_ratio = None
    if emergence is not None:
        jump = float(t1a[emergence] / t1a[emergence - 1]) if emergence > 0 else None
        plateau = float(np.median(t1a[np.asarray(has)]))
        a = int(np.flatnonzero(t1a >= 0.5 * plateau)[0])
        below = np.flatnonzero(t1a[:a] < 0.05 * plateau)
        rise = int(a - (below[-1] if below.size else -1))
        end = emergence
        while end + 1 < L and has[end + 1]:
            end += 1
        run = t1a[emergence:end + 1]
        plateau_ratio = float(run.max() / run.min())
    return MassiveActivations(
        top1=top1,
        top3=top3,
        median=med,
        ratio=[float(r) for r in ratio],
        has_massive=has,
        any_massive=any(has),
        emergence_layer=emergence,
        jump=jump,
        rise_layers=rise,
        plateau_ratio=plateau_ratio,
        sites=sites,
        dims=sorted(dims),
        class_counts=dict(class_counts),
        n_prompts=int(n_prompts),
        saturated_layers=saturated,
        abs_threshold=abs_threshold,
        rel_threshold=rel_threshold,
        min_share=float(min_share),
        median_rel_error=acc.hist.relative_error_bound,
    )


@dataclass(frozen=True)
class BiasAblation(ResultMixin):
    """MA-4: losses (nats/token) clean / massive set to mean / set to zero, and their differences.

    ``delta_mean = mean − clean``, ``delta_zero = zero − clean``; ``*_ci`` are paired percentile
    bootstrap intervals over prompts (None with one prompt); ``zero_over_mean`` =
    delta_zero / |delta_mean| (inf when delta_mean is 0); ``ppl_*`` = exp(loss).
    """

    clean: float
    mean: float
    zero: float
    ppl_clean: float
    ppl_mean: float
    ppl_zero: float
    delta_mean: float
    delta_zero: float
    delta_mean_ci: list[float] | None
    delta_zero_ci: list[float] | None
    zero_minus_mean_ci: list[float] | None
    zero_over_mean: float
    n_prompts: int
    ci_level: float


def bias_ablation_effect(
    clean: object,
    mean: object,
    zero: object,
    *,
    weights: object | None = None,
    n_boot: int = 2000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> BiasAblation:
    """Compare next-token losses for MA-4 (Sun et al. §3.3: "set to mean" vs "set to zero").

    ``clean``, ``mean``, ``zero``: per-prompt mean losses in nats/token, shape ``(n,)`` (or
    scalars), paired by prompt (the same prompts under the three runs). ``weights`` (``(n,)``,
    > 0): target-token counts per prompt, so the aggregate equals the token-level mean of
    :func:`lmfacts.ablation.next_token_loss`; default equal weights. Raises ``ValueError`` on
    NaN, shape mismatch or bad weights.
    """
    c = np.atleast_1d(as_finite_array(clean, "clean", ndim=(0, 1)))
    m = np.atleast_1d(as_finite_array(mean, "mean", ndim=(0, 1)))
    z = np.atleast_1d(as_finite_array(zero, "zero", ndim=(0, 1)))
    if not (c.shape == m.shape == z.shape):
        raise ValueError(f"clean, mean, zero: need equal shapes (paired prompts), got {c.shape}, {m.shape}, {z.shape}")
    w = np.ones_like(c) if weights is None else np.atleast_1d(as_finite_array(weights, "weights", ndim=(0, 1), positive=True))
    if w.shape != c.shape:
        raise ValueError(f"weights: shape {w.shape} != losses' {c.shape}")
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    if not (0.0 < ci_level < 1.0):
        raise ValueError(f"ci_level: must lie strictly between 0 and 1, got {ci_level!r}")

    def agg(v: np.ndarray, ww: np.ndarray) -> np.ndarray:
        return (v * ww).sum(-1) / ww.sum(-1)

    lc, lm, lz = (float(agg(v, w)) for v in (c, m, z))
    dm, dz = lm - lc, lz - lc
    cis: list[list[float] | None] = [None, None, None]
    if c.size >= 2:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, c.size, size=(n_boot, c.size))
        wb = w[idx]
        bc, bm, bz = agg(c[idx], wb), agg(m[idx], wb), agg(z[idx], wb)
        q = [(1 - ci_level) / 2 * 100, (1 + ci_level) / 2 * 100]
        cis = [[float(v) for v in np.percentile(d, q)] for d in (bm - bc, bz - bc, bz - bm)]
    return BiasAblation(
        clean=lc, mean=lm, zero=lz,
        ppl_clean=float(np.exp(lc)), ppl_mean=float(np.exp(lm)), ppl_zero=float(np.exp(lz)),
        delta_mean=dm, delta_zero=dz,
        delta_mean_ci=cis[0], delta_zero_ci=cis[1], zero_minus_mean_ci=cis[2],
        zero_over_mean=float(dz / abs(dm)) if dm != 0 else float("inf"),
        n_prompts=int(c.size),
        ci_level=float(ci_level),
    )
