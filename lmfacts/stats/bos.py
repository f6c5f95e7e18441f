"""Is the BOS position's norm trajectory an exception (RN-2)?

Inputs are per-layer norms: ``bos_norms`` ``(n_layers,)`` or ``(n_prompts, n_layers)`` (rows are
averaged) and ``content_norms`` ``(n_layers,)`` or ``(n_prompts, n_layers)`` (the per-layer *median*
over rows is used, as the catalogue suggests). Definitions, with per-layer rates
``r[l] = norm[l] / norm[l - 1]`` for l = 1..n_layers-1:

* ``ratio[l] = bos[l] / content[l]``; ``max_ratio`` and ``max_ratio_layer`` its maximum and argmax.
* ``most_different_layer`` = the l maximising |log r_bos[l] - log r_content[l]| (the transition
  l-1 -> l where the two growth-rate profiles differ most).
* ``jump_layer`` / ``jump_rate``: the l with the largest BOS per-layer rate, and that rate.
* Shape statistic ("huge early growth, then a plateau / U"), anchored at the *peak of the ratio*
  p = ``max_ratio_layer`` (where BOS's excess growth over content ends):
  ``early = p <= (n_layers - 1) / 2``; ``ratio_decline = (ratio[p] / ratio[-1]) ** (1 / (n_layers - 1 - p))``
  is the per-layer factor by which the BOS/content ratio shrinks after the peak (1 when BOS tracks
  content; 1.05 when BOS is flat and content grows 5%/layer; NaN if p is the last layer);
  ``plateau = ratio_decline >= 1 + rate_tol``. ``plateau_rate`` and ``content_rate_after`` are the
  geometric-mean per-layer rates of BOS and content after p (reported, not used in the verdict).
* ``anomalous = max_ratio >= ratio_threshold and early and plateau``. A BOS that is merely a constant
  multiple of content (same profile) is therefore *not* anomalous; nor is one identical to content.
  Requiring an early peak makes the decline an average over >= half the layers, so per-layer noise
  in the curves cannot fake it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import as_finite_array, check_positive

__all__ = ["BosAnomaly", "bos_anomaly"]


@dataclass(frozen=True)
class BosAnomaly(ResultMixin):
    """Per-layer BOS vs content statistics; see the module docstring for every definition."""

    ratio: list[float]
    max_ratio: float
    max_ratio_layer: int
    bos_rates: list[float]
    content_rates: list[float]
    most_different_layer: int
    jump_layer: int
    jump_rate: float
    early: bool
    ratio_decline: float
    plateau_rate: float | None
    content_rate_after: float | None
    plateau: bool
    ratio_threshold: float
    rate_tol: float
    anomalous: bool


def _curve(x: object, name: str, reduce: str) -> np.ndarray:
    arr = as_finite_array(x, name, ndim=(1, 2), positive=True)
    if arr.ndim == 2:
        arr = arr.mean(axis=0) if reduce == "mean" else np.median(arr, axis=0)
    if arr.size < 3:
        raise ValueError(f"{name}: need at least 3 layers, got {arr.size}")
    return arr


def bos_anomaly(
    bos_norms: object,
    content_norms: object,
    *,
    ratio_threshold: float = 2.0,
    rate_tol: float = 0.02,
) -> BosAnomaly:
    """Compare the BOS norm trajectory with content positions' (definitions in the module docstring)."""
    bos = _curve(bos_norms, "bos_norms", "mean")
    content = _curve(content_norms, "content_norms", "median")
    if bos.size != content.size:
        raise ValueError(f"bos_norms, content_norms: layer counts differ ({bos.size} vs {content.size})")
    ratio_threshold = check_positive(ratio_threshold, "ratio_threshold")
    if not np.isfinite(rate_tol) or rate_tol < 0:
        raise ValueError(f"rate_tol: must be a finite number >= 0, got {rate_tol!r}")
    ratio = bos / content
    log_rb = np.diff(np.log(bos))
    log_rc = np.diff(np.log(content))
    most_diff = int(np.argmax(np.abs(log_rb - log_rc))) + 1
    jump = int(np.argmax(log_rb)) + 1
    peak = int(np.argmax(ratio))
    max_ratio = float(ratio[peak])
    n_after = bos.size - 1 - peak
    early = peak <= (bos.size - 1) / 2
    if n_after > 0:
        decline = float((max_ratio / ratio[-1]) ** (1.0 / n_after))
        plateau_rate: float | None = float(np.exp(log_rb[peak:].mean()))
        content_after: float | None = float(np.exp(log_rc[peak:].mean()))
    else:
        decline, plateau_rate, content_after = float("nan"), None, None
    plateau = bool(np.isfinite(decline) and decline >= 1.0 + rate_tol)
    return BosAnomaly(
        ratio=[float(v) for v in ratio],
        max_ratio=max_ratio,
        max_ratio_layer=peak,
        bos_rates=[float(v) for v in np.exp(log_rb)],
        content_rates=[float(v) for v in np.exp(log_rc)],
        most_different_layer=most_diff,
        jump_layer=jump,
        jump_rate=float(np.exp(log_rb[jump - 1])),
        early=bool(early),
        ratio_decline=decline,
        plateau_rate=plateau_rate,
        content_rate_after=content_after,
        plateau=plateau,
        ratio_threshold=ratio_threshold,
        rate_tol=float(rate_tol),
        anomalous=bool(max_ratio >= ratio_threshold and early and plateau),
    )
