"""Trial ids: a content hash of (sweep name, stage, params), the same for the same config
in every run, process and Python version. Resume, retries and the results table all key
on it.

Example:
    >>> trial_id("demo", 0, {"lr": 0.1, "opt": "adam"})
    '8bf0b5019eb95080'
    >>> canonical_json({"b": 1.0, "a": True})
    '{"a":true,"b":1.0}'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def _plain(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=_plain)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces; floats by repr; the basis of trial ids.

    Example: ``canonical_json({"b": 1.0, "a": True}) == '{"a":true,"b":1.0}'``
    """
    return _CANONICAL.encode(obj)


# Joins a candidate's ``key`` to its params in the hash (PBT segments of equal params).
SEGMENT_KEY = "__segment__"


def trial_id(sweep: str, stage: int, params: Mapping[str, Any], key: str | None = None
             ) -> str:
    """The trial's id: a hash of (sweep name, stage, params); the same config gets the
    same id in every run, process and Python version. ``key`` (a plan's candidate key:
    a PBT segment's) joins the params, so equal params with other keys are other trials.

    Example: ``trial_id("demo", 0, {"lr": 0.1}) == trial_id("demo", 0, {"lr": 0.1})``
    """
    if key is not None:
        params = {**params, SEGMENT_KEY: key}
    # Byte for byte canonical_json({"params": ..., "stage": ..., "sweep": ...}), built
    # without re-encoding the two fixed keys for every trial (this is the hot path).
    text = (f'{{"params":{_CANONICAL.encode(dict(params))},"stage":{int(stage)},'
            f'"sweep":{_CANONICAL.encode(sweep)}}}')
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


__all__ = ["SEGMENT_KEY", "canonical_json", "trial_id"]
