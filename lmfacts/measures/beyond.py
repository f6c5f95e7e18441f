"""Per-batch reductions of the "beyond the seeds" claims (MA massive activations, AS attention sinks,
LL logit lens), and the one session-cached pass that feeds them until the probe does.

Every reduction is an object with the interface the probe pass can call unchanged::

    r.hook_names() -> list[str]          # the hook points it needs (all must be in bridge.hook_dict)
    r.start(view: BatchView) -> None     # before the batch's forward pass: ids, masks, classes, corpus indices
    r.on(name: str, x: Tensor) -> None   # inside the forward hook of ``name`` (keeps only small reductions)
    r.end() -> None                      # after the forward pass returned (hooks removed: may run the model's
                                         # own final norm / unembedding, as the logit lens does)

``BatchView`` carries the batch's token ids ``[b, p]``, attention mask ``[b, p]``, the probe's class map
(:mod:`lmfacts.probe.batching`: pad / bos / content / bos_mid / special) and the corpus index of each row
(prompt ids: every seeded choice is keyed by them, so results do not depend on batching or padding side).
Results are read afterwards from the reductions' accumulators (:mod:`lmfacts.stats`). Hooks fire in forward
order; a reduction never assumes a batch composition.

* :class:`MassiveReduction` (MA-1 … MA-3, AS-2): ``blocks.{l}.hook_resid_post`` (output of block l,
  Sun et al.'s convention); per batch and layer, ``torch.topk`` of |a| over p·d per prompt (k = 8) and the
  log10|a| histogram counts of :class:`lmfacts.stats.massive.LogAbsHistogram` (computed in float64 on the
  activations' device). Position classes: ``first`` (the first real position: the prepended BOS, or
  [CLS] in an encoder), ``delimiter`` (ids of "." and "\\n" in the tokenizer's spelling), ``special``
  (other special tokens and a BOS inside the text), ``other``.
* :class:`SinkReduction` (AS-1, AS-2): ``blocks.{l}.attn.hook_pattern`` (needs eager attention); only
  prompts with at least ``n_tokens`` real tokens count (Gu et al.'s 64-token inputs). In a causal model
  the first ``n_tokens`` query and key positions are exactly what a 64-token input would give (a query
  sees no later key), so no second pass is needed; in an encoder (bidirectional) the whole prompt is used,
  with [CLS] first and [SEP] last. Per sink set (decoder: ``first``; encoder: ``cls``, ``sep``,
  ``cls+sep``) a :class:`lmfacts.stats.sinks.SinkAccumulator` excluding the sink's own queries and one
  including them (Gu's code). For AS-2 it keeps, per (prompt, layer, head), the key with the largest
  Gu importance among the keys that at least half of the queries see (causal: keys < n_tokens/2; encoder:
  every key), its importance and the number of candidate keys. It also records the largest
  |Σ_k A[q, k] − 1| over real queries (evidence of the ``attention_patterns`` premise).
* :class:`LensReduction` (LL-1, LL-2): ``blocks.{l}.hook_resid_pre`` (points 0 … L−1), the final
  ``blocks.{L−1}.hook_resid_post`` (point L) and, when it fires, ``unembed.hook_out`` (the model's own
  logits, the final distribution; a pass that stops before the unembedding falls back to
  decode(resid_post), and ``final_source`` says which). Up to ``n_per_prompt`` content positions per
  prompt (:func:`lmfacts.stats.logit_lens.sample_positions`, seed 0 keyed by corpus index); the decoding
  (``decode``: the model's final norm then unembedding, Belrose et al.'s ``Unembed``) runs on those rows
  only, in :meth:`LensReduction.end`.

In a run the three ride on the session's one probe pass: :func:`attach_sample` wraps them in
:class:`SampledReduction` (the sample's rows only, the first :data:`MAX_TOKENS` positions of a causal model)
for :func:`lmfacts.probe.probe.run_probe` ``reductions``, and the random twin's on the twin's one probe pass
(:func:`lmfacts.models.twin.session_twin_pass`). :func:`session_beyond` hands the result to all eight claims.
:func:`beyond_pass` (its own forward passes over the sample) remains for compat processing and for a run
whose probe pass ran without them; ``tests/test_beyond_in_probe.py`` checks that both give the same
accumulators.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from lmfacts.stats.logit_lens import LogitLensAccumulator, sample_positions
from lmfacts.stats.massive import MassiveAccumulator
from lmfacts.stats.sinks import AS_EPSILON, SinkAccumulator

#: classes of the MA accumulator (codes 0 … 3)
MA_CLASSES: tuple[str, ...] = ("first", "delimiter", "other", "special")
FIRST, DELIMITER, OTHER, SPECIAL_POS = 0, 1, 2, 3
#: the beyond pass: at most this many prompts (seeded), AS prompts at least this many tokens (Gu et al.)
SAMPLE_PROMPTS = 64
SINK_TOKENS = 64
LENS_PER_PROMPT = 8
#: rows per decoding GEMM of the logit lens (several points at once: the unembedding, d × V, is read once per
#: call, so many small calls are bound by memory traffic; 512 × 49,152 float32 logits = 0.1 GB transient)
LENS_DECODE_ROWS = 512
#: the logit lens takes sampled rows in chunks of at most this many bytes per [rows, V] float64 array (the final
#: distribution, a point's lens logits, logsumexp's temporary): 64 MB = 170 rows of a 49k vocabulary, 32 of 256k
LENS_CHUNK_BYTES = 64 * 2**20
LENS_SEED = 0
SAMPLE_SEED = 0
TOPK = 8
#: prompts of the twin's beyond pass (the first of the same sample; cf. lmfacts.models.twin.TWIN_PROBE_PROMPTS)
TWIN_PROMPTS = 32
#: causal models: prompts truncated to this many tokens in the beyond pass (the AS window needs 64; a
#: causal model's first 128 positions do not depend on what follows, and the forward cost stays bounded)
MAX_TOKENS = 128


@dataclass
class BatchView:
    """What a reduction sees of one batch (all tensors on the activations' device).

    ``tokens`` ``[b, p]`` int64; ``valid`` ``[b, p]`` bool (False = padding); ``classes`` ``[b, p]`` int8, the
    probe's class map (:data:`lmfacts.probe.batching.CLASS_NAMES`); ``index`` the corpus index of each row.
    """

    tokens: torch.Tensor
    valid: torch.Tensor
    classes: torch.Tensor
    index: list[int]

    @property
    def positions(self) -> torch.Tensor:
        """Prompt-relative position of every real token ``[b, p]`` (−1 on padding), for either padding side."""
        import torch
        v = self.valid.long()
        return torch.where(self.valid, v.cumsum(1) - 1, torch.full_like(v, -1))

    @property
    def first(self) -> torch.Tensor:
        """``[b, p]`` bool: each prompt's first real position (the BOS where one is prepended; [CLS])."""
        return self.positions == 0


def delimiter_ids(tokenizer: Any) -> list[int]:
    """Token ids of the delimiters of Sun et al. ("." and "\\n"): every single-token spelling of
    ``"."``, ``" ."``, ``"\\n"``, ``".\\n"`` the tokenizer produces (without special tokens)."""
    ids: set[int] = set()
    if tokenizer is None:
        return []
    for s in (".", " .", "\n", ".\n", "\n\n"):
        try:
            enc = tokenizer(s, add_special_tokens=False)["input_ids"]
        except Exception:  # noqa: BLE001 - a tokenizer that cannot spell it simply has no such id
            continue
        if len(enc) == 1:
            ids.add(int(enc[0]))
    return sorted(ids)


# ---------------------------------------------------------------------------------------------
# MA
# ---------------------------------------------------------------------------------------------
class MassiveReduction:
    """Top-k |a| per prompt and the log|a| histogram of every block output (module docstring)."""

    def __init__(self, n_layers: int, *, delimiters: Sequence[int], k: int = TOPK) -> None:
        """Empty reductions for ``n_layers`` blocks; ``delimiters``: token ids classed ``delimiter``."""
        self.n_layers = n_layers
        self.acc = MassiveAccumulator(n_layers, k=k, class_names=MA_CLASSES)
        self.delimiters = list(delimiters)
        self._view: BatchView | None = None
        self._codes: torch.Tensor | None = None
        self._pending: list[tuple[Any, ...]] = []  # the batch's per-block device tensors, until end()
        self._edges: tuple[float, float, float] = (self.acc.hist.lo, self.acc.hist.width, float(self.acc.hist.n_bins))

    def hook_names(self) -> list[str]:
        """``blocks.{l}.hook_resid_post`` for every block."""
        return [f"blocks.{i}.hook_resid_post" for i in range(self.n_layers)]

    def start(self, view: BatchView) -> None:
        """Class codes of the batch (first / delimiter / other / special, −1 padding)."""
        import torch

        from lmfacts.probe.batching import BOS_MID, SPECIAL

        codes = torch.full(view.tokens.shape, OTHER, dtype=torch.long, device=view.tokens.device)
        if self.delimiters:
            codes[torch.isin(view.tokens, torch.tensor(self.delimiters, device=view.tokens.device))] = DELIMITER
        cls = view.classes.long()
        codes[(cls == SPECIAL) | (cls == BOS_MID)] = SPECIAL_POS
        codes[view.first] = FIRST
        codes[~view.valid] = -1
        self._view, self._codes = view, codes

    def on(self, name: str, x: torch.Tensor) -> None:
        """Reduce one block output ``[b, p, d]``: per-prompt top-k |a| and histogram counts, kept on the
        activations' device until :meth:`end` (no host sync inside the hook)."""
        import torch
        assert self._view is not None and self._codes is not None, "start() before on()"
        layer = int(name.split(".")[1])
        view, codes = self._view, self._codes
        b, p, d = x.shape
        a = x.detach().abs().float()
        valid = view.valid
        real = valid[:, :, None].expand(b, p, d)
        finite = torch.isfinite(a) | ~real  # NaN/inf on a real token: raised in end()
        hist = self.acc.hist
        av = torch.where(finite & real, a, 1.0).double().reshape(-1)  # padding: counted with weight 0 below
        lo, width, n_bins = self._edges
        with torch.no_grad():
            z = torch.floor((torch.log10(av) - lo) / width)
            idx = torch.where(av < 10.0**lo, torch.full_like(z, -1), z)
            idx = torch.where(av >= 10.0**hist.hi, torch.full_like(z, n_bins), idx)
            idx = (idx.clamp(-1, n_bins) + 1).long()
            # a bincount of the real entries with a fixed length (torch.bincount of a masked selection would
            # read the selection's size and maximum on the host)
            counts = torch.zeros(int(n_bins) + 2, dtype=torch.long, device=x.device).scatter_add_(
                0, idx, real.reshape(-1).long())
        flat = torch.where(valid[:, :, None], a, torch.full_like(a, -1.0)).reshape(b, p * d)
        kk = min(self.acc.k, p * d)
        top_abs, top = torch.topk(flat, kk, dim=1)
        ti, di = top // d, top % d
        rows = torch.arange(b, device=x.device)[:, None]
        signed = x.detach().float().reshape(b, p * d).gather(1, top)
        self._pending.append((name, layer, finite.all(), counts, top_abs, signed, view.positions[rows, ti], di,
                              codes[rows, ti]))

    def end(self) -> None:
        """Move the batch's reductions to the host (one transfer after the forward pass) and add them per layer,
        in hook order. Raises :class:`lmfacts.probe.probe.NonFiniteActivationError` for NaN/inf activations on
        a real token, naming the first block output that had one."""
        import torch
        pending, self._pending = self._pending, []
        view = self._view
        self._view = self._codes = None
        if not pending or view is None:
            return
        ok = torch.stack([e[2] for e in pending]).cpu().numpy()
        if not ok.all():
            from lmfacts.probe.probe import NonFiniteActivationError

            raise NonFiniteActivationError(f"{pending[int(np.argmin(ok))][0]}: NaN/inf activation on a real token")
        host = [[t.cpu().numpy() for t in e[3:]] for e in pending]
        ids = np.asarray(view.index, dtype=np.int64)
        for (_, layer, *_rest), (counts, top_abs, signed, pos, di, cls) in zip(pending, host, strict=True):
            self.acc.hist.add_counts(layer, counts)
            self.acc.add_topk(layer, top_abs, signed, pos, di, cls, prompt_ids=ids)


def massive_summary(acc: MassiveAccumulator, *, abs_threshold: float = 100.0,
                    rel_threshold: float = 1000.0) -> dict[str, Any]:
    """What the ``has_massive_activations`` premise needs, straight from the accumulator: per block the top-1
    |a| and its ratio to the (histogram) median; ``any_massive`` with Sun et al.'s strict thresholds.

    Kept apart from :func:`lmfacts.stats.massive.massive_activations` (which the claims' verdicts use) so a
    premise never depends on the statistic a claim is judged by. Raises ``ValueError`` on an empty block and
    :class:`lmfacts.stats.DegenerateSample` from a median that cannot be judged."""
    top1, ratio = [], []
    for layer in range(acc.n_layers):
        e = acc.entries(layer)
        if e.shape[0] == 0:
            raise ValueError(f"massive_summary: no activations at block {layer}")
        t = float(e[:, 0].max())
        top1.append(t)
        ratio.append(t / acc.hist.median(layer))
    massive = [t > abs_threshold and r > rel_threshold for t, r in zip(top1, ratio, strict=True)]
    first = next((i for i, m in enumerate(massive) if m), None)
    return {"top1": top1, "ratio": ratio, "any_massive": any(massive), "first_massive_block": first,
            "abs_threshold": abs_threshold, "rel_threshold": rel_threshold}


def finite_massive(ma: Any, who: str = "") -> None:
    """Raise :class:`lmfacts.context.NonFiniteMeasurement` when a per-block top-1, median or ratio of ``ma`` (a
    :class:`lmfacts.stats.massive.MassiveActivations`) is NaN/inf: every MA verdict and site derives from them,
    so an invalid measurement is an error, never a finding."""
    from lmfacts.context import NonFiniteMeasurement, non_finite

    bad = non_finite({"top1": ma.top1, "median": ma.median, "ratio": ma.ratio})
    if bad:
        raise NonFiniteMeasurement(f"non-finite value(s) of {who}massive_activations: "
                                   + ", ".join(f"{k}={v}" for k, v in bad.items()))


# ---------------------------------------------------------------------------------------------
# AS
# ---------------------------------------------------------------------------------------------
def key_importance_sums(attn: torch.Tensor, query_mask: torch.Tensor, *, causal: bool
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Numerator ``[b, H, k]`` and denominator ``[b, 1, k]`` of Gu et al.'s key importance, on ``attn``'s device.

    :func:`lmfacts.stats.sinks.key_importance` (the numpy statistic, proven on planted patterns) is
    ``num / den`` where ``den > 0`` (NaN elsewhere): ``num = Σ_q A[q, k]·w[q, k]``, ``den = Σ_q w[q, k]``,
    with ``w`` = counted query (``query_mask`` ``[b, q]``) that can see key k (q ≥ k when ``causal``).
    ``attn`` ``[b, H, q, k]`` float64. Kept on the device so a hook never syncs with the host.
    """
    import torch

    b, _, q, k = attn.shape
    see = torch.ones((q, k), dtype=attn.dtype, device=attn.device)
    if causal:
        see = torch.tril(see)
    w = query_mask.to(attn.dtype)[:, :, None] * see[None]  # [b, q, k]
    return torch.einsum("bhqk,bqk->bhk", attn, w), w.sum(1)[:, None, :]


class SinkReduction:
    """Sink shares per sink set, AS-2's top keys, and the pattern row-sum check (module docstring)."""

    def __init__(self, n_layers: int, n_heads: int, *, causal: bool, n_tokens: int = SINK_TOKENS,
                 epsilon: float = AS_EPSILON, cls_id: int | None = None, sep_id: int | None = None) -> None:
        """``causal``: the model's measured mask (True: first-``n_tokens`` window, sink = first position;
        False: whole prompt, sinks [CLS] (``cls_id`` at the first position) and [SEP] (``sep_id``))."""
        self.n_layers, self.n_heads, self.causal, self.n_tokens = n_layers, n_heads, causal, n_tokens
        self.epsilon = epsilon
        self.cls_id, self.sep_id = cls_id, sep_id
        self.sets: tuple[str, ...] = ("first",) if causal else ("cls", "sep", "cls+sep")
        self.acc = {s: SinkAccumulator(n_layers, n_heads, epsilon=epsilon) for s in self.sets}
        self.acc_incl = {s: SinkAccumulator(n_layers, n_heads, epsilon=epsilon) for s in self.sets}
        self.max_row_dev = 0.0
        self.n_rows_checked = 0
        self.fired: set[int] = set()
        self.prompt_ids: list[int] = []
        self.n_skipped_short = 0
        # AS-2: per (prompt, layer, head) top candidate key (prompt-relative position) and its importance
        self.top_key: list[np.ndarray] = []  # rows [prompt_id, layer, head, position, importance, n_candidates]
        self._sel: torch.Tensor | None = None
        self._keys: dict[str, torch.Tensor] = {}
        self._valid: torch.Tensor | None = None
        self._idx: torch.Tensor | None = None
        self._start: torch.Tensor | None = None
        self._ids: np.ndarray | None = None
        self._pending: list[tuple[Any, ...]] = []  # the batch's per-block device tensors, until end()

    def hook_names(self) -> list[str]:
        """``blocks.{l}.attn.hook_pattern`` for every block."""
        return [f"blocks.{i}.attn.hook_pattern" for i in range(self.n_layers)]

    def start(self, view: BatchView) -> None:
        """Select the prompts with ≥ ``n_tokens`` real tokens and build their sink-key masks."""
        import torch
        lengths = view.valid.sum(1)
        sel = torch.nonzero(lengths >= self.n_tokens).flatten()
        self.n_skipped_short += int(view.valid.shape[0] - sel.numel())
        self._sel = sel
        self._ids = np.asarray(view.index, dtype=np.int64)[sel.cpu().numpy()]
        self.prompt_ids += [int(i) for i in self._ids]
        if sel.numel() == 0:
            return
        pos = view.positions[sel]
        start = (pos == 0).long().argmax(1)  # index of each prompt's first real position
        self._start = start
        tokens, valid = view.tokens[sel], view.valid[sel]
        if self.causal:
            t = self.n_tokens
            self._idx = start[:, None] + torch.arange(t, device=start.device)[None, :]
            self._valid = torch.ones((sel.numel(), t), dtype=torch.bool, device=start.device)
            first = torch.zeros_like(self._valid)
            first[:, 0] = True
            self._keys = {"first": first}
        else:
            self._idx = None
            self._valid = valid
            first = pos == 0
            cls = first & (tokens == self.cls_id) if self.cls_id is not None else first
            sep = valid & (tokens == self.sep_id) if self.sep_id is not None else torch.zeros_like(valid)
            self._keys = {"cls": cls, "sep": sep, "cls+sep": cls | sep}

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        assert self._sel is not None
        a = x.detach()[self._sel].float()
        if self._idx is None:
            return a
        b, h, _, p = a.shape
        t = self._idx.shape[1]
        a = a.gather(2, self._idx[:, None, :, None].expand(b, h, t, p))
        return a.gather(3, self._idx[:, None, None, :].expand(b, h, t, t))

    def on(self, name: str, x: torch.Tensor) -> None:
        """Reduce one block's pattern ``[b, H, q, k]`` (softmax probabilities) to per-query sink masses and
        per-key importance sums, kept on the activations' device until :meth:`end` (no host sync here)."""
        import torch

        layer = int(name.split(".")[1])
        self.fired.add(layer)
        if self._sel is None or self._sel.numel() == 0:
            return
        a = self._window(x)
        valid = self._valid
        assert valid is not None
        pair = valid[:, None, :, None] & valid[:, None, None, :]
        finite = (torch.isfinite(a) | ~pair).all()  # NaN/inf on a real query/key: raised in end()
        rowsum = (a * valid[:, None, None, :]).sum(-1)  # [b, H, q]
        dev = torch.where(valid[:, None, :], (rowsum - 1).abs(), 0.0).amax()
        mass = {s: (a * self._keys[s][:, None, None, :]).sum(-1).clamp(0.0, 1.0).double() for s in self.sets}
        num, den = key_importance_sums(a.clamp(0.0, 1.0).double(), valid, causal=self.causal)
        self._pending.append((name, layer, finite, dev, mass, num, den))

    def end(self) -> None:
        """Move the batch's reductions to the host (one transfer after the forward pass) and add them per layer,
        in hook order: the sink accumulators, the row-sum check and AS-2's top keys. Raises
        :class:`lmfacts.probe.probe.NonFiniteActivationError` for a NaN/inf attention weight on a real
        query/key, naming the first block that had one."""
        import torch

        from lmfacts.stats.sinks import counted_queries

        pending, self._pending = self._pending, []
        if pending:
            ok = torch.stack([e[2] for e in pending]).cpu().numpy()
            if not ok.all():
                from lmfacts.probe.probe import NonFiniteActivationError

                raise NonFiniteActivationError(f"{pending[int(np.argmin(ok))][0]}: NaN/inf attention weight on a "
                                               "real query/key")
            assert self._valid is not None
            valid_np = self._valid.cpu().numpy()
            keys_np = {s: self._keys[s].cpu().numpy() for s in self.sets}
            start = self._start.cpu().numpy() if self._start is not None else None
            n_real = valid_np.sum(1)
            cand = np.zeros_like(valid_np)  # AS-2 candidates: keys seen by ≥ half the queries
            for r in range(valid_np.shape[0]):
                real = np.flatnonzero(valid_np[r])
                cand[r, real[: max(1, n_real[r] // 2)] if self.causal else real] = True
            counted = {s: (counted_queries(valid_np, keys_np[s]),
                           counted_queries(valid_np, keys_np[s], include_sink_queries=True)) for s in self.sets}
            for _name, layer, _ok, dev, mass, num, den in pending:
                self.max_row_dev = max(self.max_row_dev, float(dev))
                self.n_rows_checked += int(n_real.sum()) * int(num.shape[1])
                for s in self.sets:
                    m = mass[s].cpu().numpy()
                    self.acc[s].add(layer, m, counted[s][0])
                    self.acc_incl[s].add(layer, m, counted[s][1])
                self._add_top_keys(layer, num.cpu().numpy(), den.cpu().numpy(), cand, start)
        self._sel, self._keys, self._valid, self._idx, self._start, self._ids = None, {}, None, None, None, None

    def _add_top_keys(self, layer: int, num: np.ndarray, den: np.ndarray, cand: np.ndarray,
                      start: np.ndarray | None) -> None:
        """AS-2: per (prompt, head) the candidate key with the largest Gu importance ``num / den``."""
        with np.errstate(invalid="ignore", divide="ignore"):
            imp = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        imp = np.where(cand[:, None, :], imp, np.nan)
        top = np.nanargmax(np.where(np.isnan(imp), -np.inf, imp), axis=-1)  # [b, H]
        top_imp = np.take_along_axis(imp, top[..., None], -1)[..., 0]
        if start is None:
            start = np.zeros(len(top), dtype=np.int64)
        rel = top - (0 if self.causal else start[:, None])  # the causal window already starts at position 0
        b, h = top.shape
        rec = np.column_stack([np.repeat(self._ids, h), np.full(b * h, layer), np.tile(np.arange(h), b),
                               rel.ravel(), top_imp.ravel(), np.repeat(cand.sum(1), h)]).astype(np.float64)
        self.top_key.append(rec)

    def top_keys(self) -> np.ndarray:
        """``[n, 6]``: prompt id, layer, head, top candidate key position, its importance, candidate count."""
        return np.concatenate(self.top_key) if self.top_key else np.zeros((0, 6))


# ---------------------------------------------------------------------------------------------
# LL
# ---------------------------------------------------------------------------------------------
def _row_dot(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``[n]``: Σ_v p[i, v] z[i, v] for float64 ``[n, V]`` rows (one GEMV per row)."""
    return p.unsqueeze(1).bmm(z.unsqueeze(2)).view(-1)


def _kl_from_final(p_final: torch.Tensor, final_terms: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                   lens: torch.Tensor, work: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row KL(p_final ‖ softmax(lens)) in nats, ``[n]`` float64, from ``[n, V]`` lens logits ``z``, and a
    0-d bool tensor: whether every KL is finite (read by the caller once per batch, not here).

    The KL of :func:`lmfacts.stats.logit_lens.kl_to_final`, rearranged so that the lens logits are read
    three times instead of materialising their log-softmax: with ``f`` the final logits and
    ``lse`` = logsumexp, ``Σ p (log p − log q) = (Σ p f − Σ p z) − (lse(f) − lse(z)) · Σ p``.
    ``p_final`` ``[n, V]`` float64; ``final_terms`` = (Σ p f, lse(f), Σ p), ``[n]`` each, from
    :func:`_final_terms` once per batch. All float64 (agrees with the direct form to ~1e-12 relative),
    and exactly 0 where ``z`` equals ``f`` (the same reductions of the same values). NaN/inf in ``lens``
    make the KL non-finite (+inf → lse inf, −inf → Σ p z −inf or NaN), so the flag catches them.
    ``work``: an ``[n, V]`` float64 buffer the float64 copy of ``z`` and logsumexp's temporary are computed in
    (overwritten), so a point allocates no ``[n, V]`` array — each fresh one costs page faults, 37 GB of zeroed
    pages per run on SmolLM2 before this buffer; :func:`_logsumexp_` gives ``torch.logsumexp``'s bits.
    """
    import torch

    dot_f, lse_f, mass = final_terms
    z = work.copy_(lens)  # float64
    dot_z = _row_dot(p_final, z)  # before _logsumexp_ overwrites z
    kl = (dot_f - dot_z) - (lse_f - _logsumexp_(z)) * mass
    return kl.clamp(min=0.0), torch.isfinite(kl).all()  # the clamp: round-off can give −1e-16


def _logsumexp_(z: torch.Tensor) -> torch.Tensor:
    """``torch.logsumexp(z, dim=-1)`` of ``[n, V]`` ``z``, computed in ``z`` (destroyed): ``[n]``.

    The steps of ATen's ``logsumexp`` (row max, ±inf maxima replaced by 0, Σ exp(z − max), log, + max) on the
    same values in the same order, so the result is bit-identical (``tests/test_beyond_claims.py``).
    """
    import math

    m = z.amax(dim=-1, keepdim=True)
    m.masked_fill_(m.abs() == math.inf, 0.0)
    return z.sub_(m).exp_().sum(dim=-1).log_().add_(m.squeeze(-1))


def _final_terms(final: torch.Tensor
                 ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``p_final`` ``[n, V]`` float64, (Σ p f, logsumexp(f), Σ p) ``[n]`` of final logits ``f`` ``[n, V]`` (the
    once-per-batch half of :func:`_kl_from_final`; float64 log-softmax, the numpy convention of
    :func:`lmfacts.stats.logit_lens.log_softmax`) and a 0-d bool tensor: whether ``f`` is finite."""
    import torch

    f = final.double()
    p_final = torch.log_softmax(f, dim=-1).exp()
    return p_final, (_row_dot(p_final, f), torch.logsumexp(f, dim=-1), p_final.sum(-1)), torch.isfinite(final).all()


class LensReduction:
    """KL(final ‖ lens) and top-1 agreement at every residual point on sampled content rows (module docstring)."""

    def __init__(self, n_layers: int, decode: Callable[[torch.Tensor], torch.Tensor], *,
                 n_per_prompt: int = LENS_PER_PROMPT, seed: int = LENS_SEED) -> None:
        """``decode``: ``[n, d] → [n, V]`` logits, the model's final norm then unembedding."""
        self.n_layers, self.decode, self.n_per_prompt, self.seed = n_layers, decode, n_per_prompt, seed
        self.acc = LogitLensAccumulator(n_layers + 1)
        self.final_source: set[str] = set()
        self._rows: tuple[torch.Tensor, torch.Tensor] | None = None
        self._prompt_ids: list[int] = []  # corpus index of each batch row
        self._store: dict[int, torch.Tensor] = {}
        self._logits: torch.Tensor | None = None
        self._normed: torch.Tensor | None = None
        self.unembed: Callable[[torch.Tensor], torch.Tensor] | None = None  # [n, d] normed → [n, V]
        #: the head's transform after the unembedding, applied to ``unembed.hook_out`` (the output before it)
        self.output_transform: Callable[[torch.Tensor], torch.Tensor] = lambda z: z

    def hook_names(self) -> list[str]:
        """resid_pre of every block, the last block's resid_post, ``unembed.hook_in`` (the model's own
        final-norm output: the final distribution is ``unembed`` of it, computed in :meth:`end`, so a pass
        may stop before the unembedding) and ``unembed.hook_out`` (the model's logits, where the pass runs
        the unembedding)."""
        return ([f"blocks.{i}.hook_resid_pre" for i in range(self.n_layers)]
                + [f"blocks.{self.n_layers - 1}.hook_resid_post", "unembed.hook_in", "unembed.hook_out"])

    def start(self, view: BatchView) -> None:
        """Draw the batch's content positions (seeded by corpus index)."""
        import torch

        from lmfacts.probe.batching import CONTENT

        content = (view.classes == CONTENT).cpu().numpy()
        rows, cols = sample_positions(content, self.n_per_prompt, seed=self.seed, prompt_ids=view.index)
        dev = view.tokens.device
        self._rows = (torch.as_tensor(rows, device=dev), torch.as_tensor(cols, device=dev))
        self._prompt_ids = [int(i) for i in view.index]
        self._store, self._logits, self._normed = {}, None, None

    def on(self, name: str, x: torch.Tensor) -> None:
        """Keep the sampled rows of a residual point (or of the model's logits)."""
        assert self._rows is not None, "start() before on()"
        r, c = self._rows
        if name == "unembed.hook_out":
            self._logits = x.detach()[r, c].float().clone()
        elif name == "unembed.hook_in":
            self._normed = x.detach()[r, c].clone()
        elif name.endswith("hook_resid_post"):
            self._store[self.n_layers] = x.detach()[r, c].clone()
        else:
            self._store[int(name.split(".")[1])] = x.detach()[r, c].clone()

    def release_model(self) -> None:
        """Drop the references to the model's modules (after the pass), so a cached result does not keep the
        model (or the random twin) alive; :meth:`end` cannot run afterwards."""
        def gone(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("LensReduction: the model was released after its pass")

        self.decode, self.unembed, self.output_transform = gone, None, gone

    def end(self) -> None:
        """Decode every kept point and add KL / agreement (runs outside the forward hooks)."""
        import torch
        if self._rows is None or self._rows[0].numel() == 0:
            self._store, self._rows = {}, None
            return
        missing = [p for p in range(self.n_layers + 1) if p not in self._store]
        if missing:
            raise RuntimeError(f"logit lens: residual point(s) {missing} were not hooked in this batch")
        with torch.inference_mode():
            if self._logits is not None:
                final_all = self.output_transform(self._logits).float()
                self.final_source.add("unembed.hook_out (the model's logits)")
            elif self._normed is not None and self.unembed is not None:
                final_all = self.unembed(self._normed).float()
                self.final_source.add("unembed(unembed.hook_in): the model's unembedding of its own final-norm output")
            else:
                final_all = self.decode(self._store[self.n_layers]).float()
                self.final_source.add("decode(final resid_post)")
            n_all, vocab = int(final_all.shape[0]), int(final_all.shape[1])
            points = list(range(self.n_layers + 1))
            # rows at a time: each holds a few [rows, V] float64 arrays, so memory is bounded for any vocabulary
            chunk = max(1, min(n_all, LENS_CHUNK_BYTES // (8 * vocab)))
            n_batch = len(self._prompt_ids)
            # per point and batch row: Σ KL, agreements, tokens (the per-prompt sums the bootstrap resamples)
            totals = torch.zeros((len(points), n_batch, 3), dtype=torch.float64, device=final_all.device)
            extra = torch.zeros((len(points), 2), dtype=torch.float64, device=final_all.device)  # Σ KL², bad chunks
            work = torch.empty((chunk, vocab), dtype=torch.float64, device=final_all.device)  # every point's
            final_ok = torch.ones((), dtype=torch.bool, device=final_all.device)
            for r0 in range(0, n_all, chunk):
                final = final_all[r0:r0 + chunk]
                batch_rows = self._rows[0][r0:r0 + chunk]
                p_final, final_terms, ok_f = _final_terms(final)  # once per chunk of rows, not per point
                final_ok = final_ok & ok_f
                top_final = final.argmax(-1)
                n = int(final.shape[0])
                group = max(1, LENS_DECODE_ROWS // n)  # points decoded by one GEMM: W_U is read once per group
                decoded: dict[int, torch.Tensor] = {}
                for p in points:
                    if p not in decoded:  # decode the next group of points in one call
                        grp = points[p:p + group]
                        out = self.decode(torch.cat([self._store[q][r0:r0 + chunk] for q in grp])).float()
                        decoded = {q: out[j * n:(j + 1) * n] for j, q in enumerate(grp)}
                    lens = decoded.pop(p)
                    kl, ok = _kl_from_final(p_final, final_terms, lens, work[:n])
                    totals[p].index_add_(0, batch_rows, torch.stack(
                        [kl, (lens.argmax(-1) == top_final).double(), torch.ones_like(kl)], dim=1))
                    extra[p] += torch.stack([(kl * kl).sum(), (~ok).double()])
                    del lens, kl
                del p_final, final_terms, decoded
            del work
            host = torch.cat([totals.reshape(-1), extra.reshape(-1), final_ok.double().reshape(1)]).cpu().numpy()
        n_tot = len(points) * n_batch * 3  # one device sync above
        table = host[:n_tot].reshape(len(points), n_batch, 3)
        sq, bad_chunks = host[n_tot:-1].reshape(len(points), 2).T
        if not bool(host[-1]):
            raise ValueError("final logits: NaN/inf value")
        bad = np.flatnonzero(bad_chunks > 0)  # chunks whose KL was not finite
        if bad.size:
            raise ValueError(f"lens logits at point {points[int(bad[0])]}: NaN/inf value")
        sampled = table[0, :, 2] > 0  # batch rows with sampled tokens (every point samples the same rows)
        self.acc.add_prompt_sums(points, [i for i, k in zip(self._prompt_ids, sampled, strict=True) if k],
                                 table[:, sampled])
        self.acc.kl_sq_sum += sq
        self._store, self._rows, self._logits, self._normed = {}, None, None, None


# ---------------------------------------------------------------------------------------------
# The pass and its cache
# ---------------------------------------------------------------------------------------------
@dataclass
class BeyondPass:
    """The reductions after one pass over the sample, and what the sample was."""

    massive: MassiveReduction
    sinks: SinkReduction | None
    lens: LensReduction | None
    texts: list[str]
    corpus_index: list[int]
    lengths: list[int]
    n_long: int
    seconds: float
    pattern_hooks: bool
    notes: list[str] = field(default_factory=list)

    @property
    def n_prompts(self) -> int:
        """Prompts in the sample."""
        return len(self.texts)


def choose_sample(lengths: Sequence[int], *, n_max: int = SAMPLE_PROMPTS, n_tokens: int = SINK_TOKENS,
                  seed: int = SAMPLE_SEED) -> list[int]:
    """Indices (into ``lengths``) of the beyond sample, in increasing order.

    Every prompt with at least ``n_tokens`` tokens (the AS inputs; the first ``n_max`` of them in corpus
    order), then a seeded (``numpy.random.default_rng(seed)``) choice of the others, up to ``n_max`` in all.
    """
    long = [i for i, n in enumerate(lengths) if n >= n_tokens][:n_max]
    rest = [i for i, n in enumerate(lengths) if n < n_tokens]
    k = min(n_max - len(long), len(rest))
    pick = list(np.random.default_rng(seed).choice(rest, k, replace=False)) if k > 0 else []
    return sorted(long + [int(i) for i in pick])


def output_transform(bridge: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the model's head does after the unembedding, ``[n, V] → [n, V]``: TransformerBridge's
    ``adapter.apply_output_logits_transform`` (Granite ``logits / logits_scaling``, Cohere ``logits ×
    logit_scale``, Gemma-2-style soft-capping), the identity where the bridge declares none."""
    fn = getattr(getattr(bridge, "adapter", None), "apply_output_logits_transform", None)
    return fn if callable(fn) else (lambda z: z)


def bridge_unembed(bridge: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's unembedding then its head's output transform, ``[n, d] → [n, V]`` (:func:`output_transform`):
    the logits the model returns, from its final-norm output."""
    transform = output_transform(bridge)

    def unembed(x: torch.Tensor) -> torch.Tensor:
        return transform(bridge.unembed(x))
    return unembed


def bridge_decode(bridge: Any, path: Sequence[str] = ("ln_final",)) -> Callable[[torch.Tensor], torch.Tensor]:
    """The modules the model runs between its last block and its unembedding (``path``, measured by
    :func:`lmfacts.readout.readout_path`: ``ln_final`` for most models, ``project_out`` for OPT-350m, none for a
    post-LN OPT), then its unembedding and its head's output transform, so the lens reads the distribution the
    model outputs; ``[n, d] → [n, V]`` (tuned-lens' ``Unembed``; ``lens_readout`` premise)."""
    from lmfacts.readout import readout_decode

    return readout_decode(bridge, path, bridge_unembed(bridge))


_READOUT_PATHS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def bridge_readout_path(bridge: Any) -> list[str]:
    """:func:`lmfacts.readout.readout_path` on a short fixed id sequence (the path is structural: any ids do),
    measured once per bridge object (the ``lens_readout`` premise and the logit-lens reduction both ask; compat
    processing changes weights, not which modules run). Raises ValueError as ``readout_path`` (not cached)."""
    from lmfacts.readout import readout_path

    if bridge not in _READOUT_PATHS:
        dev = next((p.device for p in bridge.parameters()), "cpu")
        _READOUT_PATHS[bridge] = readout_path(bridge, list(range(min(8, int(bridge.cfg.d_vocab)))), device=dev)
    return list(_READOUT_PATHS[bridge])


def reductions_for(bridge: Any, *, causal: bool, lens: bool) -> tuple[MassiveReduction, SinkReduction | None,
                                                                       LensReduction | None]:
    """The three reductions for ``bridge`` (a probe pass would build and feed exactly these).

    ``causal``: the measured ``causal_decoder`` result (decides the sink sets); ``lens``: whether the
    logit-lens reduction is wanted (a causal LM with a final norm and an unembedding). The sink reduction
    is ``None`` when the bridge does not expose ``attn.hook_pattern`` in every block.
    """
    cfg = bridge.cfg
    L = int(cfg.n_layers)
    tok = getattr(bridge, "tokenizer", None)
    names = set(bridge.hook_dict)
    massive = MassiveReduction(L, delimiters=delimiter_ids(tok))
    sinks = None
    if all(f"blocks.{i}.attn.hook_pattern" in names for i in range(L)):
        sinks = SinkReduction(L, int(cfg.n_heads), causal=causal, cls_id=getattr(tok, "cls_token_id", None),
                              sep_id=getattr(tok, "sep_token_id", None))
    lens_red = None
    path: list[str] | None = None
    if lens and "unembed.hook_in" in names:
        # no measurable readout path (ValueError): no lens reduction; LL's lens_readout premise reports why
        with contextlib.suppress(ValueError):
            path = bridge_readout_path(bridge)
    if path is not None:
        lens_red = LensReduction(L, bridge_decode(bridge, path))
        lens_red.unembed = bridge_unembed(bridge)
        lens_red.output_transform = output_transform(bridge)
    return massive, sinks, lens_red


class SampledReduction:
    """Feeds ``inner`` (a reduction above) only the sample's rows of each batch, each cut to its first
    ``max_tokens`` real positions, as a right-padded :class:`BatchView` whose ``index`` is the sample's own
    prompt id (``ids``: pass index → id). This is how the probe pass (:func:`lmfacts.probe.probe.run_probe`
    ``reductions``) reproduces a pass over the sample alone: in a causal model the first ``max_tokens``
    positions of a prompt are exactly what that prompt truncated to ``max_tokens`` gives (no query sees a
    later key); ``max_tokens`` None keeps every real position (encoders). Rows outside the sample are not
    seen; a batch without sample rows costs nothing. Activations ``[b, p, …]`` and attention patterns
    ``[b, H, q, k]`` (hook names ending in ``hook_pattern``) are gathered to ``[s, P, …]`` / ``[s, H, P, P]``.
    """

    def __init__(self, inner: Any, ids: dict[int, int], max_tokens: int | None) -> None:
        """``ids``: pass index → the prompt id ``inner`` keys its seeded choices and records by."""
        self.inner, self.ids, self.max_tokens = inner, dict(ids), max_tokens
        self._sel: torch.Tensor | None = None
        self._cols: torch.Tensor | None = None

    def hook_names(self) -> list[str]:
        """The inner reduction's hook points."""
        return self.inner.hook_names()

    def start(self, view: BatchView) -> None:
        """Select and cut the sample's rows; start the inner reduction on them (nothing when there are none)."""
        import torch

        from lmfacts.probe.batching import PAD

        rows = [r for r, i in enumerate(view.index) if int(i) in self.ids]
        self._sel = self._cols = None
        if not rows:
            return
        dev = view.tokens.device
        sel = torch.as_tensor(rows, device=dev)
        valid = view.valid[sel]
        n = valid.sum(1)
        if self.max_tokens is not None:
            n = n.clamp(max=self.max_tokens)
        P = int(n.max())
        first = (view.positions[sel] == 0).long().argmax(1)  # column of each row's first real position
        ar = torch.arange(P, device=dev)
        cols = (first[:, None] + ar[None, :]).clamp(max=view.tokens.shape[1] - 1)
        vmask = ar[None, :] < n[:, None]
        classes = torch.where(vmask, view.classes[sel].gather(1, cols), torch.full_like(cols, PAD).to(view.classes.dtype))
        tokens = view.tokens[sel].gather(1, cols)
        self._sel, self._cols = sel, cols
        self.inner.start(BatchView(tokens, vmask, classes, [self.ids[int(view.index[r])] for r in rows]))

    def on(self, name: str, x: torch.Tensor) -> None:
        """Gather the sample's rows and positions of ``x`` and pass them on."""
        if self._sel is None or self._cols is None:
            return
        sel, cols = self._sel, self._cols
        s, P = cols.shape
        a = x.detach().index_select(0, sel)
        if name.endswith("hook_pattern"):  # [s, H, q, k]
            h, k = a.shape[1], a.shape[3]
            a = a.gather(2, cols[:, None, :, None].expand(s, h, P, k))
            a = a.gather(3, cols[:, None, None, :].expand(s, h, P, P))
        else:  # [s, p, ...]
            idx = cols.reshape(s, P, *([1] * (a.dim() - 2))).expand(s, P, *a.shape[2:])
            a = a.gather(1, idx)
        self.inner.on(name, a)

    def end(self) -> None:
        """End the inner reduction's batch (if it had one)."""
        if self._sel is not None:
            self.inner.end()
        self._sel = self._cols = None


def beyond_pass(bridge: Any, texts: Sequence[str], *, causal: bool, lens: bool, prepend_bos: bool,
                padding_side: str, pad_id: int, n_ctx: int, device: str, batch_size: int = 16,
                n_max: int = SAMPLE_PROMPTS) -> BeyondPass:
    """One forward pass per batch over the sample of ``texts`` (:func:`choose_sample`) feeding the reductions.

    Causal models read at most :data:`MAX_TOKENS` tokens per prompt (exact for every position kept).

    Raises :class:`lmfacts.probe.probe.NonFiniteActivationError` on NaN/inf activations of real tokens.
    """
    import torch

    from lmfacts.probe.batching import make_batch, tokenize_one

    t0 = time.perf_counter()
    if causal:  # encoders keep their whole prompt: truncation would cut off the [SEP] they append
        n_ctx = min(n_ctx, MAX_TOKENS)
    lengths = [len(tokenize_one(bridge, t, prepend_bos=prepend_bos, n_ctx=n_ctx)[0]) for t in texts]
    chosen = choose_sample(lengths, n_max=n_max)
    massive, sinks, lens_red = reductions_for(bridge, causal=causal, lens=lens)
    reds: list[Any] = [r for r in (massive, sinks, lens_red) if r is not None]
    hooks = [(name, (lambda x, hook, r=r, name=name: r.on(name, x))) for r in reds for name in r.hook_names()
             if name in bridge.hook_dict]
    order = sorted(chosen, key=lambda i: lengths[i])
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            batch = make_batch(bridge, [texts[i] for i in idx], prepend_bos=prepend_bos, n_ctx=n_ctx,
                               padding_side=padding_side, pad_id=pad_id, device=device)
            view = BatchView(batch.tokens, batch.attention_mask.bool(), batch.classes, list(idx))
            for r in reds:
                r.start(view)
            bridge.run_with_hooks(batch.tokens, fwd_hooks=hooks, attention_mask=batch.attention_mask,
                                  return_type="logits" if lens_red is not None else None)
            for r in reds:
                r.end()
    n_long = sum(1 for i in chosen if lengths[i] >= SINK_TOKENS)
    return BeyondPass(massive, sinks, lens_red, [texts[i] for i in chosen], chosen, [lengths[i] for i in chosen],
                      n_long, time.perf_counter() - t0, sinks is not None)




@dataclass
class ProbeAttachment:
    """The beyond reductions of one sample, ready to ride on a probe pass (``run_probe(reductions=…)``), and
    what :class:`BeyondPass` needs to describe the sample afterwards."""

    reductions: list[SampledReduction]
    massive: MassiveReduction
    sinks: SinkReduction | None
    lens: LensReduction | None
    texts: list[str]
    corpus_index: list[int]
    lengths: list[int]
    pattern_hooks: bool
    max_tokens: int | None = None  # positions the reductions read per prompt (None: all)

    def result(self, seconds: float, note: str) -> BeyondPass:
        """The :class:`BeyondPass` these reductions filled (call after the probe pass returned)."""
        n_long = sum(1 for n in self.lengths if n >= SINK_TOKENS)
        if self.lens is not None:
            self.lens.release_model()
        return BeyondPass(self.massive, self.sinks, self.lens, self.texts, self.corpus_index, self.lengths, n_long,
                          seconds, self.pattern_hooks, notes=[note])


def attach_sample(bridge: Any, texts: Sequence[str], pass_index: Sequence[int], *, causal: bool, lens: bool,
                  prepend_bos: bool, n_ctx: int, n_max: int = SAMPLE_PROMPTS, choose: bool = True,
                  corpus_index: Sequence[int] | None = None) -> ProbeAttachment:
    """The reductions of :func:`beyond_pass` over ``texts`` for a probe pass in which ``texts[j]`` is pass row
    ``pass_index[j]``.

    ``choose``: take :func:`choose_sample` of ``texts`` (at most ``n_max``), else every text. The reductions
    key their seeded choices by the position in ``texts`` (``corpus_index``: what :class:`BeyondPass` reports,
    default the same), exactly as :func:`beyond_pass` over ``texts`` does, and see each prompt's first
    :data:`MAX_TOKENS` positions in a causal model (the whole prompt otherwise), so the statistics equal
    :func:`beyond_pass`'s up to float round-off of the batch shapes.
    """
    from lmfacts.probe.batching import tokenize_one

    cut = min(n_ctx, MAX_TOKENS) if causal else n_ctx
    lengths = [len(tokenize_one(bridge, t, prepend_bos=prepend_bos, n_ctx=cut)[0]) for t in texts]
    chosen = choose_sample(lengths, n_max=n_max) if choose else list(range(len(texts)))
    massive, sinks, lens_red = reductions_for(bridge, causal=causal, lens=lens)
    ids = {int(pass_index[j]): j for j in chosen}
    reds = [SampledReduction(r, ids, MAX_TOKENS if causal else None) for r in (massive, sinks, lens_red)
            if r is not None]
    cidx = list(range(len(texts))) if corpus_index is None else [int(i) for i in corpus_index]
    return ProbeAttachment(reds, massive, sinks, lens_red, [texts[i] for i in chosen], [cidx[i] for i in chosen],
                           [lengths[i] for i in chosen], sinks is not None, MAX_TOKENS if causal else None)


def twin_texts(model_pass: BeyondPass) -> list[str]:
    """The random twin's beyond prompts: :data:`TWIN_PROMPTS` of the model's sample, its prompts of ≥
    :data:`SINK_TOKENS` tokens first (the AS inputs), then in sample order."""
    order = sorted(range(model_pass.n_prompts), key=lambda i: model_pass.lengths[i] < SINK_TOKENS)
    return [model_pass.texts[i] for i in order[:TWIN_PROMPTS]]


def session_beyond(ctx: Any, *, processing: str | None = None, twin: bool = False) -> BeyondPass:
    """The beyond pass of ``ctx``'s (session, target, processing), or of its random twin, computed once.

    The model's pass: up to :data:`SAMPLE_PROMPTS` of the session's probe prompts (:func:`choose_sample`);
    the twin's (:func:`lmfacts.models.twin.random_twin`, seed 0): :data:`TWIN_PROMPTS` of the same sample (its
    prompts of ≥ 64 tokens first), with the same tokenisation settings. ``causal`` is the measured ``causal_decoder`` check.
    ``processing`` defaults to the running claim's. Cached by the session's per-target model checks
    (:meth:`lmfacts.session.LmfactsSession.model_check`), so it is freed with the target's model.

    Raw processing: the reductions ride on the session's one probe pass (:meth:`LmfactsSession.probe`
    attaches them, :func:`attach_sample`), and the twin's on the twin's one probe pass
    (:func:`lmfacts.models.twin.session_twin_pass`); a standalone :func:`beyond_pass` runs only where the
    probe pass ran without them (``session.wants_beyond`` False) or for compat processing.
    """
    session, target = ctx.session, ctx.target
    processing = processing or (ctx.spec.processing if ctx.spec else "raw")
    if processing == "raw" and getattr(session, "wants_beyond", False):
        if twin:
            from lmfacts.models.twin import session_twin_pass

            tw = session_twin_pass(ctx)[1]
            if tw is not None:
                return tw
        else:
            session.probe(target, "raw")
            found = session.cached_check("beyond", target, "raw")
            if found is not None:
                return found

    def measure(lm: Any) -> BeyondPass:
        info = lm.info
        causal = session.causal_check(target, processing).causal
        texts = list(ctx.texts)
        bridge = lm.bridge
        if twin:
            from lmfacts.models.twin import random_twin

            texts = twin_texts(session_beyond(ctx, processing=processing))  # the long (AS) prompts first
            bridge = random_twin(lm).bridge
        return beyond_pass(
            bridge, texts, causal=causal, lens=causal and bool(info.has_lm_head), prepend_bos=info.prepends_bos,
            padding_side=info.padding_side or "right", pad_id=info.pad_token_id if info.pad_token_id is not None else 0,
            n_ctx=info.n_ctx, device=info.device, batch_size=session.options.batch_size or 16,
            n_max=TWIN_PROMPTS if twin else SAMPLE_PROMPTS)

    return session.model_check("beyond-twin" if twin else "beyond", target, processing, measure)
