"""Compact claim × model verdict table for the end of a pytest run."""

from __future__ import annotations

from typing import Any

from lmfacts.report.assemble import claim_order, model_order
from lmfacts.report.outcomes import OUTCOMES, cell_text, model_name


def terminal_summary_lines(report: dict[str, Any], *, ascii_only: bool = False, max_width: int = 24) -> list[str]:
    """Lines of a fixed-width table: one row per claim, one column per model, then outcome counts.

    ``ascii_only`` uses ``ok``/``FAIL`` instead of ``✓``/``✗`` for terminals without UTF-8;
    model names longer than ``max_width`` are cut. Inconclusive results (``?``) are listed after the
    table with their reasons (the value, CI and band edge).
    """
    run_id = (report.get("run") or {}).get("id", "?")
    counts = (report.get("summary") or {}).get("counts") or {}
    total = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o)) or "no results"
    lines = [f"lmfacts run {run_id}: {total}"]
    partial = report.get("partial")
    if isinstance(partial, dict) and partial.get("text"):
        lines.append(str(partial["text"]))
    claims = claim_order(report)
    if not claims:
        return lines
    models = model_order(report)
    cells: dict[tuple[str, str], list[str]] = {}
    for r in report.get("results") or []:
        cells.setdefault((str(r.get("claim") or "?"), model_name(r)), []).append(str(r.get("outcome")))
    headers = [m if len(m) <= max_width else m[: max_width - 1] + "…" for m in models]
    table = [
        [claim] + [cell_text(cells.get((claim, m), []), ascii_only=ascii_only) for m in models] for claim in claims
    ]
    widths = [max(len("claim"), *(len(row[0]) for row in table))]
    widths += [max(len(h), *(len(row[i + 1]) for row in table)) for i, h in enumerate(headers)]

    def fmt(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    lines.append(fmt(["claim", *headers]))
    lines.append(fmt(["-" * w for w in widths]))
    lines += [fmt(row) for row in table]
    undecided = [r for r in report.get("results") or [] if r.get("outcome") == "inconclusive"]
    if undecided:
        lines.append(f"? inconclusive (CI straddles a band edge; not a pass): {len(undecided)}")
        lines += [f"  {r.get('claim')} [{model_name(r)}]: {r.get('reason')}" for r in undecided]
    return lines + baseline_summary_lines(report)


#: Baseline verdicts (record["baseline"]["verdict"], lmfacts.baselines.guard) that turned a result red.
BASELINE_CHANGES = ("known finding no longer holds", "known finding moved past its tolerance",
                    "left its baseline tolerance", "not measured")


def baseline_summary_lines(report: dict[str, Any]) -> list[str]:
    """What the recorded baselines said: the number of known findings (xfailed), every result the baseline
    guard turned red with its old and new values, and how many baselines could not be compared (why)."""
    results = [r for r in report.get("results") or [] if isinstance(r.get("baseline"), dict)]
    if not results:
        return []
    known = [r for r in results if r.get("outcome") == "xfailed" and r["baseline"].get("verdict") == "known finding"]
    per_model: dict[str, int] = {}
    for r in known:
        per_model[model_name(r)] = per_model.get(model_name(r), 0) + 1
    detail = ", ".join(f"{n} on {m}" for m, n in per_model.items())
    lines = [f"{len(known)} known findings (xfailed{': ' + detail if detail else ''}) — see report"]
    changed = [r for r in results if r["baseline"].get("verdict") in BASELINE_CHANGES]
    if changed:
        lines.append(f"{len(changed)} results changed against their baseline:")
        lines += [f"  {r.get('claim')} [{model_name(r)}] {r.get('outcome')}: {r.get('reason')}" for r in changed]
    not_compared: dict[str, int] = {}
    for r in results:
        status = str(r["baseline"].get("status") or "")
        if status.startswith("not compared") and r["baseline"].get("outcome"):
            not_compared[status] = not_compared.get(status, 0) + 1
    lines += [f"baseline {status} ({n} claims)" for status, n in not_compared.items()]
    return lines
