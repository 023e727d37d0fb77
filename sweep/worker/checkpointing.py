"""Checkpoints from inside a trial: what ``sweep.report(step=..., checkpoint=dir)`` and
``sweep.restore()`` do, and a command job's checkpoint lines.

The engine puts the sweep's checkpoint store (``sweep.store.checkpoints.CheckpointStore``,
two strings when pickled) in the ``Objective``; the worker never imports it (worker and
store are sibling layers, and the worker stays free of pyarrow until a trial actually
checkpoints): it calls the verbs of ``Checkpointer`` below. One ``TrialCheckpoints``
per attempt saves (synchronously: the directory is copied as files before ``report``
returns), prunes to ``keep``, restores once (cached), and counts what it all cost.

Where an attempt restores from is the driver's to say (``Resume``): its own last
checkpoint (a retry, a rerun after a killed driver), else another trial's (a PBT
segment starts from its parent's), else nothing (a fresh trial: no listing at all).

Example:
    >>> ckpts = TrialCheckpoints(store, "8bf0b5019eb95080", keep=1,
    ...                          resume=Resume(attempt=2, own=True))    # doctest: +SKIP
    >>> ckpts.restore().step                                           # doctest: +SKIP
    12
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from ..core.errors import SweepError
from ..core.records import Report

# A PBT segment restores from a parent that keeps checkpointing and pruning: its newest
# checkpoint may be pruned while it is listed; listing again finds the next one.
SOURCE_TRIES = 3


class Checkpointer(Protocol):
    """What a trial uses of the sweep's checkpoint store (``CheckpointStore`` is one)."""

    def save(self, trial_id: str, step: int, local_dir: str, *, attempt: int | None = None,
             meta: dict[str, Any] | None = None) -> Any: ...

    def fetch(self, trial_id: str, dest_dir: str | None = None) -> Any: ...

    def prune(self, trial_id: str, keep: int = 1, in_use: Any = None) -> int: ...


class Resume(NamedTuple):
    """Where an attempt may restore from: its own checkpoints (``own``), then those of
    trial ``source`` (PBT's parent); ``attempt`` is recorded in each manifest.

    Example: ``Resume(2, own=True)`` for a retry; ``Resume(1, source="a1b2")`` for a
    PBT segment.
    """

    attempt: int = 1
    own: bool = False
    source: str | None = None

    @classmethod
    def of(cls, raw: Any) -> Resume | None:
        """From the task payload's list ``[attempt, own, source]`` (None: fresh)."""
        if not raw:
            return None
        attempt, own, source = [*list(raw)[:3], *(1, False, None)[len(raw):]]
        return cls(int(attempt or 1), bool(own), source or None)


class Restored(NamedTuple):
    """A restored checkpoint: its local path, step, trial it came from, and the reports
    up to its step (only when it is the trial's own: a segment's curve starts anew)."""

    path: str
    step: int
    source: str
    reports: list[Report]


