"""Markdown rendering of a report: a claims × models matrix, then per-model tables by source post.

Short enough for a GitHub job summary: lists are left out, values are rounded to 4
significant digits, long texts are cut.
"""

from __future__ import annotations

from typing import Any

from lmfacts.report.assemble import model_order
from lmfacts.report.fmt import compact, fmt_scalar
from lmfacts.report.merge import merged_from_text
from lmfacts.report.outcomes import (
    OUTCOMES,
    band_text,
    group_sort_key,
    group_title,
    model_name,
    source_group,
    symbol,
)
from lmfacts.report.replay import replay_command
from lmfacts.report.table import matrix, measured_text


def md_escape(text: Any, max_len: int | None = None) -> str:
    """Text safe inside a markdown table cell: one line, ``|`` escaped, HTML-sensitive chars as entities."""
    s = "" if text is None else str(text)
    s = " ".join(s.split())
    if max_len is not None and len(s) > max_len:
        s = s[: max_len - 1] + "…"
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _header_lines(report: dict[str, Any]) -> list[str]:
    run = report.get("run") or {}
    versions = run.get("versions") or {}
    corpus = run.get("corpus") or {}
    hyp = run.get("hypothesis") or {}
    lines = [f"# lmfacts replication report — run `{md_escape(run.get('id', '?'))}`", ""]
    facts = []
    if run.get("created_utc"):
        facts.append(f"created {md_escape(run['created_utc'])}")
    if run.get("lmfacts_version"):
        facts.append(f"lmfacts {md_escape(run['lmfacts_version'])}")
    for key in ("torch", "transformer_lens", "transformers", "python"):
        if versions.get(key):
            facts.append(f"{key} {md_escape(versions[key])}")
    profile = hyp.get("profile") or hyp.get("name")
    if profile:
        drove = "derandomized" if hyp.get("derandomize") else f"seed {hyp['seed']}" if hyp.get("seed") is not None else ""
        facts.append(f"Hypothesis profile `{md_escape(profile)}`" + (f" ({md_escape(drove)})" if drove else ""))
    if corpus.get("sha256"):
        n = f", {corpus['n_prompts']} prompts" if corpus.get("n_prompts") is not None else ""
        probed = corpus.get("n_probe_prompts")
        if probed is not None and probed != corpus.get("n_prompts"):
            n += f" ({probed} probed: --max-prompts)"
        facts.append(f"corpus `{md_escape(str(corpus['sha256'])[:12])}`{md_escape(n)}")
    if facts:
        lines += [" · ".join(facts), ""]
    merged = merged_from_text(run)
    if merged:
        lines += [f"_{md_escape(merged)}_", ""]
    counts = (report.get("summary") or {}).get("counts") or {}
    lines.append(
        "**"
        + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o))
        + "**"
        if any(counts.get(o) for o in OUTCOMES)
        else "**no results recorded**"
    )
    lines.append("")
    partial = report.get("partial")
    if isinstance(partial, dict) and partial.get("text"):
        lines += [f"> **⚠ {md_escape(partial['text'])}**", ""]
    return lines


def _matrix_lines(report: dict[str, Any]) -> list[str]:
    """The claims × models matrix: per claim its primary headline quantity and the expected band, per model
    ``value [CI] outcome`` (:func:`lmfacts.report.table.matrix`). Skip, error, inconclusive and known-finding
    reasons are footnoted; so is a cell's expectation where the models' expectations differ."""
    models, mrows = matrix(report)
    if not mrows:
        return []
    notes: list[str] = []

    def mark(note: str) -> str:
        note = md_escape(note, 400)
        if note not in notes:
            notes.append(note)
        return f"[{notes.index(note) + 1}]"

    rows = []
    for mr in mrows:
        uniform = mr.uniform
        row = [f"**{md_escape(mr.claim)}**", md_escape(mr.title, 60), md_escape(mr.quantity),
               md_escape(mr.expected if uniform else "varies by model", 80)]
        for model in models:
            cell = mr.cells.get(model)
            if cell is None:
                row.append("")
                continue
            marks = [mark(n) for n in cell.notes]
            if not uniform and cell.expected:
                marks.append(mark(f"{mr.claim} on {model}: expected {cell.expected}"))
            row.append(md_escape(cell.text) + "".join(dict.fromkeys(marks)))
        rows.append(row)
    lines = ["## Claims × models", ""]
    lines += _table(["claim", "title", "headline", "expected", *[md_escape(m) for m in models]], rows)
    legend = ", ".join(f"{symbol(o)} {o}" for o in OUTCOMES)
    lines += ["", f"<sub>{md_escape(legend)}; a cell shows the headline value [95% bootstrap CI] where "
                  f"the claim has one; – name: the premise that does not hold</sub>", ""]
    if notes:
        lines += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
        lines.append("")
    return lines


