"""Intermediate reports from inside a running trial: ``sweep.report(step=..., **metrics)``.

Inside a sweep, each report is recorded for the trial (it lands in the curves
table) and, when the sweep has a stopping rule, sent to the driver at once
through a small Ray actor (the report hub); if the driver has decided to stop
the trial, ``report`` raises ``TrialStopped``, which unwinds the objective (the
wrapper stores the trial as ``stopped`` with its last report as its metrics).
Outside a sweep ``report`` does nothing, so the same training code runs alone.

Example:
    >>> import sweep
    >>> def train(config):
    ...     for epoch in range(10):
    ...         loss = 1.0 / (epoch + 1)
    ...         sweep.report(step=epoch, loss=loss)    # no-op outside a sweep
    ...     return {"loss": loss}
    >>> train({})["loss"]
    0.1
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..core.records import Report
from .returned import numeric_metrics

# Keys that name the step of a JSON report line (command jobs), in order of preference:
# sweep's own, W&B's history index, Ray Tune's, then a plain epoch counter.
STEP_KEYS = ("step", "_step", "training_iteration", "epoch")


class TrialStopped(BaseException):
    """Raised inside the objective when a stopping rule stopped its trial (a
    BaseException, so that the objective's own ``except Exception`` lets it pass)."""


class TrialContext:
    """The running trial's reports, and the hub (a Ray actor handle) or None."""

    __slots__ = ("hub", "previous", "reports", "stop_requested", "trial_id")

    def __init__(self, trial_id: str, hub: Any = None):
        self.trial_id = trial_id
        self.hub = hub
        self.reports: list[Report] = []
        self.stop_requested = False
        self.previous: TrialContext | None = None

    @property
    def last(self) -> Report | None:
        return self.reports[-1] if self.reports else None

    def add(self, step: int | None, metrics: Mapping[str, Any]) -> Report:
        """Record one report; ``step`` None continues from the last one."""
        if step is None:
            step = 0 if not self.reports else self.reports[-1].step + 1
        values, _ = numeric_metrics(metrics)
        report = Report(self.trial_id, int(step), values, time.time())
        if self.reports and self.reports[-1].step == report.step:
            self.reports[-1] = report  # the same step reported again: the last one counts
        else:
            self.reports.append(report)
        if self.hub is not None and not self.stop_requested:
            self.stop_requested = bool(self.hub.push(report))
        return report

    def pending(self) -> list[Report]:
        """Reports the driver has not received yet (all of them when there is no hub)."""
        return [] if self.hub is not None else self.reports


_CURRENT: TrialContext | None = None


def current() -> TrialContext | None:
    """The trial running in this process, or None outside a sweep."""
    return _CURRENT


def enter(trial_id: str, hub: Any = None) -> TrialContext:
    """Make ``trial_id`` the current trial (pair with ``leave``; the worker wrapper's hot
    path, so no context manager)."""
    global _CURRENT
    context = TrialContext(trial_id, hub)
    context.previous = _CURRENT
    _CURRENT = context
    return context


def leave(context: TrialContext) -> None:
    """Undo ``enter``."""
    global _CURRENT
    _CURRENT = context.previous


@contextlib.contextmanager
def trial_context(trial_id: str, hub: Any = None) -> Iterator[TrialContext]:
    """Make ``trial_id`` the current trial while the block runs.

    Example: ``with trial_context("t1"): train(config)``
    """
    context = enter(trial_id, hub)
    try:
        yield context
    finally:
        leave(context)


def report(step: int | None = None, **metrics: Any) -> None:
    """Report the trial's metrics at ``step`` (an epoch, an iteration); a no-op outside a
    sweep. Non-numeric values are ignored; a step reported twice keeps the last.

    Raises ``TrialStopped`` when the sweep's stopping rule has stopped this trial.

    Example: ``sweep.report(step=epoch, loss=val_loss, acc=val_acc)``
    """
    context = _CURRENT
    if context is None:
        return
    if step is not None:
        step = _step_value(step)
    context.add(step, metrics)
    if context.stop_requested:
        raise TrialStopped(f"stopped by the sweep's stopping rule at step "
                           f"{context.reports[-1].step}")


def _step_value(step: Any) -> int:
    try:
        value = int(step)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"sweep.report: step must be an integer, got {step!r}") from None
    if value != step and not (isinstance(step, float) and step.is_integer()):
        raise ValueError(f"sweep.report: step must be an integer, got {step!r}")
    return value


def step_key(line: Mapping[str, Any]) -> str | None:
    """Which of ``STEP_KEYS`` gives a JSON report line its step (the first present).

    Example: ``step_key({"epoch": 3, "_step": 7}) == "_step"``
    """
    return next((key for key in STEP_KEYS if key in line), None)


def step_of(line: Mapping[str, Any]) -> int | None:
    """The step of a JSON report line (``STEP_KEYS``, first present wins), or None when
    the line has no integer step.

    Example: ``step_of({"_step": 3, "loss": 0.2}) == 3``
    """
    for key in STEP_KEYS:
        if key in line:
            value = line[key]
            if isinstance(value, bool):
                return None
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return None
    return None


__all__ = ["STEP_KEYS", "TrialContext", "TrialStopped", "current", "enter", "leave", "report",
           "step_key", "step_of", "trial_context"]
