"""Command-line jobs: W&B's command macros, and running one trial's program.

A command is an argument list, never a shell line: a parameter value holding
``; rm -rf ~`` or ``$(...)`` reaches the program as one verbatim argument. Macros
are expanded in the command as written, once; parameter values are data and are
never expanded (a value ``${envvar:SECRET}`` stays that text).

The program runs in a process group of its own. Its stdout is read line by line
while it runs: every JSON object line with a step key (``reporting.STEP_KEYS``) is
an intermediate report, and the last JSON object line is the result. The trial
ends when the program exits (a background child still holding stdout is not
waited for); a timeout or a stop kills the whole group.

Example:
    >>> expand(["${interpreter}", "train.py", "${args}"], {"lr": 0.1},
    ...        MacroValues(interpreter="python"))
    ['python', 'train.py', '--lr=0.1']
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .trial_reports import step_key, step_of

# Macros that stand for several arguments and must be an argument of their own.
LIST_MACROS = ("args", "args_no_hyphens", "args_no_boolean_flags", "args_no_equals",
               "args_append_hydra", "args_override_hydra", "env")
# Macros replaced by one value inside an argument.
TEXT_MACROS = ("interpreter", "program", "args_json", "args_json_file", "name", "trial_id",
               "project", "entity", "sweep_id")
MACRO_RE = re.compile(r"\$\{([^}]*)\}")
TAIL_LINES = 200
GRACE_S = 2.0
# The longest stdout line read whole (a JSON result or report line must fit); a longer
# one keeps only its tail, and the trial's error says so.
LINE_LIMIT = 1 << 20


class CommandError(ValueError):
    """A command that cannot be expanded (an unknown macro, an unset variable)."""


def check_template(command: Sequence[str]) -> str | None:
    """None when every macro of ``command`` is known and well placed, else the problem.

    Example: ``check_template(["python", "${argz}"])`` -> ``"unknown macro ${argz} ..."``
    """
    for i, arg in enumerate(command):
        for match in MACRO_RE.finditer(arg):
            name = match.group(1)
            if name in LIST_MACROS:
                if arg != match.group(0):
                    return (f"command[{i}]: ${{{name}}} stands for several arguments and must "
                            f"be an argument of its own, got {arg!r}")
            elif name not in TEXT_MACROS and not name.startswith("envvar:"):
                known = ", ".join(f"${{{m}}}" for m in (*LIST_MACROS, *TEXT_MACROS))
                return (f"command[{i}]: unknown macro ${{{name}}} (known: {known}, "
                        f"${{envvar:NAME}})")
            elif name.startswith("envvar:") and not name[7:]:
                return f"command[{i}]: ${{envvar:}} needs a variable name"
    return None


def uses_parameters(command: Sequence[str]) -> bool:
    """True when the command passes the parameters itself (an ${args...} macro)."""
    names = {m.group(1) for arg in command for m in MACRO_RE.finditer(arg)}
    return any(n.startswith("args") for n in names)


@dataclass
class MacroValues:
    """What the text macros expand to for one trial."""

    interpreter: str = sys.executable
    program: str = ""
    name: str = ""
    trial_id: str = ""
    json_file: str = ""
    nested: Mapping[str, Any] | None = None
    project: str = ""
    entity: str = ""


def arg_text(value: Any) -> str:
    """A parameter value on the command line, as W&B's agent writes it: ``str(value)``
    (``True``, ``None``, ``1e-05``, ``[1, 2]``, a nested parameter as a dict)."""
    return value if isinstance(value, str) else str(value)


def _list_macro(name: str, params: Mapping[str, Any]) -> list[str]:
    """The arguments of a list macro; ``params`` are the top-level parameters (nested
    ones as dicts), as W&B's agent passes them."""
    if name == "env":
        return []
    items = list(params.items())
    if name == "args":
        return [f"--{k}={arg_text(v)}" for k, v in items]
    if name == "args_no_hyphens":
        return [f"{k}={arg_text(v)}" for k, v in items]
    if name == "args_append_hydra":
        return [f"+{k}={arg_text(v)}" for k, v in items]
    if name == "args_override_hydra":
        return [f"++{k}={arg_text(v)}" for k, v in items]
    if name == "args_no_equals":
        return [part for k, v in items for part in (f"--{k}", arg_text(v))]
    # args_no_boolean_flags: True -> a bare --flag, False -> nothing.
    out = []
    for k, v in items:
        if v is True:
            out.append(f"--{k}")
        elif v is not False:
            out.append(f"--{k}={arg_text(v)}")
    return out


def expand(command: Sequence[str], params: Mapping[str, Any], values: MacroValues,
           environ: Mapping[str, str] | None = None) -> list[str]:
    """The argument list of one trial: macros in the template expanded once; the
    values put in are never scanned for macros. ``params`` are the top-level
    parameters (nested ones as dicts). Raises ``CommandError`` for an unknown macro
    or an unset ``${envvar:NAME}``."""
    environ = os.environ if environ is None else environ
    argv: list[str] = []
    for arg in command:
        whole = MACRO_RE.fullmatch(arg)
        if whole and whole.group(1) in LIST_MACROS:
            argv.extend(_list_macro(whole.group(1), params))
            continue
        argv.append(MACRO_RE.sub(lambda m: _text_macro(m.group(1), values, environ), arg))
    return argv


