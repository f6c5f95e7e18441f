"""The Frobenius identity E||W x||^2 = ||W||_F^2 for x with i.i.d. zero-mean unit-variance entries (RN-8).

Proof: E||Wx||^2 = E x^T W^T W x = tr(W^T W E[x x^T]) = tr(W^T W) = ||W||_F^2. For Gaussian x,
Var(||Wx||^2) = 2 tr((W^T W)^2) = 2 ||W^T W||_F^2, so the Monte-Carlo mean over n samples has
standard error sqrt(2 / n) * ||W^T W||_F, which sets the tolerance.

Convention: ``W`` has shape ``(d_out, d_in)`` and acts as ``W @ x``. For the row-vector convention
``x @ W`` pass ``W.T``; both ||W||_F and ||W^T W||_F = ||W W^T||_F are unchanged, so the check is
the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._result import ResultMixin
from ._validation import DegenerateSample, as_finite_array, check_int, check_positive

__all__ = ["frobenius_sq", "mean_sq_norm_of_random_products", "FrobeniusCheck", "frobenius_identity_error"]

_CHUNK_ELEMENTS = 4_000_000


def _matrix(w: object) -> np.ndarray:
    return as_finite_array(w, "W", ndim=2)


def frobenius_sq(w: object) -> float:
    """Squared Frobenius norm ``sum W_ij^2``."""
    arr = _matrix(w)
    return float(np.sum(arr * arr))


def mean_sq_norm_of_random_products(w: object, n_samples: int, seed: int = 0) -> float:
    """Monte-Carlo mean of ||W x||^2 over ``n_samples`` draws of x ~ N(0, I_{d_in}).

    Samples are drawn in chunks to bound memory (<= ~32 MB per chunk).
    """
    arr = _matrix(w)
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    rng = np.random.default_rng(seed)
    d_in = arr.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // max(d_in, arr.shape[0]))
    total = 0.0
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        y = rng.standard_normal((m, d_in)) @ arr.T
        total += float(np.sum(y * y))
        done += m
    return total / n_samples


@dataclass(frozen=True)
class FrobeniusCheck(ResultMixin):
    """Monte-Carlo check of E||Wx||^2 = ||W||_F^2.

    ``se`` is the exact standard error sqrt(2 ||W^T W||_F^2 / n_samples); ``z = (mc_mean -
    frobenius_sq) / se``; ``within_tolerance = |z| <= n_se``; ``rel_error`` = |mc - F| / F.
    """

    frobenius_sq: float
    mc_mean: float
    n_samples: int
    se: float
    z: float
    rel_error: float
    n_se: float
    within_tolerance: bool


def frobenius_identity_error(
    w: object, n_samples: int, seed: int = 0, *, n_se: float = 4.0
) -> FrobeniusCheck:
    """Compare the Monte-Carlo E||Wx||^2 with ||W||_F^2 using the exact Gaussian standard error."""
    arr = _matrix(w)
    n_se = check_positive(n_se, "n_se")
    fro = frobenius_sq(arr)
    if fro == 0:
        raise DegenerateSample("W: all zeros; the identity is trivially 0 = 0 and the relative error undefined")
    mc = mean_sq_norm_of_random_products(arr, n_samples, seed)
    gram = arr.T @ arr if arr.shape[1] <= arr.shape[0] else arr @ arr.T  # same Frobenius norm
    se = float(np.sqrt(2.0 * np.sum(gram * gram) / n_samples))
    z = (mc - fro) / se
    return FrobeniusCheck(
        frobenius_sq=fro,
        mc_mean=mc,
        n_samples=int(n_samples),
        se=se,
        z=float(z),
        rel_error=abs(mc - fro) / fro,
        n_se=n_se,
        within_tolerance=bool(abs(z) <= n_se),
    )
