"""Trial checkpoints under the results root: ``<root>/<folder>/checkpoints/<trial_id>/``.

A checkpoint is a local directory that a trial wrote, copied file by file as bytes
(sweep pickles nothing) under a unique name, then committed by a small JSON manifest
that is written whole under a temporary name and renamed into place::

    checkpoints/<trial_id>/ckpt-000000000012-1a2b3c4d/...     the files, as written
    checkpoints/<trial_id>/ckpt-000000000012-1a2b3c4d.json    the manifest: the commit

A checkpoint counts only once its manifest exists and every file it lists has the
listed size. So a copy cut short by a dying writer (a lost node, a SIGKILL, a preempted
GPU) is never restored, on local disks, NFS and object stores alike (on S3 the rename
is a copy and a delete; each object appears whole). ``prune`` removes the leftovers of
such writers once a later checkpoint is committed, and applies the retention rule.

The store holds only two strings and opens its filesystem (``open_root``: local path or
URI, as the Parquet data) on first use, so it pickles in a few bytes into a Ray task.

Example:
    >>> store = CheckpointStore("results", "demo")                   # doctest: +SKIP
    >>> store.save("8bf0b5019eb95080", 5, "/tmp/my-ckpt").step       # doctest: +SKIP
    5
    >>> store.restore("8bf0b5019eb95080")                            # doctest: +SKIP
    '/tmp/sweep-restore-8bf0b5019eb95080-x1y2z3'
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from ..core.errors import SweepError
from .roots import open_root

log = logging.getLogger("sweep")

FORMAT = 1
_CHUNK = 4 << 20  # bytes per read/write while copying a file
_THREADS = 8  # files copied at once (object stores are latency-bound)
_NAME = re.compile(r"ckpt-(\d{12,})-[0-9a-f]{8}")
# Everything a trial's folder holds: a checkpoint's folder, its manifest, a manifest
# not yet renamed into place (group 1 is the checkpoint's name in each case).
_ENTRY = re.compile(r"(?:\.tmp-[0-9a-f]{32}-)?(ckpt-\d{12,}-[0-9a-f]{8})(?:\.json)?")
_TRIAL = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9_.=-]*")
_T = TypeVar("_T")


class CheckpointInfo(NamedTuple):
    """One committed checkpoint: its step, size in bytes, the seconds its save took
    (copy and commit), its name in the trial's folder, when it was committed (epoch
    seconds) and the attempt that wrote it (None when not given)."""

    step: int
    bytes: int
    seconds: float
    name: str
    created: float = 0.0
    attempt: int | None = None


class Restored(NamedTuple):
    """A checkpoint downloaded by ``CheckpointStore.fetch``: the local directory, the
    checkpoint, the seconds the download took, and the ``meta`` it was saved with."""

    path: str
    info: CheckpointInfo
    seconds: float
    meta: dict[str, Any] | None = None


class Usage(NamedTuple):
    """What a sweep's checkpoints hold: checkpoints (manifests, counted from one listing,
    not read) and bytes of every file under ``checkpoints/`` (leftovers included: it is
    what the disk holds)."""

    checkpoints: int
    bytes: int


@dataclass(frozen=True)
class _Manifest:
    info: CheckpointInfo
    files: dict[str, int]  # relative path -> size in bytes
    dirs: tuple[str, ...]  # empty folders, so that a restore recreates them
    meta: dict[str, Any] | None  # what the writer stored beside it (JSON)


class _Vanished(Exception):
    """A checkpoint's file missing or short while it was downloaded (pruned meanwhile)."""


