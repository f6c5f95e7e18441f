"""The record one claim test produces: what it measured, what was expected, and why.

A :class:`ClaimRecord` is filled by a claim through its ``ctx`` fixture and travels to the
controller on the test report's ``user_properties`` (so it survives pytest-xdist), where the plugin
appends it to ``results.jsonl``. Its JSON form is the per-result contract of ``report.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

USER_PROPERTY = "lmfacts_record"
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")


def json_safe(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and non-finite floats into JSON values (NaN → None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "to_dict"):
        return json_safe(value.to_dict())
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return json_safe(value.tolist())
    return str(value)


@dataclass
class ClaimRecord:
    """One (claim, model, device) result, as written to ``results.jsonl``."""

    claim: str
    title: str
    source: str
    nodeid: str
    model: str
    device: str
    dtype: str
    processing: str | None
    statistic: str = ""
    measured: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] | None = None
    tolerance: dict[str, Any] | None = None
    conventions: dict[str, Any] = field(default_factory=dict)
    robust: bool | None = None
    witness: dict[str, Any] | None = None
    control: dict[str, Any] | None = None
    figures: list[dict[str, Any]] = field(default_factory=list)
    expectation_kind: str | None = None
    reason: str | None = None
    outcome: str | None = None
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe record."""
        return json_safe(dict(self.__dict__))
