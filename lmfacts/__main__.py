"""Command line: ``python -m lmfacts <command> ...`` (also the ``lmfacts`` console script).

Commands are registered in :data:`COMMANDS`; each registrar adds a subparser and sets
``func`` (``Namespace -> int`` exit status) as its default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from lmfacts.baselines.cli import add_baseline_command
from lmfacts.claims_cli import add_claims_command
from lmfacts.report.cli import UsageError, add_report_command

COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "report": add_report_command,
    "baseline": add_baseline_command,
    "claims": add_claims_command,
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="lmfacts", description="lmfacts: replication reports for LM-internals claims")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    sub.required = True
    for register in COMMANDS.values():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (2 for usage errors, as argparse does; 1 when stdout's reader
    closed the pipe early, as ``| head`` does, with no traceback)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"lmfacts: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lmfacts claims list | head`: the reader left; no traceback (Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush of stdout must not raise again
        return 1


if __name__ == "__main__":
    sys.exit(main())
