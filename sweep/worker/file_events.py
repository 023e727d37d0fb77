"""Wait for files to change under a folder without polling: Linux's inotify, through
ctypes (no dependency). Where inotify is missing (macOS) or refused (the per-user limit
of instances reached), ``FolderWatch.wait`` falls back to a timed wait, so a caller
written for events still works, only later.

The watch covers the folder and its subfolders down to ``depth`` levels, including
subfolders created while it runs (a new subfolder's own subfolders are added when it is;
files written before its watch existed are not missed as long as the caller reads after
every wake-up, since the subfolder's creation itself wakes it).

Example:
    >>> with FolderWatch("/runs/t1", depth=2) as watch:   # doctest: +SKIP
    ...     while not done():
    ...         watch.wait(1.0)            # True: something changed (or woken)
    ...         read_what_is_new()
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import struct
from typing import Any

# inotify(7) event bits.
_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_ISDIR = 0x40000000
_IN_Q_OVERFLOW = 0x4000
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

_LIBC: Any = None


def _libc() -> Any:
    """libc with inotify, or None (not Linux, or no such symbols)."""
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            lib.inotify_init1.argtypes = [ctypes.c_int]
            lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


class FolderWatch:
    """Events on ``root`` (a folder that exists) and its subfolders, to ``depth``
    levels below it; ``wait`` blocks until one arrives, ``wake`` is called, or the
    timeout passes. Close it (or use ``with``)."""

    def __init__(self, root: str, depth: int = 1):
        self.root = os.path.abspath(root)
        self.depth = depth
        self._fd = -1
        self._dirs: dict[int, tuple[str, int]] = {}  # watch descriptor -> (folder, level)
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        lib = _libc()
        if lib is not None:
            fd = lib.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                if not self._add(self.root, 0):  # no such folder: timed waits only
                    self.close_events()

    @property
    def live(self) -> bool:
        """True when changes wake ``wait`` (inotify works here); else it only times out."""
        return self._fd >= 0

    def _add(self, folder: str, level: int) -> bool:
        """Watch ``folder`` and the subfolders it already has; False when it does not
        exist."""
        wd = _libc().inotify_add_watch(self._fd, os.fsencode(folder), _MASK)
        if wd < 0:
            return False
        self._dirs[wd] = (folder, level)
        if level < self.depth:
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        self._add(entry.path, level + 1)
        return True

    def _drain(self) -> None:
        """Read the queued events; watch the subfolders they created."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, pos)
                name = data[pos + _EVENT.size: pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW or not mask & _IN_ISDIR or wd not in self._dirs:
                    continue
                folder, level = self._dirs[wd]
                if level < self.depth:
                    self._add(os.path.join(folder, os.fsdecode(name)), level + 1)

    def wait(self, timeout_s: float) -> bool:
        """Block until something changes under the root, ``wake`` is called, or
        ``timeout_s`` passes; True unless it timed out. Without inotify: sleeps
        ``timeout_s`` unless woken, and returns True (the caller should look)."""
        fds = [self._wake_r] + ([self._fd] if self._fd >= 0 else [])
        try:
            ready, _, _ = select.select(fds, [], [], timeout_s)
        except (OSError, ValueError):  # closed meanwhile
            return True
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 4096)
        if self._fd >= 0 and self._fd in ready:
            self._drain()
        return bool(ready) or self._fd < 0

    def wake(self) -> None:
        """Make a ``wait`` in another thread return now."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close_events(self) -> None:
        """Stop watching (``wait`` then only times out or is woken)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1
        self._dirs.clear()

    def close(self) -> None:
        self.close_events()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> FolderWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FolderWatch"]
