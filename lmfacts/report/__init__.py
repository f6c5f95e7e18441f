"""Replication report: run-directory store, report assembly, markdown/HTML rendering, run diffs.

Nothing here imports torch; matplotlib is imported only when figures are drawn.
"""

from lmfacts.jsonsafe import dumps, to_jsonable
from lmfacts.report.assemble import assemble_report, build_report, final_records
from lmfacts.report.diff import OutcomeChange, RunDiff, ValueChange, diff_runs, format_diff
from lmfacts.report.html import render_html
from lmfacts.report.markdown import render_markdown
from lmfacts.report.paths import git_short_sha, latest_run, list_runs, new_run_id
from lmfacts.report.render import render_run
from lmfacts.report.store import SCHEMA_VERSION, RunStore
from lmfacts.report.summary import terminal_summary_lines

__all__ = [
    "SCHEMA_VERSION",
    "OutcomeChange",
    "RunDiff",
    "RunStore",
    "ValueChange",
    "assemble_report",
    "build_report",
    "diff_runs",
    "dumps",
    "final_records",
    "format_diff",
    "git_short_sha",
    "latest_run",
    "list_runs",
    "new_run_id",
    "render_html",
    "render_markdown",
    "render_run",
    "terminal_summary_lines",
    "to_jsonable",
]
