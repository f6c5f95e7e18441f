"""Screenshot a report.html with headless chromium: ``python scripts/screenshot_report.py REPORT.html OUT.png``.

Options: ``--width``/``--height`` of the window (1400×3000), ``--chromium`` binary
(default: the first of chromium, chromium-browser, google-chrome on PATH). Exit status is
chromium's, or 2 when no browser is found or the screenshot was not written.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser(explicit: str | None = None) -> str | None:
    """Path of the browser to use, or None."""
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).exists() else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot_command(browser: str, html: Path, out: Path, profile: Path, width: int, height: int) -> list[str]:
    """The chromium command line that writes ``out`` from ``html`` (offline, no first-run noise)."""
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--screenshot={out}",
        f"--window-size={width},{height}",
        html.resolve().as_uri(),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run chromium, and check the PNG was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--chromium", default=None, help="browser binary")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"screenshot: no such file: {args.html}", file=sys.stderr)
        return 2
    browser = find_browser(args.chromium)
    if browser is None:
        print("screenshot: no chromium found (apt-get install -y chromium)", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():
        args.out.unlink()
    with tempfile.TemporaryDirectory(prefix="lmfacts-chromium-") as profile:
        cmd = screenshot_command(browser, args.html, args.out.resolve(), Path(profile), args.width, args.height)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
    if proc.returncode != 0 or not args.out.is_file():
        print(proc.stderr[-2000:], file=sys.stderr)
        return proc.returncode or 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
