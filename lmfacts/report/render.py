"""Write report.json, report.md, report.html and report.csv for a run directory."""

from __future__ import annotations

from pathlib import Path

from lmfacts.jsonsafe import dumps
from lmfacts.report.assemble import assemble_report
from lmfacts.report.html import render_html
from lmfacts.report.markdown import render_markdown
from lmfacts.report.paths import REPORT_CSV, REPORT_HTML, REPORT_JSON, REPORT_MD
from lmfacts.report.store import write_text_atomic
from lmfacts.report.table import csv_text


def render_run(run_dir: str | Path) -> dict[str, Path]:
    """Assemble ``run_dir`` and write its four report files atomically.

    Returns ``{"json": path, "md": path, "html": path, "csv": path}`` (report.csv: the tidy results
    table, :mod:`lmfacts.report.table`). Any failure (unreadable run,
    corrupt results, disk error) raises, so a caller can turn it into a non-zero exit.
    Works on a partial run (killed midway): it renders whatever results.jsonl holds.
    """
    run_dir = Path(run_dir)
    report = assemble_report(run_dir)
    outputs = {
        "json": (run_dir / REPORT_JSON, dumps(report, indent=1) + "\n"),
        "md": (run_dir / REPORT_MD, render_markdown(report)),
        "html": (run_dir / REPORT_HTML, render_html(report)),
        "csv": (run_dir / REPORT_CSV, csv_text(report)),
    }
    for path, text in outputs.values():
        write_text_atomic(path, text)
    return {kind: path for kind, (path, _) in outputs.items()}