def _text_macro(name: str, values: MacroValues, environ: Mapping[str, str]) -> str:
    if name.startswith("envvar:"):
        var = name[7:]
        if var not in environ:
            raise CommandError(f"the command uses ${{envvar:{var}}} but {var} is not set "
                               f"in the worker's environment")
        return environ[var]
    if name == "args_json":
        return json.dumps(dict(values.nested or {}))
    if name == "args_json_file":
        return values.json_file
    if name == "sweep_id":
        return values.name
    if name in ("interpreter", "program", "name", "trial_id", "project", "entity"):
        return str(getattr(values, name))
    raise CommandError(f"unknown macro ${{{name}}}")


# ------------------------------------------------------------------- running


@dataclass
class ProgramExit:
    """How a program ended: its exit code (None when killed by us), why we killed it
    ('timeout', 'stopped' or ''), the last JSON object line, the stdout and stderr
    tails, and how many stdout lines were longer than ``LINE_LIMIT`` (cut)."""

    returncode: int | None
    killed: str
    result: dict[str, Any] | None
    stdout_tail: list[str]
    stderr_tail: list[str]
    cut_lines: int = 0


class _Reader(threading.Thread):
    """Reads one pipe (a raw file descriptor it owns and closes at EOF) line by line,
    keeping a tail; stdout lines go to ``on_line``. A child that keeps the pipe open
    after the program exits leaves this daemon thread blocked, never the trial."""

    def __init__(self, fd: int, on_line: Callable[[str], None] | None):
        super().__init__(daemon=True)
        self.fd = fd
        self.on_line = on_line
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.cut = 0  # lines longer than LINE_LIMIT
        self._cutting = False

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        self.tail.append(line[:2000])
        if self.on_line is not None:
            self.on_line(line)

    def run(self) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._line(raw)
                    self._cutting = False
                if len(pending) > LINE_LIMIT:  # a huge line without a newline: keep its end
                    if not self._cutting:
                        self.cut += 1
                        self._cutting = True
                    pending = pending[-(1 << 16):]
            if pending:
                self._line(pending)
        except OSError:
            pass
        finally:
            os.close(self.fd)


def parse_json_line(line: str) -> dict[str, Any] | None:
    """The JSON object on ``line``, or None.

    Example: ``parse_json_line('{"loss": 0.5}') == {"loss": 0.5}``
    """
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM the program's process group, then SIGKILL what is left after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if wait and proc.poll() is None:
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if sig == signal.SIGTERM and proc.poll() is not None:
            # The leader is gone; make sure its children are too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            return


def _spawn(argv: Sequence[str], cwd: str | None, env: Mapping[str, str],
           on_line: Callable[[str], None]) -> tuple[subprocess.Popen[bytes], _Reader, _Reader]:
    """Start the program in a process group of its own, with a reader per pipe (pipes we
    own, so that nothing of Popen's waits on them)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = subprocess.Popen(list(argv), stdout=out_w, stderr=err_w,
                                stdin=subprocess.DEVNULL, cwd=cwd, env=dict(env),
                                start_new_session=True)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    out, err = _Reader(out_r, on_line), _Reader(err_r, None)
    out.start()
    err.start()
    return proc, out, err


def run_program(
    argv: Sequence[str],
    *,
    cwd: str | None,
    env: Mapping[str, str],
    timeout_s: float | None,
    on_report: Callable[[int | None, dict[str, Any]], bool],
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.2,
) -> ProgramExit:
    """Run ``argv`` (no shell) in its own process group; report JSON lines with a step key
    through ``on_report(step, line)`` (step None when the key's value is not a step),
    which returns True to stop the program."""
    state = {"result": None, "stop": False}

    def on_line(line: str) -> None:
        value = parse_json_line(line)
        if value is None:
            return
        state["result"] = value
        if step_key(value) is not None and on_report(step_of(value), value):
            state["stop"] = True

    proc, out, err = _spawn(argv, cwd, env, on_line)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    killed = ""
    try:
        while proc.poll() is None:
            if state["stop"] or should_stop():
                killed = "stopped"
                break
            if deadline is not None and time.monotonic() >= deadline:
                killed = "timeout"
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(poll_s if deadline is None else
                          max(0.0, min(poll_s, deadline - time.monotonic())))
    finally:
        # Whatever happened (an exit, a timeout, a stop, an interrupt), nothing of the
        # trial's process group outlives it, and no pipe left open by a child is waited on.
        kill_group(proc, grace_s=GRACE_S if killed else 0.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)
        for reader in (out, err):
            reader.join(1.0)
    returncode = None if killed else proc.returncode
    return ProgramExit(returncode, killed, state["result"], list(out.tail), list(err.tail),
                       out.cut)


__all__ = ["LINE_LIMIT", "LIST_MACROS", "TEXT_MACROS", "CommandError", "MacroValues", "ProgramExit",
           "check_template", "expand", "kill_group", "parse_json_line", "run_program",
           "uses_parameters"]