class TrialCheckpoints:
    """One attempt's checkpoints: save, prune, restore once, and their cost."""

    def __init__(self, store: Checkpointer, trial_id: str, *, keep: int = 1,
                 resume: Resume | None = None):
        self.store = store
        self.trial_id = trial_id
        self.keep = keep
        self.resume = resume
        self.saved_bytes = 0
        self.saves = 0
        self.seconds = 0.0
        self.failures: list[str] = []  # restores that failed
        self.unsaved = 0  # saves that failed; the first one's reason:
        self._first_unsaved = ""
        self.restored: Restored | None = None
        self._tried = False
        self._dirs: list[str] = []
        self._lock = threading.Lock()

    @property
    def restored_step(self) -> int | None:
        return None if self.restored is None else self.restored.step

    def restore(self) -> Restored | None:
        """The checkpoint this attempt starts from, downloaded into a fresh local folder
        (once: later calls return the same), or None for a fresh start."""
        with self._lock:
            if self._tried:
                return self.restored
            self._tried = True
            resume = self.resume
            if resume is None:
                return None
            start = time.monotonic()
            try:
                if resume.own:
                    self.restored = self._fetch(self.trial_id, own=True)
                if self.restored is None and resume.source:
                    for _ in range(SOURCE_TRIES):
                        self.restored = self._fetch(resume.source, own=False)
                        if self.restored is not None:
                            break
            except (SweepError, OSError, ValueError) as exc:
                self.failures.append(f"could not restore a checkpoint: {str(exc)[:500]}")
                self.restored = None
            self.seconds += time.monotonic() - start
            return self.restored

    def _fetch(self, source: str, *, own: bool) -> Restored | None:
        dest = tempfile.mkdtemp(prefix=f"sweep-restore-{self.trial_id}-")
        self._dirs.append(dest)
        got = self.store.fetch(source, dest)
        if got is None:
            return None
        reports = _reports_of(self.trial_id, got.meta) if own else []
        return Restored(got.path, int(got.info.step), source, reports)

    def save(self, step: int, local_dir: str, reports: Sequence[Report]) -> bool:
        """Copy ``local_dir`` as the checkpoint at ``step`` (with the reports up to it),
        then prune the trial's older ones to ``keep``. True when it committed; a store
        that fails is noted (the trial's ``error`` column says so) and the trial goes on."""
        meta = {"reports": [[r.step, dict(r.metrics), r.time] for r in reports
                            if r.step <= step]}
        start = time.monotonic()
        try:
            info = self.store.save(self.trial_id, step, os.fspath(local_dir),
                                   attempt=None if self.resume is None else self.resume.attempt,
                                   meta=meta)
        except SweepError as exc:
            self.seconds += time.monotonic() - start
            self.unsaved += 1
            if self.unsaved == 1:
                self._first_unsaved = f"checkpoint at step {step} not saved: {str(exc)[:500]}"
            return False
        with contextlib.suppress(SweepError, OSError):
            self.store.prune(self.trial_id, self.keep)
        self.seconds += time.monotonic() - start
        self.saved_bytes += int(getattr(info, "bytes", 0) or 0)
        self.saves += 1
        return True

    def warnings(self) -> list[str]:
        """What went wrong with this attempt's checkpoints, one sentence each."""
        out = list(self.failures)
        if self.unsaved:
            more = f" ({self.unsaved - 1} more not saved)" if self.unsaved > 1 else ""
            out.append(self._first_unsaved + more)
        return out

    def close(self) -> None:
        """Remove the local copies restored for this attempt."""
        for path in self._dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._dirs = []


def _reports_of(trial_id: str, meta: Any) -> list[Report]:
    """The reports kept in a checkpoint's meta (``[[step, metrics, time], ...]``)."""
    rows = meta.get("reports") if isinstance(meta, dict) else None
    out = []
    for row in rows if isinstance(rows, list) else []:
        try:
            step, metrics, when = row
            out.append(Report(trial_id, int(step), dict(metrics), float(when or 0.0)))
        except (TypeError, ValueError):
            continue
    return out


class CommandSaver:
    """Saves a command job's checkpoints on a thread of its own (a copy must never stall
    the program's stdout pipe): each ``{"step": n, "checkpoint": path}`` line offers a
    folder; if several arrive while one is saved, only the newest is saved next (the
    older ones are superseded). Folders under the attempt's checkpoint directory are
    removed once saved or superseded. ``finish`` waits for the save in progress.
    ``on_saved(step)`` runs after each commit (the report is marked there)."""

    def __init__(self, checkpoints: TrialCheckpoints, reports: Any, base_dir: str,
                 on_saved: Any):
        self.checkpoints = checkpoints
        self.reports = reports  # a callable: the trial's reports so far
        self.base_dir = os.path.realpath(base_dir)
        self.on_saved = on_saved
        self._pending: tuple[int, str] | None = None
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="sweep-checkpoint-saver")
        self._thread.start()

    def offer(self, step: int, path: str) -> None:
        if not os.path.isabs(path):
            path = os.path.join(self.base_dir, path)
        with self._cond:
            if self._pending is not None:
                self._discard(self._pending[1])
            self._pending = (step, path)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                step, path = self._pending
                self._pending, self._busy = None, True
            try:
                if self.checkpoints.save(step, path, self.reports()):
                    self.on_saved(step)
            except ValueError as exc:
                self.checkpoints.failures.append(f"checkpoint line at step {step}: {exc}")
            finally:
                self._discard(path)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _discard(self, path: str) -> None:
        real = os.path.realpath(path)
        if real != self.base_dir and real.startswith(self.base_dir + os.sep):
            shutil.rmtree(real, ignore_errors=True)

    def finish(self) -> None:
        """Save what is pending, wait for it, and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


__all__ = ["Checkpointer", "CommandSaver", "Restored", "Resume", "TrialCheckpoints"]
