"""Mergeable streaming accumulators: each reduces a batch of activations into fixed-size sums.

Memory is O(points × d²) at most (the covariance) and never grows with the number of prompts,
except the per-prompt mean norms (O(prompts × points) floats) that the bootstrap over prompts needs.
Every sum is kept in float64; per-batch matrix products run in float32 (then widen) for speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lmfacts.probe.batching import CLASS_NAMES, CONTENT

CLASSES = CLASS_NAMES  # pad, bos, content, bos_mid, special (see lmfacts.probe.batching)


@dataclass
class NormSums:
    """Sums of per-token L2 norms for each (point, position class), plus per-prompt content means.

    Classes are those of :mod:`lmfacts.probe.batching`: ``sums`` / ``counts`` have one entry per
    class name (``pad``, ``bos``, ``content``, ``bos_mid``, ``special``).
    """

    n_points: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    per_prompt: list[np.ndarray] = field(default_factory=list)  # one [b, n_points] array per batch
    _batch: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in CLASSES:
            self.sums[name] = np.zeros(self.n_points)
            self.counts[name] = np.zeros(self.n_points)

    def start_batch(self, batch_size: int) -> None:
        """Open the per-prompt row block of a new batch (NaN until a point is seen)."""
        self._batch = np.full((batch_size, self.n_points), np.nan)

    def add(self, point: int, norms: torch.Tensor, classes: torch.Tensor) -> None:
        """Add per-token norms [b, p] of one point."""
        for name, cls in CLASSES.items():
            sel = classes == cls
            self.sums[name][point] += float(norms[sel].double().sum())
            self.counts[name][point] += float(sel.sum())
        content = (classes == CONTENT).double()
        n = content.sum(1)
        per = (norms.double() * content).sum(1) / n.clamp(min=1)
        per[n == 0] = float("nan")
        assert self._batch is not None
        self._batch[:, point] = per.cpu().numpy()

    def end_batch(self) -> None:
        """Close the batch's per-prompt rows."""
        if self._batch is not None:
            self.per_prompt.append(self._batch)
            self._batch = None

    def mean(self, cls: str = "content") -> np.ndarray:
        """Mean norm per point over positions of class ``cls`` (NaN where there were none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts[cls] > 0, self.sums[cls] / self.counts[cls], np.nan)

    def prompt_means(self) -> np.ndarray:
        """[n_prompts, n_points] mean content norm of each prompt."""
        return np.concatenate(self.per_prompt, 0) if self.per_prompt else np.zeros((0, self.n_points))


@dataclass
class DimensionMoments:
    """Per-dimension power sums of (x − shift): Σ, Σ², Σ³, Σ⁴ over content tokens of one point.

    Each batch's sums are taken in float32 (fast) and added into float64 totals. ``shift`` is the
    first batch's per-dimension mean, so the central moments recovered from raw sums do not suffer
    cancellation on dimensions with a large mean (massive activations).
    """

    d: int
    n: float = 0.0
    shift: np.ndarray | None = None
    s1: np.ndarray = field(init=False)
    s2: np.ndarray = field(init=False)
    s3: np.ndarray = field(init=False)
    s4: np.ndarray = field(init=False)
    _shift_t: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.s1, self.s2, self.s3, self.s4 = (np.zeros(self.d) for _ in range(4))

    def add(self, x: torch.Tensor) -> None:
        """Add content vectors x [n, d] (float32)."""
        if self._shift_t is None:
            self._shift_t = x.mean(0)
            self.shift = self._shift_t.double().cpu().numpy()
        y = x - self._shift_t
        y2 = y * y
        ones = torch.ones(1, y.shape[0], dtype=y.dtype, device=y.device)  # column sums as GEMVs (fast)
        sums = torch.cat([ones @ y, ones @ y2, ones @ (y2 * y), ones @ (y2 * y2)]).double().cpu().numpy()
        self.n += x.shape[0]
        self.s1 += sums[0]
        self.s2 += sums[1]
        self.s3 += sums[2]
        self.s4 += sums[3]

    def _central(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.s1 / self.n  # mean of (x − shift)
        e2, e3, e4 = self.s2 / self.n, self.s3 / self.n, self.s4 / self.n
        var = e2 - m * m
        m4 = e4 - 4 * m * e3 + 6 * m * m * e2 - 3 * m**4
        return m, var, m4

    def mean(self) -> np.ndarray:
        """Per-dimension mean."""
        shift = self.shift if self.shift is not None else 0.0
        return shift + self.s1 / self.n

    def variance(self) -> np.ndarray:
        """Per-dimension population variance."""
        return self._central()[1]

    def kurtosis(self) -> np.ndarray:
        """Per-dimension Pearson kurtosis (Gaussian = 3) across tokens."""
        _, var, m4 = self._central()
        with np.errstate(invalid="ignore", divide="ignore"):
            return m4 / (var * var)


@dataclass
class PointStats:
    """Everything the distribution claims need at one residual point, over content tokens."""

    d: int
    moments: DimensionMoments = field(init=False)
    rotated_moments: DimensionMoments = field(init=False)
    token_kurtosis_sum: float = 0.0
    rotated_token_kurtosis_sum: float = 0.0
    n_tokens: float = 0.0
    cov_sum: np.ndarray = field(init=False)
    max_signed: np.ndarray = field(init=False)
    min_signed: np.ndarray = field(init=False)
    topk_counts: np.ndarray = field(init=False)
    abs_sum: np.ndarray = field(init=False)
    sample: torch.Tensor | None = None  # [≤cap, d] uniform sample of content token vectors
    sample_keys: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.moments = DimensionMoments(self.d)
        self.rotated_moments = DimensionMoments(self.d)
        self.cov_sum = np.zeros((self.d, self.d))
        self.max_signed = np.full(self.d, -np.inf)
        self.min_signed = np.full(self.d, np.inf)
        self.topk_counts = np.zeros(self.d)
        self.abs_sum = np.zeros(self.d)


def per_token_kurtosis(x: torch.Tensor) -> torch.Tensor:
    """Pearson kurtosis of each row across its dimensions (the RS post's convention), in float32."""
    c = x - x.mean(-1, keepdim=True)
    lv = torch.linalg.vector_norm
    m2 = lv(c, 2, dim=-1).square()
    m4 = lv(c, 4, dim=-1).square().square()
    return m4 * x.shape[-1] / (m2 * m2)


def update_sample(stats: PointStats, x: torch.Tensor, keys: torch.Tensor, cap: int) -> None:
    """Keep the ``cap`` rows with the smallest random keys (a mergeable uniform reservoir)."""
    if stats.sample is not None and stats.sample_keys is not None and stats.sample_keys.numel() >= cap:
        keep = keys < stats.sample_keys.max()  # only rows that can enter the reservoir
        x, keys = x[keep], keys[keep]
    if stats.sample is None:
        pool_x, pool_k = x, keys
    else:
        pool_x, pool_k = torch.cat([stats.sample, x]), torch.cat([stats.sample_keys, keys])
    if pool_k.numel() > cap:
        idx = torch.topk(pool_k, cap, largest=False).indices
        pool_x, pool_k = pool_x[idx], pool_k[idx]
    stats.sample, stats.sample_keys = pool_x.detach().float().cpu(), pool_k.cpu()
