"""The logit lens (LL-1, LL-2): KL to the final distribution and top-1 agreement per layer.

Convention (nostalgebraist, "interpreting GPT: the logit lens", LessWrong 2020; Belrose et al.,
"Eliciting Latent Predictions from Transformers with the Tuned Lens", arXiv 2303.08112, whose
``tuned_lens.nn.unembed.Unembed.forward`` is ``unembedding(final_norm(h))``): the residual stream
at point l is decoded exactly like the final one, by the model's **final norm then unembedding**
(a callable ``decode`` the caller supplies, ``[n, d] → [n, V]``), and compared with the model's
output distribution by

    KL(p_final ‖ p_lens,l) = Σ_v p_final(v) (log p_final(v) − log p_lens,l(v))   (nats, per token)

(the direction Belrose et al. use). At the final residual point the lens *is* the output, so
KL = 0 there by construction. Top-1 agreement: argmax of the lens logits equals argmax of the
final logits (first index on ties).

Points are indexed as the caller feeds them (the probe's ``resid_pre`` of each block plus the
final ``resid_post``: point l = the stream entering block l). Tokens: a seeded sample of content
positions (:func:`sample_positions`: up to ``n_per_prompt`` per prompt, drawn from a generator
keyed by (seed, prompt id), so the sample does not depend on how prompts are batched). The
accumulator (:class:`LogitLensAccumulator`) keeps per point the sum and sum of squares of KL,
the agreement count and the token count: additive, so batch by batch equals one shot up to
float summation order. Memory O(points).

Verdicts (:func:`logit_lens_stats` → :class:`LogitLens`): LL-1 ``kl_spearman`` (ρ of mean KL vs
depth; strongly negative expected), ``kl_last`` (≈ 0), ``kl_from`` (the first point from which
mean KL ≤ ``kl_threshold`` at every later point); LL-2 ``agreement_spearman`` and
``agreement_from`` (first point from which agreement ≥ ``agreement_threshold`` holds onward);
``kl_increases``: points where mean KL rises over the previous point by more than ``spike_tol``
(relative), to be *reported* (Belrose et al.: the logit lens is brittle in early layers of some
families), not failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import DegenerateSample, as_finite_array, check_int
from .trends import depth_spearman
from .verdict import BootstrapCI, bootstrap_ci

__all__ = [
    "log_softmax",
    "kl_to_final",
    "top1_agreement",
    "sample_positions",
    "holds_from",
    "LogitLensAccumulator",
    "LogitLens",
    "logit_lens_stats",
    "lens_spearman_ci",
]


def log_softmax(logits: object) -> np.ndarray:
    """Numerically stable log-softmax over the last axis (float64). NaN/inf raise ``ValueError``."""
    x = as_finite_array(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits: expected a last (vocabulary) axis")
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _pair(final_logits: object, lens_logits: object) -> tuple[np.ndarray, np.ndarray]:
    f = as_finite_array(final_logits, "final_logits", ndim=2)
    g = as_finite_array(lens_logits, "lens_logits", ndim=2)
    if f.shape != g.shape:
        raise ValueError(f"final_logits, lens_logits: shapes differ ({f.shape} vs {g.shape}); need [n, V] both")
    return f, g


def kl_to_final(final_logits: object, lens_logits: object) -> np.ndarray:
    """Per-token KL(p_final ‖ p_lens) in nats, ``[n]``, from logits ``[n, V]`` each (module docstring)."""
    f, g = _pair(final_logits, lens_logits)
    lp, lq = log_softmax(f), log_softmax(g)
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    return np.maximum(kl, 0.0)  # round-off can give −1e-16


def top1_agreement(final_logits: object, lens_logits: object) -> np.ndarray:
    """Per-token bool ``[n]``: the lens's argmax equals the final argmax (first index on ties)."""
    f, g = _pair(final_logits, lens_logits)
    return np.argmax(f, -1) == np.argmax(g, -1)


