"""Trials: content-hash ids, and the worker-side wrapper that runs an objective.

The wrapper runs inside a Ray task. It calls the objective (a Python
``module:function`` or callable, or a command line run as an argument list,
never through a shell), checks what came back, and returns plain records:
status, metrics, error, timing, node and GPU ids. It never raises for a bad
objective: every problem becomes a per-trial status and message.

Example:
    >>> trial_id("demo", 0, {"lr": 0.1, "opt": "adam"})
    '8bf0b5019eb95080'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import numbers
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ERROR_LIMIT = 4000
MAX_EXTRA_METRICS = 200
STATUSES = ("ok", "failed", "timeout", "cancelled")


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


def trial_id(sweep: str, stage: int, params: Mapping[str, Any]) -> str:
    """The trial's id: a hash of (sweep name, stage, params); the same config gets the
    same id in every run, process and Python version.

    Example: ``trial_id("demo", 0, {"lr": 0.1}) == trial_id("demo", 0, {"lr": 0.1})``
    """
    # Byte for byte canonical_json({"params": ..., "stage": ..., "sweep": ...}), built
    # without re-encoding the two fixed keys for every trial (this is the hot path).
    text = (f'{{"params":{_CANONICAL.encode(dict(params))},"stage":{int(stage)},'
            f'"sweep":{_CANONICAL.encode(sweep)}}}')
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Objective:
    """What a worker runs: a Python callable (or ``module:function``) or a command line."""

    metric: str
    target: str | Callable[..., Any] | None = None
    command: list[str] | None = None
    program: str | None = None
    sweep: str = ""
    code_dirs: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    cwd: str | None = None


def _truncate(text: str, limit: int = ERROR_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"...[{len(text) - limit} characters cut]...\n" + text[-limit:]


# ------------------------------------------------------------ result checking


def _as_number(value: Any) -> float | None:
    """A real number as float (numpy scalars and one-element arrays or tensors
    included, through ``.item()``), else None."""
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except (OverflowError, ValueError):
            return None
    item = getattr(value, "item", None)
    if callable(item):
        try:
            inner = item()  # raises for arrays of more than one element
        except Exception:
            return None
        if isinstance(inner, numbers.Real) and not isinstance(inner, bool):
            return float(inner)
    return None


def check_result(result: Any, metric: str) -> tuple[str, dict[str, float], str | None]:
    """(status, metrics, error) from what an objective returned.

    A number is the metric; a mapping must hold the metric as a number; other
    numeric entries are stored as extra metrics (non-numeric ones are ignored).
    NaN and inf are stored as they are (they rank last).

    Example: ``check_result({"loss": 0.5, "acc": 0.9}, "loss")`` ->
    ``("ok", {"loss": 0.5, "acc": 0.9}, None)``
    """
    kind = type(result)
    if kind is float or kind is int:  # the common case, checked first: it is the hot path
        return "ok", {metric: float(result)}, None
    if isinstance(result, Mapping):
        metrics: dict[str, float] = {}
        for key, value in _flatten(result):
            number = _as_number(value)
            if number is not None and len(metrics) < MAX_EXTRA_METRICS:
                metrics[key] = number
        if metric not in dict(_flatten(result)):
            keys = ", ".join(sorted(str(k) for k in result)[:20]) or "none"
            return "failed", metrics, (
                f"objective result has no metric {metric!r} (keys: {keys})"
            )
        if metric not in metrics:
            value = dict(_flatten(result))[metric]
            return "failed", {}, (
                f"metric {metric!r} is {_short(value)} ({type(value).__name__}); expected a number"
            )
        return "ok", metrics, None
    number = None if isinstance(result, bool) else _as_number(result)
    if number is not None:
        return "ok", {metric: number}, None
    return "failed", {}, (
        f"objective returned {_short(result)} ({type(result).__name__}); expected a number "
        f"or a dict holding {metric!r}"
    )


def _flatten(mapping: Mapping[Any, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


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


def _run_python(objective: Objective, config: dict[str, Any]) -> tuple[str, dict, str | None]:
    try:
        target = objective.target
        fn = target if callable(target) else load_callable(str(target), objective.code_dirs)
    except Exception as exc:
        return "failed", {}, _truncate(
            f"could not load objective {objective.target!r}: {type(exc).__name__}: {exc}"
        )
    try:
        with _alarm(objective.timeout_s):
            result = fn(config)
    except _TrialTimeout:
        return "timeout", {}, f"trial ran past timeout_s={objective.timeout_s:g}"
    except Exception:
        return "failed", {}, _truncate(traceback.format_exc())
    return check_result(result, objective.metric)


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


# ------------------------------------------------------------- command lines


def _arg_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def expand_command(
    command: Sequence[str],
    flat: Mapping[str, Any],
    nested: Mapping[str, Any],
    *,
    program: str | None,
    sweep: str,
    trial: str,
    json_file: str | None = None,
) -> list[str]:
    """The argument list for one trial, W&B macros expanded. Nothing passes through a
    shell: a value holding ``; rm -rf`` is one argument, verbatim.

    ``${args}`` -> ``--name=value`` per parameter; ``${args_no_hyphens}`` ->
    ``name=value``; ``${args_json}`` -> one JSON argument; ``${args_json_file}`` ->
    a JSON file's path; ``${interpreter}`` -> this Python; ``${program}``;
    ``${env}`` -> dropped; ``${envvar:NAME}``; ``${name}`` -> the sweep name;
    ``${trial_id}``.

    Example: ``expand_command(["${interpreter}", "${program}", "${args}"], {"lr": 0.1},
    {"lr": 0.1}, program="train.py", sweep="s", trial="t")`` ->
    ``[sys.executable, "train.py", "--lr=0.1"]``
    """
    argv: list[str] = []
    for arg in command:
        if arg == "${env}":
            continue
        if arg == "${args}":
            argv.extend(f"--{k}={_arg_value(v)}" for k, v in flat.items())
            continue
        if arg == "${args_no_hyphens}":
            argv.extend(f"{k}={_arg_value(v)}" for k, v in flat.items())
            continue
        out = arg
        out = out.replace("${interpreter}", sys.executable)
        out = out.replace("${program}", program or "")
        out = out.replace("${args_json_file}", json_file or "")
        out = out.replace("${args_json}", json.dumps(dict(nested)))
        out = out.replace("${name}", sweep)
        out = out.replace("${trial_id}", trial)
        while "${envvar:" in out:
            start = out.index("${envvar:")
            end = out.find("}", start)
            if end < 0:
                break
            out = out[:start] + os.environ.get(out[start + 9 : end], "") + out[end + 1 :]
        argv.append(out)
    return argv


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that parses as a JSON object.

    Example: ``last_json_object('epoch 1\\n{"loss": 0.5}\\n') == {"loss": 0.5}``
    """
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _run_command(
    objective: Objective, trial: str, flat: dict[str, Any], nested: dict[str, Any]
) -> tuple[str, dict, str | None]:
    assert objective.command is not None
    json_file = None
    if any("${args_json_file}" in a for a in objective.command):
        fd, json_file = tempfile.mkstemp(prefix=f"sweep-{trial}-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(nested, f)
    argv = expand_command(objective.command, flat, nested, program=objective.program,
                          sweep=objective.sweep, trial=trial, json_file=json_file)
    env = dict(os.environ, SWEEP_NAME=objective.sweep, SWEEP_TRIAL_ID=trial)
    cwd = objective.cwd if objective.cwd and os.path.isdir(objective.cwd) else None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", cwd=cwd,
                              env=env, timeout=objective.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return "timeout", {}, f"command ran past timeout_s={objective.timeout_s:g}"
    except OSError as exc:
        return "failed", {}, f"could not start {argv[0]!r}: {exc}"
    finally:
        if json_file:
            os.unlink(json_file)
    if proc.returncode != 0:
        return "failed", {}, _truncate(
            f"command exited with status {proc.returncode}\n{proc.stderr.strip()}"
        )
    result = last_json_object(proc.stdout)
    if result is None:
        return "failed", {}, _truncate(
            "command printed no JSON object line on stdout; last lines:\n"
            + "\n".join(proc.stdout.strip().splitlines()[-5:])
        )
    return check_result(result, objective.metric)


# ------------------------------------------------------------------- workers


def _where() -> tuple[str, str]:
    """(node, gpu_ids) of this worker, from Ray's runtime context when there is one."""
    try:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("not in a Ray worker")
        ctx = ray.get_runtime_context()
        # The address the node was started with (ray start --node-ip-address), which
        # ray.util.get_node_ip_address() does not give inside a worker.
        worker = ray._private.worker.global_worker
        ip = getattr(worker, "node_ip_address", None) or ray.util.get_node_ip_address()
        node = f"{ip}/{ctx.get_node_id()[:8]}"
        gpus = ctx.get_accelerator_ids().get("GPU", [])
        return node, ",".join(str(g) for g in gpus)
    except Exception:
        return socket.gethostname(), os.environ.get("CUDA_VISIBLE_DEVICES", "")


def run_trial(
    objective: Objective, trial: str, flat: dict[str, Any], nested: dict[str, Any],
    node: str = "", gpu_ids: str = "",
) -> dict[str, Any]:
    """Run one trial and return its record (never raises for objective problems).

    Example: ``run_trial(Objective("loss", target=lambda c: c["x"] ** 2), "t1",
    {"x": 2}, {"x": 2})["metrics"] == {"loss": 4.0}``
    """
    started = time.time()
    t0 = time.perf_counter()
    if objective.command is not None:
        status, metrics, error = _run_command(objective, trial, flat, nested)
    else:
        status, metrics, error = _run_python(objective, nested)
    duration = time.perf_counter() - t0
    return {
        "trial_id": trial,
        "status": status,
        "metrics": metrics,
        "error": error,
        "started_at": started,
        "finished_at": started + duration,
        "duration_s": duration,
        "node": node,
        "gpu_ids": gpu_ids,
    }


def run_batch(
    objective: Objective, trials: Sequence[tuple[str, dict[str, Any], dict[str, Any] | None]]
) -> list[dict[str, Any]]:
    """Run several trials one after another in this worker (the Ray task body). Each
    trial is (id, flat params, nested params or None when they are the same).

    Example: ``run_batch(objective, [("t1", {"x": 1}, {"x": 1})])``
    """
    node, gpu_ids = _where()
    return [run_trial(objective, tid, flat, flat if nested is None else nested, node, gpu_ids)
            for tid, flat, nested in trials]
