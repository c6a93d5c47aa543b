"""Allocator policy for long optimisation runs on the CPU.

A gradient-descent step allocates and frees tens of large temporaries (the near-field
windows, the FFT buffers: 1–15 MB each for 16 copies). glibc's ``malloc`` serves blocks
above its *mmap threshold* with a fresh ``mmap`` and gives them back with ``munmap``, and
trims the top of the heap when more than the *trim threshold* is free, so every step maps
the same memory again and the kernel zero-fills it page by page: about 17,500 minor page
faults per step, ~30 % of its time. :func:`retain_freed_memory` raises both thresholds
for this process, so that freed blocks stay in the heap and are reused by the next step.
The resident size then stays at the peak of one step (a few hundred MB for 16 copies)
instead of falling back between steps.

It is a process-wide setting of the C library, applied by :func:`xrdnb.optimize.run_gradient_descent`
(and so by every sweep cell); it changes no result. On a platform without glibc it does
nothing.

>>> from xrdnb.memory import retain_freed_memory
>>> retain_freed_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["retain_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

MMAP_THRESHOLD = 32 * 2**20
"""Blocks up to this size (bytes) come from the heap, not from ``mmap`` (glibc's upper limit)."""

TRIM_THRESHOLD = 2**30
"""Free memory (bytes) at the top of the heap kept before any is returned to the OS."""

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, <malloc.h>
_M_MMAP_THRESHOLD = -3


@functools.lru_cache(maxsize=1)
def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True if applied.

    Returns False where the C library is not glibc (macOS, Windows, musl) and nothing
    was changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
