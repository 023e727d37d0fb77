"""Giving memory back: a long sweep must not keep the peak of everything it ever freed.

Example:
    >>> release_memory()     # after a big read or every so many results
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_LIBC: Any = None
# glibc's mallopt parameter, and the size from which a block gets pages of its own.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else False
        except OSError:
            _LIBC = False
    return _LIBC


def steady_allocator() -> None:
    """Keep blocks of 128 KiB and more in pages of their own, handed back when freed.
    glibc raises that threshold each time such a block is freed (up to 32 MiB), after
    which a compaction's column buffers land in the heap and the peak of every merge
    stays resident: 30-50 MiB more at a million trials. A no-op off glibc."""
    mallopt = getattr(_libc(), "mallopt", None) if _libc() else None
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_memory() -> None:
    """Hand the C allocator's free pages back to the OS (glibc's ``malloc_trim``; a no-op
    elsewhere): what the driver freed (Parquet flushes, merged files, batches of results)
    would otherwise stay in its resident size for the rest of the sweep."""
    trim = getattr(_libc(), "malloc_trim", None) if _libc() else None
    if trim is not None:
        trim(0)


__all__ = ["release_memory", "steady_allocator"]
