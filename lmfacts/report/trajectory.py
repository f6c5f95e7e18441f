"""Checkpoint trajectories: each claim's headline values against training step, and its emergence step.

A checkpoint sweep (``--revision step1000 --revision step2000 …`` on a hub model, or ``--model
ckpts/step-*`` over local checkpoint directories) gives records whose ``checkpoint`` field
(:meth:`lmfacts.options.Target.checkpoint`) places the model in a *family* at a training *step*.
For every (family, device) measured at two or more steps and every claim, this module lists:

* the claim's headline values (``record["headline"]`` keys read from ``record["measured"]``,
  :func:`lmfacts.claims.headline_value`) and its outcome at each step, in step order;
* whether the claim *holds* at each step: its own outcome before any baseline guard
  (``record["baseline"]["raw_outcome"]`` where a baseline judged it, else ``outcome``) is
  ``passed`` or ``xpassed`` (a documented exception whose predicate now holds). ``failed`` /
  ``xfailed`` do not hold; ``skipped``, ``inconclusive`` and ``error`` are undecided, and also break
  a run of holding steps (nothing is claimed where nothing was judged);
* the **emergence step**: the first step from which the claim holds at every later measured step
  (None when it does not hold at the last step). A claim that holds at the first step "holds from
  the first checkpoint": its emergence lies at or before it.

Markdown and HTML renderers call :func:`trajectory_markdown` / :func:`trajectory_html` (one call
each); both return "" for a run without a sweep, so ordinary reports are unchanged. Pure Python
(matplotlib only when the HTML figures are drawn).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from lmfacts.report.outcomes import claim_sort_key, symbol

__all__ = ["emergence_step", "holds", "trajectories", "trajectory_figure", "trajectory_html",
           "trajectory_markdown"]

#: outcomes (before the baseline guard) at which a claim's predicate holds
HOLDING = ("passed", "xpassed")
#: outcomes at which it was judged and does not hold; the rest (skipped, inconclusive, error) are undecided
NOT_HOLDING = ("failed", "xfailed")


def holds(record: dict[str, Any]) -> bool | None:
    """True / False when the record's claim holds / does not hold at its step, None when undecided.

    Reads the claim's own outcome (``baseline.raw_outcome`` when a recorded baseline judged the record,
    so a known finding guarded as ``xfailed`` counts as not holding and a pass turned red by a moved
    baseline value still counts as holding). Raises nothing; an unknown outcome is undecided.
    """
    b = record.get("baseline")
    raw = b.get("raw_outcome") if isinstance(b, dict) and b.get("raw_outcome") else record.get("outcome")
    if raw in HOLDING:
        return True
    if raw in NOT_HOLDING:
        return False
    return None


def emergence_step(points: list[tuple[int, bool | None]]) -> int | None:
    """The first step from which the claim holds at every later step; None if it fails at the last.

    ``points`` are (step, holds) pairs in any order (:func:`holds`: None = undecided, which breaks a
    run). Several points at one step must all hold. Returns None for an empty list.
    """
    by_step: dict[int, bool] = {}
    for step, h in points:
        by_step[step] = by_step.get(step, True) and h is True
    first: int | None = None
    for step in sorted(by_step, reverse=True):
        if not by_step[step]:
            break
        first = step
    return first


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    return float(v) if math.isfinite(float(v)) else None


def _headline(record: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, list[float | None]]]:
    """The record's declared headline values and the expected band of each one an interval verdict judged,
    paired by the matrix's rule (:func:`lmfacts.report.table.headline_quantities`)."""
    from lmfacts.report.table import headline_quantities  # table → assemble → this module: import late

    values: dict[str, float | None] = {}
    bands: dict[str, list[float | None]] = {}
    if not record.get("headline"):
        return values, bands
    for q in headline_quantities(record):
        values[q.name] = _finite(q.value)
        if q.band is not None:
            bands[q.name] = [_finite(q.band[0]), _finite(q.band[1])]
    return values, bands


