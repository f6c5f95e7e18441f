"""Bad command-line input is a one-paragraph usage error (exit 4) within seconds, never an INTERNALERROR traceback.

Each case runs ``pytest claims/ --collect-only`` in a subprocess on a tiny model (no weights are loaded
before the options are checked), so it costs an interpreter start and the plugin's imports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_pytest


@pytest.mark.parametrize(
    ("args", "names"),
    [
        # Hypothesis's own plugin loads --hypothesis-profile in its pytest_configure: an unknown name
        # ended the run with INTERNALERROR (InvalidArgument: Profile 'foo' is not registered)
        (("--hypothesis-profile", "foo"), ("unknown lmfacts Hypothesis profile 'foo'", "nightly")),
        (("--hypothesis-profile", "foo", "--hypothesis-seed", "5"), ("unknown lmfacts Hypothesis profile 'foo'",)),
    ],
)
def test_bad_option_is_a_usage_error(args: tuple[str, ...], names: tuple[str, ...], tmp_path: Path) -> None:
    proc, seconds = run_pytest("claims/", "--model", "tiny-gpt2", "--collect-only", "-q", *args,
                               report_dir=tmp_path, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out[-3000:]
    assert "INTERNALERROR" not in out and "Traceback" not in out, out[-3000:]
    for name in names:
        assert name in out, out[-3000:]
