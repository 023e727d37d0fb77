"""The results store: a sweep's Parquet tables, its small files, journal and lock.

Layout under the results root (a local path or a URI that pyarrow's filesystems
open: file://, s3://, gs://)::

    <root>/<folder>/spec.yaml                      the spec as run (resume checks it)
    <root>/<folder>/trials/stage=<s>/part-*.parquet one row per finished trial attempt
    <root>/<folder>/curves/stage=<s>/part-*.parquet one row per intermediate report
    <root>/<folder>/stages/stage-<s>.json          what a learning plan decided
    <root>/<folder>/lock.json                      the running driver (pid, host, time)

Results are written in large batches (every ``flush_every`` results or
``flush_seconds`` seconds); each file is written under a hidden temporary name and
renamed into place, so readers never see half a file. Between flushes every result
is appended to a journal on the driver's disk the moment it arrives; the next flush,
or the next run after a crash, folds it into Parquet. ``sweep.store.parts`` keeps the
files few (compaction) and readable while they change. No Ray here.

Example:
    >>> store = Store("results", "demo", codec=Codec.of(space))   # doctest: +SKIP
    >>> store.add([record]); store.read()                          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from ..core.errors import SweepError
from ..core.metric import Metric
from ..core.ranking import ordered
from ..core.records import RECORD_FIELDS, Report, TrialRecord
from .codec import (
    Codec,
    curves_schema,
    curves_table,
    record_from_row,
    trials_schema,
    trials_table,
)
from .journal import Journal, leftovers, parse_lines
from .lock import DriverLock
from .parts import REPEATED, ROWS_KEY, UNIQUE, PartSet

log = logging.getLogger("sweep")
SHIP_SECONDS = 5.0
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def open_root(root: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for a results root: a local path or a URI.

    Example: ``open_root("s3://bucket/prefix")`` -> ``(S3FileSystem, "bucket/prefix")``
    """
    if "://" in root:
        try:
            fs, path = pafs.FileSystem.from_uri(root)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise SweepError(f"results root {root!r} cannot be opened: {exc}") from None
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))


def _journal_row(record: TrialRecord) -> dict[str, Any]:
    return record._asdict()


def _record_of(row: dict[str, Any]) -> TrialRecord | None:
    """A journal line back as a record, or None when it is not one."""
    if not isinstance(row.get("trial_id"), str) or not isinstance(row.get("status"), str):
        return None
    try:
        return TrialRecord(**{k: row[k] for k in RECORD_FIELDS if k in row})
    except (TypeError, ValueError):
        return None