class CheckpointStore:
    """The checkpoints of one sweep: ``<root>/<folder>/checkpoints/<trial_id>/``.

    ``root`` is the results root (a local path or a URI such as ``s3://bucket/prefix``),
    ``folder`` the sweep's folder under it (as ``Store``'s).

    Example:
        >>> CheckpointStore("results", "demo")
        CheckpointStore('results', 'demo')
    """

    def __init__(self, root: str, folder: str):
        self.root = root
        self.folder = folder
        self._opened: tuple[pafs.FileSystem, str] | None = None

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Only the two strings travel; the filesystem is opened again where it is used.
        return (CheckpointStore, (self.root, self.folder))

    def __repr__(self) -> str:
        return f"CheckpointStore({self.root!r}, {self.folder!r})"

    # ------------------------------------------------------------------ places

    def _open(self) -> tuple[pafs.FileSystem, str]:
        if self._opened is None:
            fs, base = open_root(self.root)
            self._opened = (fs, f"{base}/{self.folder}/checkpoints")
        return self._opened

    @property
    def directory(self) -> str:
        """The checkpoints folder, as a path on the store's filesystem."""
        return self._open()[1]

    def trial_dir(self, trial_id: str) -> str:
        """The folder of one trial's checkpoints (a path on the store's filesystem).

        Example: ``CheckpointStore("/r", "demo").trial_dir("ab12")`` ->
        ``"/r/demo/checkpoints/ab12"``
        """
        if not isinstance(trial_id, str) or not _TRIAL.fullmatch(trial_id):
            raise ValueError(f"checkpoint: trial id {trial_id!r} is not a plain file name")
        return f"{self.directory}/{trial_id}"

    def _listing(self, path: str, recursive: bool) -> builtins.list[pafs.FileInfo]:
        fs, _ = self._open()
        try:
            return fs.get_file_info(pafs.FileSelector(path, recursive=recursive,
                                                      allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not list the checkpoints under {path}: {exc}") from None

    # ------------------------------------------------------------------ saving

    def save(self, trial_id: str, step: int, local_dir: str | os.PathLike[str], *,
             attempt: int | None = None, meta: Mapping[str, Any] | None = None
             ) -> CheckpointInfo:
        """Copy ``local_dir`` (its files and subfolders, as bytes) as the trial's
        checkpoint at ``step``, then commit it. ``meta``, a JSON object, is kept in the
        manifest and comes back with ``fetch`` (e.g. the trial's reports up to ``step``,
        so that a resumed trial's curve goes on without a gap). Raises ``SweepError``
        naming the path when the directory cannot be read or the checkpoint cannot be
        written (what was copied is removed again).

        Example: ``store.save("8bf0b5019eb95080", 12, "ckpt/")`` ->
        ``CheckpointInfo(step=12, bytes=4096, seconds=0.02, name='ckpt-000000000012-...')``
        """
        step = _step_value(step)
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
            raise ValueError(f"checkpoint: attempt must be an integer, got {attempt!r}")
        if meta is not None:
            try:
                meta = json.loads(json.dumps(dict(meta), allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"checkpoint: meta must be a JSON object ({exc})") from None
        folder = self.trial_dir(trial_id)
        files, empty = _local_tree(os.fspath(local_dir))
        fs, _ = self._open()
        name = f"ckpt-{step:012d}-{uuid.uuid4().hex[:8]}"
        target = f"{folder}/{name}"
        start = time.monotonic()
        try:
            if not _object_store(fs):
                parents = {target, *(f"{target}/{d}" for d in empty)}
                parents.update(f"{target}/{rel.rpartition('/')[0]}" for rel in files
                               if "/" in rel)
                for parent in sorted(parents):
                    fs.create_dir(parent, recursive=True)
            rels = sorted(files)
            sizes = _each(lambda rel: _put(fs, files[rel], f"{target}/{rel}"), rels)
            manifest = {
                "format": FORMAT, "trial_id": trial_id, "step": step, "attempt": attempt,
                "created": time.time(), "seconds": round(time.monotonic() - start, 6),
                "bytes": sum(sizes), "files": dict(zip(rels, sizes)), "dirs": sorted(empty),
                "meta": meta,
            }
            _write_whole(fs, folder, f"{name}.json", json.dumps(manifest, indent=1).encode())
        except (OSError, pa.ArrowException, SweepError) as exc:
            with contextlib.suppress(OSError, pa.ArrowException):
                fs.delete_dir(target)
            if isinstance(exc, SweepError):
                raise
            raise SweepError(f"could not write the checkpoint {target}: {exc}") from None
        return CheckpointInfo(step, manifest["bytes"], time.monotonic() - start, name,
                              manifest["created"], attempt)

    def check_writable(self) -> None:
        """Fail early, before any trial runs, when checkpoints cannot be written here."""
        fs, folder = self._open()
        probe = f".probe-{uuid.uuid4().hex}"
        try:
            fs.create_dir(folder, recursive=True)
            _write_whole(fs, folder, probe, b"ok")
            fs.delete_file(f"{folder}/{probe}")
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"checkpoints cannot be written under {folder}: {exc}") from None

    # ----------------------------------------------------------------- reading

    def list(self, trial_id: str) -> list[CheckpointInfo]:
        """The trial's committed checkpoints, oldest first (by step, then commit time);
        a manifest that cannot be read, or whose files are missing or of other sizes,
        is skipped with a warning.

        Example: ``[c.step for c in store.list("8bf0b5019eb95080")]`` -> ``[11, 12]``
        """
        return [m.info for m in self._committed(trial_id)]

    def latest(self, trial_id: str) -> CheckpointInfo | None:
        """The trial's checkpoint to restore (highest step, then latest commit), or None.

        Example: ``store.latest("8bf0b5019eb95080").step`` -> ``12``
        """
        committed = self._committed(trial_id)
        return committed[-1].info if committed else None

    def restore(self, trial_id: str, dest_dir: str | None = None) -> str | None:
        """Download the trial's latest committed checkpoint into a fresh local directory
        (``dest_dir``, created or empty; by default a new temporary one) and return its
        path, or None when the trial has no checkpoint.

        Example: ``store.restore("8bf0b5019eb95080")`` -> ``"/tmp/sweep-restore-...``
        """
        restored = self.fetch(trial_id, dest_dir)
        return None if restored is None else restored.path

    def fetch(self, trial_id: str, dest_dir: str | None = None) -> Restored | None:
        """``restore`` that also says which checkpoint came back and what it cost. A
        checkpoint whose files vanish or come back short while they download (pruned
        meanwhile) is passed over for the one before it, with a warning.

        Example: ``store.fetch("8bf0b5019eb95080").info.step`` -> ``12``
        """
        start = time.monotonic()
        committed = self._committed(trial_id)
        if not committed:
            return None
        fs, _ = self._open()
        folder = self.trial_dir(trial_id)
        path = _fresh_dir(dest_dir, trial_id)
        for manifest in reversed(committed):
            try:
                _download(fs, f"{folder}/{manifest.info.name}", manifest, path)
            except SweepError:
                if dest_dir is None:
                    shutil.rmtree(path, ignore_errors=True)
                raise
            except _Vanished as why:
                log.warning(f"checkpoint {folder}/{manifest.info.name} could not be restored "
                            f"({why}); trying the one before it")
                _empty(path)
                continue
            return Restored(path, manifest.info, time.monotonic() - start, manifest.meta)
        if dest_dir is None:
            shutil.rmtree(path, ignore_errors=True)
        return None

    def _committed(self, trial_id: str) -> builtins.list[_Manifest]:
        """Committed checkpoints of a trial, oldest first: one listing, one read each."""
        folder = self.trial_dir(trial_id)
        sizes = {info.path[len(folder) + 1:]: info.size
                 for info in self._listing(folder, recursive=True)
                 if info.type == pafs.FileType.File}
        found = []
        for rel in sizes:
            name = rel[:-5] if rel.endswith(".json") else ""
            if _NAME.fullmatch(name):
                manifest = self._read_manifest(f"{folder}/{rel}", name)
                if manifest is not None and _complete(manifest, sizes, f"{folder}/{name}"):
                    found.append(manifest)
        return sorted(found, key=lambda m: (m.info.step, m.info.created, m.info.name))

    def _read_manifest(self, path: str, name: str) -> _Manifest | None:
        fs, _ = self._open()
        try:
            with fs.open_input_stream(path) as f:
                raw = f.read()
        except FileNotFoundError:
            return None  # pruned since the listing
        except (OSError, pa.ArrowException) as exc:
            log.warning(f"checkpoint manifest {path} cannot be read ({exc}); skipped")
            return None
        try:
            return _parse_manifest(json.loads(raw), name)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(f"checkpoint manifest {path} is not valid ({exc}); skipped")
            return None

    # --------------------------------------------------------------- retention

    def prune(self, trial_id: str, keep: int = 1,
              in_use: Collection[str] | None = None) -> int:
        """Keep the trial's last ``keep`` committed checkpoints; remove the older ones
        (manifest first, then files) and the leftovers of writers that died (a folder
        or manifest that never committed). Without ``in_use``, only leftovers at or
        below the newest committed step go (a save in progress writes a higher step);
        with it, every leftover whose name is not in ``in_use``. Returns how many
        checkpoints and leftovers were removed.

        Example: ``store.prune("8bf0b5019eb95080", keep=2)`` -> ``1``
        """
        keep = _keep_value(keep)
        folder = self.trial_dir(trial_id)
        committed = self._committed(trial_id)
        kept = {m.info.name for m in committed[len(committed) - keep:]} if keep else set()
        newest = committed[-1].info.step if committed else None
        names: dict[str, list[pafs.FileInfo]] = {}
        for info in self._listing(folder, recursive=False):
            match = _ENTRY.fullmatch(info.base_name)
            if match and match.group(1) not in kept:
                names.setdefault(match.group(1), []).append(info)
        committed_names = {m.info.name for m in committed}
        gone = 0
        for name, entries in sorted(names.items()):
            if name not in committed_names:
                if in_use is not None and name in in_use:
                    continue
                if in_use is None and (newest is None or _step_of(name) > newest):
                    continue
            self._remove(entries)
            gone += 1
        return gone

    def drop(self, trial_id: str) -> bool:
        """Remove every checkpoint of a trial (manifests first); True when there were any.

        Example: ``store.drop("8bf0b5019eb95080")`` -> ``True``
        """
        folder = self.trial_dir(trial_id)
        entries = self._listing(folder, recursive=False)
        if not entries:
            return False
        self._remove(entries)
        fs, _ = self._open()
        _quietly(lambda: fs.delete_dir(folder), folder)  # anything else left in it
        return True

    def prune_stage(self, keep_trials: Collection[str], trial_ids: Iterable[str],
                    keep: int = 1) -> int:
        """The end-of-stage rule: each of ``trial_ids`` in ``keep_trials`` (the stage's
        top-k) keeps its last ``keep`` checkpoints and loses its leftovers (the stage
        is over: no save is in progress); every other trial loses all its checkpoints.
        Returns how many trials lost all of theirs.

        Example: ``store.prune_stage({"a1"}, ["a1", "b2", "c3"])`` -> ``2``
        """
        keep = _keep_value(keep)
        dropped = 0
        for trial_id in trial_ids:
            if trial_id in keep_trials:
                self.prune(trial_id, keep, in_use=())
            elif self.drop(trial_id):
                dropped += 1
        return dropped

    def trial_ids(self) -> set[str]:
        """The trials that have a checkpoint folder (committed or not)."""
        return {info.base_name for info in self._listing(self.directory, recursive=False)
                if info.type == pafs.FileType.Directory and _TRIAL.fullmatch(info.base_name)}

    def usage(self) -> Usage:
        """Committed checkpoints and bytes on disk, for ``sweep status``: one listing.

        Example: ``store.usage()`` -> ``Usage(checkpoints=10, bytes=52428800)``
        """
        top = self.directory
        count = size = 0
        for info in self._listing(top, recursive=True):
            if info.type == pafs.FileType.File:
                size += info.size or 0
                base = info.path[len(top) + 1:].partition("/")[2]
                if base.endswith(".json") and _NAME.fullmatch(base[:-5]):
                    count += 1
        return Usage(count, size)

    def _remove(self, entries: Iterable[pafs.FileInfo]) -> None:
        """Remove a checkpoint's entries: files (manifests) first, then folders."""
        fs, _ = self._open()
        ordered = sorted(entries, key=lambda i: i.type == pafs.FileType.Directory)
        for info in ordered:
            if info.type == pafs.FileType.Directory:
                _quietly(lambda p=info.path: fs.delete_dir(p), info.path)
            else:
                _quietly(lambda p=info.path: fs.delete_file(p), info.path)


# --------------------------------------------------------------------- helpers


def _step_value(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"checkpoint: step must be an integer >= 0, got {step!r}")
    return step


def _keep_value(keep: Any) -> int:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"checkpoint: keep must be an integer >= 0, got {keep!r}")
    return keep


def _step_of(name: str) -> int:
    match = _NAME.fullmatch(name)
    assert match is not None
    return int(match.group(1))


def _object_store(fs: pafs.FileSystem) -> bool:
    """True where folders are only prefixes of keys (nothing to create)."""
    return fs.type_name in ("s3", "gcs")


def _quietly(remove: Callable[[], None], path: str) -> None:
    """Remove something; gone already is fine, any other failure is a SweepError."""
    try:
        remove()
    except FileNotFoundError:
        pass
    except (OSError, pa.ArrowException) as exc:
        raise SweepError(f"could not remove the checkpoint entry {path}: {exc}") from None


def _safe_rel(rel: Any) -> bool:
    """A relative path that stays inside the checkpoint (no absolute path, no '..')."""
    return (isinstance(rel, str) and bool(rel) and not rel.startswith("/")
            and "\\" not in rel and "\x00" not in rel
            and all(part not in ("", ".", "..") for part in rel.split("/")))


def _local_tree(path: str) -> tuple[dict[str, str], list[str]]:
    """A local directory's files ({relative path: absolute path}, links followed) and
    its empty folders; a SweepError naming the path when it cannot be read."""
    if not os.path.exists(path):
        raise SweepError(f"checkpoint directory {path!r} does not exist")
    if not os.path.isdir(path):
        raise SweepError(f"checkpoint {path!r} is not a directory (save a directory of "
                         f"files)")
    files: dict[str, str] = {}
    empty: list[str] = []
    errors: list[OSError] = []
    seen: set[str] = set()
    for here, dirs, names in os.walk(path, followlinks=True, onerror=errors.append):
        real = os.path.realpath(here)
        if real in seen:  # a link back to a folder already copied
            dirs[:] = []
            continue
        seen.add(real)
        rel_here = os.path.relpath(here, path).replace(os.sep, "/")
        prefix = "" if rel_here == "." else rel_here + "/"
        for name in names:
            full = os.path.join(here, name)
            if os.path.isfile(full):
                files[prefix + name] = full
            else:
                log.warning(f"checkpoint: {full} is not a regular file; not saved")
        if not dirs and not names and prefix:
            empty.append(rel_here)
    if errors:
        where = errors[0].filename or path
        raise SweepError(f"checkpoint directory {where!r} cannot be read: "
                         f"{errors[0].strerror or errors[0]}")
    return files, empty


def _each(work: Callable[[str], _T], items: list[str]) -> list[_T]:
    """``work`` on each item, a few at a time; results in order, the first error raised."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_THREADS, len(items))) as pool:
        return list(pool.map(work, items))


def _put(fs: pafs.FileSystem, src: str, dst: str) -> int:
    """Copy a local file to ``dst``; returns the bytes written."""
    try:
        f = open(src, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise SweepError(f"checkpoint file {src!r} cannot be read: "
                         f"{exc.strerror or exc}") from None
    with f:
        if isinstance(fs, pafs.LocalFileSystem):
            with open(dst, "wb") as out:
                return _copy(f, out, kernel=True)
        with fs.open_output_stream(dst) as out:
            return _copy(f, out, kernel=False)


def _copy(src: Any, dst: Any, *, kernel: bool) -> int:
    """Copy one open file into another; returns the bytes copied. Between two local
    files (``kernel``) the kernel copies (sendfile: several times faster than a Python
    loop, on local disks and NFS alike), where it can."""
    written = 0
    if kernel and sys.platform == "linux":
        try:
            while sent := os.sendfile(dst.fileno(), src.fileno(), written, 1 << 30):
                written += sent
            return written
        except OSError as exc:
            if written or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
        written += len(chunk)
    return written


def _write_whole(fs: pafs.FileSystem, folder: str, base: str, data: bytes) -> None:
    """Write ``folder/base`` whole: under a hidden temporary name, then renamed."""
    tmp = f"{folder}/.tmp-{uuid.uuid4().hex}-{base}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, f"{folder}/{base}")


def _parse_manifest(doc: Any, name: str) -> _Manifest:
    """A manifest's JSON, checked; ValueError saying what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    step, files, dirs = doc["step"], doc["files"], doc.get("dirs", [])
    if isinstance(step, bool) or not isinstance(step, int) or step != _step_of(name):
        raise ValueError(f"its step {step!r} is not the one in its name")
    if not isinstance(files, dict) or not all(
            _safe_rel(k) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in files.items()):
        raise ValueError("'files' is not a map of relative paths to sizes")
    if not isinstance(dirs, list) or not all(_safe_rel(d) for d in dirs):
        raise ValueError("'dirs' is not a list of relative paths")
    created, seconds, attempt = doc.get("created", 0.0), doc.get("seconds", 0.0), \
        doc.get("attempt")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool)
               for x in (created, seconds)):
        raise ValueError("'created' or 'seconds' is not a number")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        raise ValueError(f"'attempt' is {attempt!r}, not an integer")
    meta = doc.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise ValueError("'meta' is not a JSON object")
    info = CheckpointInfo(step, sum(files.values()), float(seconds), name, float(created),
                          attempt)
    return _Manifest(info, dict(files), tuple(dirs), meta)