def _model_lines(report: dict[str, Any], model: str) -> list[str]:
    recs = [r for r in report.get("results") or [] if model_name(r) == model]
    if not recs:
        return []
    lines = [f"## {md_escape(model)}", ""]
    groups = sorted({source_group(r) for r in recs}, key=group_sort_key)
    for group in groups:
        lines += [f"### {md_escape(group_title(group))}", ""]
        rows = []
        for r in (r for r in recs if source_group(r) == group):
            rows.append(
                [
                    md_escape(r.get("claim")),
                    md_escape(r.get("statistic"), 80),
                    md_escape(measured_text(r, lists=False, max_fields=4), 120),
                    md_escape(compact(r.get("expected"), lists=False, max_fields=3), 80),
                    md_escape(compact(r.get("tolerance"), lists=False, max_fields=3), 60),
                    md_escape(symbol(str(r.get("outcome"))) + " " + str(r.get("outcome"))),
                    md_escape(r.get("reason"), 120),
                ]
            )
        lines += _table(["claim", "statistic", "headline (measured)", "expected", "tolerance", "outcome", "reason"],
                        rows)
        lines.append("")
    return lines


def _interval_lines(report: dict[str, Any], model: str) -> list[str]:
    """Every interval verdict on ``model`` (``record["intervals"]``): value, CI, band, resamples, verdict."""
    rows = []
    for r in report.get("results") or []:
        if model_name(r) != model:
            continue
        for name, e in (r.get("intervals") or {}).items():
            if not isinstance(e, dict):
                continue
            ci = e.get("ci") or [None, None]
            level = e.get("level")
            rows.append([md_escape(r.get("claim")), md_escape(name), md_escape(fmt_scalar(e.get("value"), 5)),
                         md_escape(f"[{fmt_scalar(ci[0], 5)}, {fmt_scalar(ci[1], 5)}]"),
                         md_escape(f"{100 * level:g}%" if isinstance(level, (int, float)) else level),
                         md_escape(band_text(e.get("band"), bool(e.get("closed")))), md_escape(e.get("n_resamples")),
                         md_escape(e.get("method")),
                         md_escape(symbol(str(e.get("verdict"))) + " " + str(e.get("verdict")))])
    if not rows:
        return []
    return ["### Interval verdicts (bootstrap CI over prompts vs the expected band)", "",
            *_table(["claim", "statistic", "value", "CI", "level", "band", "resamples", "method", "verdict"], rows),
            ""]


def _premise_lines(report: dict[str, Any], model: str) -> list[str]:
    """Each premise evaluated on ``model`` (first evaluation per premise and processing), with its evidence."""
    seen: dict[tuple[str, str], list[str]] = {}
    for r in report.get("results") or []:
        if model_name(r) != model:
            continue
        for p in r.get("premises") or []:
            key = (str(p.get("name")), str(r.get("processing")))
            if key not in seen:
                seen[key] = [md_escape(p.get("name")), md_escape(r.get("processing")),
                             "holds" if p.get("holds") else "**does not hold**", md_escape(p.get("evidence"), 400)]
    if not seen:
        return []
    return ["### Premises (checked on the model before the claims that rest on them)", "",
            *_table(["premise", "weights", "verdict", "evidence"], list(seen.values())), ""]


def _param_value(value: Any) -> str:
    """One parameter value for a table cell: scalars rounded, lists / tables summarised."""
    return fmt_scalar(value) if not isinstance(value, (list, dict)) else compact(value, max_fields=4, max_list=4)


