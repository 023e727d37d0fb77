"""A folder of hive-partitioned Parquet part files (``stage=<s>/part-*.parquet``) that
stays few, whole and readable while it changes. No Ray.

- Every file is written under a hidden temporary name and renamed into place; a
  file is never modified afterwards (a rewrite writes a new file, then deletes the
  old one), so a reader sees each file whole or not at all.
- All files share one schema: when a column appears (a new metric), older files are
  rewritten with it as nulls (``conform``).
- Compaction, size-tiered: files fall in tiers of row counts a factor ``FANIN`` apart
  (rows, not bytes: a merged file compresses better, and by bytes a growing file stayed
  in its tier and was merged again and again); when a tier holds ``FANIN`` files they
  are merged into one of the next tier, and a stage never holds more than ``MAX_FILES``
  mergeable files (then its two smallest are merged). Each row is rewritten about once
  per tier it climbs, and a week of trials is a handful of files per stage; files of
  ``BIG_FILE_BYTES`` are never merged again. Merging streams record batches: memory
  stays bounded whatever the size of the files.
- A rewrite or a merge writes its output under a temporary name, then a small manifest
  (``.replacing-*.json``: the output and its inputs), renames the output into place,
  deletes the inputs, then the manifest. Readers skip the inputs of a manifest whose
  output is in place, so a driver killed at any point leaves every row readable
  exactly once; the next driver finishes the job (``finish_interrupted``).
- Readers list the files, skip any that is not valid Parquet (with one warning naming
  it) and, when a file vanishes under them (a rewrite or a compaction), list again. A
  file whose footer reads but whose pages do not (damaged data) is found when a read
  or a merge fails on it, at whatever depth: it is named in one warning, skipped from
  then on (reads, merges, schema changes), and the read starts over without it.
  ``pandas.read_parquet`` on the folder sees a merged file and its inputs together only
  in the instant between the rename and the deletes.

Example:
    >>> parts = PartSet(pyarrow.fs.LocalFileSystem(), "/tmp/demo/trials")  # doctest: +SKIP
    >>> parts.write(0, table); parts.table().num_rows                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

PARTITIONING = ds.partitioning(pa.schema([("stage", pa.int64())]), flavor="hive")
MANIFEST = ".replacing-"
# Part-file metadata: whether a file may hold several rows (attempts) of one trial.
ROWS_KEY = b"sweep.rows"
UNIQUE, REPEATED = b"one-per-trial", b"repeated"
# A merge streams its inputs in small batches, page by page, on one thread: with
# pyarrow's defaults (whole column chunks read ahead, on a thread pool) merging two
# 450,000-row files took 120 MiB of the driver's memory; this way 50.
BATCH_ROWS = 16 * 1024
MERGE_READ = {"buffer_size": 1 << 20, "pre_buffer": False}
FANIN = 4
MAX_FILES = 16
BIG_FILE_BYTES = 256 * 1024 * 1024
READ_ATTEMPTS = 5
# Filtered reads keep few rows: decode column chunks as they are read and read little
# ahead, so that memory holds a batch or two of every column rather than the table.
LEAN_SCAN = ds.ParquetFragmentScanOptions(pre_buffer=False, use_buffered_stream=True,
                                          buffer_size=1 << 20)
LEAN_READ = {"batch_size": 65_536, "batch_readahead": 1, "fragment_readahead": 1,
             "fragment_scan_options": LEAN_SCAN, "use_threads": False}

log = logging.getLogger("sweep")


def _stage_of(path: str) -> int:
    return int(path.rsplit("stage=", 1)[1].split("/", 1)[0])


class PartSet:
    """The part files under ``directory`` (``stage=<s>/part-*.parquet``)."""

    def __init__(self, fs: pafs.FileSystem, directory: str,
                 warn: Callable[[str], None] | None = None):
        self.fs = fs
        self.directory = directory
        self.warn = warn or log.warning
        self._schemas: dict[str, pa.Schema] = {}
        self._rows: dict[str, int] = {}
        self._bad: set[str] = set()

    # --------------------------------------------------------------- listing

    def _infos(self, stages: Sequence[int] | None = None) -> list[pafs.FileInfo]:
        """The part files, less those a finished replacement has superseded."""
        if self.fs.get_file_info(self.directory).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.directory, recursive=True,
                                                        allow_not_found=True))
        files = [i for i in infos if i.type == pafs.FileType.File and "stage=" in i.path]
        parts = {i.path: i for i in files if i.base_name.startswith("part-")
                 and i.base_name.endswith(".parquet")}
        for manifest in (i.path for i in files if i.base_name.startswith(MANIFEST)):
            for path in self._superseded(manifest, parts):
                parts.pop(path, None)
        out = list(parts.values())
        if stages is not None:
            wanted = {int(s) for s in stages}
            out = [i for i in out if _stage_of(i.path) in wanted]
        return sorted(out, key=lambda i: i.path)

    def _superseded(self, manifest: str, parts: Mapping[str, pafs.FileInfo]) -> list[str]:
        """The inputs of a replacement whose output is in place (a driver died between
        the rename and the deletes): readers skip them, the writer deletes them."""
        try:
            with self.fs.open_input_stream(manifest) as f:
                plan = json.loads(f.read())
            folder = manifest.rpartition("/")[0]
            output, inputs = f"{folder}/{plan['output']}", [f"{folder}/{n}" for n in
                                                             plan["inputs"]]
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
            return []
        return inputs if output in parts else []

    def files(self, stages: Sequence[int] | None = None) -> list[str]:
        """The valid part files (sorted), optionally of some stages only."""
        return [p for p in (i.path for i in self._infos(stages)) if self.schema_of(p)]

    def schema_of(self, path: str) -> pa.Schema | None:
        """A part file's schema, or None (with one warning) when it is not valid Parquet."""
        if path in self._schemas:
            return self._schemas[path]
        if path in self._bad:
            return None
        try:
            schema = pq.read_schema(path, filesystem=self.fs)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            self._skip(path, exc)
            return None
        self._schemas[path] = schema
        return schema

    def _skip(self, path: str, exc: BaseException) -> None:
        """Leave ``path`` out of every read and merge from now on, with one warning."""
        self._bad.add(path)
        self._schemas.pop(path, None)
        self._rows.pop(path, None)
        self.warn(f"skipping {path}: not a readable Parquet file ({_first_line(exc)}); its "
                  f"rows are left out (its trials run again on the next `sweep run` unless "
                  f"the journal holds them). Move it away to silence this warning")

    def _damaged(self, files: Sequence[str]) -> list[str]:
        """Those of ``files`` whose pages cannot all be read (each skipped from now on)."""
        out = []
        for path in files:
            try:
                for _ in self._batches(path):
                    pass
            except FileNotFoundError:
                continue
            except (OSError, pa.ArrowException) as exc:
                self._skip(path, exc)
                out.append(path)
        return out

    def _batches(self, path: str) -> Iterator[pa.RecordBatch]:
        """A part file's rows, batch by batch, page by page (bounded memory)."""
        reader = pq.ParquetFile(self.fs.open_input_file(path), **MERGE_READ)
        yield from reader.iter_batches(batch_size=BATCH_ROWS, use_threads=False)

    def rows_of(self, path: str) -> int:
        """A part file's row count (from its footer, read once)."""
        if path not in self._rows:
            self._rows[path] = pq.read_metadata(path, filesystem=self.fs).num_rows
        return self._rows[path]

    def repeats_possible(self, stages: Sequence[int] | None = None) -> bool:
        """True unless every part file says it holds one row per trial (files written
        before sweep said so are assumed to repeat: they are checked, not trusted)."""
        for path in self.files(stages):
            if (self._schemas[path].metadata or {}).get(ROWS_KEY) != UNIQUE:
                return True
        return False

    def metric_names(self) -> list[str]:
        """Every ``metrics.<name>`` column of the files, in first-seen order."""
        names: list[str] = []
        for path in self.files():
            for f in self._schemas[path]:
                if f.name.startswith("metrics.") and f.name[8:] not in names:
                    names.append(f.name[8:])
        return names

    # --------------------------------------------------------------- writing

    def write(self, stage: int, table: pa.Table) -> str:
        """Write ``table`` as a new part file of ``stage`` (whole, then renamed), and
        compact the stage when it holds too many files."""
        path = self._put(stage, table)
        while self.compact(stage):
            pass
        return path

    def _put(self, stage: int, table: pa.Table) -> str:
        folder = f"{self.directory}/stage={stage}"
        self.fs.create_dir(folder, recursive=True)
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = f"{folder}/.tmp-{name}"
        pq.write_table(table, tmp, filesystem=self.fs)
        self.fs.move(tmp, f"{folder}/{name}")
        path = f"{folder}/{name}"
        self._schemas[path] = table.schema
        self._rows[path] = table.num_rows
        return path

    def conform(self, schema: pa.Schema) -> None:
        """Give every part file ``schema`` (missing columns as nulls), one file at a time
        (a damaged one is skipped, not rewritten)."""
        for path in self.files():
            if not self._schemas[path].equals(schema):
                self._replace(_stage_of(path), [path], schema)

    def compact(self, stage: int) -> int:
        """One merge, if the stage needs one; returns how many files were merged (0: none).

        The lowest tier holding ``FANIN`` files is merged (its output usually climbs a
        tier); otherwise, past ``MAX_FILES`` mergeable files, the two smallest. The
        previous rule (merge the two lowest tiers by bytes whenever there were 8 files)
        rewrote a growing file at every eighth flush: 19 rewrites per row over 300 small
        flushes, and more the longer the sweep.

        Example: ``while parts.compact(0): pass``
        """
        small = [i for i in self._infos([stage])
                 if i.size is not None and i.size < BIG_FILE_BYTES and self.schema_of(i.path)]
        tiers: dict[int, list[str]] = {}
        for info in small:
            tiers.setdefault(_tier(self.rows_of(info.path)), []).append(info.path)
        full = [tier for tier, paths in tiers.items() if len(paths) >= FANIN]
        if full:
            chosen = tiers[min(full)]
        elif len(small) > MAX_FILES:
            chosen = sorted((i.path for i in small), key=self.rows_of)[:2]
        else:
            return 0
        self._replace(stage, chosen, unify([self._schemas[p] for p in chosen]))
        return len(chosen)  # after a damaged input: skipped, and the next call goes on

    def _replace(self, stage: int, inputs: Sequence[str], schema: pa.Schema) -> str | None:
        """Write ``inputs`` (streamed, batch by batch) as one new part file of ``schema``,
        then delete them. A manifest names both while it happens, so a crash at any point
        leaves every row readable exactly once (see ``_superseded``). None, and nothing
        changed, when an input's pages are damaged (that input is skipped from now on)."""
        folder = f"{self.directory}/stage={stage}"
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = f"{folder}/.tmp-{name}"
        rows = 0
        try:
            with pq.ParquetWriter(tmp, schema, filesystem=self.fs) as writer:
                for path in inputs:
                    for batch in _read_or_damaged(path, self._batches(path)):
                        writer.write_table(_conformed(pa.Table.from_batches([batch]), schema))
                        rows += batch.num_rows
        except _Damaged as damaged:
            # The inputs stay as they are; the damaged one is left out from now on.
            self._delete(tmp)
            self._skip(damaged.path, damaged.error)
            return None
        manifest = f"{folder}/{MANIFEST}{uuid.uuid4().hex[:8]}.json"
        with self.fs.open_output_stream(manifest) as f:
            f.write(json.dumps({"output": name,
                                "inputs": [p.rpartition("/")[2] for p in inputs]}).encode())
        self.fs.move(tmp, f"{folder}/{name}")
        self._schemas[f"{folder}/{name}"] = schema
        self._rows[f"{folder}/{name}"] = rows
        for path in inputs:
            self._delete(path)
        self._delete(manifest)
        return f"{folder}/{name}"

    def finish_interrupted(self) -> int:
        """Complete what a driver that died left half done: delete the inputs of a
        replacement whose output is in place, and stale manifests and temporary files.
        Returns how many files were deleted (the writer calls this; readers need not)."""
        if self.fs.get_file_info(self.directory).type != pafs.FileType.Directory:
            return 0
        infos = self.fs.get_file_info(pafs.FileSelector(self.directory, recursive=True))
        parts = {i.path: i for i in infos if i.type == pafs.FileType.File
                 and i.base_name.startswith("part-")}
        deleted = 0
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            if info.base_name.startswith(MANIFEST):
                for path in self._superseded(info.path, parts):
                    if path in parts:
                        self._delete(path)
                        deleted += 1
                self._delete(info.path)
                deleted += 1
            elif info.base_name.startswith(".tmp-"):
                self._delete(info.path)
                deleted += 1
        return deleted

    def _delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)
        self._schemas.pop(path, None)
        self._rows.pop(path, None)

    # --------------------------------------------------------------- reading

    def table(self, columns: Sequence[str] | None = None,
              stages: Sequence[int] | None = None, where: ds.Expression | None = None,
              with_stage: bool = True) -> pa.Table | None:
        """Every row of the valid part files (the ``stage`` column from the folders), or
        None when there are none."""

        def read(dataset: ds.Dataset) -> pa.Table:
            wanted = None if columns is None else list(dict.fromkeys(
                [c for c in columns if c in dataset.schema.names]
                + (["stage"] if with_stage else [])))
            if where is None:
                return dataset.to_table(columns=wanted)
            return dataset.to_table(columns=wanted, filter=where, **LEAN_READ)

        return self._read(stages, read)

    def smallest(self, k: int, sort_keys: Sequence[tuple[str, str]],
                 stages: Sequence[int] | None = None, where: ds.Expression | None = None
                 ) -> pa.Table | None:
        """The first ``k`` rows by ``sort_keys`` among those matching ``where``, read batch
        by batch (memory holds k rows and a batch, however many rows match).

        Example: ``parts.smallest(5, [("metrics.loss", "ascending"), ("trial_id",
        "ascending")])``
        """

        def read(dataset: ds.Dataset) -> pa.Table | None:
            columns = [name for name, _ in sort_keys if name in dataset.schema.names]
            best: pa.Table | None = None
            for batch in dataset.to_batches(columns=columns, filter=where, **LEAN_READ):
                if batch.num_rows == 0:
                    continue
                table = pa.Table.from_batches([batch])
                if best is not None:
                    table = pa.concat_tables([best, table])
                best = table.take(pc.select_k_unstable(table, k=min(k, table.num_rows),
                                                       sort_keys=list(sort_keys)))
            return None if best is None else best.sort_by(list(sort_keys))

        return self._read(stages, read)

    def fold(self, columns: Sequence[str], start: Callable[[], Any],
             step: Callable[[Any, pa.RecordBatch], Any],
             stages: Sequence[int] | None = None) -> Any:
        """``step(acc, batch)`` over every batch of ``columns`` (and ``stage``), from
        ``start()``: a summary of a million rows that holds one batch at a time, never a
        column. ``start()`` when there are no part files; a read that had to start over
        (a file compacted away meanwhile) starts from ``start()`` again.

        Example: ``parts.fold(["status"], int, lambda n, b: n + b.num_rows)``
        """

        def read(dataset: ds.Dataset) -> Any:
            wanted = list(dict.fromkeys([c for c in columns if c in dataset.schema.names]
                                        + ["stage"]))
            acc = start()
            for batch in dataset.to_batches(columns=wanted, **LEAN_READ):
                if batch.num_rows:
                    acc = step(acc, batch)
            return acc

        result = self._read(stages, read)
        return start() if result is None else result

    def _read(self, stages: Sequence[int] | None,
              read: Callable[[ds.Dataset], pa.Table | None]) -> pa.Table | None:
        """``read`` over a dataset of the valid part files of ``stages`` (None when there
        are none). Files that vanish while being read (a concurrent rewrite or
        compaction) are listed again; a file whose pages cannot be read is skipped (named
        in one warning) and the read starts over without it."""
        vanished = 0
        while vanished < READ_ATTEMPTS:
            files = self.files(stages)
            if not files:
                return None
            schema = unify([self._schemas[p] for p in files])
            if "stage" not in schema.names:
                schema = schema.append(pa.field("stage", pa.int64()))
            try:
                return read(ds.dataset(files, schema=schema, filesystem=self.fs,
                                       format="parquet", partitioning=PARTITIONING,
                                       partition_base_dir=self.directory))
            except FileNotFoundError:
                self._forget_missing(files)
                vanished += 1
            except (OSError, pa.ArrowException) as exc:
                if self._forget_missing(files):
                    vanished += 1
                elif not self._damaged(files):  # each pass skips one file or more
                    raise OSError(f"could not read {self.directory}: {exc}") from exc
        return None

    def _forget_missing(self, files: Sequence[str]) -> bool:
        """Drop cached schemas of files that are gone; True when any was."""
        infos = self.fs.get_file_info(list(files))
        gone = [i.path for i in infos if i.type == pafs.FileType.NotFound]
        for path in gone:
            self._schemas.pop(path, None)
            self._rows.pop(path, None)
        return bool(gone)


