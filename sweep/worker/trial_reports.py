"""Intermediate reports from inside a running trial: ``sweep.report(step=..., **metrics)``.

Inside a sweep, each report is recorded for the trial (it lands in the curves
table) and, when the sweep has a stopping rule, sent to the driver at once
through a small Ray actor (the report hub); if the driver has decided to stop
the trial, ``report`` raises ``TrialStopped``, which unwinds the objective (the
wrapper stores the trial as ``stopped`` with its last report as its metrics).
Outside a sweep ``report`` does nothing, so the same training code runs alone.

A report may carry a checkpoint: ``sweep.report(step=n, checkpoint=dir, **metrics)``
copies the local directory ``dir`` (as files) as the trial's checkpoint at step n before
it returns; ``sweep.restore()`` gives the directory of the checkpoint this trial starts
from (a retry, a rerun after a killed driver, a PBT segment), or None on a fresh start
(and outside a sweep). See ``sweep.worker.checkpointing``.

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
import numbers
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..core.records import Report
from .checkpointing import TrialCheckpoints
from .returned import MAX_EXTRA_METRICS, numeric_metrics, short

# Keys that name the step of a JSON report line (command jobs), in order of preference:
# sweep's own, W&B's history index, Ray Tune's, then a plain epoch counter.
STEP_KEYS = ("step", "_step", "training_iteration", "epoch")
# The range of the results table's int64 step column.
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1


class TrialStopped(BaseException):
    """Raised inside the objective when a stopping rule stopped its trial (a
    BaseException, so that the objective's own ``except Exception`` lets it pass)."""


def check_step(step: Any) -> int:
    """``step`` as an int, or ``ValueError`` saying why it is not a step. The one rule for
    every way a trial reports (``sweep.report``, a command's JSON lines): an integer (an
    int, numpy's included, or a float with an integer value) in the 64-bit range the
    results table stores; a bool is not a step.

    Example: ``check_step(3.0) == 3``; ``check_step(True)`` and ``check_step(1e20)`` raise
    """
    if isinstance(step, bool):
        raise ValueError(f"step must be an integer, got {step!r} (a bool is not a step)")
    if isinstance(step, numbers.Integral):
        value = int(step)
    elif isinstance(step, numbers.Real) and float(step).is_integer():
        value = int(float(step))
    else:
        raise ValueError(f"step must be an integer, got {short(step, 60)}")
    if not STEP_MIN <= value <= STEP_MAX:
        raise ValueError(f"step {short(step, 60)} is outside the 64-bit range the results "
                         f"table stores (-2**63 .. 2**63-1)")
    return value


# Bumped in a forked child: a trial entered before the fork belongs to the parent, and a
# child's report must neither reach the parent's report hub (Ray does not survive a
# fork: the call would hang) nor vanish without a word.
_GENERATION = 0


def _after_fork_in_child() -> None:
    global _GENERATION
    _GENERATION += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class TrialContext:
    """The running trial's reports, the hub (a Ray actor handle) or None, and what its
    reports lost (said as warnings in the trial's ``error`` column)."""

    __slots__ = ("bad_step", "bad_steps", "checkpoints", "foreign", "generation", "hub",
                 "inherited", "metric", "no_checkpoints", "owner", "previous", "reports",
                 "restored", "stop_requested", "trial_id", "wide", "wide_dropped")

    def __init__(self, trial_id: str, hub: Any = None, metric: str | None = None,
                 checkpoints: TrialCheckpoints | None = None):
        self.trial_id = trial_id
        self.hub = hub
        self.metric = metric
        self.checkpoints = checkpoints
        self.no_checkpoints = 0  # checkpoints offered while the sweep has them off
        # Reports restored from this trial's own checkpoint (made by an earlier attempt):
        # they go back to the driver with the result, which keeps those it lacks.
        self.restored: list[Report] = []
        self.reports: list[Report] = []
        self.stop_requested = False
        self.previous: TrialContext | None = None
        # The thread that runs the objective, and the threads alive before it started:
        # a report from one of those (a thread an earlier trial left running) is not this
        # trial's. threading._active is the registry enumerate() reads (a fifth its cost:
        # this runs for every trial).
        self.owner = threading.get_ident()
        registry = getattr(threading, "_active", None)
        self.inherited: dict[int | None, threading.Thread] = (
            registry.copy() if isinstance(registry, dict)
            else {t.ident: t for t in threading.enumerate()})
        self.generation = _GENERATION
        self.foreign = 0  # reports dropped: made by a thread of an earlier trial
        self.wide = 0  # reports with more than MAX_EXTRA_METRICS extra metrics
        self.wide_dropped = 0  # the metrics those reports lost
        self.bad_steps = 0  # command report lines whose step is not a step
        self.bad_step = ""  # the first of them, for the warning

    @property
    def last(self) -> Report | None:
        return self.reports[-1] if self.reports else None

    def add(self, step: int | None, metrics: Mapping[str, Any], *, push: bool = True
            ) -> Report:
        """Record one report; ``step`` None continues from the last one. The sweep's
        metric is kept whatever its place; extra metrics past ``MAX_EXTRA_METRICS`` are
        dropped and counted. ``push=False`` leaves the sending to ``push``."""
        if step is None:
            step = 0 if not self.reports else min(self.reports[-1].step + 1, STEP_MAX)
        values, dropped = numeric_metrics(metrics, self.metric)
        if dropped:
            self.wide += 1
            self.wide_dropped += dropped
        report = Report(self.trial_id, int(step), values, time.time(), False,
                        None if self.checkpoints is None else self.checkpoints.restored_step)
        if self.reports and self.reports[-1].step == report.step:
            self.reports[-1] = report  # the same step reported again: the last one counts
        else:
            self.reports.append(report)
        if push:
            self.push(report)
        return report

    def push(self, report: Report) -> None:
        """Send a report to the driver now (when the sweep has a hub)."""
        if self.hub is not None and not self.stop_requested:
            self.stop_requested = bool(self.hub.push(report))

    def checkpointed(self, step: int) -> None:
        """Mark the report of ``step`` as covered by a committed checkpoint, and tell the
        driver (it then stores the curve up to there: it can never be redone)."""
        for i in range(len(self.reports) - 1, -1, -1):
            report = self.reports[i]
            if report.step == step:
                self.reports[i] = report = report._replace(checkpoint=True)
                self.push(report)
                return
            if report.step < step:
                return

    def restore(self) -> str | None:
        """The local directory of the checkpoint this attempt starts from (None: fresh);
        a trial's own checkpoint brings back its reports up to its step."""
        if self.checkpoints is None:
            return None
        got = self.checkpoints.restore()
        if got is None:
            return None
        if got.reports and not self.restored:
            self.restored = list(got.reports)
            later = [r for r in self.reports if r.step > got.step]
            self.reports = [*got.reports, *later]
        return got.path

    def refuse_step(self, key: str, value: Any) -> None:
        """Count a command's report line whose step is not a step (it is not a report)."""
        self.bad_steps += 1
        if not self.bad_step:
            try:
                check_step(value)
            except ValueError as exc:
                self.bad_step = f'"{key}": {exc}'

    def pending(self) -> list[Report]:
        """Reports to send with the result: all of them when there is no hub, else those
        restored from a checkpoint (the driver keeps the ones it lacks)."""
        return self.restored if self.hub is not None else self.reports

    def warnings(self) -> list[str]:
        """What this trial's reports lost, one sentence each (empty when nothing).

        Example: ``["2 report(s) had more than 200 extra metrics: 150 values were
        dropped (the metric 'loss' is always kept)"]``
        """
        out = []
        if self.wide:
            kept = f"the metric {self.metric!r} is always kept" if self.metric else \
                "the first ones are kept"
            out.append(f"{self.wide} report(s) had more than {MAX_EXTRA_METRICS} extra "
                       f"metrics: {self.wide_dropped} values were dropped ({kept})")
        if self.foreign:
            out.append(f"{self.foreign} report(s) from a thread that an earlier trial left "
                       f"running were dropped (a report belongs to the trial that made it)")
        if self.bad_steps:
            out.append(f"{self.bad_steps} JSON line(s) with a step key were not taken as "
                       f"reports, their step not being a step (first: {self.bad_step})")
        if self.no_checkpoints:
            out.append(f"{self.no_checkpoints} checkpoint(s) were not saved: this sweep has "
                       f"checkpoints off (checkpoints: false in the sweep file)")
        if self.checkpoints is not None:
            out.extend(self.checkpoints.warnings())
        return out


_CURRENT: TrialContext | None = None


def current() -> TrialContext | None:
    """The trial running in this process, or None outside a sweep."""
    return _CURRENT


def enter(trial_id: str, hub: Any = None, metric: str | None = None,
          checkpoints: TrialCheckpoints | None = None) -> TrialContext:
    """Make ``trial_id`` the current trial (pair with ``leave``; the worker wrapper's hot
    path, so no context manager). ``metric`` is the sweep's, kept in every report;
    ``checkpoints`` this attempt's checkpoints (None: the sweep has them off)."""
    global _CURRENT
    context = TrialContext(trial_id, hub, metric, checkpoints)
    context.previous = _CURRENT
    _CURRENT = context
    return context


def leave(context: TrialContext) -> None:
    """Undo ``enter``."""
    global _CURRENT
    _CURRENT = context.previous


@contextlib.contextmanager
def trial_context(trial_id: str, hub: Any = None, metric: str | None = None
                  ) -> Iterator[TrialContext]:
    """Make ``trial_id`` the current trial while the block runs.

    Example: ``with trial_context("t1"): train(config)``
    """
    context = enter(trial_id, hub, metric)
    try:
        yield context
    finally:
        leave(context)


def report(step: int | None = None, checkpoint: str | os.PathLike[str] | None = None,
           **metrics: Any) -> None:
    """Report the trial's metrics at ``step`` (an epoch, an iteration); a no-op outside a
    sweep. Non-numeric values are ignored (bools count as 1/0); a step reported twice
    keeps the last. A report belongs to the trial that made it: one from a thread an
    earlier trial left running is dropped (and said in this trial's ``error`` column);
    one from a forked child process is dropped with a warning on the child's stderr.

    ``checkpoint``: a local directory the objective wrote; it is copied (as files,
    never pickled) as the trial's checkpoint at this step before ``report`` returns, so
    the objective may overwrite it next. A save that fails is said in the trial's
    ``error`` column and the trial goes on.

    Raises ``ValueError`` for a step that is not a step (``check_step``), and
    ``TrialStopped`` when the sweep's stopping rule has stopped this trial.

    Example: ``sweep.report(step=epoch, loss=val_loss, acc=val_acc)``;
    ``sweep.report(step=epoch, checkpoint="ckpt/", loss=val_loss)``
    """
    context = _CURRENT
    if context is None:
        return
    if context.generation != _GENERATION:
        _warn_forked(context)
        return
    ident = threading.get_ident()
    if ident != context.owner and context.inherited.get(ident) is threading.current_thread():
        context.foreign += 1
        return
    if step is not None:
        try:
            step = check_step(step)
        except ValueError as exc:
            raise ValueError(f"sweep.report: {exc}") from None
    if checkpoint is None:
        context.add(step, metrics)
    else:
        _report_with_checkpoint(context, step, os.fspath(checkpoint), metrics)
    if context.stop_requested:
        raise TrialStopped(f"stopped by the sweep's stopping rule at step "
                           f"{context.reports[-1].step}")


def _report_with_checkpoint(context: TrialContext, step: int | None, path: str,
                            metrics: Mapping[str, Any]) -> None:
    """The report, its checkpoint saved (synchronously) before it is sent."""
    saver = context.checkpoints
    if saver is None:
        context.no_checkpoints += 1
        context.add(step, metrics)
        return
    report = context.add(step, metrics, push=False)
    if report.step < 0:
        context.push(report)
        raise ValueError(f"sweep.report: a checkpoint's step must be >= 0, got {report.step}")
    if saver.save(report.step, path, context.reports):
        report = report._replace(checkpoint=True)
        context.reports[-1] = report
    context.push(report)


def restore() -> str | None:
    """The local directory of the checkpoint this trial starts from: its own last one
    when it runs again (a lost node, a retry, a rerun after a killed driver), or the
    parent's for a PBT segment; None on a fresh start, with checkpoints off, and outside
    a sweep. The objective reads its own state (and its step) back from the directory;
    the trial's reports up to that step are restored with it, so its curve goes on.

    Example::

        start = 0
        if (path := sweep.restore()) is not None:
            state = load(path); start = state["epoch"] + 1
    """
    context = _CURRENT
    if context is None or context.generation != _GENERATION:
        return None
    return context.restore()


_WARNED_FORK: set[int] = set()


def _warn_forked(context: TrialContext) -> None:
    """Say once per child process, on its stderr (not through ``warnings``, whose
    filters a fork inherits and may hide it), why its reports go nowhere."""
    pid = os.getpid()
    if pid in _WARNED_FORK:
        return
    _WARNED_FORK.add(pid)
    with contextlib.suppress(Exception):
        print(f"sweep: warning: sweep.report was called in process {pid}, a child forked "
              f"from the process running trial {context.trial_id}: reports are taken only "
              f"from the trial's own process (send the child's values back and report "
              f"them there); this report and the next from this process are dropped",
              file=sys.stderr, flush=True)


def step_key(line: Mapping[str, Any]) -> str | None:
    """Which of ``STEP_KEYS`` gives a JSON report line its step (the first present).

    Example: ``step_key({"epoch": 3, "_step": 7}) == "_step"``
    """
    return next((key for key in STEP_KEYS if key in line), None)


def step_of(line: Mapping[str, Any]) -> int | None:
    """The step of a JSON report line (``STEP_KEYS``, first present wins), or None when
    the line has none or its value is not a step (``check_step``).

    Example: ``step_of({"_step": 3, "loss": 0.2}) == 3``
    """
    key = step_key(line)
    if key is None:
        return None
    try:
        return check_step(line[key])
    except ValueError:
        return None


__all__ = ["STEP_KEYS", "STEP_MAX", "STEP_MIN", "TrialContext", "TrialStopped", "check_step",
           "current", "enter", "leave", "report", "restore", "step_key", "step_of",
           "trial_context"]
