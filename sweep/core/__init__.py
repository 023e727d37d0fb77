"""The bottom layer: trial records, errors, checks of user-given values, the metric and
its goal, and the ranking rule. Imports nothing else of sweep; light enough for workers
(the pandas ranking of whole tables is loaded on first use).

Example:
    >>> from sweep.core import TrialRecord, SpecError
    >>> TrialRecord(trial_id="t1", metrics={"loss": 0.5}).metric("loss")
    0.5
"""

from typing import Any

from .errors import SpecError, SweepError
from .hints import did_you_mean
from .metric import GOALS, Metric
from .records import RECORD_FIELDS, STATUSES, Report, TrialRecord
from .values import fraction, integer, json_value, known_keys, number, one_of, positive, text

_LAZY = {"rank": "ranking", "ordered": "ranking", "unranked": "ranking",
         "rank_records": "ranking"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GOALS",
    "RECORD_FIELDS",
    "STATUSES",
    "Metric",
    "Report",
    "SpecError",
    "SweepError",
    "TrialRecord",
    "did_you_mean",
    "fraction",
    "integer",
    "json_value",
    "known_keys",
    "number",
    "one_of",
    "ordered",
    "positive",
    "rank",
    "rank_records",
    "text",
    "unranked",
]
