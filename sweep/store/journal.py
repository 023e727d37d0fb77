"""The journal: every result made durable the moment it arrives, on the driver's disk.

One append-only file of JSON lines per driver run and kind (``journal`` for trials,
``curves`` for reports);
a flush to Parquet deletes it. After a crash, the next run reads the journals left
behind (``leftovers``): a line cut by the crash, or garbled, is skipped on its own,
never the lines after it.

Example:
    >>> j = Journal("/tmp/demo-journal", "journal")
    >>> j.append([{"trial_id": "t1", "stage": 0, "status": "ok"}]); j.sync()
    >>> [rows for _, rows, _ in leftovers("/tmp/demo-journal", "journal", skip=j.path)]
    []
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

_DUMPS = json.JSONEncoder(separators=(",", ":"), default=str).encode


class Journal:
    """An append-only JSON-lines file, created on the first append."""

    def __init__(self, directory: str, kind: str):
        self.directory = directory
        self.kind = kind
        self.path: str | None = None
        self._file: Any = None

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write ``rows`` (one line each) and hand them to the OS (one write call)."""
        if not rows:
            return
        if self._file is None:
            os.makedirs(self.directory, exist_ok=True)
            self.path = os.path.join(self.directory,
                                     f"{self.kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._file.write("".join(_DUMPS(r) + "\n" for r in rows))
        self._file.flush()

    def sync(self) -> None:
        """Force what was appended to disk (before the Parquet flush that replaces it)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def discard(self) -> None:
        """Close and delete the file: its rows are in Parquet now."""
        if self._file is not None:
            self._file.close()
            self._file = None
            if self.path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            self.path = None

    def count(self) -> int:
        """Rows appended and not yet discarded."""
        if not self.path or not os.path.exists(self.path):
            return 0
        with open(self.path, "rb") as f:
            return sum(1 for _ in f)


def leftovers(directory: str, kind: str, skip: str | None = None
              ) -> Iterator[tuple[str, list[dict[str, Any]], int]]:
    """(path, rows, bad lines) of each journal of ``kind`` left in ``directory`` by a
    driver that died (``skip``: this run's own journal)."""
    if not os.path.isdir(directory):
        return
    names = sorted(f for f in os.listdir(directory)
                   if f.startswith(f"{kind}-") and f.endswith(".jsonl"))
    for name in names:
        path = os.path.join(directory, name)
        if path == skip:
            continue
        with open(path, "rb") as f:
            rows, bad = parse_lines(f)
        yield path, rows, bad


def parse_lines(lines: Iterable[bytes | str]) -> tuple[list[dict[str, Any]], int]:
    """(rows, bad lines) of journal text: each line a JSON object; a garbled line (cut by
    a crash, or anything but an object) is counted and skipped on its own."""
    rows: list[dict[str, Any]] = []
    bad = 0
    for raw in lines:
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            bad += 1
            continue
        if isinstance(value, dict):
            rows.append(value)
        else:
            bad += 1
    return rows, bad


def pending_count(directory: str, kinds: Sequence[str] = ("journal",)) -> int:
    """Rows in every journal of ``kinds`` in ``directory`` (for ``sweep status``)."""
    if not os.path.isdir(directory):
        return 0
    total = 0
    for name in os.listdir(directory):
        if any(name.startswith(f"{k}-") for k in kinds) and name.endswith(".jsonl"):
            with contextlib.suppress(OSError), open(os.path.join(directory, name), "rb") as f:
                total += sum(1 for _ in f)
    return total


__all__ = ["Journal", "leftovers", "parse_lines", "pending_count"]
