"""lmfacts.heap: the run's glibc heap policy (mmap threshold, trimming)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lmfacts.heap import limit_heap_fragmentation, return_freed_heap

#: how much of 30 MB of live 3 MB tensors glibc holds as separate mappings (mallinfo2().hblkhd), after a freed
#: 24 MB chunk raised glibc's adaptive threshold (its default: 3 MB chunks then come from the arena heap)
PROBE = """
import ctypes, sys, torch
from lmfacts.heap import limit_heap_fragmentation
class MI2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MI2
applied = limit_heap_fragmentation() if sys.argv[1] == "apply" else None
if sys.argv[1] == "scoped":
    from lmfacts.heap import fragmentation_limited
    with fragmentation_limited() as applied:
        pass
warm = torch.empty(24 * 2**20 // 4).fill_(1.0)
del warm
base = libc.mallinfo2().hblkhd
blocks = [torch.empty(3 * 2**20 // 4).fill_(1.0) for _ in range(10)]
print(applied, (libc.mallinfo2().hblkhd - base) / 2**20)
"""


def _run(mode: str, env: dict[str, str] | None = None) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    applied, mapped = out.stdout.split()
    return applied, float(mapped)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                    reason="glibc only")
def test_mid_sized_tensors_get_their_own_mappings_when_applied() -> None:
    """With the policy, 3 MB tensors are separate mappings (returned to the OS when freed, no fragmentation);
    glibc's default serves them from its heap; a user's own MALLOC_MMAP_THRESHOLD_ wins over the policy."""
    assert _run("default") == ("None", 0.0)
    applied, mapped = _run("apply")
    assert applied == "True" and mapped >= 30.0, (applied, mapped)
    applied, mapped = _run("apply", {**os.environ, "MALLOC_MMAP_THRESHOLD_": "33554432"})
    assert applied == "False" and mapped == 0.0
    applied, mapped = _run("scoped")  # after the block: glibc's (warmed-up) threshold again
    assert applied == "True" and mapped == 0.0


def test_bad_threshold_is_refused_and_trim_is_harmless() -> None:
    with pytest.raises(ValueError, match="positive"):
        limit_heap_fragmentation(0)
    return_freed_heap()
