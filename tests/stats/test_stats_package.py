"""The package surface: exports exist, are documented, and the library never imports torch."""

from __future__ import annotations

import inspect
import subprocess
import sys

import lmfacts.stats as stats


def test_all_exports_exist_and_are_documented() -> None:
    for name in stats.__all__:
        obj = getattr(stats, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_no_torch_import() -> None:
    code = "import sys, lmfacts.stats; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
