"""On-disk store of one run: ``run.json`` (rewritten atomically) and ``results.jsonl`` (appended)."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from lmfacts.jsonsafe import dumps
from lmfacts.report.paths import RESULTS_JSONL, RUN_JSON

SCHEMA_VERSION = 1


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class RunStore:
    """Reads and writes the files of one run directory ``reports/<run-id>/``.

    ``run.json`` holds the run and model metadata and is replaced atomically on every write;
    ``results.jsonl`` gets one JSON record per finished test, flushed and fsynced, so a run
    killed midway keeps every result written before the kill.
    """

    def __init__(self, run_dir: str | Path) -> None:
        """Bind to ``run_dir`` (created on the first write)."""
        self.run_dir = Path(run_dir)

    @property
    def run_json(self) -> Path:
        """Path of run.json."""
        return self.run_dir / RUN_JSON

    @property
    def results_jsonl(self) -> Path:
        """Path of results.jsonl."""
        return self.run_dir / RESULTS_JSONL

    def write_run_info(self, info: dict[str, Any]) -> None:
        """Atomically (re)write run.json; ``schema_version`` is added when missing."""
        payload = dict(info)
        payload.setdefault("schema_version", SCHEMA_VERSION)
        write_text_atomic(self.run_json, dumps(payload, indent=2) + "\n")

    def append_result(self, record: dict[str, Any]) -> None:
        """Append one record as a single JSON line, then flush and fsync."""
        line = dumps(record)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.results_jsonl, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read_run_info(self) -> dict[str, Any]:
        """Parsed run.json; raises FileNotFoundError when it is missing."""
        with open(self.run_json, encoding="utf-8") as fh:
            info = json.load(fh)
        if not isinstance(info, dict):
            raise ValueError(f"{self.run_json}: expected a JSON object")
        return info

    def read_results(self) -> list[dict[str, Any]]:
        """All records of results.jsonl in file order ([] when the file does not exist).

        A last line that does not parse (a run killed while writing it) is skipped with a
        warning; a bad line anywhere else raises ValueError, since that is corruption.
        """
        if not self.results_jsonl.exists():
            return []
        text = self.results_jsonl.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        records: list[dict[str, Any]] = []
        numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
        for pos, (lineno, line) in enumerate(numbered):
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                if pos == len(numbered) - 1:
                    warnings.warn(
                        f"{self.results_jsonl}:{lineno}: skipping truncated last line ({exc})",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    break
                raise ValueError(f"{self.results_jsonl}:{lineno}: bad record: {exc}") from exc
            records.append(rec)
        return records
