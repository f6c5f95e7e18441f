"""run.py's pytest command: the default directory, or the paths inside it that the user names."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _command(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> list[str]:
    spec = importlib.util.spec_from_file_location("lmfacts_run_py", ROOT / "run.py")
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    seen: list[list[str]] = []
    monkeypatch.setattr(run, "ensure_venv", lambda: Path("/venv/bin/python"))

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(run.subprocess, "run", fake_run)
    assert run.main(argv) == 0
    return seen[0][3:]  # after "<python> -m pytest"


def test_default_directory_unless_a_path_inside_it_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert _command(monkeypatch, ["tests", "-q"]) == ["tests/", "-q"]
    assert _command(monkeypatch, ["tests", "tests/test_run_py.py", "-q"]) == ["tests/test_run_py.py", "-q"]
    assert _command(monkeypatch, ["tests", "tests/test_run_py.py::test_x"]) == ["tests/test_run_py.py::test_x"]
    assert _command(monkeypatch, ["claims", "claims/test_rs_basis.py"]) == ["claims/test_rs_basis.py"]
    # an option's value that is a file elsewhere (a prompt file) keeps the default directory
    assert _command(monkeypatch, ["claims", "--prompts", "README.md"]) == ["claims/", "--prompts", "README.md"]
    assert _command(monkeypatch, ["claims", "-k", "tests"]) == ["claims/", "-k", "tests"]
