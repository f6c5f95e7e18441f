"""``python -m lmfacts report ...``: render, diff and find runs from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmfacts.report.assemble import assemble_report
from lmfacts.report.diff import diff_runs, format_diff
from lmfacts.report.merge import add_merge_command
from lmfacts.report.paths import REPORT_JSON, RESULTS_JSONL, RUN_JSON, latest_run
from lmfacts.report.render import render_run


class UsageError(Exception):
    """A command-line mistake (missing directory, bad value): exit status 2."""


def _is_run_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in (RUN_JSON, RESULTS_JSONL, REPORT_JSON))


def resolve_run(path_text: str) -> Path:
    """A run directory from a CLI argument: a run dir, a report.json, or a report dir (its latest run)."""
    path = Path(path_text)
    if path.is_file():
        return path
    if not path.is_dir():
        raise UsageError(f"no such run directory: {path}")
    if _is_run_dir(path):
        return path
    latest = latest_run(path)
    if latest is None:
        raise UsageError(f"{path} is neither a run directory nor a report directory holding runs")
    print(f"lmfacts: using latest run in {path}: {latest.name}", file=sys.stderr)
    return latest


def read_report_json(path: Path) -> dict[str, Any]:
    """A report.json's dict; :class:`UsageError` naming the file when it is not an lmfacts report (not JSON,
    not UTF-8, or no ``results``), so a wrong argument never reads as ``report diff``'s regression exit 1."""
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not an lmfacts report.json ({type(exc).__name__}: {exc})") from None
    if not isinstance(report, dict) or "results" not in report:
        raise UsageError(f"{path}: not an lmfacts report.json (no 'results')")
    return report


def load_report(path: Path) -> dict[str, Any]:
    """The report dict of a run dir (assembled from run.json + results.jsonl when present) or report.json.

    Raises :class:`UsageError` for a file that is not an lmfacts report.json (:func:`read_report_json`)."""
    if path.is_file():
        return read_report_json(path)
    if (path / RUN_JSON).is_file() or (path / RESULTS_JSONL).is_file():
        return assemble_report(path)
    return read_report_json(path / REPORT_JSON)


def cmd_render(args: argparse.Namespace) -> int:
    """Render report.json/.md/.html/.csv for one run directory and print their paths."""
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    if not ((run_dir / RUN_JSON).is_file() or (run_dir / RESULTS_JSONL).is_file()):
        raise UsageError(f"{run_dir} has neither {RUN_JSON} nor {RESULTS_JSONL}")
    for path in render_run(run_dir).values():
        print(path)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """Print the diff of two runs; 1 when a claim that passed in A fails or errors in B, else 0."""
    if args.rel_tol < 0:
        raise UsageError("--rel-tol must be >= 0")
    report_a = load_report(resolve_run(args.run_a))
    report_b = load_report(resolve_run(args.run_b))
    diff = diff_runs(report_a, report_b, rel_tol=args.rel_tol)
    print(format_diff(diff))
    return 1 if diff.regressions else 0


def cmd_latest(args: argparse.Namespace) -> int:
    """Print the newest run directory under --report-dir; 1 when there is none."""
    report_dir = Path(args.report_dir)
    if not report_dir.is_dir():
        raise UsageError(f"no such report directory: {report_dir}")
    latest = latest_run(report_dir, exclude=args.exclude)
    if latest is None:
        print(f"lmfacts: no runs in {report_dir}", file=sys.stderr)
        return 1
    print(latest)
    return 0


def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="write report.json/.md/.html/.csv from run.json + results.jsonl")
    p.add_argument("run_dir", help="reports/<run-id> (a partial run killed midway works too)")
    p.set_defaults(func=cmd_render)


def _add_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two runs; exit 1 when a claim that passed in A fails in B",
        description="Each RUN is a run directory, a report.json, or a report directory (its latest run is used).",
    )
    p.add_argument("run_a", help="the earlier run (baseline)")
    p.add_argument("run_b", help="the later run")
    p.add_argument("--rel-tol", type=float, default=0.1, help="relative change of a measured value to list (0.1)")
    p.set_defaults(func=cmd_diff)


def _add_latest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latest", help="print the newest run directory")
    p.add_argument("--report-dir", default="reports", help="directory holding run directories (reports)")
    p.add_argument("--exclude", default=None, help="a run id to skip (e.g. the current run)")
    p.set_defaults(func=cmd_latest)


REPORT_COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "render": _add_render,
    "diff": _add_diff,
    "latest": _add_latest,
    "merge": add_merge_command,  # lmfacts.report.merge: one report from several runs (CI fan-out)
}


def add_report_command(sub: argparse._SubParsersAction) -> None:
    """Register ``report`` and its sub-commands on the top-level subparsers."""
    p = sub.add_parser("report", help="render, diff and find replication reports")
    inner = p.add_subparsers(dest="report_command", metavar="{" + ",".join(REPORT_COMMANDS) + "}")
    inner.required = True
    for register in REPORT_COMMANDS.values():
        register(inner)