class Store:
    """The results of one sweep under a results root.

    ``folder`` is the sweep's folder under the root (a safe form of its name);
    ``codec`` the parameter columns' codec (needed to write; readers without one take
    the types from the files).
    """

    def __init__(
        self,
        root: str,
        folder: str,
        *,
        codec: Codec | None = None,
        flush_every: int = 5000,
        flush_seconds: float = 30.0,
        journal_dir: str | None = None,
        warn: Callable[[str], None] | None = None,
        ship_seconds: float = SHIP_SECONDS,
    ):
        self.root = root
        self.folder = folder
        self.fs, base = open_root(root)
        self.dir = f"{base}/{folder}"
        self.codec = codec or Codec({})
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._local = isinstance(self.fs, pafs.LocalFileSystem)
        self.warn = warn or log.warning
        self.trials = PartSet(self.fs, f"{self.dir}/trials", warn=self.warn)
        # True when this driver may write a second row of a stored trial (--retry-failed).
        self.repeats = False
        self.curves = PartSet(self.fs, f"{self.dir}/curves", warn=self.warn)
        self.lock = DriverLock(self.fs, f"{self.dir}/lock.json", local=self._local)
        if journal_dir is None:
            if self._local:
                journal_dir = f"{self.dir}/.journal"
            else:
                key = hashlib.sha256(f"{root}/{folder}".encode()).hexdigest()[:16]
                journal_dir = str(Path.home() / ".cache" / "sweep" / "journal" / key)
        self.journal_dir = journal_dir
        # "journal-*.jsonl": the name earlier versions gave it (their leftovers still fold in).
        self._journal = Journal(journal_dir, "journal")
        self._curve_journal = Journal(journal_dir, "curves")
        self._buffer: list[TrialRecord] = []
        self._curve_buffer: list[tuple[str, int, Report]] = []
        self._last_flush = time.monotonic()
        # Object-store roots: the journal on this disk dies with a restarted head pod, so
        # its new lines are also shipped to the results root every few seconds.
        self._shipping = not self._local
        self.ship_seconds = ship_seconds
        self._run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._unshipped: dict[str, list[dict[str, Any]]] = {"journal": [], "curves": []}
        self._shipped = 0
        self._last_ship = time.monotonic()

    @property
    def trials_dir(self) -> str:
        return self.trials.directory

    def location(self, rel: str = "") -> str:
        """Where ``<root>/<folder>/<rel>`` is, as a user would open it: a local path, or a
        URI that keeps the root's options (``?endpoint_override=...``).

        Example: ``Store("s3://b/p", "demo").location("trials")`` -> ``"s3://b/p/demo/trials"``
        """
        tail = f"/{rel}" if rel else ""
        if self._local:
            return f"{self.dir}{tail}"
        parts = urlsplit(self.root)
        path = f"{parts.path.rstrip('/')}/{self.folder}{tail}"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))

    # ------------------------------------------------------------ small files

    def exists(self) -> bool:
        """True when this sweep has a stored spec."""
        return self.fs.get_file_info(f"{self.dir}/spec.yaml").type == pafs.FileType.File

    def read_text(self, rel: str) -> str | None:
        """The text of ``<root>/<folder>/<rel>``, or None when it does not exist."""
        path = f"{self.dir}/{rel}"
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as f:
            return f.read().decode("utf-8", errors="replace")

    def write_text(self, rel: str, text: str) -> None:
        """Write ``<root>/<folder>/<rel>`` whole: to a hidden temporary name, then renamed."""
        path = f"{self.dir}/{rel}"
        parent, _, base = path.rpartition("/")
        try:
            self.fs.create_dir(parent, recursive=True)
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{base}"
            with self.fs.open_output_stream(tmp) as f:
                f.write(text.encode("utf-8"))
            self.fs.move(tmp, path)
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not write {path}: {exc}") from None

    def check_writable(self) -> None:
        """Fail early, before any trial runs, when results cannot be written."""
        if self._local:
            root = os.path.abspath(os.path.expanduser(self.root))
            parent = os.path.dirname(root)
            if not os.path.isdir(root) and not os.path.isdir(parent):
                why = "is not a folder" if os.path.exists(parent) else "does not exist"
                raise SweepError(f"results root {self.root!r} cannot be created: its parent "
                                 f"{parent!r} {why} (create it, or choose another --results)")
            for path in (self.dir, self.trials.directory, self.curves.directory):
                if os.path.exists(path) and not os.path.isdir(path):
                    raise SweepError(f"{path} is a file, where sweep keeps a folder of "
                                     f"results; move it away or choose another --results")
        probe = f".probe-{uuid.uuid4().hex}"
        try:
            self.write_text(probe, "ok")
            self.fs.delete_file(f"{self.dir}/{probe}")
            os.makedirs(self.journal_dir, exist_ok=True)
            test = os.path.join(self.journal_dir, probe)
            with open(test, "w") as f:
                f.write("ok")
            os.unlink(test)
        except (OSError, pa.ArrowException, SweepError) as exc:
            raise SweepError(f"results root {self.root!r} is not writable for this sweep: "
                             f"{exc}") from None

    def move_aside(self) -> str | None:
        """Move this sweep's results to ``<folder>.old-<time>`` (never deleted); returns
        the new location, or None when there was nothing."""
        if self.fs.get_file_info(self.dir).type == pafs.FileType.NotFound:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = f"{self.dir}.old-{stamp}"
        if self._local:
            self.fs.move(self.dir, target)
        else:
            for info in self.fs.get_file_info(pafs.FileSelector(self.dir, recursive=True)):
                if info.type == pafs.FileType.File:
                    dest = target + info.path[len(self.dir):]
                    self.fs.create_dir(dest.rpartition("/")[0], recursive=True)
                    self.fs.move(info.path, dest)
            with contextlib.suppress(OSError, pa.ArrowException):
                self.fs.delete_dir(self.dir)
        if os.path.isdir(self.journal_dir) and not self._local:
            os.rename(self.journal_dir, self.journal_dir + f".old-{stamp}")
        return target

    # ----------------------------------------------------------------- writing

    def add(self, records: Sequence[TrialRecord]) -> None:
        """Record finished trials: journaled at once, written to Parquet in batches."""
        if not records:
            return
        rows = [_journal_row(r) for r in records]
        self._journal.append(rows)
        self._buffer.extend(records)
        if self._shipping:
            self._unshipped["journal"].extend(rows)
        self._maybe_flush()

    def add_reports(self, sweep: str, stage: int, reports: Sequence[Report]) -> None:
        """Record intermediate reports (the curves table), with the same guarantees."""
        if not reports:
            return
        rows = [{"sweep": sweep, "stage": stage, **r._asdict()} for r in reports]
        self._curve_journal.append(rows)
        self._curve_buffer.extend((sweep, stage, r) for r in reports)
        if self._shipping:
            self._unshipped["curves"].extend(rows)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if (len(self._buffer) + len(self._curve_buffer) >= self.flush_every
                or time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()
        elif self._shipping and time.monotonic() - self._last_ship >= self.ship_seconds:
            self.ship()

    def ship(self) -> None:
        """Copy the journal lines written since the last ship to the results root
        (``.journal/<kind>-<run>-<n>.jsonl``, each written whole), so that a driver whose
        disk is lost with it (a restarted head pod) loses at most ``ship_seconds`` of
        results. Done by ``add`` on its own; local roots keep the journal beside the
        results and need none."""
        self._last_ship = time.monotonic()
        for kind, rows in self._unshipped.items():
            if rows:
                self._shipped += 1
                name = f".journal/{kind}-{self._run_id}-{self._shipped:06d}.jsonl"
                try:
                    self.write_text(name, "".join(_dumps(r) + "\n" for r in rows))
                except SweepError as exc:
                    self.warn(f"could not ship the journal to the results root ({exc}); "
                              f"it is kept on this disk at {self.journal_dir}")
                    return
                self._unshipped[kind] = []

    def _drop_shipped(self) -> None:
        """Delete this run's shipped journal segments (their rows are in Parquet now)."""
        for info in self._shipped_segments():
            if self._run_id in info.base_name:
                with contextlib.suppress(OSError, pa.ArrowException):
                    self.fs.delete_file(info.path)

    def _shipped_segments(self) -> list[pafs.FileInfo]:
        folder = f"{self.dir}/.journal"
        if self._local or self.fs.get_file_info(folder).type != pafs.FileType.Directory:
            return []
        return sorted((i for i in self.fs.get_file_info(pafs.FileSelector(folder))
                       if i.type == pafs.FileType.File and i.base_name.endswith(".jsonl")),
                      key=lambda i: i.base_name)

    def flush(self) -> None:
        """Write buffered results to Parquet (one file per stage), then drop the journal.
        Raises ``SweepError`` naming the folder when that fails (the journal keeps every
        result, so a rerun after the fix loses nothing)."""
        self._last_flush = time.monotonic()
        try:
            written = bool(self._buffer or self._curve_buffer)
            if self._buffer:
                self._journal.sync()
                self._write_trials(self._buffer)
                self._buffer = []
                self._journal.discard()
            if self._curve_buffer:
                self._curve_journal.sync()
                self._write_curves(self._curve_buffer)
                self._curve_buffer = []
                self._curve_journal.discard()
            if written and self._shipping:
                self._unshipped = {"journal": [], "curves": []}
                self._drop_shipped()
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(
                f"could not write results under {self.dir}: {exc}. Every finished trial is "
                f"kept in the journal {self.journal_dir}; fix the problem (space, "
                f"permissions) and rerun the same command to resume") from None

    def _write_trials(self, records: Sequence[TrialRecord], repeats: bool = False) -> None:
        metrics = self.trials.metric_names()
        for r in records:
            for name in r.metrics:
                if name not in metrics:
                    metrics.append(name)
        # Trials written again (--retry-failed) make a second row of one trial: say so in
        # the files, so that readers check for repeats only where there can be some.
        flag = REPEATED if self.repeats or repeats else UNIQUE
        schema = trials_schema(self.codec.types, metrics).with_metadata({ROWS_KEY: flag})
        by_stage: dict[int, list[TrialRecord]] = {}
        for r in records:
            by_stage.setdefault(int(r.stage), []).append(r)
        self.trials.conform(schema)
        for stage, rows in sorted(by_stage.items()):
            self.trials.write(stage, trials_table(rows, self.codec, schema))

    def _write_curves(self, rows: Sequence[tuple[str, int, Report]]) -> None:
        metrics = self.curves.metric_names()
        for _, _, r in rows:
            for name in r.metrics:
                if name not in metrics:
                    metrics.append(name)
        schema = curves_schema(metrics)
        by_stage: dict[int, list[tuple[str, Report]]] = {}
        for sweep, stage, r in rows:
            by_stage.setdefault(int(stage), []).append((sweep, r))
        self.curves.conform(schema)
        for stage, part in sorted(by_stage.items()):
            self.curves.write(stage, curves_table(part, schema))

    def recover(self) -> int:
        """Finish the file replacements and fold the journals a driver that died left
        behind; returns the number of results recovered (those already in Parquet are
        skipped, garbled journal lines too)."""
        try:
            for parts in (self.trials, self.curves):
                parts.finish_interrupted()
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not tidy {self.dir} after an interrupted run: {exc}"
                             ) from None
        stored = self._stored_keys()
        fresh: list[TrialRecord] = []
        done: list[str] = []
        shipped = self._read_shipped()
        for path, rows, bad in [*leftovers(self.journal_dir, "journal",
                                           skip=self._journal.path),
                                *shipped.get("journal", [])]:
            records = [r for r in map(_record_of, rows) if r is not None]
            bad += len(rows) - len(records)
            if bad:
                self.warn(f"journal {path}: skipped {bad} unreadable lines")
            fresh.extend(r for r in records if (r.trial_id, _micros(r.started_at)) not in stored)
            done.append(path)
        curves: list[tuple[str, int, Report]] = []
        for path, rows, _bad in [*leftovers(self.journal_dir, "curves",
                                            skip=self._curve_journal.path),
                                 *shipped.get("curves", [])]:
            for row in rows:
                try:
                    report = Report(row["trial_id"], int(row["step"]), row["metrics"],
                                    float(row.get("time") or 0.0))
                    curves.append((str(row["sweep"]), int(row["stage"]), report))
                except (KeyError, TypeError, ValueError):
                    continue
            done.append(path)
        try:
            if fresh:  # a dead run's attempts may repeat stored trials (--retry-failed)
                self._write_trials(fresh, repeats=True)
            if curves:
                self._write_curves(curves)
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not fold the journal into {self.dir}: {exc}") from None
        for path in done:
            with contextlib.suppress(FileNotFoundError, OSError, pa.ArrowException):
                if path.startswith(self.dir + "/.journal/"):
                    self.fs.delete_file(path)
                else:
                    os.unlink(path)
        return len(fresh)

    def _read_shipped(self) -> dict[str, list[tuple[str, list[dict[str, Any]], int]]]:
        """Journal segments shipped to the results root by drivers that are gone."""
        out: dict[str, list[tuple[str, list[dict[str, Any]], int]]] = {}
        for info in self._shipped_segments():
            kind = info.base_name.split("-", 1)[0]
            if self._run_id in info.base_name or kind not in ("journal", "curves"):
                continue
            with self.fs.open_input_stream(info.path) as f:
                rows, bad = parse_lines(f.read().splitlines())
            out.setdefault(kind, []).append((info.path, rows, bad))
        return out

    def _stored_keys(self) -> set[tuple[str, int | None]]:
        table = self.trials.table(columns=["trial_id", "started_at"])
        if table is None:
            return set()
        ids = table.column("trial_id").to_pylist()
        starts = table.column("started_at").cast(pa.int64()).to_pylist()
        return set(zip(ids, starts))

    def pending(self) -> int:
        """Results in this driver's buffer, not yet in Parquet."""
        return len(self._buffer)

    # ------------------------------------------------------------------ reading

    def read(
        self, stages: Sequence[int] | None = None, columns: Sequence[str] | None = None,
        *, latest: bool = True,
    ) -> pd.DataFrame:
        """The results table (optionally some stages or columns), with what this driver
        has buffered. With ``latest``, one row per trial: its last attempt.

        Example: ``Store("results", "demo").read(stages=[0])``
        """
        self.flush()
        cols = None if columns is None else list(dict.fromkeys(
            [*columns, "trial_id", "finished_at", "started_at"]))
        table = self.trials.table(columns=cols, stages=stages)
        if table is None:
            names = list(columns or trials_schema(self.codec.types, []).names)
            return pd.DataFrame(columns=[*names, "stage"])
        names = table.column_names
        if columns is not None:
            order = [c for c in [*columns, "stage"] if c in names]
            order = list(dict.fromkeys(order))
        else:
            order = [c for c in ("sweep", "stage") if c in names]
            order += [c for c in names if c not in ("sweep", "stage")]
        if table.num_rows and pc.count_distinct(table.column("trial_id")).as_py() < \
                table.num_rows:
            # Several attempts of a trial (--retry-failed), or a file read twice while it
            # was being compacted: keep each trial's last attempt, or each attempt once.
            df = table.to_pandas()
            df = df.sort_values(["finished_at", "trial_id"], kind="stable")
            df = df.drop_duplicates("trial_id" if latest else ["trial_id", "started_at"],
                                    keep="last")[order]
        else:
            df = table.select(order).to_pandas(split_blocks=True, self_destruct=True)
        if "stage" in df.columns:
            df["stage"] = df["stage"].astype("int64")
        return df.reset_index(drop=True)

    def best(self, metric: str | None, goal: str = "minimize", k: int = 10,
             stages: Sequence[int] | None = None) -> pd.DataFrame:
        """The ``k`` best trials as full rows, best first (``sweep.core.ranking``'s rule: ok, a
        finite metric, ties by trial id); without a metric, the first ``k`` to finish.
        The columns that rank are streamed batch by batch (``PartSet.smallest`` keeps k
        rows and a batch), then those k rows are read in full: a million stored trials
        cost a batch, not the table.

        Example: ``store.best("val_error", "minimize", k=5)``
        """
        self.flush()
        column = f"metrics.{metric}" if metric else None
        if self.trials.repeats_possible(stages):
            ranking = None if metric is None else Metric(metric, goal)
            return ordered(self.read(stages=stages), ranking, k).reset_index(drop=True)
        key = column or "finished_at"
        order = "descending" if column and goal == "maximize" else "ascending"
        where = pc.is_valid(pc.field(key))
        if column is not None:
            where = (pc.field("status") == "ok") & pc.is_finite(pc.field(key))
        keys = [(key, order), ("trial_id", "ascending")]
        ranked = metric is None or metric in self.trials.metric_names()
        top = self.trials.smallest(k, keys, stages=stages, where=where) \
            if ranked and k > 0 else None
        if top is None or top.num_rows == 0:
            return self.read(stages=stages).head(0)
        rows = self.trials.table(stages=stages,
                                 where=pc.field("trial_id").isin(top.column("trial_id")))
        df = rows.sort_by(keys).slice(0, k).to_pandas()
        df["stage"] = df["stage"].astype("int64")
        return _ordered_columns(df).reset_index(drop=True)

    def counts(self) -> pd.DataFrame:
        """Trials by stage and status (last attempts): columns stage, status, n."""
        self.flush()
        if self.trials.repeats_possible():
            slim = self.trials.table(columns=["trial_id", "status", "finished_at",
                                              "started_at"])
            if slim is None or slim.num_rows == 0:
                return pd.DataFrame({"stage": [], "status": [], "n": []})
            grouped = _latest_attempts(slim).group_by(["stage", "status"]).aggregate(
                [([], "count_all")])
            tally = {(int(a), str(b)): int(n) for a, b, n in zip(*grouped.columns)}
        else:
            tally = self.trials.fold(["status"], dict, _tally_status)
        if not tally:
            return pd.DataFrame({"stage": [], "status": [], "n": []})
        df = pd.DataFrame([(stage, status, n) for (stage, status), n in tally.items()],
                          columns=["stage", "status", "n"])
        df["stage"] = df["stage"].astype("int64")
        return df.sort_values(["stage", "status"]).reset_index(drop=True)

    def unranked_counts(self, metric: str) -> dict[int, int]:
        """Per stage, the ok trials whose metric is NaN or infinite (they rank last)."""
        column = f"metrics.{metric}"

        def unranked(table: pa.Table | pa.RecordBatch) -> pa.Array:
            if column not in table.schema.names:
                return pa.array([], pa.int64())
            bad = pc.and_(pc.equal(table.column("status"), "ok"),
                          pc.invert(pc.fill_null(pc.is_finite(table.column(column)), True)))
            return table.column("stage").filter(bad)

        def step(acc: dict[int, int], batch: pa.RecordBatch) -> dict[int, int]:
            for stage in unranked(batch).to_pylist():
                acc[int(stage)] = acc.get(int(stage), 0) + 1
            return acc

        if not self.trials.repeats_possible():
            return self.trials.fold(["status", column], dict, step)
        slim = self.trials.table(columns=["trial_id", "status", "finished_at", "started_at",
                                          column])
        if slim is None or column not in slim.column_names:
            return {}
        return step({}, _latest_attempts(slim))

    def records(self, stages: Iterable[int]) -> list[TrialRecord]:
        """The stored trials of ``stages`` as records (last attempt of each), ordered by
        (stage, finished_at, trial_id): what a learning plan is told."""
        df = self.read(stages=list(stages))
        if df.empty:
            return []
        df = df.sort_values(["stage", "finished_at", "trial_id"], kind="stable")
        return [record_from_row(row, self.codec) for row in df.to_dict("records")]

    def trial_ids(self, stage: int, statuses: Iterable[str] | None = None) -> set[str]:
        """Ids of stored trials of a stage (their last attempt), optionally only with some
        statuses."""
        self.flush()
        table = self.trials.table(columns=["trial_id", "status", "finished_at"],
                                  stages=[stage])
        if table is None:
            return set()
        wanted = None if statuses is None else set(statuses)
        latest: dict[str, str] = {}
        order = sorted(zip(table.column("finished_at").cast(pa.int64()).to_pylist(),
                           table.column("trial_id").to_pylist(),
                           table.column("status").to_pylist()), key=lambda t: (t[0] or 0))
        for _, tid, status in order:
            latest[tid] = status
        return {t for t, s in latest.items() if wanted is None or s in wanted}

    def read_curves(self, stages: Sequence[int] | None = None) -> pd.DataFrame:
        """The curves table: one row per report (sweep, stage, trial_id, step, time,
        metrics.<name>...), sorted by trial and step."""
        self.flush()
        table = self.curves.table(stages=stages)
        if table is None:
            return pd.DataFrame(columns=["sweep", "stage", "trial_id", "step", "time"])
        df = table.to_pandas()
        df = df.drop_duplicates(["trial_id", "step", "time"])
        df["stage"] = df["stage"].astype("int64")
        return df.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)


def _tally_status(acc: dict[tuple[int, str], int], batch: pa.RecordBatch
                  ) -> dict[tuple[int, str], int]:
    """Add a batch's rows to counts by (stage, status)."""
    grouped = pa.Table.from_batches([batch]).group_by(["stage", "status"]).aggregate(
        [([], "count_all")])
    for stage, status, n in zip(*(c.to_pylist() for c in grouped.columns)):
        acc[(int(stage), str(status))] = acc.get((int(stage), str(status)), 0) + n
    return acc


def _latest_attempts(table: pa.Table) -> pa.Table:
    """One row per trial: its last attempt (several after --retry-failed), each attempt
    once (a file read twice while it was replaced)."""
    if table.num_rows == 0 or pc.count_distinct(table.column("trial_id")).as_py() == \
            table.num_rows:
        return table
    df = table.to_pandas().sort_values(["finished_at", "trial_id"], kind="stable")
    df = df.drop_duplicates("trial_id", keep="last")
    return pa.Table.from_pandas(df, schema=table.schema, preserve_index=False)


def _ordered_columns(df: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in ("sweep", "stage") if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def _micros(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1_000_000)


__all__ = ["Store", "open_root"]