def _param_lines(report: dict[str, Any], model: str) -> list[str]:
    """Each parameter a claim ran with on ``model`` (record ``params``): value, unit and where it came from.

    Optional parameters left unset (value ``null``) are counted, not listed, to keep the summary short.
    """
    rows, unset = [], 0
    for r in report.get("results") or []:
        if model_name(r) != model:
            continue
        for name, p in sorted((r.get("params") or {}).items()):
            if not isinstance(p, dict):
                continue
            if p.get("value") is None:
                unset += 1
                continue
            rows.append([md_escape(r.get("claim")), md_escape(name), md_escape(_param_value(p.get("value")), 80),
                         md_escape(p.get("unit")), md_escape(p.get("origin"), 120)])
    if not rows:
        return []
    note = [f"{unset} optional parameters left unset (the claim computes its own, e.g. a window from the depth).", ""]
    return ["### Parameters (value and where it came from: the claim's declared default or an expectation entry)",
            "", *_table(["claim", "parameter", "value", "unit", "origin"], rows), "", *(note if unset else [])]


def _witness_lines(report: dict[str, Any], model: str) -> list[str]:
    """Each counterexample found on ``model`` (a failing per-prompt claim's witness) with its replay command."""
    lines = []
    for r in report.get("results") or []:
        w = r.get("witness")
        if model_name(r) != model or not isinstance(w, dict) or r.get("outcome") not in ("failed", "xpassed"):
            continue
        replay = replay_command(report.get("run"), r)
        code = " ".join(replay.split()).replace("`", "'") if replay else None  # a code span shows its text as is
        lines.append(f"- **{md_escape(r.get('claim'))}**: \"{md_escape(w.get('text'), 160)}\""
                     + (f" — replay: `{code}`" if code else ""))
    return ["### Witnesses", "", *lines, ""] if lines else []


def _baseline_lines(report: dict[str, Any]) -> list[str]:
    """Every result compared with (or not comparable to) its model's recorded baseline (``record["baseline"]``):
    known findings with their numbers, results the baseline turned red, and why a baseline was not compared."""
    rows = []
    for r in report.get("results") or []:
        b = r.get("baseline")
        if not isinstance(b, dict) or not b.get("outcome"):
            continue
        values = "; ".join(
            f"{k} {fmt_scalar(v.get('today'), 5)} (recorded {fmt_scalar(v.get('recorded'), 5)} ± "
            f"{fmt_scalar(v.get('tol'), 2)})" for k, v in (b.get("values") or {}).items() if isinstance(v, dict))
        rows.append([md_escape(r.get("claim")), md_escape(model_name(r)),
                     md_escape(symbol(str(r.get("outcome"))) + " " + str(r.get("outcome"))),
                     md_escape(b.get("verdict") or b.get("status"), 80), md_escape(b.get("reason") or "", 200),
                     md_escape(values, 300)])
    if not rows:
        return []
    return ["## Recorded baselines (known findings and guarded headline values)", "",
            *_table(["claim", "model", "outcome", "baseline verdict", "recorded finding",
                     "headline today (recorded ± tol)"], rows), ""]


def _conditions_lines(report: dict[str, Any]) -> list[str]:
    """## Models: how each model was loaded, and the notes of its loading and probing
    (:func:`lmfacts.report.conditions.model_conditions`)."""
    from lmfacts.report.conditions import FACT_FIELDS, model_conditions

    conds = model_conditions(report)
    if not conds:
        return []
    lines = ["## Models", ""]
    lines += _table(["model", *FACT_FIELDS], [[md_escape(c.name), *(md_escape(c.facts[f]) for f in FACT_FIELDS)]
                                              for c in conds])
    for c in conds:
        if c.notes:
            lines += ["", f"Notes on {md_escape(c.name)}:", *(f"- {md_escape(n, 600)}" for n in c.notes)]
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """The whole markdown report for a report dict (see module doc)."""
    from lmfacts.report.trajectory import trajectory_markdown

    lines = (_header_lines(report) + _matrix_lines(report) + _conditions_lines(report) + _baseline_lines(report)
             + trajectory_markdown(report))
    for model in model_order(report):
        lines += (_model_lines(report, model) + _interval_lines(report, model) + _witness_lines(report, model)
                  + _premise_lines(report, model) + _param_lines(report, model))
    return "\n".join(lines).rstrip() + "\n"
