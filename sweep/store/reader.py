"""Reading a sweep's stored results: the table, the curves, and summaries streamed over
the part files (a million stored trials cost a batch, not the table). No Ray.

A reader sees what is in the folder's Parquet files: results that a writer still
buffers are not there until it flushes (the driver flushes at the end of each stage).

Example:
    >>> reader = ResultsReader(ResultsFolder("results", "demo"))   # doctest: +SKIP
    >>> reader.counts(); reader.best(Metric("loss"), k=5)      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..core.metric import Metric
from ..core.ranking import ordered
from ..core.records import TrialRecord
from .codec import Codec, record_from_row, trials_schema
from .curve_runs import last_runs
from .folder import ResultsFolder


class ResultsReader:
    """Reads the results in ``folder``. ``codec`` is the parameter columns' codec (a
    reader without one takes the types from the files, and gives records' parameters
    as stored)."""

    def __init__(self, folder: ResultsFolder, codec: Codec | None = None):
        self.folder = folder
        self.codec = codec or Codec({})

    def read(
        self, stages: Sequence[int] | None = None, columns: Sequence[str] | None = None,
        *, latest: bool = True,
    ) -> pd.DataFrame:
        """The results table (optionally some stages or columns). With ``latest``, one
        row per trial: its last attempt.

        Example: ``reader.read(stages=[0])``
        """
        cols = None if columns is None else list(dict.fromkeys(
            [*columns, "trial_id", "finished_at", "started_at"]))
        table = self.folder.trials.table(columns=cols, stages=stages)
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

    def best(self, metric: Metric | None, k: int = 10,
             stages: Sequence[int] | None = None) -> pd.DataFrame:
        """The ``k`` best trials as full rows, best first (``sweep.core.ranking``'s rule: ok, a
        finite metric, ties by trial id); without a metric, the first ``k`` to finish.
        The columns that rank are streamed batch by batch (``PartSet.smallest`` keeps k
        rows and a batch), then those k rows are read in full: a million stored trials
        cost a batch, not the table.

        Example: ``reader.best(Metric("val_error"), k=5)``
        """
        trials = self.folder.trials
        column = None if metric is None else metric.column
        if trials.repeats_possible(stages):
            return ordered(self.read(stages=stages), metric, k).reset_index(drop=True)
        key = column or "finished_at"
        order = "descending" if metric is not None and metric.sign < 0 else "ascending"
        where = pc.is_valid(pc.field(key))
        if column is not None:
            where = (pc.field("status") == "ok") & pc.is_finite(pc.field(key))
        keys = [(key, order), ("trial_id", "ascending")]
        ranked = metric is None or metric.name in trials.metric_names()
        top = trials.smallest(k, keys, stages=stages, where=where) \
            if ranked and k > 0 else None
        if top is None or top.num_rows == 0:
            return self.read(stages=stages).head(0)
        rows = trials.table(stages=stages,
                            where=pc.field("trial_id").isin(top.column("trial_id")))
        df = rows.sort_by(keys).slice(0, k).to_pandas()
        df["stage"] = df["stage"].astype("int64")
        return _ordered_columns(df).reset_index(drop=True)

    def counts(self) -> pd.DataFrame:
        """Trials by stage and status (last attempts): columns stage, status, n."""
        trials = self.folder.trials
        if trials.repeats_possible():
            slim = trials.table(columns=["trial_id", "status", "finished_at", "started_at"])
            if slim is None or slim.num_rows == 0:
                return pd.DataFrame({"stage": [], "status": [], "n": []})
            grouped = _latest_attempts(slim).group_by(["stage", "status"]).aggregate(
                [([], "count_all")])
            tally = {(int(a), str(b)): int(n) for a, b, n in zip(*grouped.columns)}
        else:
            tally = trials.fold(["status"], dict, _tally_status)
        if not tally:
            return pd.DataFrame({"stage": [], "status": [], "n": []})
        df = pd.DataFrame([(stage, status, n) for (stage, status), n in tally.items()],
                          columns=["stage", "status", "n"])
        df["stage"] = df["stage"].astype("int64")
        return df.sort_values(["stage", "status"]).reset_index(drop=True)

    def unranked_counts(self, metric: str) -> dict[int, int]:
        """Per stage, the ok trials whose metric is NaN or infinite (they rank last)."""
        trials = self.folder.trials
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

        if not trials.repeats_possible():
            return trials.fold(["status", column], dict, step)
        slim = trials.table(columns=["trial_id", "status", "finished_at", "started_at",
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
        table = self.folder.trials.table(columns=["trial_id", "status", "finished_at"],
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

    def checkpoint_totals(self) -> dict[str, float]:
        """What the stored attempts' checkpoints cost, streamed: attempts that
        checkpointed or restored, bytes saved, seconds saving and restoring, restores.

        Example: ``reader.checkpoint_totals()`` -> ``{"trials": 12, "bytes": 5e8,
        "seconds": 3.1, "restored": 2}``
        """

        def step(acc: dict[str, float], batch: pa.RecordBatch) -> dict[str, float]:
            names = batch.schema.names
            if "checkpoint_s" not in names:
                return acc
            seconds = batch.column("checkpoint_s")
            acc["trials"] += pc.count(seconds).as_py()
            acc["seconds"] += pc.sum(seconds).as_py() or 0.0
            acc["bytes"] += pc.sum(batch.column("checkpoint_bytes")).as_py() or 0
            acc["restored"] += pc.count(batch.column("restored_from")).as_py()
            return acc

        def start() -> dict[str, float]:
            return {"trials": 0, "bytes": 0, "seconds": 0.0, "restored": 0}

        return self.folder.trials.fold(["checkpoint_s", "checkpoint_bytes", "restored_from"],
                                       start, step)

    def curve_steps(self, stage: int, trial_ids: Iterable[str]) -> dict[str, set[int]]:
        """The stored steps of each of ``trial_ids`` in ``stage``'s curves (those with
        none are left out): one filtered read.

        Example: ``reader.curve_steps(0, ["8bf0b5019eb95080"])`` -> ``{"8bf0...": {0, 1}}``
        """
        wanted = sorted(set(trial_ids))
        if not wanted:
            return {}
        table = self.folder.curves.table(columns=["trial_id", "step"], stages=[stage],
                                         where=pc.field("trial_id").isin(wanted),
                                         with_stage=False)
        return _steps_of(table)

    def read_curves(self, stages: Sequence[int] | None = None) -> pd.DataFrame:
        """The curves table: one row per report (sweep, stage, trial_id, step, time, seq,
        metrics.<name>...), sorted by trial and step; of a trial that ran again from an
        earlier step, its last run's reports (``sweep.store.curve_runs``; ``arrivals``
        gives a stage's reports as they arrived, every run's)."""
        table = self.folder.curves.table(stages=stages)
        if table is None:
            return pd.DataFrame(columns=["sweep", "stage", "trial_id", "step", "time"])
        df = table.to_pandas()
        # A report folded twice (a journal of an older version) is shown once; two reports
        # of one step at one time stay two when their arrival numbers differ.
        df = df.drop_duplicates([c for c in ("trial_id", "step", "time", "seq")
                                 if c in df.columns])
        df["stage"] = df["stage"].astype("int64")
        df = last_runs(df)  # a trial that ran again: its last run's curve
        return df.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)

    def arrivals(self, stage: int, metric: str) -> list[tuple[str, int, float | None]]:
        """A stage's stored reports as (trial_id, step, value of ``metric``) in the order
        the driver received them and its stopping rule saw them: by arrival number
        (``seq``); reports stored before there were arrival numbers come first, by time.
        A NaN value stays NaN (a report that counted as the worst value) and a report
        without the metric gives None (one the rule ignored); a report stored twice (a
        journal folded twice by an older version) is given once.

        Example: ``replay(rule, reader.arrivals(0, "loss"))``
        """
        column = f"metrics.{metric}"
        table = self.folder.curves.table(columns=["trial_id", "step", "time", "seq", column],
                                         stages=[stage])
        if table is None or table.num_rows == 0:
            return []
        n = table.num_rows
        names = table.column_names
        ids = table.column("trial_id").to_pylist()
        steps = table.column("step").to_pylist()
        times = table.column("time").cast(pa.int64()).to_pylist()
        seqs = table.column("seq").to_pylist() if "seq" in names else [None] * n
        # to_pylist keeps null (None) and NaN apart, where pandas makes both NaN.
        values = table.column(column).to_pylist() if column in names else [None] * n
        rows = sorted(_distinct(zip(seqs, times, ids, steps, values, strict=True)),
                      key=lambda r: (r[0] is not None, r[0] or 0, r[1] or 0, r[2], r[3]))
        return [(tid, int(step), value) for _, _, tid, step, value in rows]


def _distinct(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows once each, NaN equal to NaN (a set would keep every NaN row: NaN != NaN)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for row in rows:
        key = tuple("nan" if isinstance(v, float) and v != v else v for v in row)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _steps_of(table: pa.Table | None) -> dict[str, set[int]]:
    """Per trial, the steps of a (trial_id, step) table."""
    out: dict[str, set[int]] = {}
    if table is None:
        return out
    for tid, step in zip(table.column("trial_id").to_pylist(),
                         table.column("step").to_pylist()):
        if step is not None:
            out.setdefault(str(tid), set()).add(int(step))
    return out


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


__all__ = ["ResultsReader"]
