"""Float tolerances that follow the model's dtype.

A comparison that holds up to rounding in float32 (a norm identity, a BOS vector compared across
two prompts, a rebuilt activation compared with its hook) holds only up to a few units in the last
place of the dtype the model actually ran in. :func:`float_tol` turns a float32 tolerance into the
tolerance of another dtype: ``max(base, ulps · eps(dtype))``, so float32 keeps its tight bound and
bfloat16 (eps 2⁻⁷ ≈ 7.8e-3) or float16 (eps 2⁻¹⁰ ≈ 9.8e-4) get one their rounding can meet. The
factor ``ulps`` says how many roundings a statistic accumulates (IEEE 754 machine epsilon; Higham,
*Accuracy and Stability of Numerical Algorithms* §3 for the error of dot products and norms).
"""

from __future__ import annotations

#: Machine epsilon (spacing of floats at 1.0) per dtype name, as torch.finfo(dtype).eps gives it.
MACHINE_EPS: dict[str, float] = {
    "float64": 2.0 ** -52,
    "float32": 2.0 ** -23,
    "float16": 2.0 ** -10,
    "bfloat16": 2.0 ** -7,
}

#: Default number of roundings a tolerance allows for (see :func:`float_tol`).
DEFAULT_ULPS = 8.0


def machine_eps(dtype: str) -> float:
    """Machine epsilon of ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``, ``"float64"``).

    Also accepts ``torch.float32``-style names (``"torch.bfloat16"``). Raises ``ValueError`` for an
    unknown dtype (quantised storage is not a compute dtype: pass the dtype the model ran in).
    """
    key = str(dtype).removeprefix("torch.")
    if key not in MACHINE_EPS:
        raise ValueError(f"no machine epsilon for dtype {dtype!r}; known: {sorted(MACHINE_EPS)}")
    return MACHINE_EPS[key]


def float_tol(base: float, dtype: str, ulps: float = DEFAULT_ULPS) -> float:
    """The tolerance ``base`` (valid in float32) for a model running in ``dtype``.

    Returns ``max(base, ulps · eps(dtype))``: unchanged in float32 and float64 wherever ``base`` is
    above their rounding, widened to the dtype's rounding in bfloat16 / float16. Dimensionless (a
    relative error) like ``base``. Raises ``ValueError`` for an unknown dtype.
    """
    return max(float(base), float(ulps) * machine_eps(dtype))
