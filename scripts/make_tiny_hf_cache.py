#!/usr/bin/env python3
"""Build a Hugging Face hub cache holding a tiny random model under a hub id (offline, seconds).

    python scripts/make_tiny_hf_cache.py /tmp/hf-hub                          # lmfacts-test/tiny-neox
    python scripts/make_tiny_hf_cache.py /tmp/hf-hub --tiny tiny-gpt2 --hub-id lmfacts-test/tiny-gpt2
    HF_HUB_CACHE=/tmp/hf-hub HF_HUB_OFFLINE=1 pytest claims/ --model lmfacts-test/tiny-neox --prepend-bos always -k RN-2

The layout and weights are those of :func:`lmfacts.models.tiny.write_hf_cache` (also used by the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the cache, print the snapshot directory; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hub_cache", type=Path, help="the directory to use as HF_HUB_CACHE")
    ap.add_argument("--tiny", default="tiny-neox", help="tiny model to save (default tiny-neox)")
    ap.add_argument("--hub-id", action="append", dest="hub_ids", metavar="ORG/NAME",
                    help="hub id to save it under (repeatable; default lmfacts-test/<tiny name>)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from lmfacts.models.tiny import write_hf_cache

    for hf_id in a.hub_ids or [f"lmfacts-test/{a.tiny}"]:
        print(write_hf_cache(a.tiny, a.hub_cache, hf_id, seed=a.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
