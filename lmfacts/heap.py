"""The process heap of a run: how freed activation memory goes back to the OS (glibc only; no-ops elsewhere).

A probe pass allocates and frees many mid-sized transients per batch (activations, attention patterns, MLP
hidden states: 1–100 MB each at the default 4,096 padded tokens per batch). glibc serves them from its
arenas by default (its mmap threshold adapts upwards to 32 MB), and a freed chunk that the next, differently
shaped request cannot reuse stays resident: the heap grows by fragmentation, not by live memory. Measured on
SmolLM2-135M (the AS-1 pass: model, random twin and both probe passes), peak RSS 2.75 GB with glibc's
default against 2.22 GB when every allocation of at least 1 MB is its own mapping (``M_MMAP_THRESHOLD``
= 1 MiB), which the OS takes back on free; the peak is the random twin's pass, with two models resident.
:func:`fragmentation_limited` sets that for a block of code (the twin's pass); :func:`return_freed_heap`
trims what the arenas still hold after a pass.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

#: allocations of at least this many bytes get their own mapping (returned to the OS when freed)
MMAP_THRESHOLD_BYTES = 1 << 20
#: glibc's own upper bound of its adaptive threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX), restored afterwards
GLIBC_THRESHOLD_MAX_BYTES = 32 << 20
_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def _libc() -> Any | None:
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_heap_fragmentation(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve allocations of at least ``threshold`` bytes by their own mapping (glibc ``mallopt(M_MMAP_THRESHOLD)``).

    Returns whether the setting was applied: False off glibc, and False when the user set glibc's own
    ``MALLOC_MMAP_THRESHOLD_`` environment variable (theirs wins). Raises ValueError for ``threshold`` ≤ 0.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be a positive number of bytes, not {threshold}")
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = _libc()
    with contextlib.suppress(AttributeError, TypeError):
        return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    return False


@contextlib.contextmanager
def fragmentation_limited(threshold: int = MMAP_THRESHOLD_BYTES) -> Iterator[bool]:
    """:func:`limit_heap_fragmentation` inside the block (yields whether it applied), glibc's adaptive
    threshold's upper bound (:data:`GLIBC_THRESHOLD_MAX_BYTES`, where a warmed-up process sits) after it.

    Each mapping costs page faults when first touched (the kernel zeroes every page): on a 2-core CPU,
    ≈ 2.5 s of system time per 4 forward passes of 4,096 tokens through SmolLM2-135M. So lmfacts limits
    fragmentation only where the peak is (the random twin's pass, while two models are resident), not
    for a whole run. Raises ValueError as :func:`limit_heap_fragmentation`.
    """
    applied = limit_heap_fragmentation(threshold)
    try:
        yield applied
    finally:
        if applied:
            libc = _libc()
            with contextlib.suppress(AttributeError, TypeError):
                if libc is not None:
                    libc.mallopt(_M_MMAP_THRESHOLD, GLIBC_THRESHOLD_MAX_BYTES)


def return_freed_heap() -> None:
    """Give freed heap pages back to the OS (glibc ``malloc_trim(0)``); a no-op elsewhere.

    The compat switch frees hundreds of MB of mid-sized tensors that glibc keeps in its arenas, so
    RSS stays high after the switch although the memory is free; trimming returns it.
    """
    libc = _libc()
    with contextlib.suppress(AttributeError, TypeError):
        if libc is not None:
            libc.malloc_trim(0)