def trajectories(report_or_results: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (family, device, claim) measured at ≥ 2 distinct steps, in family, claim order.

    Each entry: ``{"family", "device", "claim", "title", "keys": [headline keys], "points": [{"step",
    "model", "revision", "outcome", "holds", "values": {key: float | None}, "band": {key: [lo, hi]}}]
    (by step), "emergence_step": int | None, "holds_from_first": bool}``. Records without a
    ``checkpoint`` (not part of a sweep) are ignored. ``report_or_results`` is a report dict (its
    ``results``) or the list of records itself.
    """
    results = (report_or_results.get("results") or []) if isinstance(report_or_results, dict) \
        else report_or_results
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        cp = r.get("checkpoint")
        if not isinstance(cp, dict) or not isinstance(cp.get("step"), int) or not r.get("claim"):
            continue
        groups.setdefault((str(cp.get("family")), str(r.get("device")), str(r["claim"])), []).append(r)
    out: list[dict[str, Any]] = []
    for (family, device, claim), recs in groups.items():
        recs = sorted(recs, key=lambda r: (r["checkpoint"]["step"], str(r.get("model"))))
        if len({r["checkpoint"]["step"] for r in recs}) < 2:
            continue
        keys: list[str] = []
        for r in recs:
            keys += [str(k) for k in r.get("headline") or [] if str(k) not in keys]
        points = []
        for r in recs:
            values, band = _headline(r)
            points.append({"step": r["checkpoint"]["step"], "model": r.get("model"),
                           "revision": r["checkpoint"].get("revision"), "outcome": r.get("outcome"),
                           "holds": holds(r), "values": values, "band": band})
        first = emergence_step([(p["step"], p["holds"]) for p in points])
        out.append({"family": family, "device": device, "claim": claim, "title": recs[0].get("title") or "",
                    "keys": keys, "points": points, "emergence_step": first,
                    "holds_from_first": first is not None and first == points[0]["step"]})
    out.sort(key=lambda t: (t["family"], t["device"], claim_sort_key(t["claim"])))
    return out


def _emergence_text(t: dict[str, Any]) -> str:
    if t["emergence_step"] is None:
        return "does not hold at the last step"
    if t["holds_from_first"]:
        return f"≤ {t['emergence_step']} (holds from the first checkpoint)"
    return str(t["emergence_step"])


def _cell(p: dict[str, Any], key: str | None) -> str:
    from lmfacts.report.fmt import fmt_scalar

    value = "" if key is None else fmt_scalar(p["values"].get(key), 5) if p["values"].get(key) is not None else "–"
    return f"{value} {symbol(str(p['outcome']))}".strip()


def _group_title(t: dict[str, Any], several_devices: bool) -> str:
    return t["family"] + (f" ({t['device']})" if several_devices else "")


def _steps(ts: list[dict[str, Any]]) -> list[int]:
    return sorted({p["step"] for t in ts for p in t["points"]})


def _rows(ts: list[dict[str, Any]], steps: list[int]) -> list[tuple[str, str, list[str], str]]:
    """(claim, headline key, one cell per step, emergence text) for each claim × headline key."""
    rows = []
    for t in ts:
        for key in t["keys"] or [None]:
            cells = []
            for s in steps:
                at = [p for p in t["points"] if p["step"] == s]
                cells.append(" / ".join(_cell(p, key) for p in at))
            rows.append((t["claim"], key or "", cells, _emergence_text(t)))
    return rows


def _families(report: dict[str, Any]) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], bool]:
    ts = trajectories(report)
    fams: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in ts:
        fams.setdefault((t["family"], t["device"]), []).append(t)
    return fams, len({t["device"] for t in ts}) > 1


INTRO = ("Each claim's headline values against training step (checkpoints of one model family; "
         "✓ = the claim holds at that step). Emergence step: the first step from which the claim holds at "
         "every later measured step (a skip, inconclusive or error breaks the run).")


def trajectory_markdown(report: dict[str, Any]) -> list[str]:
    """Markdown lines of the trajectory section (empty list for a report without a sweep)."""
    from lmfacts.report.markdown import md_escape

    fams, several = _families(report)
    if not fams:
        return []
    lines = ["## Checkpoint trajectories", "", INTRO, ""]
    for ts in fams.values():
        steps = _steps(ts)
        lines += [f"### {md_escape(_group_title(ts[0], several))}", ""]
        rows = [[f"**{md_escape(c)}**", md_escape(k), *[md_escape(x) for x in cells], md_escape(e)]
                for c, k, cells, e in _rows(ts, steps)]
        header = ["claim", "headline", *[f"step {s}" for s in steps], "emerges at step"]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return lines


def trajectory_figure(t: dict[str, Any]) -> dict[str, Any]:
    """The FIGURE spec (:mod:`lmfacts.report.figures`) of one trajectory: each headline value against
    step, the steps where the claim holds marked, the expected band of an interval verdict, and the
    steps from the emergence step on shaded."""
    steps = [p["step"] for p in t["points"]]
    series: list[dict[str, Any]] = []
    for key in t["keys"]:
        series.append({"label": key, "x": steps, "y": [p["values"].get(key) for p in t["points"]], "style": "line"})
        bands = [p["band"].get(key) for p in t["points"] if p["band"].get(key)]
        if bands:
            lo, hi = bands[-1]
            if lo is not None and hi is not None:
                series.append({"label": f"expected {key} band", "x": steps, "y": [lo] * len(steps),
                               "y2": [hi] * len(steps), "style": "band"})
            for edge, name in ((lo, "min"), (hi, "max")):
                if edge is not None and (lo is None or hi is None):
                    series.append({"label": f"expected {key} {name}", "x": steps, "y": [edge] * len(steps),
                                   "style": "dashed"})
        held = [(p["step"], p["values"].get(key)) for p in t["points"] if p["holds"]]
        if held:
            series.append({"label": "claim holds", "x": [s for s, _ in held], "y": [v for _, v in held],
                           "style": "points"})
    vspans = []
    if t["emergence_step"] is not None:
        vspans.append({"lo": t["emergence_step"], "hi": steps[-1], "label": f"holds from step {t['emergence_step']}"})
    positive = all(s > 0 for s in steps)
    return {"id": f"trajectory-{t['claim']}", "title": f"{t['claim']} on {t['family']} against training step",
            "xlabel": "training step", "ylabel": ", ".join(t["keys"]) or "headline",
            "logx": positive and len(steps) > 2 and steps[-1] / max(steps[0], 1) >= 100, "logy": False,
            "series": series, "vspans": vspans}


def trajectory_html(report: dict[str, Any]) -> str:
    """The HTML trajectory section: per family a table and one plot per claim ("" without a sweep)."""
    from lmfacts.report.figures import figure_data_uri
    from lmfacts.report.html import anchor, esc

    def figure(spec: dict[str, Any]) -> str:
        try:
            return f'<figure><img alt="{esc(spec["title"])}" src="{figure_data_uri(spec)}"></figure>'
        except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn must not lose the report
            return f'<figure><div class="figerr">{esc(spec["title"])} could not be drawn: {esc(exc)}</div></figure>'

    fams, several = _families(report)
    if not fams:
        return ""
    out = [f'<h2 id="trajectories">Checkpoint trajectories</h2><p class="small muted">{esc(INTRO)}</p>']
    for ts in fams.values():
        steps = _steps(ts)
        title = _group_title(ts[0], several)
        head = "<th>claim</th><th>headline</th>" + "".join(f"<th>step {s}</th>" for s in steps) \
            + "<th>emerges at step</th>"
        rows = "".join(f"<tr><td><b>{esc(c)}</b></td><td>{esc(k)}</td>"
                       + "".join(f'<td class="measured">{esc(x)}</td>' for x in cells)
                       + f"<td>{esc(e)}</td></tr>" for c, k, cells, e in _rows(ts, steps))
        figs = "".join(figure(trajectory_figure(t)) for t in ts if t["keys"])
        out.append(f'<h3 id="{anchor("trajectory", title)}">{esc(title)}</h3><table><tr>{head}</tr>{rows}</table>'
                   + (f'<div class="figs">{figs}</div>' if figs else ""))
    return "".join(out)
