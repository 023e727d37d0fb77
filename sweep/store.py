"""The results store: one Parquet dataset per sweep, plus a journal so nothing is lost.

Layout under the results root (a local path or a URI that pyarrow's
filesystems open: file://, s3://, gs://)::

    <root>/<name>/spec.yaml                     the spec as run (resume checks it)
    <root>/<name>/trials/stage=<s>/part-*.parquet
    <root>/<name>/stages/stage-<s>.json         seeds and boxes of refine stages
    <root>/<name>/lock.json                     the running driver (pid, host, time)

Results are written in large batches (every ``flush_every`` results or
``flush_seconds`` seconds); each file is written under a hidden temporary name
and renamed into place, so readers never see half a file. Between flushes every
result is appended to a journal on the driver's disk the moment it arrives; the
next flush, or the next run after a crash, folds it into Parquet. All part files
share one schema (a new metric column rewrites the older files), so
``pandas.read_parquet("<root>/<name>/trials")`` reads the whole table.

No Ray here.

Example:
    >>> store = Store("results", "demo", param_types={"lr": pa.float64()})
    >>> store.add([record])            # doctest: +SKIP
    >>> store.flush(); store.read()    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import SweepError

BASE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("sweep", pa.string()),
    ("trial_id", pa.string()),
    ("parent_id", pa.string()),
    ("status", pa.string()),
]
TAIL_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("error", pa.string()),
    ("attempts", pa.int64()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("duration_s", pa.float64()),
    ("node", pa.string()),
    ("gpu_ids", pa.string()),
]
PARTITIONING = ds.partitioning(pa.schema([("stage", pa.int64())]), flavor="hive")


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


def column_type(kinds: set[str]) -> pa.DataType:
    """The Arrow type of a parameter column from the kinds of value it takes
    ('int', 'float', 'bool', 'str', 'none', 'json').

    Example: ``column_type({"int", "float"}) == pa.float64()``
    """
    kinds = set(kinds) - {"none"}
    if not kinds:
        return pa.string()
    if kinds == {"int"}:
        return pa.int64()
    if kinds <= {"int", "float"}:
        return pa.float64()
    if kinds == {"bool"}:
        return pa.bool_()
    return pa.string()


def _cell(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_string(typ):
        return value if isinstance(value, str) else json.dumps(value)
    if pa.types.is_floating(typ):
        return float(value)
    return value


def _ts(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1_000_000)


class Store:
    """The results of one sweep under a results root.

    ``param_types`` maps each parameter name to its Arrow type (see
    ``column_type``); metric columns are float64 and discovered as results arrive.
    """

    def __init__(
        self,
        root: str,
        name: str,
        *,
        param_types: Mapping[str, pa.DataType] | None = None,
        flush_every: int = 5000,
        flush_seconds: float = 30.0,
        journal_dir: str | None = None,
    ):
        self.root = root
        self.name = name
        self.fs, base = open_root(root)
        self.dir = f"{base}/{name}"
        self.trials_dir = f"{self.dir}/trials"
        self.param_types = dict(param_types or {})
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._local = isinstance(self.fs, pafs.LocalFileSystem)
        if journal_dir is None:
            if self._local:
                journal_dir = f"{self.dir}/.journal"
            else:
                key = hashlib.sha256(f"{root}/{name}".encode()).hexdigest()[:16]
                journal_dir = str(Path.home() / ".cache" / "sweep" / "journal" / key)
        self.journal_dir = journal_dir
        self._buffer: list[dict[str, Any]] = []
        self._journal: Any = None
        self._journal_path: str | None = None
        self._last_flush = time.monotonic()
        self._metric_names: list[str] | None = None

    def location(self, rel: str = "") -> str:
        """Where ``<root>/<name>/<rel>`` is, as a user would open it: a local path, or a
        URI that keeps the root's options (``?endpoint_override=...``).

        Example: ``Store("s3://b/p", "demo").location("trials")`` -> ``"s3://b/p/demo/trials"``
        """
        tail = f"/{rel}" if rel else ""
        if self._local:
            return f"{self.dir}{tail}"
        parts = urlsplit(self.root)
        path = f"{parts.path.rstrip('/')}/{self.name}{tail}"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))

    # ------------------------------------------------------------ small files

    def exists(self) -> bool:
        """True when this sweep has a stored spec."""
        return self._info(f"{self.dir}/spec.yaml").type == pafs.FileType.File

    def _info(self, path: str) -> pafs.FileInfo:
        return self.fs.get_file_info(path)

    def read_text(self, rel: str) -> str | None:
        """The text of ``<root>/<name>/<rel>``, or None when it does not exist."""
        path = f"{self.dir}/{rel}"
        if self._info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")

    def write_text(self, rel: str, text: str) -> None:
        """Write ``<root>/<name>/<rel>`` whole: to a hidden temporary name, then renamed."""
        path = f"{self.dir}/{rel}"
        parent, _, base = path.rpartition("/")
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{base}"
        with self.fs.open_output_stream(tmp) as f:
            f.write(text.encode("utf-8"))
        self.fs.move(tmp, path)

    def check_writable(self) -> None:
        """Fail early, before any trial runs, when results cannot be written."""
        probe = f".probe-{uuid.uuid4().hex}"
        if self._local:
            root = os.path.abspath(os.path.expanduser(self.root))
            parent = os.path.dirname(root)
            if not os.path.isdir(root) and not os.path.isdir(parent):
                why = "is not a folder" if os.path.exists(parent) else "does not exist"
                raise SweepError(
                    f"results root {self.root!r} cannot be created: its parent "
                    f"{parent!r} {why} (create it, or choose another --results)"
                )
        try:
            self.write_text(probe, "ok")
            self.fs.delete_file(f"{self.dir}/{probe}")
            os.makedirs(self.journal_dir, exist_ok=True)
            test = os.path.join(self.journal_dir, probe)
            with open(test, "w") as f:
                f.write("ok")
            os.unlink(test)
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(
                f"results root {self.root!r} is not writable for sweep {self.name!r}: {exc}"
            ) from None

    # -------------------------------------------------------------------- lock

    def acquire_lock(self) -> None:
        """Take the sweep's lock, or raise naming the driver that holds it. A lock left
        by a dead process on this host is taken over."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        path = f"{self.dir}/lock.json"
        self.fs.create_dir(self.dir, recursive=True)
        for _ in range(2):
            if self._local:
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    pass
                else:
                    with os.fdopen(fd, "w") as f:
                        json.dump(me, f)
                    return
            elif self.read_text("lock.json") is None:
                self.write_text("lock.json", json.dumps(me))
                return
            holder = self.lock_holder()
            if holder is None:
                continue
            if holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", -1))):
                self.fs.delete_file(path)
                continue
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
            raise SweepError(
                f"sweep {self.name!r} is already being run by pid {holder.get('pid')} on host "
                f"{holder.get('host')!r} (since {since}); wait for it, stop it, or if it is gone "
                f"delete {path}"
            )
        raise SweepError(f"could not take the lock {path}")

    def lock_holder(self) -> dict[str, Any] | None:
        """The running driver's {pid, host, since}, or None."""
        text = self.read_text("lock.json")
        if not text:
            return None
        try:
            holder = json.loads(text)
        except ValueError:
            return None
        return holder if isinstance(holder, dict) else None

    def driver_alive(self) -> bool | None:
        """Whether the lock's driver still runs (None when it is on another host)."""
        holder = self.lock_holder()
        if holder is None:
            return False
        if holder.get("host") != socket.gethostname():
            return None
        return _pid_alive(int(holder.get("pid", -1)))

    def release_lock(self) -> None:
        holder = self.lock_holder()
        mine = holder and holder.get("pid") == os.getpid()
        if mine and holder.get("host") == socket.gethostname():
            with contextlib.suppress(OSError, pa.ArrowException):
                self.fs.delete_file(f"{self.dir}/lock.json")

    # ------------------------------------------------------------------- fresh

    def move_aside(self) -> str | None:
        """Move this sweep's results to ``<name>.old-<time>`` (never deleted); returns
        the new location, or None when there was nothing."""
        if self._info(self.dir).type == pafs.FileType.NotFound:
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

    # ----------------------------------------------------------------- results

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record finished trials: journaled at once, written to Parquet in batches.

        Each row holds: sweep, stage, trial_id, parent_id, status, params (dict),
        metrics (dict), error, attempts, started_at, finished_at (epoch seconds),
        duration_s, node, gpu_ids.
        """
        if not rows:
            return
        if self._journal is None:
            os.makedirs(self.journal_dir, exist_ok=True)
            self._journal_path = os.path.join(
                self.journal_dir, f"journal-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            )
            self._journal = open(self._journal_path, "a", encoding="utf-8")  # noqa: SIM115
        self._journal.write("".join(json.dumps(r, default=str) + "\n" for r in rows))
        self._journal.flush()
        self._buffer.extend(rows)
        if (
            len(self._buffer) >= self.flush_every
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Write buffered results to Parquet (one file per stage), then drop the journal."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        if self._journal is not None:
            os.fsync(self._journal.fileno())
        self._write_rows(self._buffer)
        self._buffer = []
        if self._journal is not None:
            self._journal.close()
            self._journal = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._journal_path)  # type: ignore[arg-type]

    def close(self) -> None:
        """Flush and close."""
        self.flush()

    def recover(self) -> int:
        """Fold journals left by a driver that died into Parquet; returns the number of
        results recovered (those already in Parquet are skipped)."""
        if not os.path.isdir(self.journal_dir):
            return 0
        paths = sorted(
            os.path.join(self.journal_dir, f)
            for f in os.listdir(self.journal_dir)
            if f.startswith("journal-") and f.endswith(".jsonl")
        )
        if self._journal_path:
            paths = [p for p in paths if p != self._journal_path]
        if not paths:
            return 0
        rows = []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        break  # a line cut by the crash: everything before it is whole
        stored = self._stored_keys()
        fresh = [r for r in rows if (r["trial_id"], _ts(r.get("started_at"))) not in stored]
        if fresh:
            self._write_rows(fresh)
        for path in paths:
            os.unlink(path)
        return len(fresh)

    def _stored_keys(self) -> set[tuple[str, int | None]]:
        table = self._dataset_table(columns=["trial_id", "started_at"])
        if table is None:
            return set()
        ids = table.column("trial_id").to_pylist()
        starts = table.column("started_at").cast(pa.int64()).to_pylist()
        return set(zip(ids, starts))

    # ------------------------------------------------------------------ writing

    def _known_metrics(self) -> list[str]:
        if self._metric_names is None:
            names: list[str] = []
            for schema in self._part_schemas():
                for field in schema:
                    if field.name.startswith("metrics.") and field.name[8:] not in names:
                        names.append(field.name[8:])
            self._metric_names = names
        return self._metric_names

    def _part_files(self) -> list[str]:
        if self._info(self.trials_dir).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.trials_dir, recursive=True))
        return sorted(
            i.path for i in infos
            if i.type == pafs.FileType.File and i.base_name.startswith("part-")
            and i.base_name.endswith(".parquet")
        )

    def _part_schemas(self) -> Iterable[pa.Schema]:
        for path in self._part_files():
            yield pq.read_schema(path, filesystem=self.fs)

    def schema(self, metric_names: Sequence[str]) -> pa.Schema:
        """The schema of every part file (the stage column comes from the directory)."""
        fields = list(BASE_COLUMNS)
        fields += [(f"params.{n}", t) for n, t in sorted(self.param_types.items())]
        fields += [(f"metrics.{n}", pa.float64()) for n in metric_names]
        fields += TAIL_COLUMNS
        return pa.schema(fields)

    def _write_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        known = self._known_metrics()
        new = []
        for r in rows:
            for name in r.get("metrics") or {}:
                if name not in known and name not in new:
                    new.append(name)
        if new:
            self._metric_names = known + new
            self._rewrite_parts()
        schema = self.schema(self._metric_names or [])
        by_stage: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            by_stage.setdefault(int(r["stage"]), []).append(r)
        for stage, stage_rows in sorted(by_stage.items()):
            self._write_table(stage, self._table(stage_rows, schema))

    def _table(self, rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
        """Rows to an Arrow table, one column at a time (the flush's hot loop)."""
        arrays = []
        for field in schema:
            name, typ = field.name, field.type
            if name.startswith("params."):
                key = name[7:]
                values = [_cell(r["params"].get(key), typ) for r in rows]
            elif name.startswith("metrics."):
                key = name[8:]
                values = [r["metrics"].get(key) for r in rows]
                values = [None if v is None else float(v) for v in values]
            elif pa.types.is_timestamp(typ):
                arrays.append(pa.array([_ts(r.get(name)) for r in rows], pa.int64()).cast(typ))
                continue
            else:
                values = [r.get(name) for r in rows]
            arrays.append(pa.array(values, typ, from_pandas=False))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _write_table(self, stage: int, table: pa.Table) -> str:
        folder = f"{self.trials_dir}/stage={stage}"
        self.fs.create_dir(folder, recursive=True)
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = f"{folder}/.tmp-{name}"
        pq.write_table(table, tmp, filesystem=self.fs)
        self.fs.move(tmp, f"{folder}/{name}")
        return f"{folder}/{name}"

    def _rewrite_parts(self) -> None:
        """Give every existing part file the current schema (new metric columns as
        nulls). Each file is rewritten to a new name before the old one goes, so a
        crash midway leaves duplicates, never a loss; ``read`` drops duplicates."""
        schema = self.schema(self._metric_names or [])
        for path in self._part_files():
            table = pq.read_table(path, filesystem=self.fs)
            if table.schema.equals(schema):
                continue
            arrays = [
                table.column(f.name).cast(f.type) if f.name in table.column_names
                else pa.nulls(len(table), f.type)
                for f in schema
            ]
            stage = int(path.rsplit("stage=", 1)[1].split("/", 1)[0])
            self._write_table(stage, pa.Table.from_arrays(arrays, schema=schema))
            self.fs.delete_file(path)

    # ------------------------------------------------------------------ reading

    def _dataset_table(
        self, columns: Sequence[str] | None = None, stages: Sequence[int] | None = None
    ) -> pa.Table | None:
        files = self._part_files()
        if stages is not None:
            wanted = {f"stage={s}" for s in stages}
            files = [f for f in files if f.rsplit("/", 2)[-2] in wanted]
        if not files:
            return None
        dataset = ds.dataset(files, filesystem=self.fs, format="parquet",
                             partitioning=PARTITIONING, partition_base_dir=self.trials_dir)
        if columns is not None:
            columns = [c for c in columns if c in dataset.schema.names]
        return dataset.to_table(columns=columns)

    def read(
        self, stages: Sequence[int] | None = None, columns: Sequence[str] | None = None,
        *, latest: bool = True,
    ) -> pd.DataFrame:
        """The results table (optionally some stages or columns). With ``latest``, one row
        per trial: its last attempt.

        Example: ``Store("results", "demo").read(stages=[0])``
        """
        cols = None if columns is None else list(dict.fromkeys(
            [*columns, "trial_id", "finished_at", "stage"]))
        table = self._dataset_table(columns=cols, stages=stages)
        if table is None:
            return pd.DataFrame(columns=[*list(columns or self.schema([]).names), "stage"])
        names = table.column_names
        if columns is not None:
            order = [c for c in columns if c in names]
        else:
            order = [c for c in ("sweep", "stage") if c in names]
            order += [c for c in names if c not in ("sweep", "stage")]
        if latest and table.num_rows and (
            pc.count_distinct(table.column("trial_id")).as_py() < table.num_rows
        ):
            # Several attempts of a trial (--retry-failed): keep each trial's last one.
            df = table.to_pandas()
            df = df.sort_values(["finished_at", "trial_id"], kind="stable")
            df = df.drop_duplicates("trial_id", keep="last")[order]
        else:
            # The common case: no duplicates, so convert once without copies.
            df = table.select(order).to_pandas(split_blocks=True, self_destruct=True)
        if "stage" in df.columns:
            df["stage"] = df["stage"].astype("int64")
        return df.reset_index(drop=True)

    def trial_ids(self, stage: int, statuses: Iterable[str] | None = None) -> set[str]:
        """Ids of stored trials of a stage, optionally only with some statuses."""
        table = self._dataset_table(columns=["trial_id", "status", "finished_at"],
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

def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
