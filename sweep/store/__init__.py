"""The results folder: one folder object (``folder``: the paths under
``<root>/<name>/``, the filesystem, the stage files), the writer that fills it
(``writer``: journal first, Parquet in batches) and the reader that reads it
(``reader``: the table, the curves, streamed summaries), over the Parquet part files
(``parts``), their schema and codec (``codec``), the journal (``journal``), the
driver lock (``lock``) and the trials' checkpoints (``checkpoints``).

The names below load on first use (PEP 562): a Ray worker that unpickles the sweep's
``CheckpointStore`` imports ``sweep.store.checkpoints`` (pyarrow's filesystems) and
not pandas, nor the Parquet dataset machinery.

Example:
    >>> from sweep.store import ResultsFolder, ResultsReader
    >>> reader = ResultsReader(ResultsFolder("results", "demo"))    # doctest: +SKIP
    >>> reader.counts()                                             # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CheckpointStore": "checkpoints", "Codec": "codec", "DriverLock": "lock",
    "Journal": "journal", "PartSet": "parts", "ResultsFolder": "folder",
    "ResultsReader": "reader", "ResultsWriter": "writer", "StageState": "folder",
    "open_root": "roots",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sweep.store' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["CheckpointStore", "Codec", "DriverLock", "Journal", "PartSet", "ResultsFolder",
           "ResultsReader", "ResultsWriter", "StageState", "open_root"]
