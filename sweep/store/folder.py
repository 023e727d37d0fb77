"""One sweep's results folder: where each file lives, on which filesystem, and the
stage files. No Ray.

Layout under the results root (a local path or a URI that pyarrow's filesystems
open: file://, s3://, gs://)::

    <root>/<name>/spec.yaml                      the spec as run (resume checks it)
    <root>/<name>/trials/stage=<s>/part-*.parquet one row per finished trial attempt
    <root>/<name>/curves/stage=<s>/part-*.parquet one row per intermediate report
    <root>/<name>/stages/stage-<s>.json          what a stage's plan decided, its rungs
    <root>/<name>/lock.json                      the running driver (pid, host, time)
    <root>/<name>/.journal/                      the journal (local roots), or the
                                                 segments shipped to an object store

The folder is shared by the writer (``sweep.store.writer``) and the reader
(``sweep.store.reader``); it holds the part sets of both tables, so that both see one
cache of file schemas and warn once about a broken file.

Example:
    >>> folder = ResultsFolder("results", "demo")                      # doctest: +SKIP
    >>> folder.read_stage(1).boxes                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from ..core.errors import SweepError
from .lock import DriverLock
from .parts import PartSet
from .roots import open_root

log = logging.getLogger("sweep")

SPEC = "spec.yaml"
TRIALS = "trials"
CURVES = "curves"
LOCK = "lock.json"
# The local journal's folder, and on object stores the folder of shipped segments.
JOURNAL = ".journal"


@dataclass(frozen=True)
class StageState:
    """What a stage decided, as ``stages/stage-<s>.json`` stores it: the plan's own
    description (``described``: region, anchors, model state...), the boxes it searched
    (each tagged with its stage) and its stopping rule's rungs. The report draws the
    boxes and rungs.

    Example: ``StageState.of(1, "refine", plan.describe(), rule.rungs()).boxes``
    """

    stage: int
    plan: str
    described: Mapping[str, Any] = field(default_factory=dict)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    rungs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, stage: int, plan: str, described: Mapping[str, Any],
           rungs: Iterable[dict[str, Any]]) -> StageState:
        """The state of stage ``stage`` from its plan's ``describe()`` and its rule's
        ``rungs()``."""
        boxes = [dict(b, stage=stage) for b in described.get("boxes", [])]
        return cls(stage, plan, dict(described), boxes, list(rungs))

    def to_json(self) -> str:
        """The file's text (the plan's own keys between ``plan`` and ``boxes``)."""
        return json.dumps({"stage": self.stage, "plan": self.plan, **self.described,
                           "boxes": self.boxes, "rungs": self.rungs}, indent=2, default=str)

    @classmethod
    def from_json(cls, text: str, stage: int) -> StageState | None:
        """The state stored for ``stage``; None when the text is not such a file."""
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(meta, dict):
            return None
        described = {k: v for k, v in meta.items() if k not in ("stage", "boxes", "rungs")}
        return cls(stage, str(meta.get("plan", "")), described,
                   _dicts(meta.get("boxes")), _dicts(meta.get("rungs")))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class ResultsFolder:
    """The folder ``<root>/<name>`` of one sweep's results.

    ``journal_dir`` is where the writer's journal lives on the driver's disk (default:
    ``<folder>/.journal`` for a local root, else a folder under ``~/.cache/sweep``);
    ``warn`` receives the warnings of readers and writers (a broken part file...).
    """

    def __init__(self, root: str, name: str, *, journal_dir: str | None = None,
                 warn: Callable[[str], None] | None = None):
        self.root = root
        self.name = name
        self.fs, base = open_root(root)
        self.dir = f"{base}/{name}"
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.warn = warn or log.warning
        if journal_dir is None:
            if self.local:
                journal_dir = f"{self.dir}/{JOURNAL}"
            else:
                key = hashlib.sha256(f"{root}/{name}".encode()).hexdigest()[:16]
                journal_dir = str(Path.home() / ".cache" / "sweep" / "journal" / key)
        self.journal_dir = journal_dir
        self.trials = PartSet(self.fs, f"{self.dir}/{TRIALS}", warn=self.warn)
        self.curves = PartSet(self.fs, f"{self.dir}/{CURVES}", warn=self.warn)
        self.lock = DriverLock(self.fs, f"{self.dir}/{LOCK}", local=self.local)

    def location(self, rel: str = "") -> str:
        """Where ``<root>/<name>/<rel>`` is, as a user would open it: a local path, or a
        URI that keeps the root's options (``?endpoint_override=...``).

        Example: ``ResultsFolder("s3://b/p", "demo").location("trials")``
        -> ``"s3://b/p/demo/trials"``
        """
        tail = f"/{rel}" if rel else ""
        if self.local:
            return f"{self.dir}{tail}"
        parts = urlsplit(self.root)
        path = f"{parts.path.rstrip('/')}/{self.name}{tail}"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))

    # ------------------------------------------------------------ small files

    def exists(self) -> bool:
        """True when this sweep has a stored spec."""
        return self.fs.get_file_info(f"{self.dir}/{SPEC}").type == pafs.FileType.File

    def read_text(self, rel: str) -> str | None:
        """The text of ``<root>/<name>/<rel>``, or None when it does not exist."""
        path = f"{self.dir}/{rel}"
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as f:
            return f.read().decode("utf-8", errors="replace")

    def write_text(self, rel: str, text: str) -> None:
        """Write ``<root>/<name>/<rel>`` whole: to a hidden temporary name, then renamed."""
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

    def read_spec(self) -> str | None:
        """The stored spec's text (``spec.yaml``), or None."""
        return self.read_text(SPEC)

    def write_spec(self, text: str) -> None:
        """Store the spec as run."""
        self.write_text(SPEC, text)

    def write_stage(self, state: StageState) -> None:
        """Store what a stage decided (``stages/stage-<s>.json``, written whole)."""
        self.write_text(_stage_file(state.stage), state.to_json())

    def read_stage(self, stage: int) -> StageState | None:
        """What stage ``stage`` decided, or None (none stored, or unreadable)."""
        text = self.read_text(_stage_file(stage))
        return None if text is None else StageState.from_json(text, stage)

    def read_stages(self, stages: Iterable[int]) -> list[StageState]:
        """The stored states of ``stages``, in order (those with none are left out)."""
        return [s for s in map(self.read_stage, stages) if s is not None]

    # ------------------------------------------------------------- the folder

    def move_aside(self) -> str | None:
        """Move this sweep's results to ``<name>.old-<time>`` (never deleted); returns
        the new location, or None when there was nothing."""
        if self.fs.get_file_info(self.dir).type == pafs.FileType.NotFound:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = f"{self.dir}.old-{stamp}"
        if self.local:
            self.fs.move(self.dir, target)
        else:
            for info in self.fs.get_file_info(pafs.FileSelector(self.dir, recursive=True)):
                if info.type == pafs.FileType.File:
                    dest = target + info.path[len(self.dir):]
                    self.fs.create_dir(dest.rpartition("/")[0], recursive=True)
                    self.fs.move(info.path, dest)
            with contextlib.suppress(OSError, pa.ArrowException):
                self.fs.delete_dir(self.dir)
        if os.path.isdir(self.journal_dir) and not self.local:
            os.rename(self.journal_dir, self.journal_dir + f".old-{stamp}")
        return target


def _stage_file(stage: int) -> str:
    return f"stages/stage-{int(stage)}.json"


__all__ = ["JOURNAL", "SPEC", "ResultsFolder", "StageState", "open_root"]
