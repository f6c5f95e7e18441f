"""The command that replays one failing test of a run, shown beside its witness.

``run.json`` records, under ``hypothesis``, the run's command without its test paths plus the
Hypothesis options that draw the same examples again (``replay``: for the randomised ``nightly``
profile ``--hypothesis-profile nightly --hypothesis-seed N``, for the deterministic profiles just the
profile), and ``replay_rootdir``, pytest's rootdir relative to where the run was started. A test's
replay command is ``replay`` followed by the test's id, re-rooted to where the run was started
(pytest resolves a test id given on the command line from the current directory); a test whose file lies
outside the rootdir (``--pyargs lmfacts.catalogue`` from an installed wheel) is named by the record's
``test_file`` (its absolute path) instead.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

__all__ = ["replay_command"]


def _test_arg(nodeid: str, rootdir: str | None, test_file: str | None = None) -> str:
    if test_file:  # outside the rootdir (an installed catalogue): the file itself, then the test's name
        return test_file + "::" + nodeid.partition("::")[2]
    if not rootdir or rootdir == ".":
        return nodeid
    path, sep, rest = nodeid.partition("::")
    return posixpath.normpath(posixpath.join(rootdir, path)) + sep + rest


def replay_command(run: dict[str, Any] | None, record: dict[str, Any]) -> str | None:
    """``pytest … --hypothesis-profile P [--hypothesis-seed N] TEST_ID`` for ``record``; None when unknown.

    Unknown: the run recorded no replay (a randomised run without a seed, or a run from before
    replays were recorded), or the record has no test id.
    """
    hyp = (run or {}).get("hypothesis") or {}
    prefix = hyp.get("replay")
    nodeid = record.get("nodeid")
    if not prefix or not nodeid:
        return None
    arg = _test_arg(str(nodeid), hyp.get("replay_rootdir"), record.get("test_file"))
    return f"{prefix} {shlex.quote(arg)}"
