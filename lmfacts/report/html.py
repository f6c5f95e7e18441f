"""Self-contained HTML rendering of a report (inline CSS, figures as base64 PNG, no JS, no external assets).

Every piece of text from the run (prompts, witnesses, model names, reasons, titles) goes
through :func:`esc`, so a witness like ``<script>`` shows as text.
"""

from __future__ import annotations

import html
import json
import logging
import re
from typing import Any

from lmfacts.report.assemble import model_order
from lmfacts.report.figures import figure_data_uri
from lmfacts.report.fmt import compact, fmt_scalar
from lmfacts.report.merge import merged_from_text
from lmfacts.report.outcomes import (
    OUTCOMES,
    group_sort_key,
    group_title,
    interval_text,
    model_name,
    source_group,
    symbol,
)
from lmfacts.report.replay import replay_command
from lmfacts.report.table import headline_summary, lead_sentence, matrix, measured_text

log = logging.getLogger(__name__)

CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--bg:#f7f9fb;--pass:#e3f4e8;--passfg:#1e7b3a;
--fail:#fde4e4;--failfg:#b42318;--skip:#eef0f3;--skipfg:#52606d;--xfail:#fff4d6;--xfailfg:#8a5a00;
--xpass:#fbe3f3;--xpassfg:#9c1c74;--err:#f9d7d7;--errfg:#7a0f0f;--inc:#e6effa;--incfg:#1f4e8c}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);
margin:0;background:var(--bg)}
main{max-width:1320px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;
border-bottom:2px solid var(--line)}h3{font-size:15px;margin:22px 0 8px;color:#334e68}
.sub{color:var(--muted);margin:0 0 16px}
code,pre,.mono{font-family:"SFMono-Regular",Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px;margin:12px 0}
.box{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.box h4{margin:0 0 6px;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);width:100%}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8;font-weight:600;font-size:12.5px}
table.matrix{width:auto;min-width:50%}table.matrix td.cell{text-align:right;white-space:nowrap;min-width:90px;
font-variant-numeric:tabular-nums}table.matrix td.cell a{color:inherit}
table.matrix .val{font-weight:600}table.matrix .ci{font-size:11.5px;opacity:.8}table.matrix .mk{display:inline-block;
min-width:1.2em;text-align:left;font-weight:700}table.matrix td.title{color:var(--muted);font-size:12.5px;max-width:260px}
table.matrix td.q{font-size:12px;overflow-wrap:anywhere;max-width:200px}
table.matrix td.exp{font-size:12px;max-width:240px;overflow-wrap:anywhere}
table.matrix td.o-skipped .mk{font-weight:400;font-size:12px}
p.lead{margin:6px 0 2px;font-size:14px}.record.short{padding:6px 14px}.record.short p.lead{font-size:13px;color:var(--muted)}
.o-passed{background:var(--pass);color:var(--passfg)}.o-failed{background:var(--fail);color:var(--failfg);font-weight:600}
.o-skipped{background:var(--skip);color:var(--skipfg)}.o-xfailed{background:var(--xfail);color:var(--xfailfg)}
.o-xpassed{background:var(--xpass);color:var(--xpassfg);font-weight:600}.o-inconclusive{background:var(--inc);color:var(--incfg);font-weight:600}.o-error{background:var(--err);color:var(--errfg);font-weight:700}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.chips{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0 4px}.chips .badge{font-size:13px;padding:3px 10px}
td.measured{font-family:"SFMono-Regular",Menlo,Consolas,monospace;font-size:12px;max-width:380px;word-break:break-word}
.muted{color:var(--muted)}.small{font-size:12px}
nav{margin:12px 0}nav a{margin-right:14px}
a{color:#1f5fa8;text-decoration:none}a:hover{text-decoration:underline}
.record{background:#fff;border:1px solid var(--line);border-left:4px solid var(--line);border-radius:6px;
padding:10px 14px;margin:12px 0}
.record.o-passed,.record.o-failed,.record.o-skipped,.record.o-xfailed,.record.o-xpassed,.record.o-error,.record.o-inconclusive{background:#fff;color:var(--fg);font-weight:400}
.record.o-passed{border-left-color:var(--passfg)}.record.o-failed{border-left-color:var(--failfg)}
.record.o-xfailed{border-left-color:#e9a23b}.record.o-xpassed{border-left-color:var(--xpassfg)}
.record.o-error{border-left-color:var(--errfg)}.record.o-inconclusive{border-left-color:var(--incfg)}
.record header{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.record header b{font-size:14.5px}
.rbody{display:flex;flex-wrap:wrap;gap:14px;margin-top:6px;align-items:flex-start}
.facts{flex:1 1 380px;min-width:320px}.wbox{margin-top:8px}.wbox h4{margin:0 0 4px;font-size:12px;
text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
td.claim{white-space:nowrap}
.facts.wide dl.kv{grid-template-columns:max-content minmax(0,1fr) max-content minmax(0,1fr)}
.figs{display:flex;flex-wrap:wrap;gap:10px;flex:0 1 auto}
.figs figure{margin:0;border:1px solid var(--line);border-radius:4px;background:#fff}
.figs img{display:block;width:540px;max-width:100%;height:auto}
.figerr{padding:10px;color:var(--failfg);width:300px}
pre.witness{background:#fffbea;border:1px solid #f0d78c;border-radius:4px;padding:8px;white-space:pre-wrap;
word-break:break-word;margin:4px 0}
.tok{display:inline-block;background:#eef2f7;border:1px solid var(--line);border-radius:3px;padding:0 3px;
margin:1px;font-family:monospace;font-size:12px;white-space:pre}
details{margin-top:6px}summary{cursor:pointer;color:var(--muted);font-size:12px}
pre.json{background:#f5f7fa;border:1px solid var(--line);padding:8px;overflow-x:auto;max-height:360px;margin:4px 0}
ol.notes{font-size:12.5px;color:var(--muted)}
"""


def esc(value: Any) -> str:
    """HTML-escaped text of any value (None gives an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def anchor(*parts: Any) -> str:
    """A safe element id made of ``parts``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(str(p) for p in parts)).strip("-").lower() or "x"


def _badge(outcome: str) -> str:
    return f'<span class="badge o-{esc(outcome)}">{esc(symbol(outcome))} {esc(outcome)}</span>'


def _kv(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, ""))
    return f'<dl class="kv">{rows}</dl>' if rows else '<p class="muted">–</p>'


def _json_block(value: Any, max_chars: int = 6000) -> str:
    text = json.dumps(value, indent=1, ensure_ascii=False)
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n… ({len(text) - max_chars} more characters)"
    return f'<pre class="json">{esc(text)}</pre>'


#: Hypothesis settings shown in the run box; the rest (the replay command, its arguments) stays in report.json
#: and each witness shows its own replay command.
HYPOTHESIS_SHOWN = ("profile", "name", "max_examples", "derandomize", "seed", "deadline")


def _header(report: dict[str, Any]) -> str:
    """The title, the outcome counts and the model links (what sits above the matrix)."""
    run = report.get("run") or {}
    counts = (report.get("summary") or {}).get("counts") or {}
    chips = "".join(
        f'<span class="badge o-{esc(o)}">{esc(counts[o])} {esc(o)}</span>' for o in OUTCOMES if counts.get(o)
    ) or '<span class="badge o-skipped">no results recorded</span>'
    nav = "".join(f'<a href="#{anchor("model", m)}">{esc(m)}</a>' for m in model_order(report))
    merged = merged_from_text(run)
    return (
        f"<h1>lmfacts replication report</h1>"
        f'<p class="sub">run <code>{esc(run.get("id", "?"))}</code>'
        + (f' · {esc(run.get("created_utc"))}' if run.get("created_utc") else "")
        + (f' · <code>{esc(run.get("command"))}</code>' if run.get("command") else "")
        + (f" · {esc(merged)}" if merged else "")
        + f'</p><div class="chips">{chips}</div>'
        + (f'<p class="partial"><b>⚠ {esc(report["partial"]["text"])}</b></p>'
           if isinstance(report.get("partial"), dict) and report["partial"].get("text") else "")
        + (f"<nav>Models: {nav} · <a href=\"#run\">run details</a></nav>" if nav else "")
    )


def _run_boxes(report: dict[str, Any]) -> str:
    """The run, versions, corpus / Hypothesis and options boxes (options left unset are not listed)."""
    run = report.get("run") or {}
    versions = run.get("versions") or {}
    corpus = run.get("corpus") or {}
    hyp = run.get("hypothesis") or {}
    run_box = _kv(
        [
            ("run id", f"<code>{esc(run.get('id'))}</code>"),
            ("created (UTC)", esc(run.get("created_utc"))),
            ("lmfacts", esc(run.get("lmfacts_version"))),
            ("command", f"<code>{esc(run.get('command'))}</code>" if run.get("command") else None),
            ("devices", esc(", ".join(map(str, run.get("devices") or [])))),
        ]
    )
    ver_box = _kv([(k, f"<code>{esc(v)}</code>") for k, v in versions.items()])
    data_box = _kv(
        [("corpus", esc(corpus.get("source"))),
         ("sha256", f'<code class="small">{esc(corpus.get("sha256"))}</code>' if corpus.get("sha256") else None),
         ("prompts", esc(corpus.get("n_prompts"))),
         ("probed prompts", esc(corpus.get("n_probe_prompts"))
          if corpus.get("n_probe_prompts") not in (None, corpus.get("n_prompts")) else None)]
        + [("Hypothesis profile" if k in ("profile", "name") else f"hypothesis {k}", esc(v)) for k, v in hyp.items()
           if k in HYPOTHESIS_SHOWN]
    )
    opts = run.get("options") or {}
    opt_box = _kv([(k, esc(fmt_scalar(v, max_str=80) if not isinstance(v, (list, dict)) else json.dumps(v)))
                   for k, v in opts.items() if v not in (None, [], {}, False)])
    return (
        f'<h2 id="run">Run</h2><div class="cards"><div class="box"><h4>Run</h4>{run_box}</div>'
        f'<div class="box"><h4>Versions</h4>{ver_box}</div>'
        f'<div class="box"><h4>Corpus &amp; Hypothesis</h4>{data_box}</div>'
        f'<div class="box"><h4>Options</h4>{opt_box}</div></div>'
    )


def _models_table(report: dict[str, Any]) -> str:
    """The Models section: how each model was loaded (:func:`lmfacts.report.conditions.model_conditions`), the
    source runs that loaded it in a merged report, and the notes of its loading and probing."""
    from lmfacts.report.conditions import FACT_FIELDS, model_conditions

    conds = model_conditions(report)
    if not conds:
        return ""
    runs: dict[str, list[str]] = {}
    for m in report.get("models") or []:
        if isinstance(m, dict) and m.get("runs"):
            got = runs.setdefault(str(m.get("name") or "?"), [])
            got += [str(r) for r in m["runs"] if str(r) not in got]
    merged = bool(runs)  # a merged report: which source run(s) loaded each model
    head = "".join(f"<th>{esc(f)}</th>" for f in ("model", *FACT_FIELDS)) + ("<th>run</th>" if merged else "")
    rows = []
    for c in conds:
        cells = [f"<td>{esc(c.name)}</td>", *(f"<td>{esc(c.facts[f])}</td>" for f in FACT_FIELDS)]
        if merged:
            cells.append(f"<td>{esc(', '.join(runs.get(c.name, [])))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="small muted">Notes on {esc(c.name)}:</p><ul class="notes">'
                    + "".join(f"<li>{esc(n)}</li>" for n in c.notes) + "</ul>" for c in conds if c.notes)
    return f"<h2>Models</h2><table><tr>{head}</tr>{''.join(rows)}</table>{notes}"


def _matrix(report: dict[str, Any]) -> str:
    """The claims × models matrix (:func:`lmfacts.report.table.matrix`): per claim its primary headline
    quantity and expected band, per model ``value [CI] outcome``; hovering a cell shows its expectation,
    the other headline values and the reason; skip, inconclusive and known-finding reasons are footnoted."""
    models, mrows = matrix(report)
    if not mrows:
        return "<h2>Claims × models</h2><p class='muted'>No results recorded.</p>"
    notes: list[str] = []
    head = "<th>claim</th><th>title</th><th>headline</th><th>expected</th>" + "".join(
        f'<th><a href="#{anchor("model", m)}">{esc(m)}</a></th>' for m in models)
    rows = []
    for mr in mrows:
        expected = (f'<span class="mono">{esc(mr.expected)}</span>' if mr.uniform
                    else '<span class="muted small">varies by model (hover a cell)</span>')
        tds = [f'<td class="claim"><b>{esc(mr.claim)}</b></td><td class="title">{esc(mr.title)}</td>'
               f'<td class="mono q">{esc(mr.quantity)}</td><td class="exp">{expected}</td>']
        for model in models:
            cell = mr.cells.get(model)
            if cell is None:
                tds.append('<td class="cell muted"></td>')
                continue
            marks = []
            for n in cell.notes:
                if n.startswith("error: "):  # an error's cause is in the hover and its card
                    continue
                if n not in notes:
                    notes.append(n)
                marks.append(str(notes.index(n) + 1))
            sup = f"<sup>{esc(','.join(dict.fromkeys(marks)))}</sup>" if marks else ""
            value = (f'<span class="val">{esc(cell.value)}</span>' if cell.value else "") + (
                f' <span class="ci">{esc(cell.ci)}</span>' if cell.ci else "")
            tds.append(
                f'<td class="cell o-{esc(cell.outcome)}" title="{esc(cell.tip)}">'
                f'<a class="o-{esc(cell.outcome)}" href="#{anchor("rec", model, mr.claim)}">{value}'
                f'{" " if value else ""}<span class="mk">{esc(cell.mark)}</span></a>{sup}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    legend = " · ".join(f"{esc(symbol(o))} {esc(o)}" for o in OUTCOMES)
    foot = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return (
        f'<h2>Claims × models</h2><table class="matrix"><tr>{head}</tr>{"".join(rows)}</table>'
        f'<p class="small muted">{legend}. A cell shows the claim\'s headline value and its 95% bootstrap CI '
        f"where it has one; hover it for the expected band and the other headline values; – name: the premise "
        f"that does not hold.</p>"
        + (f'<p class="small muted">Skip, inconclusive and known-finding reasons:</p><ol class="notes">{foot}</ol>'
           if notes else "")
    )


def _figure(spec: Any) -> str:
    title = spec.get("title") if isinstance(spec, dict) else None
    try:
        uri = figure_data_uri(spec)
    except Exception as exc:  # a bad spec must not lose the whole report; show it instead
        log.warning("figure %r could not be drawn: %s", title, exc)
        return f'<figure><div class="figerr">figure {esc(title)!s} could not be drawn: {esc(exc)}</div></figure>'
    return f'<figure><img alt="{esc(title)}" src="{uri}"></figure>'


def _witness(w: dict[str, Any], replay: str | None = None) -> str:
    parts = ["<h4>Witness</h4>"]
    if replay:
        parts.append(f'<div class="small">replay: <code class="replay">{esc(replay)}</code></div>')
    if w.get("value") is not None:
        parts.append(f'<div class="small">value: <code>{esc(compact(w.get("value")))}</code></div>')
    if w.get("text") is not None:
        parts.append(f'<pre class="witness">{esc(w.get("text"))}</pre>')
    toks = w.get("tokens")
    if isinstance(toks, list) and toks:
        shown = "".join(f'<span class="tok">{esc(t)}</span>' for t in toks[:200])
        more = f' <span class="muted small">… {len(toks) - 200} more</span>' if len(toks) > 200 else ""
        parts.append(f"<div>{shown}{more}</div>")
    return "".join(parts)


def _params_html(params: Any) -> str | None:
    """The claim's parameters (record ``params``), one per line: name = value unit, and its origin."""
    if not isinstance(params, dict) or not params:
        return None
    lines = []
    for name, p in sorted(params.items()):
        if not isinstance(p, dict):
            continue
        value = p.get("value")
        text = "unset" if value is None else (
            fmt_scalar(value) if not isinstance(value, (list, dict)) else compact(value, max_fields=4, max_list=4))
        unit = f" {p['unit']}" if p.get("unit") and value is not None else ""
        lines.append(f'<span class="mono">{esc(name)} = {esc(text)}{esc(unit)}</span> '
                     f'<span class="small">({esc(p.get("origin"))})</span>')
    return "<br>".join(lines) or None


def _baseline_html(b: Any) -> str | None:
    """What the model's recorded baseline said about this result (``record["baseline"]``), or None."""
    if not isinstance(b, dict) or not b.get("outcome"):
        return None
    values = "<br>".join(
        esc(f"{k}: today {fmt_scalar(v.get('today'), 5)}, recorded {fmt_scalar(v.get('recorded'), 5)} ± "
            f"{fmt_scalar(v.get('tol'), 2)}") for k, v in (b.get("values") or {}).items() if isinstance(v, dict))
    head = esc(f"{b.get('verdict') or b.get('status')} (recorded {b.get('outcome')}"
               + (f": {b.get('reason')}" if b.get("reason") else "") + f"; {b.get('file')})")
    return head + (f"<br>{values}" if values else "")


def _record(r: dict[str, Any], rec_id: str, run: dict[str, Any] | None = None) -> str:
    """One claim's card: the lead sentence (:func:`lmfacts.report.table.lead_sentence`), then for a judged
    claim its facts, witness, figures and full values; a skip's card holds the sentence alone."""
    outcome = str(r.get("outcome"))
    header = (f"<header><b>{esc(r.get('claim'))}</b><span>{esc(r.get('title'))}</span>{_badge(outcome)}</header>"
              f'<p class="lead">{esc(lead_sentence(r))}</p>')
    if outcome == "skipped":
        return f'<section class="record o-{esc(outcome)} short" id="{esc(rec_id)}">{header}</section>'
    conv = r.get("conventions") or {}
    facts = _kv(
        [
            ("statistic", esc(r.get("statistic"))),
            ("headline", f'<span class="mono">{esc(headline_summary(r, level=True))}</span>'
             if headline_summary(r) else None),
            ("measured", f'<span class="mono">{esc(compact(r.get("measured"), max_fields=10))}</span>'
             if compact(r.get("measured")) else None),
            ("expected", f'<span class="mono">{esc(compact(r.get("expected"), max_fields=10))}</span>'
             if r.get("expected") is not None else None),
            ("tolerance", f'<span class="mono">{esc(compact(r.get("tolerance")))}</span>'
             if r.get("tolerance") is not None else None),
            ("intervals", "<br>".join(esc(interval_text(k, v)) for k, v in (r.get("intervals") or {}).items()
                                      if isinstance(v, dict)) or None),
            ("parameters", _params_html(r.get("params"))),
            ("reason", esc(r.get("reason"))),
            ("baseline", _baseline_html(r.get("baseline"))),
            ("source", esc(r.get("source"))),
            ("expectation", esc(r.get("expectation_kind"))),
            ("conventions", esc(", ".join(f"{k}={fmt_scalar(v, max_str=200)}" for k, v in conv.items())) if conv else None),
            ("robust", esc(r.get("robust")) if r.get("robust") is not None else None),
            ("processing", esc(r.get("processing"))),
            ("control", f'<span class="mono">{esc(compact(r.get("control"), max_fields=10))}</span>'
             if r.get("control") is not None else None),
            ("device / dtype", esc(" / ".join(str(x) for x in (r.get("device"), r.get("dtype")) if x))),
            ("duration", esc(f"{r['duration_s']:.2f} s") if isinstance(r.get("duration_s"), (int, float)) else None),
            ("test", f'<code class="small">{esc(r.get("nodeid"))}</code>' if r.get("nodeid") else None),
        ]
    )
    witness = f'<div class="wbox">{_witness(r["witness"], replay_command(run, r))}</div>' \
        if isinstance(r.get("witness"), dict) else ""
    figs = "".join(_figure(f) for f in r.get("figures") or [])
    figs = f'<div class="figs">{figs}</div>' if figs else ""
    raw = {k: r.get(k) for k in ("measured", "expected", "tolerance", "control", "intervals")
           if r.get(k) not in (None, {}, [])}
    details = f"<details><summary>full values (JSON)</summary>{_json_block(raw)}</details>" if raw else ""
    return (
        f'<section class="record o-{esc(outcome)}" id="{esc(rec_id)}">{header}'
        f'<div class="rbody"><div class="facts{"" if figs else " wide"}">{facts}{witness}{details}</div>{figs}</div></section>'
    )


def _model_section(report: dict[str, Any], model: str) -> str:
    recs = [r for r in report.get("results") or [] if model_name(r) == model]
    if not recs:
        return ""
    counts = {o: sum(1 for r in recs if r.get("outcome") == o) for o in OUTCOMES}
    chips = "".join(f'<span class="badge o-{esc(o)}">{counts[o]} {esc(o)}</span>' for o in OUTCOMES if counts[o])
    out = [f'<h2 id="{anchor("model", model)}">{esc(model)}</h2><div class="chips">{chips}</div>']
    seen: dict[str, int] = {}
    for group in sorted({source_group(r) for r in recs}, key=group_sort_key):
        grecs = [r for r in recs if source_group(r) == group]
        rows = []
        for r in grecs:
            o = str(r.get("outcome"))
            rows.append(
                f"<tr><td class=\"claim\"><a href=\"#{anchor('rec', model, r.get('claim'))}\"><b>{esc(r.get('claim'))}</b></a></td>"
                f"<td>{esc(r.get('statistic'))}</td>"
                f'<td class="measured">{esc(measured_text(r))}</td>'
                f'<td class="measured">{esc(compact(r.get("expected")))}</td>'
                f'<td class="measured">{esc(compact(r.get("tolerance")))}</td>'
                f"<td>{_badge(o)}</td><td class=\"small\">{esc(r.get('reason'))}</td></tr>"
            )
        out.append(
            f"<h3>{esc(group_title(group))}</h3><table><tr><th>claim</th><th>statistic</th><th>headline (measured)</th>"
            f"<th>expected</th><th>tolerance</th><th>outcome</th><th>reason</th></tr>{''.join(rows)}</table>"
        )
        for r in grecs:
            key = (str(r.get("claim")), seen.get(str(r.get("claim")), 0))
            seen[key[0]] = key[1] + 1
            out.append(_record(r, anchor("rec", model, *key) if key[1] else anchor("rec", model, key[0]),
                               report.get("run")))
    return "".join(out)


def _trajectory_html(report: dict[str, Any]) -> str:
    """Checkpoint trajectories of a sweep (:mod:`lmfacts.report.trajectory`; "" without one)."""
    from lmfacts.report.trajectory import trajectory_html

    return trajectory_html(report)


def render_html(report: dict[str, Any]) -> str:
    """The whole self-contained HTML page for a report dict."""
    run_id = (report.get("run") or {}).get("id", "?")
    models = model_order(report)
    body = (
        _header(report)
        + _matrix(report)
        + _trajectory_html(report)
        + _run_boxes(report)
        + _models_table(report)
        + "".join(_model_section(report, m) for m in models)
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>lmfacts report {esc(run_id)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{body}</main></body></html>\n"
    )
