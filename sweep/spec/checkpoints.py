"""The sweep file's ``checkpoints:`` key: whether trials may checkpoint, and how many
checkpoints are kept (issue 23).

* ``checkpoints: {keep: 1, keep_top: 5}`` (the defaults; ``checkpoints: true`` is the
  same): a running trial keeps its last ``keep`` checkpoints; when a stage ends, only
  the final checkpoints of its best ``keep_top`` trials stay (``keep_top: 0``: none).
* ``checkpoints: false``: no checkpoint is saved (``sweep.report(checkpoint=...)`` says
  so in the trial's ``error`` column; ``sweep.restore()`` is None).

Example:
    >>> parse_checkpoints({"keep": 2})
    CheckpointSettings(enabled=True, keep=2, keep_top=5)
    >>> parse_checkpoints(False).enabled
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import SpecError
from ..core.values import integer, known_keys

KEYS = ("keep", "keep_top")
EXPECTED = "true, false or a mapping such as {keep: 1, keep_top: 5}"


@dataclass(frozen=True)
class CheckpointSettings:
    """Checkpoints on or off, and the retention rule: ``keep`` per running trial,
    ``keep_top`` trials' final checkpoints per finished stage."""

    enabled: bool = True
    keep: int = 1
    keep_top: int = 5


def parse_checkpoints(raw: Any, path: str = "checkpoints") -> CheckpointSettings:
    """The settings of a ``checkpoints:`` value (None: the defaults); a SpecError names
    the field, the value and what was expected."""
    if raw is None or raw is True:
        return CheckpointSettings()
    if raw is False:
        return CheckpointSettings(enabled=False)
    if not isinstance(raw, dict):
        raise SpecError(path, raw, EXPECTED)
    known_keys(path, raw, KEYS)
    default = CheckpointSettings()
    keep = integer(f"{path}.keep", raw.get("keep", default.keep), minimum=1)
    keep_top = integer(f"{path}.keep_top", raw.get("keep_top", default.keep_top), minimum=0)
    return CheckpointSettings(True, keep, keep_top)


__all__ = ["CheckpointSettings", "parse_checkpoints"]
