"""A folder of hive-partitioned Parquet part files (``stage=<s>/part-*.parquet``) that
stays few, whole and readable while it changes. No Ray.

- Every file is written under a hidden temporary name and renamed into place; a
  file is never modified afterwards (a rewrite writes a new file, then deletes the
  old one), so a reader sees each file whole or not at all.
- All files share one schema: when a column appears (a new metric), older files are
  rewritten with it as nulls (``conform``).
- Compaction: when a stage holds more than ``COMPACT_AT`` files, the files smaller
  than ``BIG_FILE_BYTES`` are merged into one, so a week of trials is a handful of
  files per stage.
- Readers list the files, skip any that is not valid Parquet (with one warning naming
  it) and, when a file vanishes under them (a rewrite or a compaction), list again.
  A reader that lists both a merged file and the files it came from sees each row
  twice for a moment: ``Store.read`` drops such duplicates.

Example:
    >>> parts = PartSet(pyarrow.fs.LocalFileSystem(), "/tmp/demo/trials")  # doctest: +SKIP
    >>> parts.write(0, table); parts.table().num_rows                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

PARTITIONING = ds.partitioning(pa.schema([("stage", pa.int64())]), flavor="hive")
COMPACT_AT = 8
BIG_FILE_BYTES = 256 * 1024 * 1024
READ_ATTEMPTS = 5

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
        self._bad: set[str] = set()

    # --------------------------------------------------------------- listing

    def _infos(self, stages: Sequence[int] | None = None) -> list[pafs.FileInfo]:
        if self.fs.get_file_info(self.directory).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.directory, recursive=True,
                                                        allow_not_found=True))
        out = [i for i in infos if i.type == pafs.FileType.File
               and i.base_name.startswith("part-") and i.base_name.endswith(".parquet")
               and "stage=" in i.path]
        if stages is not None:
            wanted = {int(s) for s in stages}
            out = [i for i in out if _stage_of(i.path) in wanted]
        return sorted(out, key=lambda i: i.path)

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
            self._bad.add(path)
            self.warn(f"skipping {path}: not a readable Parquet file ({exc}); its trials "
                      f"run again on the next `sweep run` unless the journal holds them. "
                      f"Move it away to silence this warning")
            return None
        self._schemas[path] = schema
        return schema

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
        stage_files = self._infos([stage])
        if len(stage_files) > COMPACT_AT:
            self.compact(stage)
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
        return path

    def conform(self, schema: pa.Schema) -> None:
        """Give every part file ``schema`` (missing columns as nulls). Each file is
        rewritten to a new name before the old one goes: a crash midway leaves
        duplicates, which readers drop, never a loss."""
        for path in self.files():
            old = self._schemas[path]
            if old.equals(schema):
                continue
            table = pq.read_table(path, filesystem=self.fs)
            self._put(_stage_of(path), _conformed(table, schema))
            self._delete(path)

    def compact(self, stage: int) -> int:
        """Merge the stage's small part files into one; returns how many were merged."""
        small = [i.path for i in self._infos([stage])
                 if i.size is not None and i.size < BIG_FILE_BYTES and self.schema_of(i.path)]
        if len(small) < 2:
            return 0
        tables = [pq.read_table(p, filesystem=self.fs) for p in small]
        schema = unify([t.schema for t in tables])
        merged = pa.concat_tables([_conformed(t, schema) for t in tables])
        self._put(stage, merged)
        for path in small:
            self._delete(path)
        return len(small)

    def _delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)
        self._schemas.pop(path, None)

    # --------------------------------------------------------------- reading

    def table(self, columns: Sequence[str] | None = None,
              stages: Sequence[int] | None = None) -> pa.Table | None:
        """Every row of the valid part files (the ``stage`` column from the folders), or
        None when there are none. Files that vanish while being read (a concurrent
        rewrite or compaction) are listed again."""
        for attempt in range(READ_ATTEMPTS):
            files = self.files(stages)
            if not files:
                return None
            schema = unify([self._schemas[p] for p in files])
            if "stage" not in schema.names:
                schema = schema.append(pa.field("stage", pa.int64()))
            try:
                dataset = ds.dataset(files, schema=schema, filesystem=self.fs,
                                     format="parquet", partitioning=PARTITIONING,
                                     partition_base_dir=self.directory)
                wanted = None if columns is None else [
                    c for c in columns if c in dataset.schema.names]
                return dataset.to_table(columns=wanted)
            except FileNotFoundError:
                self._forget_missing(files)
            except (OSError, pa.ArrowException) as exc:
                if attempt == READ_ATTEMPTS - 1 or not self._forget_missing(files):
                    raise OSError(f"could not read {self.directory}: {exc}") from exc
        return None

    def _forget_missing(self, files: Sequence[str]) -> bool:
        """Drop cached schemas of files that are gone; True when any was."""
        infos = self.fs.get_file_info(list(files))
        gone = [i.path for i in infos if i.type == pafs.FileType.NotFound]
        for path in gone:
            self._schemas.pop(path, None)
        return bool(gone)


def unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema holding every column of ``schemas`` (the first type of each wins)."""
    if len(schemas) == 1 or all(s.equals(schemas[0]) for s in schemas[1:]):
        return schemas[0]
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for f in schema:
            fields.setdefault(f.name, f)
    return pa.schema(list(fields.values()))


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    arrays = [table.column(f.name).cast(f.type) if f.name in table.column_names
              else pa.nulls(len(table), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


__all__ = ["COMPACT_AT", "PARTITIONING", "PartSet", "unify"]
