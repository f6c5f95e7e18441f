"""Corpus-level reductions of the probe, and the memory plan of its accumulators.

While the probe runs, every accumulator is a torch tensor on the model's device (see
:mod:`lmfacts.probe.probe`); when the run ends they are copied to the host once and wrapped in the
numpy-facing classes here (:class:`NormSums`, :class:`DimensionMoments`, :class:`PointStats`).
Memory never grows with the number of prompts, except the per-prompt mean norms (O(prompts ×
points) floats) that the bootstrap over prompts needs; the covariance (O(points × d²)) is the only
large accumulator, and :func:`plan_memory` fits it into the ``--probe-memory`` budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lmfacts.probe.batching import CLASS_NAMES

CLASSES = CLASS_NAMES  # pad, bos, content, bos_mid, special (see lmfacts.probe.batching)
SAMPLE_TOKENS = 512  # content token vectors kept per point (BF-1, RN-9)
GB = 1024**3


@dataclass
class NormSums:
    """Sums of per-token L2 norms for each (point, position class), plus per-prompt content means.

    Classes are those of :mod:`lmfacts.probe.batching`: ``sums`` / ``counts`` have one entry per
    class name (``pad``, ``bos``, ``content``, ``bos_mid``, ``special``), each an array over points.
    ``per_prompt`` is [n_prompts, n_points] in corpus order (NaN for a prompt without content).
    """

    n_points: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    per_prompt: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in CLASSES:
            self.sums.setdefault(name, np.zeros(self.n_points))
            self.counts.setdefault(name, np.zeros(self.n_points))

    @classmethod
    def from_tables(cls, sums: np.ndarray, counts: np.ndarray, per_prompt: np.ndarray) -> NormSums:
        """Build from [n_points, n_classes] sums and counts (class order of ``CLASS_NAMES``) and per-prompt means."""
        n = sums.shape[0]
        return cls(n, {name: sums[:, c].copy() for name, c in CLASSES.items()},
                   {name: counts[:, c].copy() for name, c in CLASSES.items()}, per_prompt)

    def mean(self, cls: str = "content") -> np.ndarray:
        """Mean norm per point over positions of class ``cls`` (NaN where there were none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts[cls] > 0, self.sums[cls] / self.counts[cls], np.nan)

    def prompt_means(self) -> np.ndarray:
        """[n_prompts, n_points] mean content norm of each prompt, in corpus order."""
        return self.per_prompt if self.per_prompt is not None else np.zeros((0, self.n_points))


@dataclass
class DimensionMoments:
    """Per-dimension power sums of (x − shift): Σ, Σ², Σ³, Σ⁴ over content tokens of one point (float64).

    ``shift`` is the first batch's per-dimension mean, so the central moments recovered from raw
    sums do not suffer cancellation on dimensions with a large mean (massive activations).
    """

    d: int
    n: float = 0.0
    shift: np.ndarray | None = None
    s1: np.ndarray = field(init=False)
    s2: np.ndarray = field(init=False)
    s3: np.ndarray = field(init=False)
    s4: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.s1, self.s2, self.s3, self.s4 = (np.zeros(self.d) for _ in range(4))

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
    """Everything the distribution claims need at one residual point, over content tokens.

    ``cov_sum`` is Σ (x − shift)(x − shift)ᵀ with the moments' ``shift`` (float64, or float32 under
    a tight ``--probe-memory``), or None where the memory plan kept no covariance at this point.
    """

    d: int
    moments: DimensionMoments = field(init=False)
    rotated_moments: DimensionMoments = field(init=False)
    token_kurtosis_sum: float = 0.0
    rotated_token_kurtosis_sum: float = 0.0
    token_kurtosis_undefined: int = 0  # content tokens constant across dimensions (kurtosis 0/0), not in the sum
    rotated_token_kurtosis_undefined: int = 0
    n_tokens: float = 0.0
    cov_sum: np.ndarray | None = None
    max_signed: np.ndarray = field(init=False)
    min_signed: np.ndarray = field(init=False)
    topk_counts: np.ndarray = field(init=False)
    abs_sum: np.ndarray = field(init=False)
    sample: torch.Tensor | None = None  # [≤cap, d] uniform sample of content token vectors (CPU, float32)
    sample_keys: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.moments = DimensionMoments(self.d)
        self.rotated_moments = DimensionMoments(self.d)
        self.max_signed = np.full(self.d, -np.inf)
        self.min_signed = np.full(self.d, np.inf)
        self.topk_counts = np.zeros(self.d)
        self.abs_sum = np.zeros(self.d)


class NotMeasuredError(AttributeError):
    """A statistic this probe result does not carry (see the message for why)."""


@dataclass
class CentredPointStats:
    """A residual point of a probe result *derived* from the raw pass (compat view of a LayerNorm model).

    Only the sample of content vectors (each centred per token, i.e. exactly what the compat pass
    would have sampled) and the token count are carried; the per-dimension sums were only
    accumulated for the raw stream, and asking for them raises :class:`NotMeasuredError`.
    """

    d: int
    n_tokens: float
    sample: torch.Tensor | None
    sample_keys: torch.Tensor | None = None

    def __getattr__(self, name: str) -> Any:
        raise NotMeasuredError(
            f"{name!r} is not measured in the compat view derived from the raw pass (only norms, the RN-4 bound, "
            "BOS statistics, the MLP share and the token sample are); run the claim under processing='raw' or "
            "add the statistic to lmfacts.probe.probe")


