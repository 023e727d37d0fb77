"""The driver lock: one driver per sweep at a time, ``<root>/<folder>/lock.json``.

The lock names its driver (pid, host, since). A lock left by a process that is gone
on this host is taken over; a lock that cannot be read is explained, with what to do.

Example:
    >>> lock = DriverLock(fs, "/results/demo/lock.json", local=True)   # doctest: +SKIP
    >>> lock.acquire(); ...; lock.release()                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from ..core.errors import SweepError


def pid_alive(pid: int) -> bool:
    """True when a process with this pid runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DriverLock:
    """A lock file on a pyarrow filesystem (exclusive create where the disk is local)."""

    def __init__(self, fs: pafs.FileSystem, path: str, *, local: bool):
        self.fs = fs
        self.path = path
        self.local = local

    def _read(self) -> tuple[str | None, dict[str, Any] | None, str]:
        """(raw text or None when absent, holder or None, why it is unreadable)."""
        try:
            with self.fs.open_input_stream(self.path) as f:
                text = f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None, None, ""
        except (OSError, pa.ArrowException) as exc:
            return "", None, f"it cannot be read ({exc})"
        try:
            holder = json.loads(text)
        except ValueError:
            return text, None, "it is not JSON"
        if not isinstance(holder, dict):
            return text, None, "it is not a JSON object"
        pid = holder.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int):
            return text, None, f"its pid is {pid!r}, not a number"
        return text, holder, ""

    def holder(self) -> dict[str, Any] | None:
        """The running driver's {pid, host, since}, or None (no lock, or unreadable)."""
        return self._read()[1]

    def problem(self) -> str:
        """Why an existing lock file cannot be read ('' when it can, or is absent)."""
        return self._read()[2]

    def alive(self) -> bool | None:
        """Whether the lock's driver still runs (None when it is on another host)."""
        holder = self.holder()
        if holder is None:
            return False
        if holder.get("host") != socket.gethostname():
            return None
        return pid_alive(int(holder["pid"]))

    def acquire(self) -> None:
        """Take the lock, or raise naming the driver that holds it (or why the lock file
        cannot be read, and what to do)."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        self.fs.create_dir(self.path.rpartition("/")[0], recursive=True)
        for _ in range(2):
            if self._create(me):
                return
            text, holder, why = self._read()
            if text is None:
                continue  # released in between: try again
            if holder is None:
                raise SweepError(
                    f"the lock {self.path} exists but {why}; if no driver of this sweep "
                    f"runs (check `sweep status` and your processes), delete it and rerun")
            if holder.get("host") == me["host"] and not pid_alive(int(holder["pid"])):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.delete_file(self.path)
                continue
            since = time.strftime("%Y-%m-%d %H:%M:%S",
                                  time.localtime(float(holder.get("since") or 0)))
            raise SweepError(
                f"this sweep is already being run by pid {holder['pid']} on host "
                f"{holder.get('host')!r} (since {since}); wait for it, stop it, or if it is "
                f"gone delete {self.path}")
        raise SweepError(f"could not take the lock {self.path}: another driver took and "
                         f"released it twice while this one tried; rerun")

    def _create(self, me: dict[str, Any]) -> bool:
        if self.local:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return True
        if self._read()[0] is not None:
            return False
        with self.fs.open_output_stream(self.path) as f:
            f.write(json.dumps(me).encode())
        return True

    def release(self) -> None:
        """Delete the lock if this process holds it."""
        holder = self.holder()
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == \
                socket.gethostname():
            with contextlib.suppress(OSError, pa.ArrowException):
                self.fs.delete_file(self.path)


__all__ = ["DriverLock", "pid_alive"]