def sample_positions(
    content: object, n_per_prompt: int, *, seed: int = 0, prompt_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded sample of content positions: ``(rows, cols)`` index arrays into a ``[b, p]`` batch.

    ``content``: ``[b, p]`` bool (True = a content position that may be sampled). Each prompt
    contributes min(n_per_prompt, its content count) positions drawn without replacement from
    ``np.random.default_rng([seed, prompt_id])`` (``prompt_ids`` default 0 … b−1), in increasing
    position order, so the sample is the same however prompts are batched.
    """
    c = np.asarray(content)
    if c.dtype != bool or c.ndim != 2:
        raise ValueError(f"content: expected a [b, p] bool mask, got {c.dtype} {c.shape}")
    n = check_int(n_per_prompt, "n_per_prompt", minimum=1)
    ids = list(range(c.shape[0])) if prompt_ids is None else [int(v) for v in prompt_ids]
    if len(ids) != c.shape[0]:
        raise ValueError(f"prompt_ids: {len(ids)} ids for {c.shape[0]} prompts")
    rows, cols = [], []
    for r, pid in enumerate(ids):
        avail = np.flatnonzero(c[r])
        if avail.size == 0:
            continue
        pick = np.sort(np.random.default_rng([int(seed), pid]).choice(avail, min(n, avail.size), replace=False))
        rows.append(np.full(pick.size, r))
        cols.append(pick)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def holds_from(ok: object) -> int | None:
    """Smallest index l such that ``ok[l']`` is True for every l' ≥ l (None if ``ok[-1]`` is False)."""
    a = np.asarray(ok, dtype=bool)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"ok: expected a non-empty 1-D bool array, got shape {a.shape}")
    if not a[-1]:
        return None
    bad = np.flatnonzero(~a)
    return int(bad[-1] + 1) if bad.size else 0


class LogitLensAccumulator:
    """Per-point additive sums of KL(final ‖ lens) and top-1 agreement (module docstring), overall and per prompt.

    The per-prompt sums (``per_prompt``: prompt id → ``[n_points, 3]`` float64 rows of (Σ KL, agreements,
    tokens)) are what :func:`lens_spearman_ci` resamples: the bootstrap unit is the prompt
    (:mod:`lmfacts.stats.verdict`). Tokens added without a prompt id count towards prompt 0.
    """

    def __init__(self, n_points: int) -> None:
        """Zero sums for ``n_points`` residual points."""
        self.n_points = check_int(n_points, "n_points", minimum=1)
        self.kl_sum = np.zeros(self.n_points)
        self.kl_sq_sum = np.zeros(self.n_points)
        self.agree = np.zeros(self.n_points, dtype=np.int64)
        self.n_tokens = np.zeros(self.n_points, dtype=np.int64)
        self.per_prompt: dict[int, np.ndarray] = {}

    def _check_point(self, point: int) -> int:
        if isinstance(point, bool) or not (0 <= int(point) < self.n_points):
            raise ValueError(f"point: must lie in [0, {self.n_points}), got {point!r}")
        return int(point)

    def add(self, point: int, final_logits: object, lens_logits: object,
            prompt_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Add ``n`` sampled tokens at ``point``: final and lens logits, ``[n, V]`` each; ``prompt_ids`` ``[n]``:
        the prompt each token comes from (default: prompt 0)."""
        point = self._check_point(point)
        kl = kl_to_final(final_logits, lens_logits)
        agree = top1_agreement(final_logits, lens_logits)
        ids = np.zeros(kl.size, dtype=np.int64) if prompt_ids is None else np.asarray(prompt_ids, dtype=np.int64)
        if ids.shape != kl.shape:
            raise ValueError(f"prompt_ids: {ids.shape} for {kl.size} tokens; need one id per token")
        self.kl_sq_sum[point] += (kl * kl).sum()
        uniq, inv = np.unique(ids, return_inverse=True)
        table = np.zeros((1, uniq.size, 3))
        np.add.at(table[0], inv, np.stack([kl, agree.astype(np.float64), np.ones(kl.size)], axis=1))
        self.add_prompt_sums([point], uniq, table)

    def add_prompt_sums(self, points: Sequence[int], prompt_ids: Sequence[int] | np.ndarray,
                        table: np.ndarray) -> None:
        """Add per-prompt sums: ``table`` ``[len(points), len(prompt_ids), 3]`` of (Σ KL, agreements, tokens) (the
        probe's batched form of :meth:`add`; Σ KL² is added by the caller to ``kl_sq_sum``)."""
        t = np.asarray(table, dtype=np.float64)
        pts = [self._check_point(p) for p in points]
        ids = [int(i) for i in prompt_ids]
        if t.shape != (len(pts), len(ids), 3):
            raise ValueError(f"table: shape {t.shape}, need ({len(pts)}, {len(ids)}, 3)")
        for j, pid in enumerate(ids):
            rows = self.per_prompt.setdefault(pid, np.zeros((self.n_points, 3)))
            rows[pts] += t[:, j]
        self.kl_sum[pts] += t[:, :, 0].sum(1)
        self.agree[pts] += np.rint(t[:, :, 1].sum(1)).astype(np.int64)
        self.n_tokens[pts] += np.rint(t[:, :, 2].sum(1)).astype(np.int64)

    def add_resid(self, point: int, final_logits: object, resid: object,
                  decode: Callable[[np.ndarray], object], prompt_ids: Sequence[int] | None = None) -> None:
        """Decode ``resid`` ``[n, d]`` with ``decode`` (final norm + unembedding → ``[n, V]``), then :meth:`add`."""
        r = as_finite_array(resid, "resid", ndim=2)
        self.add(point, final_logits, decode(r), prompt_ids)

    def merge(self, other: LogitLensAccumulator) -> None:
        """Add another accumulator with the same number of points."""
        if other.n_points != self.n_points:
            raise ValueError("merge: accumulators differ in n_points")
        self.kl_sum += other.kl_sum
        self.kl_sq_sum += other.kl_sq_sum
        self.agree += other.agree
        self.n_tokens += other.n_tokens
        for pid, rows in other.per_prompt.items():
            self.per_prompt[pid] = self.per_prompt.get(pid, 0.0) + rows

    def result(self, **kwargs: float) -> LogitLens:
        """:func:`logit_lens_stats` of this accumulator (same keyword arguments)."""
        return logit_lens_stats(self, **kwargs)


@dataclass(frozen=True)
class LogitLens(ResultMixin):
    """LL-1/LL-2 statistics per point (definitions in the module docstring).

    ``kl_mean`` and ``kl_sem`` (standard error over tokens) in nats; ``agreement`` is a share;
    ``*_from`` are point indices or None.
    """

    kl_mean: list[float]
    kl_sem: list[float]
    agreement: list[float]
    n_tokens: int
    kl_last: float
    kl_spearman: float
    agreement_spearman: float
    kl_from: int | None
    agreement_from: int | None
    kl_increases: list[int]
    kl_threshold: float
    agreement_threshold: float
    spike_tol: float


def logit_lens_stats(
    acc: LogitLensAccumulator,
    *,
    kl_threshold: float = 0.1,
    agreement_threshold: float = 0.9,
    spike_tol: float = 0.1,
) -> LogitLens:
    """LL statistics from a filled :class:`LogitLensAccumulator`.

    ``kl_threshold`` (nats, ≥ 0) and ``agreement_threshold`` (share in [0, 1]) define
    ``kl_from`` / ``agreement_from``; ``spike_tol`` (≥ 0) the relative rise that counts as a
    KL increase. Raises :class:`DegenerateSample` when a point saw no tokens or there are fewer
    than 3 points for the rank correlation.
    """
    for name, v in (("kl_threshold", kl_threshold), ("spike_tol", spike_tol)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name}: must be a finite number >= 0, got {v!r}")
    if not (0.0 <= agreement_threshold <= 1.0):
        raise ValueError(f"agreement_threshold: must lie in [0, 1], got {agreement_threshold!r}")
    if np.any(acc.n_tokens == 0):
        bad = [int(v) for v in np.flatnonzero(acc.n_tokens == 0)]
        raise DegenerateSample(f"logit_lens_stats: point(s) {bad} saw no tokens; feed every point")
    if acc.n_points < 3:
        raise DegenerateSample(f"logit_lens_stats: {acc.n_points} point(s); need >= 3 for a depth trend")
    n = acc.n_tokens.astype(np.float64)
    mean = acc.kl_sum / n
    var = np.maximum(acc.kl_sq_sum / n - mean * mean, 0.0)
    sem = np.sqrt(var / np.maximum(n - 1, 1))
    agree = acc.agree / n
    prev = mean[:-1]
    rises = np.flatnonzero(mean[1:] > prev * (1 + spike_tol) + 1e-12) + 1
    return LogitLens(
        kl_mean=mean.tolist(),
        kl_sem=sem.tolist(),
        agreement=agree.tolist(),
        n_tokens=int(acc.n_tokens.min()),
        kl_last=float(mean[-1]),
        kl_spearman=depth_spearman(mean),
        agreement_spearman=depth_spearman(agree),
        kl_from=holds_from(mean <= kl_threshold),
        agreement_from=holds_from(agree >= agreement_threshold),
        kl_increases=[int(v) for v in rises],
        kl_threshold=float(kl_threshold),
        agreement_threshold=float(agreement_threshold),
        spike_tol=float(spike_tol),
    )


def _batched_depth_spearman(curves: np.ndarray) -> np.ndarray:
    """:func:`lmfacts.stats.trends.depth_spearman` of each row of ``curves`` ``[B, k]``, ``[B]`` (its exact
    rational ρ, so a resample whose ρ is 4/5 gives the double nearest 0.8, as the full sample does)."""
    return np.array([depth_spearman(row) for row in curves.reshape(-1, curves.shape[-1])], dtype=np.float64)


def lens_spearman_ci(acc: LogitLensAccumulator, which: str, window: tuple[int, int], *,
                     n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Bootstrap CI over prompts of the Spearman ρ with depth of the per-point mean KL (``which="kl"``) or
    top-1 agreement share (``"agreement"``) on points ``window`` = (lo, hi) inclusive.

    Each resample draws prompts with replacement (:func:`lmfacts.stats.verdict.bootstrap_ci`, percentile,
    seeded) and recomputes the curve as Σ over the drawn prompts / their tokens at every point (token-weighted,
    as the full-sample curve), then its ρ with depth. The prompt is the unit because a prompt's tokens are not
    independent (the convention of every interval verdict here). Raises :class:`DegenerateSample` with fewer
    than 2 prompts; ``ValueError`` for an unknown ``which`` or a window outside the points.
    """
    col = {"kl": 0, "agreement": 1}.get(which)
    if col is None:
        raise ValueError(f"which: 'kl' or 'agreement', not {which!r}")
    lo, hi = int(window[0]), int(window[1])
    if not (0 <= lo < hi < acc.n_points):
        raise ValueError(f"window: ({lo}, {hi}) must lie within [0, {acc.n_points - 1}] with lo < hi")
    if len(acc.per_prompt) < 2:
        raise DegenerateSample(f"lens_spearman_ci: {len(acc.per_prompt)} prompt(s); a bootstrap over prompts "
                               "needs at least 2")
    table = np.stack([acc.per_prompt[k][lo:hi + 1] for k in sorted(acc.per_prompt)])  # [m, k, 3]

    def rho(values: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        n = tokens.sum(1)
        curve = np.divide(values.sum(1), n, out=np.zeros_like(n), where=n > 0)
        return _batched_depth_spearman(curve)

    return bootstrap_ci([table[:, :, col], table[:, :, 2]], rho, n_resamples=n_resamples, level=level,
                        method="percentile", seed=seed)
