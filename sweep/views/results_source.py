"""Reading a results root for the views: the one module of ``sweep.views`` that opens the
store (only its public reading methods), so the views follow the store wherever it goes.

* ``list_sweeps(root)``: the sweep folders under a results root (those with a spec);
* ``SweepFolder``: one sweep's results, read-only and cheap to poll: the trials and the
  curves (Parquet, plus the rows the running driver has journaled and not yet flushed,
  so a result shows the moment it is stored), the stage files (refine boxes, rungs),
  the driver lock, and a ``fingerprint`` of the folder that changes whenever any of that
  does. Problems (a corrupt part file, an unreadable stage file) are collected in
  ``problems`` rather than raised, so a page can show them and go on.

Nothing here writes: no flush, no journal fold, no lock.

Example:
    >>> folder = SweepFolder("results", "mlp-digits")      # doctest: +SKIP
    >>> df = folder.trials(); curves = folder.curves()      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from ..core.errors import SweepError
from ..store.curve_runs import last_runs
from ..store.folder import ResultsFolder, open_root
from ..store.journal import parse_lines
from ..store.reader import ResultsReader

__all__ = ["SPEC_FILE", "StageInfo", "SweepFolder", "SweepMeta", "list_sweeps"]

SPEC_FILE = "spec.yaml"
JOURNAL_KINDS = ("journal", "curves")
_READ_ERRORS = (OSError, pa.ArrowException, ValueError)
# The columns of a trial row besides its params and metrics (sweep.core.records).
_FIELDS = ("sweep", "stage", "trial_id", "parent_id", "status", "error", "attempts",
           "started_at", "finished_at", "duration_s", "node", "gpu_ids", "step")


@dataclass(frozen=True)
class StageInfo:
    """What the spec says of a stage: its plan, the trials it plans (None when the plan
    decides as it goes), the values it fixes."""

    index: int
    plan: str
    planned: int | None = None
    fixed: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepMeta:
    """What the views need of a sweep's spec (built by the caller, who can read specs:
    the views sit beside the spec layer, not above it)."""

    name: str
    metric: str | None
    goal: str = "minimize"
    scales: dict[str, str] = field(default_factory=dict)
    stages: tuple[StageInfo, ...] = ()


def list_sweeps(root: str) -> list[str]:
    """The folders under ``root`` that hold a sweep (a ``spec.yaml``), sorted.

    Raises ``SweepError`` when the root cannot be listed (it vanished, or is no folder).
    Example: ``list_sweeps("results")`` -> ``["mlp-digits", "mlp-digits-quick"]``
    """
    fs, base = open_root(root)
    try:
        info = fs.get_file_info(base)
        if info.type != pafs.FileType.Directory:
            raise SweepError(f"results root {root!r} is not a folder (or is gone)")
        entries = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        folders = [e.base_name for e in entries if e.type == pafs.FileType.Directory
                   and not e.base_name.startswith(".")]
        specs = fs.get_file_info([f"{base}/{name}/{SPEC_FILE}" for name in folders])
    except (OSError, pa.ArrowException) as exc:
        raise SweepError(f"results root {root!r} cannot be listed: {exc}") from None
    return sorted(name for name, spec in zip(folders, specs)
                  if spec.type == pafs.FileType.File)


class _Tail:
    """The rows of the journal files of a folder, read incrementally: a file that grew
    is read from where the last read stopped (at a line end; a line being written is
    left for the next read), a file that vanished (flushed into Parquet) is dropped."""

    def __init__(self, fs: pafs.FileSystem, folder: str):
        self.fs = fs
        self.folder = folder
        self.files: dict[str, tuple[int, list[dict[str, Any]]]] = {}

    def rows(self, kind: str, infos: Sequence[pafs.FileInfo]) -> list[dict[str, Any]]:
        present = {i.path: i for i in infos if i.base_name.startswith(f"{kind}-")
                   and i.base_name.endswith(".jsonl")}
        for path in [p for p in self.files if p.rpartition("/")[2].startswith(f"{kind}-")]:
            if path not in present:
                del self.files[path]
        out: list[dict[str, Any]] = []
        for path in sorted(present):
            offset, rows = self.files.get(path, (0, []))
            size = present[path].size or 0
            if size < offset:  # rewritten: read again from the start
                offset, rows = 0, []
            if size > offset:
                with contextlib.suppress(*_READ_ERRORS), self.fs.open_input_file(path) as f:
                    f.seek(offset)
                    data = f.read(size - offset)
                    end = data.rfind(b"\n") + 1
                    new, _bad = parse_lines(data[:end].splitlines())
                    rows = rows + new
                    offset += end
            self.files[path] = (offset, rows)
            out.extend(rows)
        return out


class SweepFolder:
    """One sweep's results folder, read-only (``root`` a path or URI, ``folder`` the
    sweep's folder under it)."""

    def __init__(self, root: str, folder: str):
        self.root = root
        self.folder = folder
        # The store warns once about a file (a corrupt part file): kept while it is there.
        self._sticky: dict[str, str] = {}
        self._notes: dict[str, list[str]] = {}  # per kind of read, replaced by the next one
        self.results = ResultsFolder(root, folder, warn=self._warned)
        self.reader = ResultsReader(self.results)
        self._tail = _Tail(self.results.fs, f"{self.results.dir}/.journal")
        self._parquet: dict[str, tuple[tuple[Any, ...], pd.DataFrame]] = {}
        self._infos: list[pafs.FileInfo] = []
        self._listed = False
        self._ids: tuple[pd.DataFrame, set[str]] | None = None

    def forget(self) -> None:
        """Drop the tables kept between reads (the next read reads everything)."""
        self._parquet.clear()
        self._ids = None
        self._tail = _Tail(self.results.fs, f"{self.results.dir}/.journal")

    def _warned(self, message: str) -> None:
        path = message.removeprefix("skipping ").partition(": ")[0]
        self._sticky[message] = path if path != message else ""

    def _note(self, kind: str, message: str) -> None:
        self._notes.setdefault(kind, []).append(message)

    @property
    def problems(self) -> list[str]:
        """What the reads skipped: files that cannot be read (while they are there), stage
        files that cannot be parsed, tables that could not be read at the last try."""
        present = {i.path for i in self._infos}
        out = [m for m, path in self._sticky.items() if not path or path in present]
        return out + [m for notes in self._notes.values() for m in notes if m not in out]

    @property
    def location(self) -> str:
        return self.results.location()

    # ------------------------------------------------------------ small files

    def spec_text(self) -> str | None:
        """The stored spec, or None when the folder has none."""
        return self.results.read_text(SPEC_FILE)

    def fingerprint(self) -> tuple[Any, ...]:
        """Every file of the folder with its size and time: it changes whenever a result,
        a report, a stage file or the lock does. Raises ``SweepError`` when the folder is
        gone or cannot be listed."""
        fs, base = self.results.fs, self.results.dir
        try:
            if fs.get_file_info(base).type != pafs.FileType.Directory:
                raise SweepError(f"{self.location} is gone")
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True,
                                                       allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"{self.location} cannot be listed: {exc}") from None
        self._infos = [i for i in infos if i.type == pafs.FileType.File]
        self._listed = True
        return tuple(sorted((i.path[len(base):], i.size, i.mtime_ns) for i in self._infos))

    def signature(self, kind: str) -> tuple[Any, ...]:
        """The files behind ``kind`` (``trials``, ``curves`` or ``stages``) as of the last
        ``fingerprint``: equal signatures, equal contents."""
        journal = {"trials": "/.journal/journal-", "curves": "/.journal/curves-"}.get(kind)
        return tuple(sorted((i.path, i.size, i.mtime_ns) for i in self._infos
                            if f"/{kind}/" in i.path or (journal and journal in i.path)))

    def stage_files(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(refine boxes, stopping-rule rungs) of every stage file; a file that cannot be
        read or parsed is named in ``problems`` and skipped."""
        boxes: list[dict[str, Any]] = []
        rungs: list[dict[str, Any]] = []
        self._notes["stages"] = []
        for rel in self._stage_names():
            try:
                text = self.results.read_text(rel)
                meta = json.loads(text) if text else {}
                if not isinstance(meta, dict):
                    raise ValueError("it is not a JSON object")
                boxes.extend(b for b in meta.get("boxes") or [] if isinstance(b, dict))
                rungs.extend(r for r in meta.get("rungs") or [] if isinstance(r, dict))
            except (*_READ_ERRORS, AttributeError, TypeError) as exc:
                self._note("stages", f"stage file {rel} cannot be read: {exc}")
        return boxes, rungs

    def _stage_names(self) -> list[str]:
        folder = f"{self.results.dir}/stages"
        try:
            infos = self.results.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        except _READ_ERRORS:
            return []
        names = [i.base_name for i in infos if i.type == pafs.FileType.File
                 and i.base_name.startswith("stage-") and i.base_name.endswith(".json")]

        def number(name: str) -> float:
            digits = name[len("stage-"):-len(".json")]
            return int(digits) if digits.isdigit() else math.inf

        return [f"stages/{n}" for n in sorted(names, key=lambda n: (number(n), n))]

    def driver(self) -> dict[str, Any]:
        """The driver lock: ``state`` is running, stale (its process is gone), elsewhere
        (held on another host: alive as far as anyone here can tell), none, or unknown
        (the lock cannot be read: ``problem`` says why)."""
        lock = self.results.lock
        problem = lock.problem()
        holder = lock.holder() or {}
        if problem:
            return {"state": "unknown", "problem": problem}
        if not holder:
            return {"state": "none"}
        alive = lock.alive()
        state = "running" if alive else ("stale" if alive is False else "elsewhere")
        return {"state": state, **{k: holder.get(k) for k in ("pid", "host", "since")}}

    # ------------------------------------------------------------------ tables

    def _cached(self, kind: str, read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """The Parquet table of ``kind`` (trials or curves), read again only when its
        part files changed since the last read."""
        if not self._listed:
            self.fingerprint()
        self._notes[kind] = []
        key = tuple(sorted((i.path, i.size, i.mtime_ns) for i in self._infos
                           if f"/{kind}/" in i.path and i.base_name.endswith(".parquet")))
        cached = self._parquet.get(kind)
        if cached is not None and cached[0] == key and self._infos:
            return cached[1]
        try:
            df = read()
        except (SweepError, *_READ_ERRORS) as exc:
            self._note(kind, f"the {kind} of {self.location} cannot be read: {exc}")
            return cached[1] if cached else pd.DataFrame()
        self._parquet[kind] = (key, df)
        return df

    def _journal_infos(self) -> list[pafs.FileInfo]:
        prefix = f"{self.results.dir}/.journal/"
        return [i for i in self._infos if i.path.startswith(prefix)]

    def trials(self) -> pd.DataFrame:
        """Every trial (its last attempt): the Parquet rows and those journaled since the
        last flush, as of the last ``fingerprint`` (the first call lists the folder)."""
        stored = self._cached("trials", self.reader.read)
        rows = self._tail.rows("journal", self._journal_infos())
        if not rows:
            return stored
        fresh = _trial_frame(rows)
        if not len(stored) or "trial_id" not in stored.columns:
            return _last_attempts(fresh)
        ids = self._stored_ids(stored)
        # Few fresh rows against many stored ids: a set lookup each (Series.isin would turn
        # the set into an array of a million strings every time).
        again = np.fromiter((t in ids for t in fresh["trial_id"]), bool, len(fresh))
        if not again.any():  # the usual case: new trials, appended as they are
            if fresh["trial_id"].is_unique:
                return pd.concat([stored, fresh], ignore_index=True)
            return pd.concat([stored, _last_attempts(fresh)], ignore_index=True)
        # A journaled row of a stored trial: the same attempt (flushed meanwhile) or a new
        # one (--retry-failed). The last attempt of each trial wins.
        known = pd.MultiIndex.from_frame(stored[["trial_id", "started_at"]])
        fresh = fresh[~pd.MultiIndex.from_frame(fresh[["trial_id", "started_at"]]).isin(known)]
        if not len(fresh):
            return stored
        return _last_attempts(pd.concat([stored, fresh], ignore_index=True))

    def _stored_ids(self, stored: pd.DataFrame) -> set[str]:
        """The trial ids of the Parquet table (kept with it)."""
        cached = self._ids
        if cached is None or cached[0] is not stored:
            cached = (stored, set(stored["trial_id"].tolist()))
            self._ids = cached
        return cached[1]

    def curves(self) -> pd.DataFrame:
        """Every intermediate report (Parquet and journal), sorted by trial and step."""
        stored = self._cached("curves", self.reader.read_curves)
        rows = self._tail.rows("curves", self._journal_infos())
        if not rows:
            return stored
        fresh = _curve_frame(rows)
        both = pd.concat([stored, fresh], ignore_index=True) if len(stored) else fresh
        both = both.drop_duplicates(["trial_id", "step", "time"])
        both = last_runs(both)
        return both.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)

    def pending(self) -> int:
        """Trials journaled and not yet in Parquet (as of the last ``trials`` call)."""
        return sum(len(rows) for path, (_, rows) in self._tail.files.items()
                   if path.rpartition("/")[2].startswith("journal-"))


def _last_attempts(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: the attempt that finished last."""
    df = df.sort_values(["finished_at", "trial_id"], kind="stable")
    return df.drop_duplicates("trial_id", keep="last").reset_index(drop=True)


def _times(values: pd.Series) -> pd.Series:
    return pd.to_datetime(pd.to_numeric(values, errors="coerce"), unit="s", utc=True)


def _trial_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Journal lines (``TrialRecord`` fields) as rows of the results table."""
    out = []
    for row in rows:
        if not isinstance(row.get("trial_id"), str) or not isinstance(row.get("status"), str):
            continue
        flat = {k: row.get(k) for k in _FIELDS}
        for prefix, values in (("params.", row.get("params")), ("metrics.", row.get("metrics"))):
            if isinstance(values, dict):
                flat.update({prefix + k: v for k, v in values.items()})
        out.append(flat)
    df = pd.DataFrame(out, columns=list(_FIELDS) if not out else None)
    for column in ("started_at", "finished_at"):
        df[column] = _times(df[column])
    df["stage"] = pd.to_numeric(df["stage"], errors="coerce").fillna(0).astype("int64")
    for column in [c for c in df.columns if c.startswith("metrics.")]:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df


def _curve_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Journal lines of reports as rows of the curves table."""
    out = []
    for row in rows:
        metrics = row.get("metrics")
        if not isinstance(row.get("trial_id"), str) or not isinstance(metrics, dict):
            continue
        out.append({"sweep": row.get("sweep"), "stage": row.get("stage"),
                    "trial_id": row["trial_id"], "step": row.get("step"),
                    "time": row.get("time"), "seq": row.get("seq"),
                    **{f"metrics.{k}": v for k, v in metrics.items()}})
    df = pd.DataFrame(out, columns=["sweep", "stage", "trial_id", "step", "time"]
                      if not out else None)
    df["time"] = _times(df["time"])
    df["stage"] = pd.to_numeric(df["stage"], errors="coerce").fillna(0).astype("int64")
    df["step"] = pd.to_numeric(df["step"], errors="coerce")
    for column in [c for c in df.columns if c.startswith("metrics.")]:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df
