"""The worker-side wrapper that runs an objective (ids: ``trial_ids``; the Ray task
body: ``entry``).

The wrapper runs inside a Ray task, but knows nothing of Ray. It calls the objective (a Python
``module:function`` or callable, or a command line run as an argument list,
never through a shell), checks what came back, and returns ``TrialRecord``s:
status, metrics, error, timing, node and GPU ids, the last step reported. It is
total: whatever a trial does (raise ``KeyboardInterrupt`` or ``SystemExit``,
return ``10**400``, ``os.chdir`` away) ends as that trial's record, and its
batch-mates run as if it had not happened.

Example:
    >>> record, reports = run_trial(Objective("loss", target=lambda c: c["x"] ** 2), "t1",
    ...                             {"x": 2}, {"x": 2})
    >>> record.status, record.metrics
    ('ok', {'loss': 4})
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..core.records import Report, TrialRecord
from . import command as cmd
from . import trial_reports as reporting
from . import wandb_offline as wandb_runs
from .checkpointing import Checkpointer, CommandSaver, Resume, TrialCheckpoints
from .returned import Checked, check_result, numeric_metrics, short, truncate, with_warnings
from .trial_reports import TrialContext, TrialStopped, step_key


@dataclass
class Objective:
    """What a worker runs: a Python callable (or ``module:function``) or a command line.

    ``metric`` is None for a sweep that ranks nothing; ``hub`` is the report hub's
    client when the sweep has a stopping rule. ``checkpoints`` is the sweep's checkpoint
    store (``sweep.worker.checkpointing.Checkpointer``; None: checkpoints off) and
    ``keep`` how many checkpoints a running trial keeps.
    """

    metric: str | None
    target: str | Callable[..., Any] | None = None
    command: list[str] | None = None
    program: str | None = None
    sweep: str = ""
    code_dirs: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    cwd: str | None = None
    hub: Any = None
    checkpoints: Checkpointer | None = None
    keep: int = 1


class BatchResult(NamedTuple):
    """What one Ray task returns: a record per trial, and the reports not yet sent."""

    records: list[TrialRecord]
    reports: list[Report]


# ------------------------------------------------------------- python objects

_LOADED: dict[str, Callable[..., Any]] = {}


def load_callable(target: str, code_dirs: Sequence[str] = ()) -> Callable[..., Any]:
    """Import ``module:function`` (with ``code_dirs`` on sys.path), cached per process.

    Example: ``load_callable("jobs.mlp:train", ["."])``
    """
    if target in _LOADED:
        return _LOADED[target]
    for d in code_dirs:
        if d and os.path.isdir(d) and d not in sys.path:
            sys.path.insert(0, d)
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise AttributeError(f"module {module_name!r} has no function {attr!r}")
    _LOADED[target] = fn
    return fn


class _TrialTimeout(BaseException):
    """Raised inside the objective when its time is up (a BaseException, so that the
    objective's own ``except Exception`` does not swallow it)."""


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Interrupt the objective after ``seconds``, counted from when it starts (not from
    when the task was submitted). Needs the main thread, where Ray runs tasks; elsewhere
    the driver's backstop deadline still applies."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _TrialTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _stopped(context: TrialContext) -> Checked:
    last = context.last
    return "stopped", dict(last.metrics) if last else {}, None


def _run_python(objective: Objective, config: dict[str, Any], context: TrialContext,
                on_start: Callable[[], None] | None = None) -> Checked:
    try:
        target = objective.target
        fn = target if callable(target) else load_callable(str(target), objective.code_dirs)
    except BaseException as exc:
        return "failed", {}, truncate(
            f"could not load objective {objective.target!r}: {type(exc).__name__}: {exc}")
    if on_start is not None:
        on_start()  # the objective is about to run: from here on it is an attempt
    try:
        if uses_wandb(fn):
            result = _call_with_wandb(objective, fn, config, context)
        elif objective.timeout_s is None:
            result = fn(config)  # the hot path of short trials: nothing around the call
        else:
            with _alarm(objective.timeout_s):
                result = fn(config)
    except TrialStopped:
        return _stopped(context)
    except _TrialTimeout:
        return "timeout", {}, f"trial ran past timeout_s={objective.timeout_s:g}"
    except KeyboardInterrupt:
        if context.stop_requested or _hub_stopped(objective, context.trial_id):
            return _stopped(context)
        return "failed", {}, truncate("objective raised KeyboardInterrupt (not retried)\n"
                                      + traceback.format_exc())
    except SystemExit as exc:
        return "failed", {}, (f"objective called sys.exit({short(exc.code, 100)}) "
                              f"(SystemExit; not retried)")
    except BaseException:
        return "failed", {}, truncate(traceback.format_exc())
    return check_result(result, objective.metric)


def uses_wandb(fn: Callable[..., Any]) -> bool:
    """Whether an objective may call W&B: its module imported ``wandb``, or its code
    names it (an import inside the function). Cached per function."""
    cached = _USES_WANDB.get(id(fn))
    if cached is None:
        names: set[str] = set(getattr(fn, "__globals__", {}) or {})
        code = getattr(fn, "__code__", None)
        stack = [code] if code is not None else []
        while stack:
            current = stack.pop()
            names.update(current.co_names)
            stack.extend(c for c in current.co_consts if hasattr(c, "co_names"))
        cached = _USES_WANDB[id(fn)] = "wandb" in names
    return cached


_USES_WANDB: dict[int, bool] = {}


def _call_with_wandb(objective: Objective, fn: Callable[..., Any], config: dict[str, Any],
                     context: TrialContext) -> Any:
    """Call an objective that uses W&B (a function agent's ``train``) as one offline W&B
    run: ``wandb.config`` holds the trial's parameters, every ``wandb.log`` step is a
    report, and the run's summary is the result when the function returns nothing."""
    from . import wandb_offline as wandb_runs

    def on_steps(steps: list[tuple[int, dict[str, float]]]) -> None:
        for step, metrics in steps:
            context.add(step, metrics)

    workdir = tempfile.mkdtemp(prefix=f"sweep-{context.trial_id}-")
    try:
        with (wandb_runs.in_process(workdir, config, sweep_name=objective.sweep,
                                    trial_id=context.trial_id, on_steps=on_steps) as info,
              _alarm(objective.timeout_s)):
            result = fn(config)
        if result is None and info.summary:
            return info.summary
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _hub_stopped(objective: Objective, trial: str) -> bool:
    try:
        return objective.hub is not None and objective.hub.stopped(trial)
    except Exception:
        return False


# ------------------------------------------------------------- command lines


def _run_command(objective: Objective, trial: str, flat: dict[str, Any],
                 nested: dict[str, Any], context: TrialContext,
                 on_start: Callable[[], None] | None = None) -> Checked:
    assert objective.command is not None
    workdir = tempfile.mkdtemp(prefix=f"sweep-{trial}-")
    try:
        json_file = os.path.join(workdir, "params.json")
        with open(json_file, "w", encoding="utf-8") as f:
            json.dump(nested, f)
        values = cmd.MacroValues(program=objective.program or "", name=objective.sweep,
                                 trial_id=trial, json_file=json_file, nested=nested)
        try:
            argv = cmd.expand(objective.command, nested, values)
        except cmd.CommandError as exc:
            return "failed", {}, str(exc)
        env = dict(os.environ, SWEEP_NAME=objective.sweep, SWEEP_TRIAL_ID=trial,
                   SWEEP_PARAMS_FILE=json_file)
        saver = _command_checkpoints(context, workdir, env)
        # W&B scripts read their parameters from W&B's param file; W&B runs offline.
        env.update(wandb_runs.prepare(workdir, nested, sweep_name=objective.sweep,
                                      trial_id=trial))
        cwd = objective.cwd if objective.cwd and os.path.isdir(objective.cwd) else None

        def on_report(step: int | None, line: dict[str, Any]) -> bool:
            key = step_key(line)
            if step is None:  # a step key whose value is not a step: not a report
                context.refuse_step(str(key), line.get(key))
                return False
            path = line.get("checkpoint")
            context.add(step, {k: v for k, v in line.items() if k not in (key, "checkpoint")})
            if isinstance(path, str) and path:
                if saver is None:
                    context.no_checkpoints += 1
                else:
                    saver.offer(step, path)
            return context.stop_requested

        def on_steps(steps: list[tuple[int, dict[str, float]]]) -> None:
            for step, metrics in steps:
                context.add(step, metrics)

        if on_start is not None:
            on_start()
        try:
            with wandb_runs.watch(workdir, on_steps) as reader:
                try:
                    outcome = cmd.run_program(argv, cwd=cwd, env=env,
                                              timeout_s=objective.timeout_s,
                                              on_report=on_report,
                                              should_stop=lambda: context.stop_requested)
                finally:
                    if saver is not None:
                        saver.finish()  # the last checkpoint is never lost to a race
            if outcome.result is None and reader.steps:
                outcome.result = reader.summary()
        except ValueError as exc:
            if "null byte" in str(exc):
                return "failed", {}, ("a parameter value or argument holds a NUL byte, which "
                                      "a command line cannot carry")
            return "failed", {}, f"could not start {short(argv[0], 200)}: {exc}"
        except (OSError, subprocess.SubprocessError) as exc:
            return "failed", {}, f"could not start {short(argv[0], 200)}: {exc}"
        except KeyboardInterrupt:
            if _hub_stopped(objective, trial):
                return _stopped(context)
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _command_outcome(objective, outcome, context)


def _command_checkpoints(context: TrialContext, workdir: str, env: dict[str, str]
                         ) -> CommandSaver | None:
    """A command's checkpoints through its environment: SWEEP_CHECKPOINT_DIR (a folder to
    write them under), and SWEEP_RESTORE_DIR / SWEEP_RESTORE_STEP (the checkpoint it
    starts from; unset on a fresh start). None when the sweep has checkpoints off."""
    checkpoints = context.checkpoints
    if checkpoints is None:
        return None
    base = os.path.join(workdir, "checkpoints")
    os.makedirs(base, exist_ok=True)
    env["SWEEP_CHECKPOINT_DIR"] = base
    path = context.restore()
    if path is not None and checkpoints.restored is not None:
        env["SWEEP_RESTORE_DIR"] = path
        env["SWEEP_RESTORE_STEP"] = str(checkpoints.restored.step)
    return CommandSaver(checkpoints, lambda: list(context.reports), base,
                        context.checkpointed)


def _command_outcome(objective: Objective, outcome: cmd.ProgramExit, context: TrialContext
                     ) -> Checked:
    if outcome.killed == "stopped":
        return _stopped(context)
    if outcome.killed == "timeout":
        return "timeout", {}, f"command ran past timeout_s={objective.timeout_s:g}"
    if outcome.returncode != 0:
        return "failed", {}, truncate(f"command exited with status {outcome.returncode}\n"
                                      + "\n".join(outcome.stderr_tail).strip())
    cut = (f"{outcome.cut_lines} stdout line(s) were longer than the "
           f"{cmd.LINE_LIMIT:,} bytes a line may have and were cut (a JSON result or report "
           f"line must fit in it)") if outcome.cut_lines else None
    if outcome.result is None:
        return "failed", {}, truncate(
            "command printed no JSON object line on stdout"
            + (f"; {cut}" if cut else "") + "; last lines:\n"
            + "\n".join(outcome.stdout_tail[-5:]))
    status, metrics, error = check_result(outcome.result, objective.metric)
    return status, metrics, with_warnings(error, [cut] if cut else [])


# ------------------------------------------------------------------- workers


class ProcessState:
    """The working directory, environment and import path of this worker process, put
    back after each trial so that one trial's ``os.chdir`` never reaches the next."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        # os.environ's own dict of encoded entries: comparing it costs about a microsecond.
        self._raw = getattr(os.environ, "_data", None)
        self._raw_copy = dict(self._raw) if self._raw is not None else None
        self.path = list(sys.path)

    def _environ_changed(self) -> bool:
        if self._raw is not None and getattr(os.environ, "_data", None) is self._raw:
            return self._raw != self._raw_copy
        return dict(os.environ) != self.environ

    def restore(self) -> None:
        with contextlib.suppress(OSError):
            if os.getcwd() != self.cwd:
                os.chdir(self.cwd)
        if self._environ_changed():
            os.environ.clear()
            os.environ.update(self.environ)
        if sys.path != self.path:
            sys.path[:] = self.path


def run_trial(objective: Objective, trial: str, flat: dict[str, Any],
              nested: dict[str, Any], node: str = "", gpu_ids: str = "",
              on_start: Callable[[], None] | None = None,
              resume: Resume | None = None) -> tuple[TrialRecord, list[Report]]:
    """Run one trial: its record (sweep, stage and params are the driver's to fill) and
    the reports it made that the driver has not received yet. Never raises for what
    the objective does. ``resume`` says where it may restore a checkpoint from.

    Example: ``run_trial(Objective("loss", target=lambda c: c["x"] ** 2), "t1",
    {"x": 2}, {"x": 2})[0].metrics == {"loss": 4.0}``
    """
    started = time.time()
    t0 = time.perf_counter()
    checkpoints = None if objective.checkpoints is None else TrialCheckpoints(
        objective.checkpoints, trial, keep=objective.keep, resume=resume)
    context = reporting.enter(trial, objective.hub, objective.metric, checkpoints)
    try:
        if objective.command is not None:
            status, metrics, error = _run_command(objective, trial, flat, nested, context,
                                                  on_start)
        else:
            status, metrics, error = _run_python(objective, nested, context, on_start)
    except BaseException as exc:
        status, metrics, error = "failed", {}, truncate(
            f"sweep's trial wrapper failed: {type(exc).__name__}: {short(exc)}\n"
            + traceback.format_exc())
    finally:
        reporting.leave(context)
        if checkpoints is not None:
            checkpoints.close()
        if context.reports and objective.hub is not None:
            with contextlib.suppress(Exception):
                objective.hub.flush()  # the last report reaches the hub before the result
    duration = time.perf_counter() - t0
    error = with_warnings(error, context.warnings())
    last = context.last
    if status == "ok" and last is not None:
        # A trial that reported keeps its reported metrics its result left out.
        extra, _ = numeric_metrics(last.metrics)
        metrics = {**extra, **metrics}
    # Positional (the hot path): sweep, stage, parent and params are the driver's to fill.
    record = TrialRecord("", 0, trial, None, status, {}, metrics, error, 1, started,
                         started + duration, duration, node, gpu_ids,
                         None if last is None else last.step)
    if checkpoints is not None and (checkpoints.saves or checkpoints.restored):
        # A trial restored at its last step reports nothing more: its model is at that step.
        step = record.step if last is not None else checkpoints.restored_step
        record = record._replace(
            step=step, restored_from=checkpoints.restored_step,
            checkpoint_bytes=checkpoints.saved_bytes, checkpoint_s=round(checkpoints.seconds, 6))
    return record, context.pending()


