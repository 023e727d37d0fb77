"""The bottom layer: trial records, errors, checks of user-given values, the metric and
its goal, and the ranking rule (``sweep.core.ranking``, imported by path: it loads
pandas). Imports nothing else of sweep; the rest is light enough for workers.

Example:
    >>> from sweep.core import TrialRecord, SpecError
    >>> TrialRecord(trial_id="t1", metrics={"loss": 0.5}).metric("loss")
    0.5
"""

from .errors import SpecError, SweepError
from .hints import did_you_mean
from .metric import GOALS, Metric
from .records import RECORD_FIELDS, STATUSES, Report, TrialRecord
from .values import fraction, integer, json_value, known_keys, number, one_of, positive, text

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
    "positive",
    "text",
]
