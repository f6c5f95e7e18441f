"""Share of outlier features (RS-2).

The RS post (src/metrics/outliers.py) counts a feature (hidden dimension) as an outlier if its
activation exceeds the threshold t *anywhere* in the dataset, on the positive side only
(``activation > t``). The catalogue's RS-2 wording uses |activation|; both are provided. A
probe reduces activations to per-feature maxima with :func:`feature_maxima` (or streams them) and
passes those here. Comparisons are strict (``>``) by default, as in the post's code; set
``inclusive=True`` for ``>=``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import as_finite_array

__all__ = ["OutlierShare", "feature_maxima", "outlier_feature_share", "outlier_feature_share_abs"]


@dataclass(frozen=True)
class OutlierShare(ResultMixin):
    """``share = n_outliers / n_features`` for features whose maximum passes ``threshold``."""

    share: float
    n_outliers: int
    n_features: int
    threshold: float
    signed: bool
    inclusive: bool
    outlier_dims: list[int]


def feature_maxima(acts: object) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (last axis) maximum signed and maximum absolute activation over all other axes."""
    arr = as_finite_array(acts, "acts")
    if arr.ndim == 0:
        raise ValueError("acts: expected an array with a last (feature) axis")
    flat = arr.reshape(-1, arr.shape[-1])
    return flat.max(axis=0), np.abs(flat).max(axis=0)


def _share(maxima: object, name: str, threshold: float, *, signed: bool, inclusive: bool) -> OutlierShare:
    arr = as_finite_array(maxima, name, ndim=1)
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"threshold: must be finite, got {threshold!r}")
    if not signed and np.any(arr < 0):
        raise ValueError(f"{name}: maxima of |activation| cannot be negative; did you pass signed maxima?")
    hits = arr >= t if inclusive else arr > t
    idx = np.flatnonzero(hits)
    return OutlierShare(
        share=float(idx.size / arr.size),
        n_outliers=int(idx.size),
        n_features=int(arr.size),
        threshold=t,
        signed=signed,
        inclusive=inclusive,
        outlier_dims=[int(i) for i in idx],
    )


def outlier_feature_share(max_signed: object, threshold: float, *, inclusive: bool = False) -> OutlierShare:
    """Share of features whose maximum *signed* activation exceeds ``threshold`` (the RS post's rule)."""
    return _share(max_signed, "max_signed", threshold, signed=True, inclusive=inclusive)


def outlier_feature_share_abs(max_abs: object, threshold: float, *, inclusive: bool = False) -> OutlierShare:
    """Share of features whose maximum |activation| exceeds ``threshold`` (the catalogue's RS-2 wording)."""
    return _share(max_abs, "max_abs", threshold, signed=False, inclusive=inclusive)
