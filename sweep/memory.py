"""Giving memory back: a long sweep must not keep the peak of everything it ever freed.

Example:
    >>> release_memory()     # after a big read or every so many results
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_LIBC: Any = None


def release_memory() -> None:
    """Hand the C allocator's free pages back to the OS (glibc's ``malloc_trim``; a no-op
    elsewhere): what the driver freed (Parquet flushes, merged files, batches of results)
    would otherwise stay in its resident size for the rest of the sweep."""
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else False
        except OSError:
            _LIBC = False
    trim = getattr(_LIBC, "malloc_trim", None) if _LIBC else None
    if trim is not None:
        trim(0)


__all__ = ["release_memory"]
