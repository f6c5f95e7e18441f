"""Run ids and run-directory lookup.

A run id is ``YYYYmmddTHHMMSSZ-<short git sha>`` (or ``-nogit``), so sorting run ids as
strings sorts runs by start time.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

RUN_JSON = "run.json"
RESULTS_JSONL = "results.jsonl"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_CSV = "report.csv"

_RUN_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9A-Za-z]+(\.\d+)?$")


def new_run_id(now: datetime | None = None, git_sha: str | None = None) -> str:
    """Return a sortable run id ``YYYYmmddTHHMMSSZ-<sha>`` for ``now`` (UTC) and a short git sha.

    A naive ``now`` is taken to be UTC already; ``git_sha`` is cut to 7 characters and
    replaced by ``nogit`` when missing or not alphanumeric.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is not None:
        now = now.astimezone(UTC)
    sha = (git_sha or "").strip()[:7]
    if not sha or not sha.isalnum():
        sha = "nogit"
    return f"{now:%Y%m%dT%H%M%SZ}-{sha}"


def is_run_id(name: str) -> bool:
    """Whether ``name`` has the shape of a run id made by :func:`new_run_id` (or :func:`claim_run_dir`)."""
    return bool(_RUN_ID_RE.match(name))


def claim_run_dir(report_dir: str | Path, run_id: str) -> Path:
    """Create ``report_dir/run_id`` for this run alone and return it; a directory of that name that already
    exists belongs to another run, so ``run_id.2``, ``run_id.3`` … is created instead.

    Run ids have one-second resolution: two runs started in the same second into one ``--report-dir`` (CI
    jobs of a matrix, a script that starts several models at once) got the same id, and the second wrote its
    records into the first's ``results.jsonl`` and replaced its ``run.json``, so one report showed both
    runs' models under one header. ``mkdir`` without ``exist_ok`` decides atomically which run gets a name.
    """
    root = Path(report_dir)
    root.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = root / (run_id if n == 1 else f"{run_id}.{n}")
        try:
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        return path


def git_short_sha(repo_dir: str | Path = ".") -> str | None:
    """Short sha of HEAD of the git checkout whose top level is ``repo_dir``; None when git is missing or
    times out, or when ``repo_dir`` is not the top of a repository.

    Only the top level counts: an installed lmfacts lives in ``site-packages``, which may sit inside the
    user's own repository (a project's ``.venv``); the sha of that repository says nothing about lmfacts'
    code, so the run id then says ``nogit`` and ``run.json`` gives the installed version.
    """
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "--short=7", "HEAD"],
            cwd=str(repo_dir),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = proc.stdout.split("\n")
    if proc.returncode != 0 or len(lines) < 2:
        return None
    top, sha = lines[0].strip(), lines[1].strip()
    try:
        if Path(top).resolve() != Path(repo_dir).resolve():
            return None
    except OSError:
        return None
    return sha if sha.isalnum() else None


def list_runs(report_dir: str | Path) -> list[Path]:
    """Run directories under ``report_dir`` (those holding run.json or results.jsonl), oldest first."""
    root = Path(report_dir)
    if not root.is_dir():
        return []
    runs = [
        p
        for p in root.iterdir()
        if p.is_dir() and ((p / RUN_JSON).is_file() or (p / RESULTS_JSONL).is_file())
    ]
    return sorted(runs, key=lambda p: p.name)


def latest_run(report_dir: str | Path, exclude: str | Path | None = None) -> Path | None:
    """The newest run directory under ``report_dir`` (by run-id name), or None.

    ``exclude`` names a run to skip (a run id or a path whose last component is the run id),
    e.g. the run in progress when looking for the previous one to diff against.
    """
    skip = Path(exclude).name if exclude is not None else None
    runs = [p for p in list_runs(report_dir) if p.name != skip]
    return runs[-1] if runs else None
