"""``python -m lmfacts claims list | head``: the reader closes the pipe early; the CLI stops without a traceback."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_closed_stdout_pipe_is_not_a_traceback() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "lmfacts", "claims", "list"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the catalogue is printed (what `| head` does, early)
    err = proc.stderr.read()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 1, (code, err)