class _Damaged(Exception):
    """A part file's pages could not be read while it was being merged."""

    def __init__(self, path: str, error: BaseException):
        super().__init__(path)
        self.path, self.error = path, error


def _read_or_damaged(path: str, batches: Iterator[pa.RecordBatch]
                     ) -> Iterator[pa.RecordBatch]:
    """``batches``, with a read error (not a write error of the caller's) as ``_Damaged``."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise _Damaged(path, exc) from exc
        yield batch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tier(rows: int) -> int:
    """A part file's tier: 0 below FANIN rows, then one more per factor FANIN."""
    tier, limit = 0, FANIN
    while rows >= limit:
        tier, limit = tier + 1, limit * FANIN
    return tier


def unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema holding every column of ``schemas`` (the first type of each wins) and
    their metadata (a ``repeated`` flag of any of them wins: see ``ResultsWriter``)."""
    metadata: dict[bytes, bytes] = {}
    for schema in schemas:
        for key, value in (schema.metadata or {}).items():
            if metadata.get(key) != REPEATED:
                metadata[key] = value
    if len(schemas) == 1 or all(s.equals(schemas[0]) for s in schemas[1:]):
        return schemas[0].with_metadata(metadata or None)
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for f in schema:
            fields.setdefault(f.name, f)
    return pa.schema(list(fields.values()), metadata=metadata or None)


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    arrays = [table.column(f.name).cast(f.type) if f.name in table.column_names
              else pa.nulls(len(table), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


__all__ = ["FANIN", "MAX_FILES", "PARTITIONING", "REPEATED", "ROWS_KEY", "UNIQUE", "PartSet",
           "unify"]
