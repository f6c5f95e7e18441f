"""``python -m lmfacts baseline record reports/<run-id> [--model NAME] [--device DEV] [--out FILE]``.

Writes the baseline file of one model from a finished run (format and rules: :mod:`lmfacts.baselines`);
without ``--out`` the file is printed. Exit status 0, or 2 for a usage error (no such run, several
models without ``--model``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmfacts.report.cli import UsageError


def cmd_record(args: argparse.Namespace) -> int:
    """Write (or print) the baseline of ``args.model`` recorded from ``args.run_dir``."""
    from lmfacts.baselines import BaselineFileError, load_file, record_baseline
    from lmfacts.report.store import write_text_atomic

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    try:
        text = record_baseline(run_dir, model=args.model, device=args.device)
    except BaselineFileError as exc:
        raise UsageError(str(exc)) from None
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    write_text_atomic(out, text)
    b = load_file(out)  # what we wrote must read back
    failed = sum(c.outcome == "failed" for c in b.claims.values())
    print(f"{out}: {len(b.claims)} claims of {b.name} ({len(b.claims) - failed} passed, {failed} known findings)",
          file=sys.stderr)
    return 0


def add_baseline_command(sub: argparse._SubParsersAction) -> None:
    """Register ``baseline record`` on the top-level subparsers."""
    p = sub.add_parser("baseline", help="record a model's baseline (known findings, guarded values) from a run")
    bsub = p.add_subparsers(dest="baseline_command", metavar="{record}")
    bsub.required = True
    r = bsub.add_parser("record", help="turn a finished run into a baseline file for one model")
    r.add_argument("run_dir", help="a run directory reports/<run-id>/")
    r.add_argument("--model", default=None, help="the model to record (needed when the run measured several)")
    r.add_argument("--device", default=None, help="the device to record (needed when the run used several)")
    r.add_argument("--out", default=None, help="the baseline file to write, e.g. fixtures/baselines/<model>.toml "
                                               "(default: print it)")
    r.set_defaults(func=cmd_record)
