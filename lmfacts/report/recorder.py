"""The record one claim test produces: what it measured, what was expected, and why.

A :class:`ClaimRecord` is filled by a claim through its ``ctx`` fixture and travels to the
controller on the test report's ``user_properties`` (so it survives pytest-xdist), where the plugin
appends it to ``results.jsonl``. Its JSON form is the per-result contract of ``report.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from lmfacts.jsonsafe import to_jsonable

USER_PROPERTY = "lmfacts_record"
OUTCOMES = ("passed", "failed", "inconclusive", "skipped", "xfailed", "xpassed", "error")


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
    # Interval verdicts (ctx.interval), by statistic name; each entry is exactly
    # {"value", "ci": [lo, hi], "band": [lo, hi] (None = open side), "level", "n_resamples", "method",
    #  "verdict": "passed" | "failed" | "inconclusive"}. Baseline tolerances are derived from these.
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)
    expectation_kind: str | None = None
    #: every parameter the claim ran with: {name: {"value", "origin", "unit"}} (origin: "claim default"
    #: or "rn.toml#3 (published: …)"; lmfacts.expectations.Resolved.describe)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the keys of ``measured`` that are the claim's headline values (lmfacts.claims.ClaimSpec.headline)
    headline: list[str] = field(default_factory=list)
    premises: list[dict[str, Any]] = field(default_factory=list)
    #: what the model's baseline (lmfacts.baselines) said and whether it was compared: {"file", "outcome"
    #: (recorded), "reason" (the recorded finding), "values": {key: {"recorded", "tol", "today", "within"}},
    #: "tolerance", "status" ("compared" | "not compared: why"), "verdict", "raw_outcome", "raw_reason"
    #: (the claim's own outcome and reason before the guard)}; None when the model has no baseline
    baseline: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    #: where the model sits in a checkpoint sweep (lmfacts.options.Target.checkpoint): {"family", "step",
    #: "revision"}; None for a model with no step (the report's trajectory section reads it)
    checkpoint: dict[str, Any] | None = None
    #: absolute path of the test's file when it lies outside pytest's rootdir (an installed catalogue run with
    #: ``--pyargs lmfacts.catalogue``: the nodeid is then relative to the package, not to where pytest ran);
    #: the replay command names this file (lmfacts.report.replay)
    test_file: str | None = None
    reason: str | None = None
    #: the point check (ClaimContext.check) that failed the claim, the last one to fail: {"message",
    #: "operands": {name: value}}; None when none failed (the report's matrix shows its first operand)
    failed_check: dict[str, Any] | None = None
    outcome: str | None = None
    duration_s: float = 0.0
    worker: str = field(default_factory=lambda: os.environ.get("PYTEST_XDIST_WORKER", "main"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe record."""
        return to_jsonable(dict(self.__dict__))
