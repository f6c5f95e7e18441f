"""JSON-safe serialisation for the frozen result dataclasses."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["ResultMixin", "json_safe"]


def json_safe(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and nested containers to plain JSON types.

    Non-finite floats become ``None`` (JSON has no NaN/inf).
    """
    if isinstance(value, ResultMixin):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


class ResultMixin:
    """Adds :meth:`to_dict` to a dataclass result."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict (floats, ints, bools, lists, None)."""
        return {f.name: json_safe(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
