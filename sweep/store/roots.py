"""Opening a results root: a local path or a URI (file://, s3://, gs://) as a pyarrow
filesystem and a base path. Light on purpose (``pyarrow.fs`` only, no Parquet, no
pandas): a worker that saves a checkpoint opens the root through here.

Example:
    >>> fs, base = open_root("/tmp/results")
    >>> type(fs).__name__, base
    ('LocalFileSystem', '/tmp/results')
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs

from ..core.errors import SweepError


def open_root(root: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for a results root: a local path or a URI.

    Example: ``open_root("s3://bucket/prefix")`` -> ``(S3FileSystem, "bucket/prefix")``
    """
    if "://" in root:
        try:
            fs, path = pafs.FileSystem.from_uri(root)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            hint = ""
            if any(c.isspace() for c in root):
                hint = (" (a URI holds no spaces: write each space as %20, e.g. "
                        f"{root.replace(' ', '%20')!r})")
            raise SweepError(f"results root {root!r} cannot be opened: {exc}{hint}") from None
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))


__all__ = ["open_root"]
