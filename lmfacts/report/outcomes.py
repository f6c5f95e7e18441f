"""Outcome vocabulary, claim ordering and grouping by source post, shared by all renderers."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# "inconclusive": an interval verdict whose CI straddles a band edge (ctx.interval); shown by pytest as a
# skip whose reason starts with "inconclusive:", never counted as a pass.
OUTCOMES: tuple[str, ...] = ("passed", "failed", "inconclusive", "skipped", "xfailed", "xpassed", "error")

# Worst first: the order in which a matrix cell lists the outcomes of several tests.
SEVERITY: tuple[str, ...] = ("error", "failed", "xpassed", "inconclusive", "passed", "xfailed", "skipped")

SYMBOLS: dict[str, str] = {
    "passed": "✓",
    "failed": "✗",
    "inconclusive": "?",
    "xfailed": "xfail",
    "xpassed": "XPASS",
    "skipped": "–",
    "error": "E",
}

ASCII_SYMBOLS: dict[str, str] = {
    "passed": "ok",
    "failed": "FAIL",
    "inconclusive": "?",
    "xfailed": "xfail",
    "xpassed": "XPASS",
    "skipped": "-",
    "error": "E",
}

GROUP_TITLES: dict[str, str] = {
    "RN": "Residual norms grow exponentially (RN)",
    "BF": "Basic facts about LM internals (BF)",
    "RS": "Residual streams: privileged basis (RS)",
    "MA": "Massive activations (MA)",
    "AS": "Attention sinks (AS)",
    "LL": "Logit lens (LL)",
}
GROUP_ORDER: tuple[str, ...] = ("RN", "BF", "RS", "MA", "AS", "LL")
OTHER_GROUP = "other"

NO_MODEL = "(no model)"

_CLAIM_RE = re.compile(r"^([A-Za-z]+)-?(\d+)?(.*)$")


def known_finding(record: dict) -> bool:
    """True for an xfailed result that its model's recorded baseline marks as a known finding
    (``record["baseline"]["verdict"] == "known finding"``, :mod:`lmfacts.baselines.guard`)."""
    b = record.get("baseline")
    return record.get("outcome") == "xfailed" and isinstance(b, dict) and b.get("verdict") == "known finding"


def symbol(outcome: str, *, ascii_only: bool = False) -> str:
    """Short mark for an outcome (unknown outcomes are shown as themselves)."""
    table = ASCII_SYMBOLS if ascii_only else SYMBOLS
    return table.get(outcome, outcome)


def severity_rank(outcome: str) -> int:
    """Position of ``outcome`` in :data:`SEVERITY` (unknown outcomes sort after all known ones)."""
    return SEVERITY.index(outcome) if outcome in SEVERITY else len(SEVERITY)


def claim_sort_key(claim: str) -> tuple[int, str, int, str]:
    """Order claims RN, BF, RS, then others; numerically within a prefix (RN-2 before RN-10)."""
    m = _CLAIM_RE.match(claim or "")
    if not m:
        return (len(GROUP_ORDER) + 1, claim or "", 0, "")
    prefix, num, rest = m.group(1).upper(), m.group(2), m.group(3)
    rank = GROUP_ORDER.index(prefix) if prefix in GROUP_ORDER else len(GROUP_ORDER)
    return (rank, prefix, int(num) if num else -1, rest)


def source_group(record: dict) -> str:
    """The source post of a record: the RN/BF/RS prefix of ``source``, else of ``claim``, else ``other``."""
    for text in (record.get("source"), record.get("claim")):
        if isinstance(text, str):
            m = re.match(r"\s*([A-Za-z]+)", text)
            if m and m.group(1).upper() in GROUP_TITLES:
                return m.group(1).upper()
    return OTHER_GROUP


def group_title(group: str) -> str:
    """Human heading for a source group."""
    return GROUP_TITLES.get(group, "Other claims")


def group_sort_key(group: str) -> int:
    """Order of source groups: RN, BF, RS, other."""
    return GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)


def model_name(record: dict) -> str:
    """The record's model, or :data:`NO_MODEL` for model-free tests."""
    name = record.get("model")
    return str(name) if name not in (None, "") else NO_MODEL


def cell_outcomes(outcomes: Iterable[str]) -> list[tuple[str, int]]:
    """Distinct outcomes with counts, worst first (for one claim × model cell)."""
    counts = Counter(outcomes)
    return sorted(counts.items(), key=lambda kv: severity_rank(kv[0]))


def cell_text(outcomes: Iterable[str], *, ascii_only: bool = False) -> str:
    """Compact text of a cell: ``✓``, ``✗ ✓×2`` (worst first, counts above one)."""
    parts = []
    for outcome, n in cell_outcomes(outcomes):
        mark = symbol(outcome, ascii_only=ascii_only)
        parts.append(f"{mark}x{n}" if ascii_only and n > 1 else f"{mark}×{n}" if n > 1 else mark)
    return " ".join(parts)


def _num(value: object) -> str:
    from lmfacts.report.fmt import fmt_number

    return "null" if value is None else fmt_number(value, 5) if isinstance(value, (int, float)) else str(value)


def band_text(band: object, closed: bool = False) -> str:
    """A band ``[lo, hi]`` as text (None = open side): open ``> lo``, ``< hi`` or ``(lo, hi)``; ``closed``
    ``≥ lo``, ``≤ hi`` or ``[lo, hi]``."""
    lo, hi = (list(band) + [None, None])[:2] if isinstance(band, (list, tuple)) else (None, None)
    if lo is None and hi is None:
        return "(no band)"
    if hi is None:
        return f"{'≥' if closed else '>'} {_num(lo)}"
    if lo is None:
        return f"{'≤' if closed else '<'} {_num(hi)}"
    return f"[{_num(lo)}, {_num(hi)}]" if closed else f"({_num(lo)}, {_num(hi)})"


def interval_text(name: str, entry: dict) -> str:
    """One interval verdict of ``record["intervals"]`` as text.

    ``rate 1.0512, 95% CI [1.038, 1.062] (2000 resamples, percentile) vs (1.04, 1.08): inconclusive``.
    """
    ci = entry.get("ci") or [None, None]
    level = entry.get("level")
    pct = f"{_num(100 * level)}% " if isinstance(level, (int, float)) else ""
    return (f"{name} {_num(entry.get('value'))}, {pct}CI [{_num(ci[0])}, {_num(ci[1])}] "
            f"({entry.get('n_resamples')} resamples, {entry.get('method')}) vs {band_text(entry.get('band'), bool(entry.get('closed')))}: "
            f"{entry.get('verdict')}")
