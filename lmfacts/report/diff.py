"""Compare two runs: outcome changes, regressions (passed → failed/error) and moved measured values."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lmfacts.report.assemble import final_records, record_key
from lmfacts.report.fmt import fmt_number

BAD_OUTCOMES = frozenset({"failed", "error"})
#: an interval verdict whose CI straddles a band edge: its own outcome, neither a pass nor a regression
#: (a change to or from it is listed among the outcome changes, with the reason that names the CI)
UNDECIDED_OUTCOMES = frozenset({"inconclusive"})


@dataclass(frozen=True)
class OutcomeChange:
    """A test whose outcome differs between run A and run B (``None`` = absent from that run)."""

    key: str
    claim: str | None
    model: str | None
    before: str | None
    after: str | None
    reason: str | None = None


@dataclass(frozen=True)
class ValueChange:
    """A scalar at ``path`` inside ``measured`` that moved by more than the tolerance."""

    key: str
    claim: str | None
    model: str | None
    path: str
    before: float | None
    after: float | None
    rel_change: float


@dataclass(frozen=True)
class ConventionChange:
    """A model whose prompts were tokenised under a different BOS convention in run A and run B.

    ``before`` / ``after``: :func:`lmfacts.models.metadata.bos_convention` of the model in each run (the
    first ``models`` entry of that name in run.json); their measured values are not like for like.
    """

    model: str
    before: str
    after: str


@dataclass
class RunDiff:
    """Result of :func:`diff_runs`."""

    run_a: str
    run_b: str
    rel_tol: float
    outcome_changes: list[OutcomeChange] = field(default_factory=list)
    value_changes: list[ValueChange] = field(default_factory=list)
    convention_changes: list[ConventionChange] = field(default_factory=list)
    #: models run on the CPU with another number of torch threads in A and B (``before`` / ``after``: the counts)
    thread_changes: list[ConventionChange] = field(default_factory=list)

    @property
    def regressions(self) -> list[OutcomeChange]:
        """Tests that passed in A and failed or errored in B."""
        return [c for c in self.outcome_changes if c.before == "passed" and c.after in BAD_OUTCOMES]

    @property
    def added(self) -> list[OutcomeChange]:
        """Tests only in B."""
        return [c for c in self.outcome_changes if c.before is None]

    @property
    def removed(self) -> list[OutcomeChange]:
        """Tests only in A."""
        return [c for c in self.outcome_changes if c.after is None]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_float(value: Any) -> float | None:
    """Number, ``"inf"``/``"-inf"`` strings, or None (NaN is stored as null)."""
    if _is_number(value):
        return float(value)
    if value in ("inf", "-inf"):
        return float(value)
    return None


def scalar_leaves(value: Any, path: str = "", max_list: int = 3) -> Iterator[tuple[str, Any]]:
    """(key path, leaf) for every scalar in nested dicts and in lists of at most ``max_list`` items.

    Lists longer than ``max_list`` (per-layer curves and the like) are skipped.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            yield from scalar_leaves(v, f"{path}.{k}" if path else str(k), max_list)
    elif isinstance(value, list):
        if len(value) <= max_list:
            for i, v in enumerate(value):
                yield from scalar_leaves(v, f"{path}[{i}]", max_list)
    else:
        yield path, value


def relative_change(before: float | None, after: float | None) -> float:
    """``|after - before| / |before|``; inf when before is 0 and after is not, or one side is missing/inf."""
    if before is None and after is None:
        return 0.0
    if before is None or after is None:
        return math.inf
    if math.isinf(before) or math.isinf(after):
        return 0.0 if before == after else math.inf
    if before == after:
        return 0.0
    if before == 0:
        return math.inf
    return abs(after - before) / abs(before)


def _results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record_key(r): r for r in final_records(list(report.get("results") or []))}


