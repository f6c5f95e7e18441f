"""Are the largest-magnitude dimensions the same everywhere? Top-k set overlap (BF-2).

For two random k-subsets of d dimensions the expected overlap |A & B| / k is k / d (the chance
level, :func:`chance_overlap`); consistent outlier dimensions give overlaps near 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import as_finite_array, check_int

__all__ = ["top_k_dims", "top_k_overlap", "chance_overlap", "Consistency", "consistency_across"]


def top_k_dims(values: object, k: int) -> np.ndarray:
    """Indices of the k largest |values| along the last axis, largest first; shape ``(..., k)``."""
    arr = as_finite_array(values, "values")
    if arr.ndim == 0:
        raise ValueError("values: expected an array with a last (dimension) axis")
    k = check_int(k, "k", minimum=1)
    d = arr.shape[-1]
    if k > d:
        raise ValueError(f"k: must be <= the number of dimensions {d}, got {k}")
    mag = np.abs(arr)
    part = np.argpartition(-mag, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(mag, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)


def _index_sets(sets: object, name: str) -> np.ndarray:
    arr = np.asarray(sets)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name}: expected a non-empty integer array of dimension indices, got dtype {arr.dtype}"
        )
    if np.any(arr < 0):
        raise ValueError(f"{name}: dimension indices must be >= 0")
    return arr


def top_k_overlap(a: object, b: object) -> float:
    """``|A & B| / k`` for two index sets of equal size k (duplicates are not allowed)."""
    sa, sb = _index_sets(a, "a").ravel(), _index_sets(b, "b").ravel()
    if sa.size != sb.size:
        raise ValueError(f"a, b: sets must have the same size k, got {sa.size} and {sb.size}")
    if np.unique(sa).size != sa.size or np.unique(sb).size != sb.size:
        raise ValueError("a, b: index sets contain duplicates")
    return float(np.intersect1d(sa, sb).size / sa.size)


def chance_overlap(k: int, d: int) -> float:
    """Expected ``|A & B| / k`` for two independent uniformly random k-subsets of d dimensions: k / d."""
    k = check_int(k, "k", minimum=1)
    d = check_int(d, "d", minimum=k)
    return k / d


@dataclass(frozen=True)
class Consistency(ResultMixin):
    """Mean pairwise overlap of ``n_sets`` top-k sets; ``chance`` = k / n_dims (None if d unknown).

    ``top_dims`` lists the most frequent dimensions (up to k) and ``top_dim_frequency`` the share of
    sets containing each.
    """

    mean_overlap: float
    chance: float | None
    n_sets: int
    k: int
    n_dims: int | None
    top_dims: list[int]
    top_dim_frequency: list[float]


def consistency_across(sets: object, n_dims: int | None = None) -> Consistency:
    """Mean pairwise overlap of the rows of ``sets`` (shape ``(n_sets, k)``, n_sets >= 2).

    Computed in O(n_sets * k) from per-dimension counts c_j: sum over pairs of |A & B| equals
    sum_j c_j (c_j - 1) / 2.
    """
    arr = _index_sets(sets, "sets")
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"sets: expected shape (n_sets >= 2, k), got {arr.shape}")
    n_sets, k = arr.shape
    if any(np.unique(row).size != k for row in arr):
        raise ValueError("sets: a row contains duplicate indices")
    if n_dims is not None:
        n_dims = check_int(n_dims, "n_dims", minimum=k)
        if arr.max() >= n_dims:
            raise ValueError(f"n_dims: index {arr.max()} found but n_dims={n_dims}")
    counts = np.bincount(arr.ravel(), minlength=n_dims or 0).astype(np.float64)
    pair_sum = float(np.sum(counts * (counts - 1)) / 2)
    n_pairs = n_sets * (n_sets - 1) / 2
    top = np.argsort(-counts, kind="stable")[:k]
    return Consistency(
        mean_overlap=pair_sum / (n_pairs * k),
        chance=None if n_dims is None else k / n_dims,
        n_sets=int(n_sets),
        k=int(k),
        n_dims=n_dims,
        top_dims=[int(i) for i in top],
        top_dim_frequency=[float(counts[i] / n_sets) for i in top],
    )