def per_token_kurtosis(x: torch.Tensor) -> torch.Tensor:
    """Pearson kurtosis of each row across its dimensions (the RS post's convention), in float32.

    ``x`` [..., d] → [...]; Gaussian rows give ≈ 3.
    """
    c = x - x.mean(-1, keepdim=True)
    lv = torch.linalg.vector_norm
    m2 = lv(c, 2, dim=-1).square()
    m4 = lv(c, 4, dim=-1).square().square()
    return m4 * x.shape[-1] / (m2 * m2)


def update_sample(stats: Any, x: torch.Tensor, keys: torch.Tensor, cap: int) -> None:
    """Keep the ``cap`` rows with the smallest random keys (a mergeable uniform reservoir).

    ``stats`` has ``sample`` [≤cap, d] and ``sample_keys`` [≤cap] (None at first); ``x`` [n, d] and
    ``keys`` [n] are on the same device. Rows stay on that device (no host copy per call).
    """
    if stats.sample is None:
        pool_x, pool_k = x, keys
    else:
        pool_x, pool_k = torch.cat([stats.sample, x]), torch.cat([stats.sample_keys, keys])
    if pool_k.numel() > cap:
        idx = torch.topk(pool_k, cap, largest=False).indices
        pool_x, pool_k = pool_x[idx], pool_k[idx]
    stats.sample, stats.sample_keys = pool_x.detach().float(), pool_k


# ---------------------------------------------------------------------------------------------
# The memory plan
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryPlan:
    """How the probe's accumulators fit into ``budget_bytes``.

    ``covariance``: ``"float64"`` (every point, float64 sums), ``"float32"`` (every point, float32
    sums of shifted products: each batch is one float32 GEMM, batches are added in float32) or
    ``"float32-subset"`` (float32 at the evenly spaced points ``cov_points`` only: the others carry no
    covariance, and BF-8 excludes them with that reason). ``bytes`` is the planned accumulator memory.
    """

    budget_bytes: int
    covariance: str
    cov_points: tuple[int, ...]
    bytes: int
    n_points: int
    d: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for run.json and the report."""
        return {"budget_gb": round(self.budget_bytes / GB, 4), "covariance": self.covariance,
                "covariance_points": list(self.cov_points) if self.covariance == "float32-subset" else "all",
                "planned_gb": round(self.bytes / GB, 4), "n_points": self.n_points, "d_model": self.d}


def accumulator_bytes(n_points: int, d: int, cov_points: int, cov_itemsize: int, n_prompts: int = 0,
                      n_norm_rows: int = 0) -> int:
    """Bytes of the probe's accumulators: covariance (cov_points × d² × itemsize), per-point vectors
    (moments, extremes, top-k, |x| sums: 13 float64 d-vectors; 2 float32 shifts), the token sample (512 × d float32 + keys),
    the rotation (d² float32) and the per-prompt norm table (n_prompts × n_norm_rows float64)."""
    vectors = n_points * (13 * d * 8 + 2 * d * 4 + SAMPLE_TOKENS * (d * 4 + 4))  # + the two float32 shifts
    return cov_points * d * d * cov_itemsize + vectors + d * d * 4 + n_prompts * n_norm_rows * 8


def plan_memory(n_points: int, d: int, budget_bytes: int, *, covariance: bool = True, n_prompts: int = 0,
                n_norm_rows: int = 0) -> MemoryPlan:
    """Choose the covariance precision and points that fit ``budget_bytes`` (see :class:`MemoryPlan`).

    float64 at every point if it fits, else float32 at every point, else float32 at as many evenly
    spaced points (always the first and last) as fit, at least 2. Never raises: a budget below the
    O(d) accumulators is reported in ``bytes`` > ``budget_bytes``.
    """
    base = accumulator_bytes(n_points, d, 0, 4, n_prompts, n_norm_rows)
    if not covariance:
        return MemoryPlan(budget_bytes, "none", (), base, n_points, d)
    for kind, size in (("float64", 8), ("float32", 4)):
        total = base + n_points * d * d * size
        if total <= budget_bytes:
            return MemoryPlan(budget_bytes, kind, tuple(range(n_points)), total, n_points, d)
    k = max(2, min(n_points, int(max(budget_bytes - base, 0) // (d * d * 4))))
    pts = tuple(sorted({int(round(v)) for v in np.linspace(0, n_points - 1, k)}))
    return MemoryPlan(budget_bytes, "float32-subset", pts, base + len(pts) * d * d * 4, n_points, d)


def default_memory_budget(device: str | torch.device) -> int:
    """The default ``--probe-memory`` in bytes: on CUDA a quarter of the device's total memory; on the CPU
    (or MPS) 2 GiB, or an eighth of physical RAM where that is less."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(dev).total_memory // 4)
    try:
        import os

        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * GB
    return int(min(2 * GB, ram // 8))


def budget_bytes(gb: float | None, device: str | torch.device) -> int:
    """``gb`` (``--probe-memory``) in bytes, or :func:`default_memory_budget` when None."""
    if gb is None:
        return default_memory_budget(device)
    if not math.isfinite(gb) or gb <= 0:
        raise ValueError(f"--probe-memory must be a positive number of GB, got {gb}")
    return int(gb * GB)