def _bos_by_model(report: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    """Model name → (BOS prepended?, its wording), from the report's ``models`` (run.json); first entry wins."""
    from lmfacts.models.metadata import bos_convention

    out: dict[str, tuple[bool, str]] = {}
    for m in report.get("models") or []:
        if isinstance(m, dict) and m.get("name") and "prepends_bos" in m and m["name"] not in out:
            out[str(m["name"])] = (bool(m["prepends_bos"]), bos_convention(m))
    return out


def bos_convention_changes(report_a: dict[str, Any], report_b: dict[str, Any]) -> list[ConventionChange]:
    """Models in both runs whose prompts got a BOS in one run and not in the other (``--prepend-bos``)."""
    a, b = _bos_by_model(report_a), _bos_by_model(report_b)
    return [ConventionChange(name, a[name][1], b[name][1]) for name in a
            if name in b and a[name][0] != b[name][0]]


def _cpu_threads_by_model(report: dict[str, Any]) -> dict[str, int]:
    """Model name → the torch CPU threads its forward passes ran with (``models[].cpu_threads`` in run.json;
    absent for a GPU model or a run written before it was recorded); first entry wins."""
    out: dict[str, int] = {}
    for m in report.get("models") or []:
        if isinstance(m, dict) and m.get("name") and isinstance(m.get("cpu_threads"), int):
            out.setdefault(str(m["name"]), int(m["cpu_threads"]))
    return out


def cpu_thread_changes(report_a: dict[str, Any], report_b: dict[str, Any]) -> list[ConventionChange]:
    """Models in both runs computed on the CPU with a different number of torch threads (``-n`` under
    pytest-xdist gives each worker its share of the cores, another machine has other cores): torch splits its
    float sums per thread, so the same inputs give values that differ in their last digits."""
    a, b = _cpu_threads_by_model(report_a), _cpu_threads_by_model(report_b)
    return [ConventionChange(name, str(a[name]), str(b[name])) for name in a if name in b and a[name] != b[name]]


def diff_runs(report_a: dict[str, Any], report_b: dict[str, Any], rel_tol: float = 0.1) -> RunDiff:
    """Compare report dicts A (before) and B (after), matching tests by nodeid (else claim|model).

    Outcome changes include tests added or removed. For tests present in both runs, every
    scalar at the same key path of ``measured`` (lists of more than 3 items skipped) is
    compared; it is listed when its relative change exceeds ``rel_tol`` (a number turning
    into null/NaN, or leaving 0, counts as an infinite change).
    """
    if rel_tol < 0:
        raise ValueError("rel_tol must be >= 0")
    a, b = _results(report_a), _results(report_b)
    out = RunDiff(
        run_a=str((report_a.get("run") or {}).get("id", "A")),
        run_b=str((report_b.get("run") or {}).get("id", "B")),
        rel_tol=rel_tol,
        convention_changes=bos_convention_changes(report_a, report_b),
        thread_changes=cpu_thread_changes(report_a, report_b),
    )
    for key in list(a) + [k for k in b if k not in a]:
        ra, rb = a.get(key), b.get(key)
        ref = rb or ra or {}
        before = ra.get("outcome") if ra else None
        after = rb.get("outcome") if rb else None
        if before != after:
            out.outcome_changes.append(
                OutcomeChange(key, ref.get("claim"), ref.get("model"), before, after, (rb or {}).get("reason"))
            )
        if ra is None or rb is None:
            continue
        leaves_a = dict(scalar_leaves(ra.get("measured")))
        leaves_b = dict(scalar_leaves(rb.get("measured")))
        for path, va in leaves_a.items():
            if path not in leaves_b:
                continue
            vb = leaves_b[path]
            fa, fb = _as_float(va), _as_float(vb)
            if fa is None and fb is None:
                continue  # strings, bools, or null on both sides
            if (fa is None and va is not None) or (fb is None and vb is not None):
                continue  # a number against a string/bool: not comparable
            rel = relative_change(fa, fb)
            if rel > rel_tol:
                out.value_changes.append(ValueChange(key, ref.get("claim"), ref.get("model"), path, fa, fb, rel))
    return out


def _num(value: float | None) -> str:
    return "null" if value is None else fmt_number(value)


def format_diff(diff: RunDiff) -> str:
    """Human text of a RunDiff: regressions first, then other outcome changes, then moved values."""
    lines = [f"lmfacts diff {diff.run_a} -> {diff.run_b} (rel_tol={diff.rel_tol:g})"]
    if diff.convention_changes:
        lines.append(f"BOS CONVENTION DIFFERS ({len(diff.convention_changes)} model(s)): the first positions and "
                     "content-position statistics are not like for like")
        for cc in diff.convention_changes:
            lines.append(f"  [{cc.model}] {cc.before} -> {cc.after}")
    if diff.thread_changes:
        lines.append(f"CPU THREADS DIFFER ({len(diff.thread_changes)} model(s)): torch splits float sums per thread, "
                     "so measured values may differ in their last digits (about 1e-9 relative) with the same inputs")
        for cc in diff.thread_changes:
            lines.append(f"  [{cc.model}] {cc.before} -> {cc.after} threads")
    regressions = diff.regressions
    others = [c for c in diff.outcome_changes if c not in regressions]
    if regressions:
        lines.append(f"REGRESSIONS ({len(regressions)}): passed before, failing now")
        for c in regressions:
            why = f" — {c.reason}" if c.reason else ""
            lines.append(f"  {c.claim} [{c.model}] {c.before} -> {c.after}  ({c.key}){why}")
    if others:
        lines.append(f"Outcome changes ({len(others)}):")
        for c in others:
            why = f" — {c.reason}" if c.reason and c.after in UNDECIDED_OUTCOMES else ""
            lines.append(f"  {c.claim} [{c.model}] {c.before or 'absent'} -> {c.after or 'absent'}  ({c.key}){why}")
    if diff.value_changes:
        lines.append(f"Measured values that moved more than {diff.rel_tol:.0%} ({len(diff.value_changes)}):")
        for v in diff.value_changes:
            if math.isinf(v.rel_change) or v.before is None or v.after is None:
                rel = "inf"
            else:
                rel = f"{(v.after - v.before) / abs(v.before):+.1%}"
            lines.append(f"  {v.claim} [{v.model}] {v.path}: {_num(v.before)} -> {_num(v.after)} ({rel})")
    if not (regressions or others or diff.value_changes or diff.convention_changes or diff.thread_changes):
        lines.append("no changes")
    return "\n".join(lines)
