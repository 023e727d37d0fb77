"""What the live dashboard knows of the sweeps under its results roots, kept fresh
cheaply: each sweep is re-read only when its folder's fingerprint changes (a new
journal line, a flushed part file, a stage file, the lock), at most every ``poll``
seconds, and never more often than a few times the last read took (so a sweep of a
million trials costs the dashboard a bounded share of a core, however fast it grows).
While a sweep is re-read, requests get the snapshot before; a problem with one sweep
(or one root) is kept in its snapshot and never stops the others.

Parameter importance is computed in one background thread, for the sweeps someone looks
at, again when the ranked trials have changed and the last fit is old enough.

Example:
    >>> catalog = Catalog(["results"], describe=my_describe)   # doctest: +SKIP
    >>> [s.key for s in catalog.sweeps()]                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..core.errors import SweepError
from .figures import ReportData
from .importance import MIN_TRIALS, Importance, fanova
from .prepare import prepare
from .results_source import SweepFolder, SweepMeta, list_sweeps

__all__ = ["Catalog", "Describe", "Snapshot", "SweepWatch"]

log = logging.getLogger("sweep")

Describe = Callable[[str, str], SweepMeta]  # (spec text, where it is) -> what views need
# A sweep is re-read at most every THROTTLE x what its last version cost (the read and
# the payloads built from it): at most 1 / (1 + THROTTLE) of a core per sweep watched.
THROTTLE = 4.0
IMPORTANCE_EVERY = 15.0  # seconds between fits of one sweep (at least)
IMPORTANCE_SHARE = 0.1  # and at most this share of a core spent refitting it
HOLD_SECONDS = 120.0  # a sweep's table is kept this long after its page last asked


@dataclass
class Snapshot:
    """One read of a sweep. ``data`` is the prepared table (None before the first trial
    or when the spec cannot be read); ``error`` a problem that stopped the read (the data
    of the read before is kept); ``problems`` what the read skipped."""

    version: int = 0
    data_version: int = 0  # changes with the trials (and the spec, the stage files)
    curves_version: int = 0  # changes with the curves
    meta: SweepMeta | None = None
    data: ReportData | None = None
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    rungs: list[dict[str, Any]] = field(default_factory=list)
    driver: dict[str, Any] = field(default_factory=dict)
    pending: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    read_at: float = 0.0  # time.time() of the read
    read_seconds: float = 0.0
    keys: tuple[Any, ...] = ()  # what the trials and the curves were read from


class SweepWatch:
    """One sweep folder, its latest snapshot and its payload caches."""

    def __init__(self, key: str, root: str, folder: str, describe: Describe | None,
                 poll: float = 1.0):
        self.key = key
        self.root = root
        self.name = folder
        self.folder = SweepFolder(root, folder)
        self.describe = describe
        self.poll = poll
        self.snapshot = Snapshot()
        self._lock = threading.Lock()
        self._next = 0.0
        self._fingerprint: tuple[Any, ...] | None = None
        self._spec: tuple[str, SweepMeta] | None = None
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._spent = 0.0  # seconds spent building payloads of the current version
        self.importance: tuple[Importance, float, int, float] | None = None  # +at, n, secs
        self.importance_busy = False
        self._looked_at = -math.inf  # never: the list alone does not keep the table
        self._released = False
        self._reload = False  # read the table again although the folder did not change

    def touch(self) -> None:
        """Someone looks at this sweep's page: keep its table (read it again if it was
        let go)."""
        self._looked_at = time.monotonic()
        if self._released:
            with self._lock:
                self._released = False
                self._reload = True
                self._next = 0.0

    def release_if_idle(self) -> None:
        """Let go of the table of a sweep whose page nobody looked at lately (the list of
        sweeps keeps its summary): a root of many finished sweeps costs their summaries,
        not their tables."""
        if self._released or time.monotonic() - self._looked_at < HOLD_SECONDS:
            return
        with self._lock:
            snap = self.snapshot
            if snap.data is not None or len(snap.curves):
                # No keys: whatever changes next, everything is read again.
                self.snapshot = dataclasses.replace(snap, data=None, curves=pd.DataFrame(),
                                                    keys=())
                self.folder.forget()
            self._released = True

    def current(self) -> Snapshot:
        """The latest snapshot, refreshed first when due (waits only for a first read)."""
        if time.monotonic() >= self._next and self._lock.acquire(
                blocking=self.snapshot.version == 0 and self.snapshot.error is None):
            try:
                if time.monotonic() >= self._next:
                    self._refresh()
            finally:
                self._lock.release()
        return self.snapshot

    def cached(self, key: str, build: Callable[[Snapshot], Any],
               stamp: Callable[[Snapshot], Any] = lambda s: s.version) -> Any:
        """``build(snapshot)``, computed again only when ``stamp(snapshot)`` changes (by
        default the snapshot's version)."""
        snap = self.current()
        mark = stamp(snap)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == mark:
            return hit[1]
        started = time.monotonic()
        value = build(snap)
        self._spent += time.monotonic() - started
        self._cache[key] = (mark, value)
        return value

    def _refresh(self) -> None:
        started = time.monotonic()
        old = self.snapshot
        try:
            fingerprint = self.folder.fingerprint()
        except SweepError as exc:
            self._replace(old, error=str(exc), started=started)
            return
        unchanged = fingerprint == self._fingerprint and old.error is None
        reload, self._reload = self._reload, False
        if unchanged and not reload:
            self._next = time.monotonic() + self.poll
            return
        if self._released:  # changed: read again (its summary is asked for), let go after
            self._released = False
        try:
            snap = self._read(old.version + (not unchanged))
            if unchanged:  # the same files read again: the same versions
                snap.data_version, snap.curves_version = old.data_version, old.curves_version
        except Exception as exc:  # one sweep's trouble must not stop the page
            log.debug("dashboard: reading %s failed", self.folder.location, exc_info=True)
            self._replace(old, error=f"{type(exc).__name__}: {exc}", started=started)
            return
        self._fingerprint = fingerprint
        snap.read_seconds = time.monotonic() - started
        cost, self._spent = snap.read_seconds + self._spent, 0.0
        self.snapshot = snap
        self._next = time.monotonic() + max(self.poll, THROTTLE * cost)

    def _replace(self, old: Snapshot, *, error: str, started: float) -> None:
        """Keep the data of ``old``; say what went wrong (a new version when it is news)."""
        version = old.version + (old.error != error)
        self.snapshot = Snapshot(version, old.data_version, old.curves_version, old.meta,
                                 old.data, old.curves, old.boxes, old.rungs, old.driver,
                                 old.pending, old.problems, error, time.time(),
                                 time.monotonic() - started, old.keys)
        self._fingerprint = None
        self._next = time.monotonic() + max(self.poll, 2.0)

    def _meta(self) -> SweepMeta:
        text = self.folder.spec_text()
        if text is None:
            raise SweepError(f"{self.folder.location}/spec.yaml is gone")
        if self._spec is None or self._spec[0] != text:
            if self.describe is None:
                meta = SweepMeta(name=self.name, metric=None)
            else:
                meta = self.describe(text, f"{self.folder.location}/spec.yaml")
            self._spec = (text, meta)
        return self._spec[1]

    def _read(self, version: int) -> Snapshot:
        """Read what changed: the trials (and prepare them) only when their files, the
        spec or the stage files did; the curves only when theirs did."""
        old = self.snapshot
        meta = self._meta()
        folder = self.folder
        trials_key = (folder.signature("trials"), folder.signature("stages"), meta)
        curves_key = folder.signature("curves")
        old_trials, old_curves = old.keys or (None, None)
        data, boxes, rungs = old.data, old.boxes, old.rungs
        data_version, curves_version = old.data_version, old.curves_version
        if trials_key != old_trials or old.error is not None:
            trials = folder.trials()
            boxes, rungs = folder.stage_files()
            data = prepare(trials, meta.metric, meta.goal, meta.scales, boxes) \
                if len(trials) else None
            data_version += 1
        curves = old.curves
        if curves_key != old_curves or old.error is not None:
            curves = folder.curves()
            curves_version += 1
        return Snapshot(version, data_version, curves_version, meta, data, curves, boxes,
                        rungs, folder.driver(), folder.pending(), folder.problems, None,
                        time.time(), keys=(trials_key, curves_key))


class _ImportanceWorker:
    """One daemon thread that fits importances for the sweeps asked for, one at a time."""

    def __init__(self) -> None:
        self._queue: queue.Queue[SweepWatch] = queue.Queue()
        self._thread: threading.Thread | None = None

    def ask(self, watch: SweepWatch) -> None:
        """Fit ``watch``'s importance when it is stale and not being fitted."""
        snap = watch.snapshot
        data = snap.data
        if (watch.importance_busy or data is None or data.metric is None or not data.params
                or len(data.ranked) < MIN_TRIALS):
            return
        done = watch.importance
        if done is not None:
            _, at, n, seconds = done
            wait = max(IMPORTANCE_EVERY, seconds / IMPORTANCE_SHARE)
            if n == len(data.ranked) or time.time() - at < wait:
                return
        watch.importance_busy = True
        self._queue.put(watch)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sweep-importance",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            watch = self._queue.get()
            try:
                data = watch.snapshot.data
                if data is not None and data.metric is not None:
                    started = time.monotonic()
                    imp = fanova(data.ranked, data.params, metric=data.metric, goal=data.goal)
                    watch.importance = (imp, time.time(), len(data.ranked),
                                        time.monotonic() - started)
            except Exception:  # reported as "not available", never fatal
                log.debug("dashboard: importance of %s failed", watch.key, exc_info=True)
            finally:
                watch.importance_busy = False


class Catalog:
    """The sweeps under some results roots, each with its watch. A sweep's key is its
    folder name, with ``@<n>`` (the root's position) when two roots hold the name."""

    def __init__(self, roots: Sequence[str], describe: Describe | None = None,
                 poll: float = 1.0):
        self.roots = list(roots)
        self.describe = describe
        self.poll = poll
        self._watches: dict[tuple[int, str], SweepWatch] = {}
        self._lock = threading.Lock()
        self._listed: tuple[float, list[tuple[int, str]], dict[str, str]] = (-1e9, [], {})
        self.importance = _ImportanceWorker()

    def _list(self) -> tuple[list[tuple[int, str]], dict[str, str]]:
        """(root index, folder) of every sweep and the roots that cannot be listed,
        listed again at most every ``poll`` seconds."""
        with self._lock:
            at, found, errors = self._listed
            if time.monotonic() - at < self.poll:
                return found, errors
            found, errors = [], {}
            for i, root in enumerate(self.roots):
                try:
                    found += [(i, name) for name in list_sweeps(root)]
                except SweepError as exc:
                    errors[root] = str(exc)
                    # Keep the sweeps seen there: their pages say what went wrong.
                    found += [k for k in self._watches if k[0] == i]
            self._listed = (time.monotonic(), found, errors)
            return found, errors

    def root_errors(self) -> dict[str, str]:
        return self._list()[1]

    def sweeps(self) -> list[SweepWatch]:
        """Every sweep's watch, in root order then by name."""
        found, _ = self._list()
        names: dict[str, int] = {}
        for _, name in found:
            names[name] = names.get(name, 0) + 1
        out = []
        with self._lock:
            for i, name in found:
                watch = self._watches.get((i, name))
                if watch is None:
                    key = name if names[name] == 1 else f"{name}@{i}"
                    watch = SweepWatch(key, self.roots[i], name, self.describe, self.poll)
                    self._watches[(i, name)] = watch
                out.append(watch)
        return out

    def get(self, key: str) -> SweepWatch | None:
        """The watch of the sweep with this key, or None."""
        for watch in self.sweeps():
            if watch.key == key:
                return watch
        return None
