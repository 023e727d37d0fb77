"""The one trial record: what the worker wrapper returns, what the driver tells plans,
what the journal and the Parquet table hold (one row per finished trial attempt).

A ``TrialRecord`` is a NamedTuple: cheap to build, to pickle (Ray sends it back from
workers) and to read by field name. ``Report`` is one intermediate report of a running
trial (a point of its learning curve).

Example:
    >>> r = TrialRecord(sweep="demo", stage=0, trial_id="t1", status="ok",
    ...                 params={"lr": 0.1}, metrics={"loss": 0.5})
    >>> r.ok, r.metric("loss"), r._replace(attempts=2).attempts
    (True, 0.5, 2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

# Every status a stored trial can have; "stopped" is an early stop by a rule.
STATUSES = ("ok", "failed", "timeout", "stopped")


class TrialRecord(NamedTuple):
    """One finished attempt of a trial (a row of the results table).

    ``params`` is the flat config (nested names joined with dots); ``metrics`` holds
    the sweep's metric and every extra numeric metric; ``step`` is the last step the
    trial reported (None when it reported nothing). Times are epoch seconds.
    ``restored_from`` is the step of the checkpoint this attempt started from (None: it
    started fresh); ``checkpoint_bytes`` and ``checkpoint_s`` what this attempt's
    checkpoints cost (bytes saved; seconds saving and restoring; None: none).
    """

    sweep: str = ""
    stage: int = 0
    trial_id: str = ""
    parent_id: str | None = None
    status: str = "ok"
    params: Mapping[str, Any] = {}
    metrics: Mapping[str, float] = {}
    error: str | None = None
    attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    node: str = ""
    gpu_ids: str = ""
    step: int | None = None
    restored_from: int | None = None
    checkpoint_bytes: int | None = None
    checkpoint_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def metric(self, name: str) -> float | None:
        """The value of metric ``name``, or None when it is missing."""
        value = self.metrics.get(name)
        return None if value is None else float(value)

    def finite(self, name: str) -> bool:
        """True when metric ``name`` is present and finite."""
        value = self.metrics.get(name)
        return value is not None and math.isfinite(value)


class Report(NamedTuple):
    """One intermediate report of a running trial: its step and metrics at that step.

    ``checkpoint`` is True when the trial committed a checkpoint at this step (the
    driver then knows the curve up to here can never be redone); ``restored_from`` the
    step of the checkpoint the reporting attempt started from (None: a fresh start).

    Example: ``Report("t1", 3, {"loss": 0.4}, time=1.7e9)``
    """

    trial_id: str
    step: int
    metrics: Mapping[str, float]
    time: float = 0.0
    checkpoint: bool = False
    restored_from: int | None = None


RECORD_FIELDS = TrialRecord._fields

__all__ = ["RECORD_FIELDS", "STATUSES", "Report", "TrialRecord"]