def _complete(manifest: _Manifest, sizes: dict[str, int | None], where: str) -> bool:
    """True when every file of the manifest is listed with its size; else a warning."""
    name = manifest.info.name
    for rel, size in manifest.files.items():
        found = sizes.get(f"{name}/{rel}")
        if found != size:
            what = "is missing" if found is None else f"has {found} bytes"
            log.warning(f"checkpoint {where} is incomplete: {rel} {what}, its manifest "
                        f"says {size}; skipped")
            return False
    return True


def _fresh_dir(dest_dir: str | None, trial_id: str) -> str:
    """An empty local directory to restore into."""
    if dest_dir is None:
        return tempfile.mkdtemp(prefix=f"sweep-restore-{trial_id}-")
    try:
        os.makedirs(dest_dir, exist_ok=True)
        if os.listdir(dest_dir):
            raise SweepError(f"cannot restore a checkpoint into {dest_dir!r}: it is not "
                             f"empty")
    except OSError as exc:
        raise SweepError(f"cannot restore a checkpoint into {dest_dir!r}: "
                         f"{exc.strerror or exc}") from None
    return os.path.abspath(dest_dir)


def _empty(path: str) -> None:
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def _open_input(fs: pafs.FileSystem, path: str) -> Any:
    """A file of the store opened for reading (a plain file object on a local disk)."""
    if isinstance(fs, pafs.LocalFileSystem):
        return open(path, "rb")
    return fs.open_input_stream(path)


def _download(fs: pafs.FileSystem, source: str, manifest: _Manifest, dest: str) -> None:
    """Copy a checkpoint's files into ``dest``, each checked against its listed size."""
    for rel in (*manifest.dirs, *(r.rpartition("/")[0] for r in manifest.files if "/" in r)):
        os.makedirs(os.path.join(dest, rel), exist_ok=True)

    def get(rel: str) -> None:
        local = os.path.join(dest, rel)
        try:
            with _open_input(fs, f"{source}/{rel}") as f, open(local, "wb") as out:
                written = _copy(f, out, kernel=isinstance(fs, pafs.LocalFileSystem))
        except FileNotFoundError:
            raise _Vanished(f"{rel} is gone") from None
        except (OSError, pa.ArrowException) as exc:
            raise SweepError(f"could not restore {source}/{rel} into {local}: {exc}") from None
        if written != manifest.files[rel]:
            raise _Vanished(f"{rel} has {written} bytes, its manifest says "
                            f"{manifest.files[rel]}")

    _each(get, sorted(manifest.files))


__all__ = ["CheckpointInfo", "CheckpointStore", "Restored", "Usage"]
