"""Writing a sweep's results: the journal first, Parquet in batches. No Ray.

Results are written in large batches (every ``flush_every`` results or
``flush_seconds`` seconds); each file is written under a hidden temporary name and
renamed into place, so readers never see half a file. Between flushes every result
is appended to a journal on the driver's disk the moment it arrives; the next flush,
or the next run after a crash (``recover``), folds it into Parquet. On object stores
the journal's new lines are also shipped to the results root every few seconds.
``sweep.store.parts`` keeps the files few (compaction) and readable while they change.

Example:
    >>> writer = ResultsWriter(ResultsFolder("results", "demo"), Codec.of(space))  # doctest: +SKIP
    >>> writer.add([record]); writer.flush()                                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from ..core.errors import SweepError
from ..core.records import RECORD_FIELDS, Report, TrialRecord
from .codec import Codec, curves_schema, curves_table, micros, trials_schema, trials_table
from .folder import JOURNAL, ResultsFolder
from .journal import Journal, leftovers, parse_lines
from .parts import REPEATED, ROWS_KEY, UNIQUE

SHIP_SECONDS = 5.0
REPORT_CHUNK = 4096
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _record_of(row: dict[str, Any]) -> TrialRecord | None:
    """A journal line back as a record, or None when it is not one."""
    if not isinstance(row.get("trial_id"), str) or not isinstance(row.get("status"), str):
        return None
    try:
        return TrialRecord(**{k: row[k] for k in RECORD_FIELDS if k in row})
    except (TypeError, ValueError):
        return None


class ResultsWriter:
    """Writes finished trials and intermediate reports into ``folder``.

    ``codec`` is the parameter columns' codec; ``repeats`` is True when this driver may
    write a second row of a stored trial (``--retry-failed``).
    """

    def __init__(
        self,
        folder: ResultsFolder,
        codec: Codec,
        *,
        flush_every: int = 5000,
        flush_seconds: float = 30.0,
        ship_seconds: float = SHIP_SECONDS,
    ):
        self.folder = folder
        self.codec = codec
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.repeats = False
        # "journal-*.jsonl": the name earlier versions gave it (their leftovers still fold in).
        self._journal = Journal(folder.journal_dir, "journal")
        self._curve_journal = Journal(folder.journal_dir, "curves")
        self._buffer: list[TrialRecord] = []
        self._curve_buffer: list[tuple[str, int, Report, int]] = []
        # Per stage, the arrival number of its next report (after the stored ones).
        self._next_seq: dict[int, int] = {}
        self._last_flush = time.monotonic()
        # Object-store roots: the journal on this disk dies with a restarted head pod, so
        # its new lines are also shipped to the results root every few seconds.
        self._shipping = not folder.local
        self.ship_seconds = ship_seconds
        self._run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._unshipped: dict[str, list[dict[str, Any]]] = {"journal": [], "curves": []}
        self._shipped = 0
        self._last_ship = time.monotonic()

    def check_writable(self) -> None:
        """Fail early, before any trial runs, when results cannot be written."""
        folder = self.folder
        if folder.local:
            root = os.path.abspath(os.path.expanduser(folder.root))
            parent = os.path.dirname(root)
            if not os.path.isdir(root) and not os.path.isdir(parent):
                why = "is not a folder" if os.path.exists(parent) else "does not exist"
                raise SweepError(f"results root {folder.root!r} cannot be created: its "
                                 f"parent {parent!r} {why} (create it, or choose another "
                                 f"--results)")
            for path in (folder.dir, folder.trials.directory, folder.curves.directory):
                if os.path.exists(path) and not os.path.isdir(path):
                    raise SweepError(f"{path} is a file, where sweep keeps a folder of "
                                     f"results; move it away or choose another --results")
        probe = f".probe-{uuid.uuid4().hex}"
        try:
            folder.write_text(probe, "ok")
            folder.fs.delete_file(f"{folder.dir}/{probe}")
            os.makedirs(folder.journal_dir, exist_ok=True)
            test = os.path.join(folder.journal_dir, probe)
            with open(test, "w") as f:
                f.write("ok")
            os.unlink(test)
        except (OSError, pa.ArrowException, SweepError) as exc:
            raise SweepError(f"results root {folder.root!r} is not writable for this sweep: "
                             f"{exc}") from None

    # ----------------------------------------------------------------- adding

    def add(self, records: Sequence[TrialRecord]) -> None:
        """Record finished trials: journaled at once, written to Parquet in batches."""
        if not records:
            return
        rows = [r._asdict() for r in records]
        self._journal.append(rows)
        self._buffer.extend(records)
        if self._shipping:
            self._unshipped["journal"].extend(rows)
        self._maybe_flush()

    def add_reports(self, sweep: str, stage: int, reports: Sequence[Report]) -> None:
        """Record intermediate reports (the curves table), with the same guarantees, and
        number them in the order given (the ``seq`` column, continuing the stage's stored
        numbers): the order a stopping rule must see them in again after a restart
        (``ResultsReader.arrivals``). Give them in the order the driver's rule saw them.
        Taken ``REPORT_CHUNK`` at a time, so that a trial's million reports cost the
        writer a flush's worth of memory, not a million journal rows."""
        for start in range(0, len(reports), REPORT_CHUNK):
            self._add_reports(sweep, stage, reports[start:start + REPORT_CHUNK])

    def _add_reports(self, sweep: str, stage: int, reports: Sequence[Report]) -> None:
        if not reports:
            return
        first = self._next_seq.get(stage)
        if first is None:
            first = self._stored_seq_end(stage)
        self._next_seq[stage] = first + len(reports)
        rows = [{"sweep": sweep, "stage": stage, "trial_id": r.trial_id, "step": r.step,
                 "metrics": r.metrics, "time": r.time, "seq": first + i}
                for i, r in enumerate(reports)]
        self._curve_journal.append(rows)
        self._curve_buffer.extend((sweep, stage, r, first + i) for i, r in enumerate(reports))
        if self._shipping:
            self._unshipped["curves"].extend(rows)
        self._maybe_flush()

    def _stored_seq_end(self, stage: int) -> int:
        """One past the largest arrival number stored for ``stage`` (0 when none)."""
        def largest(acc: int, batch: pa.RecordBatch) -> int:
            if "seq" not in batch.schema.names:
                return acc
            top = pc.max(batch.column("seq")).as_py()
            return acc if top is None else max(acc, int(top) + 1)

        try:
            return int(self.folder.curves.fold(["seq"], int, largest, stages=[stage]))
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not read the stored curves under {self.folder.dir}: "
                             f"{exc}") from None

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
                name = f"{JOURNAL}/{kind}-{self._run_id}-{self._shipped:06d}.jsonl"
                try:
                    self.folder.write_text(name, "".join(_dumps(r) + "\n" for r in rows))
                except SweepError as exc:
                    self.folder.warn(f"could not ship the journal to the results root "
                                     f"({exc}); it is kept on this disk at "
                                     f"{self.folder.journal_dir}")
                    return
                self._unshipped[kind] = []

    def _drop_shipped(self) -> None:
        """Delete this run's shipped journal segments (their rows are in Parquet now)."""
        for info in self._shipped_segments():
            if self._run_id in info.base_name:
                with contextlib.suppress(OSError, pa.ArrowException):
                    self.folder.fs.delete_file(info.path)

    def _shipped_segments(self) -> list[pafs.FileInfo]:
        fs, shipped = self.folder.fs, f"{self.folder.dir}/{JOURNAL}"
        if self.folder.local or fs.get_file_info(shipped).type != pafs.FileType.Directory:
            return []
        return sorted((i for i in fs.get_file_info(pafs.FileSelector(shipped))
                       if i.type == pafs.FileType.File and i.base_name.endswith(".jsonl")),
                      key=lambda i: i.base_name)

    # --------------------------------------------------------------- flushing

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
                f"could not write results under {self.folder.dir}: {exc}. Every finished "
                f"trial is kept in the journal {self.folder.journal_dir}; fix the problem "
                f"(space, permissions) and rerun the same command to resume") from None

    def _write_trials(self, records: Sequence[TrialRecord], repeats: bool = False) -> None:
        trials = self.folder.trials
        metrics = trials.metric_names()
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
        trials.conform(schema)
        for stage, rows in sorted(by_stage.items()):
            trials.write(stage, trials_table(rows, self.codec, schema))

    def _write_curves(self, rows: Sequence[tuple[str, int, Report, int | None]]) -> None:
        curves = self.folder.curves
        metrics = curves.metric_names()
        for _, _, r, _ in rows:
            for name in r.metrics:
                if name not in metrics:
                    metrics.append(name)
        schema = curves_schema(metrics)
        by_stage: dict[int, list[tuple[str, Report, int | None]]] = {}
        for sweep, stage, r, seq in rows:
            by_stage.setdefault(int(stage), []).append((sweep, r, seq))
        curves.conform(schema)
        for stage, part in sorted(by_stage.items()):
            curves.write(stage, curves_table(part, schema))

    # --------------------------------------------------------------- recovery

    def recover(self) -> int:
        """Finish the file replacements and fold the journals a driver that died left
        behind; returns the number of results recovered. Each result and each report is
        folded once: those already in Parquet are skipped, and so are the copies that a
        driver on an object store left twice (its journal on this disk and the segments
        it shipped to the results root); garbled journal lines are skipped too."""
        folder = self.folder
        try:
            for parts in (folder.trials, folder.curves):
                parts.finish_interrupted()
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not tidy {folder.dir} after an interrupted run: {exc}"
                             ) from None
        stored = self._stored_keys()
        fresh: list[TrialRecord] = []
        done: list[str] = []
        shipped = self._read_shipped()
        for path, rows, bad in [*leftovers(folder.journal_dir, "journal",
                                           skip=self._journal.path),
                                *shipped.get("journal", [])]:
            records = [r for r in map(_record_of, rows) if r is not None]
            bad += len(rows) - len(records)
            if bad:
                folder.warn(f"journal {path}: skipped {bad} unreadable lines")
            for r in records:
                key = (r.trial_id, _micros(r.started_at))
                if key not in stored:
                    stored.add(key)
                    fresh.append(r)
            done.append(path)
        curves: list[tuple[str, int, Report, int | None]] = []
        for path, rows, _bad in [*leftovers(folder.journal_dir, "curves",
                                            skip=self._curve_journal.path),
                                 *shipped.get("curves", [])]:
            curves.extend(filter(None, map(_report_of, rows)))
            done.append(path)
        curves = self._unstored_reports(curves)
        try:
            if fresh:  # a dead run's attempts may repeat stored trials (--retry-failed)
                self._write_trials(fresh, repeats=True)
            if curves:
                self._write_curves(curves)
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not fold the journal into {folder.dir}: {exc}") from None
        for path in done:
            with contextlib.suppress(FileNotFoundError, OSError, pa.ArrowException):
                if path.startswith(f"{folder.dir}/{JOURNAL}/"):
                    folder.fs.delete_file(path)
                else:
                    os.unlink(path)
        return len(fresh)

    def _unstored_reports(self, rows: list[tuple[str, int, Report, int | None]]
                          ) -> list[tuple[str, int, Report, int | None]]:
        """``rows`` less those stored already and less repeats, in their order."""
        if not rows:
            return rows
        stages = sorted({stage for _, stage, _, _ in rows})
        seen = set()
        table = self.folder.curves.table(columns=["trial_id", "step", "time", "seq"],
                                         stages=stages)
        if table is not None:
            seqs = (table.column("seq").to_pylist() if "seq" in table.column_names
                    else [None] * table.num_rows)
            seen = set(zip(table.column("stage").to_pylist(),
                           table.column("trial_id").to_pylist(),
                           table.column("step").to_pylist(),
                           table.column("time").cast(pa.int64()).to_pylist(), seqs))
        out = []
        for row in rows:
            _, stage, r, seq = row
            key = (stage, r.trial_id, r.step, _micros(r.time), seq)
            if key not in seen:
                seen.add(key)
                out.append(row)
        return out

    def _read_shipped(self) -> dict[str, list[tuple[str, list[dict[str, Any]], int]]]:
        """Journal segments shipped to the results root by drivers that are gone."""
        out: dict[str, list[tuple[str, list[dict[str, Any]], int]]] = {}
        for info in self._shipped_segments():
            kind = info.base_name.split("-", 1)[0]
            if self._run_id in info.base_name or kind not in ("journal", "curves"):
                continue
            with self.folder.fs.open_input_stream(info.path) as f:
                rows, bad = parse_lines(f.read().splitlines())
            out.setdefault(kind, []).append((info.path, rows, bad))
        return out

    def _stored_keys(self) -> set[tuple[str, int | None]]:
        table = self.folder.trials.table(columns=["trial_id", "started_at"])
        if table is None:
            return set()
        ids = table.column("trial_id").to_pylist()
        starts = table.column("started_at").cast(pa.int64()).to_pylist()
        return set(zip(ids, starts))


def _report_of(row: dict[str, Any]) -> tuple[str, int, Report, int | None] | None:
    """A curves journal line back as (sweep, stage, report, arrival number), or None when
    it is not one (lines of earlier versions have no arrival number)."""
    try:
        seq = row.get("seq")
        report = Report(str(row["trial_id"]), int(row["step"]), dict(row["metrics"]),
                        float(row.get("time") or 0.0))
        return (str(row["sweep"]), int(row["stage"]), report,
                None if seq is None else int(seq))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def _micros(seconds: float | None) -> int | None:
    return None if seconds is None else micros(seconds)


__all__ = ["SHIP_SECONDS", "ResultsWriter"]
