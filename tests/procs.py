"""Process helpers for tests that start their own Ray or S3 server.

Other Ray instances run on the same machine (other test sessions): never
``ray stop``, never kill by a broad name. What a test starts it marks (a temp
folder of its own that appears on every command line of the Ray processes it
starts) and it stops exactly those processes and their children, by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held together while chosen, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def short_tmpdir(prefix: str) -> str:
    """A new folder under /tmp with a short path (Ray's Unix sockets live under it and
    socket paths are limited to about 107 characters)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def isolate_ray(env: MutableMapping[str, str], auth: str = "token") -> None:
    """Set ``env`` (a dict, or ``os.environ``) for a Ray of the test's own: RAY_AUTH_MODE
    ``auth`` whatever the shell exported, with a fresh RAY_AUTH_TOKEN in token mode (so
    that no Ray started or joined with it reads or writes ``~/.ray/auth_token``), no
    RAY_ADDRESS or RAY_AUTH_TOKEN_PATH, no usage stats."""
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    env["RAY_AUTH_MODE"] = auth
    if auth == "token":
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    env["RAY_USAGE_STATS_ENABLED"] = "0"


def ray_env(auth: str = "token", **extra: str) -> dict[str, str]:
    """An environment for Ray processes and drivers started by a test: ``isolate_ray``
    (a fresh token in token mode), the repository first on PYTHONPATH, then ``extra``."""
    env = dict(os.environ)
    isolate_ray(env, auth)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry)] = (ppid, cmdline)
    return out


def marked_pids(marker: str, roots: Iterable[int] = ()) -> set[int]:
    """Pids whose command line holds ``marker``, the ``roots``, and all their descendants."""
    procs = _processes()
    found = {pid for pid, (_, cmd) in procs.items() if marker and marker in cmd}
    found |= {pid for pid in roots if pid in procs}
    found.discard(os.getpid())
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found and child != os.getpid():
                found.add(child)
                stack.append(child)
    return found


def kill_marked(marker: str, roots: Iterable[int] = (), grace_s: float = 10.0) -> set[int]:
    """SIGTERM the processes of ``marked_pids``, then SIGKILL what is left after
    ``grace_s``; returns the pids signalled."""
    roots = list(roots)
    pids = marked_pids(marker, roots)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        alive = marked_pids(marker, roots) & pids
        if not alive:
            break
        time.sleep(0.3)
    for pid in marked_pids(marker, roots):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        pids.add(pid)
    return pids


def run(args: list[str], *, env: Mapping[str, str], cwd: str | Path = REPO,
        timeout: float = 240.0, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, capture its output, and fail with that output on a bad exit."""
    proc = subprocess.run(args, env=dict(env), cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
            f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def sweep_cli(*args: str, env: Mapping[str, str], cwd: str | Path = REPO,
              timeout: float = 240.0, check: bool = True) -> subprocess.CompletedProcess:
    """``sweep ARGS`` in a subprocess (the package's own interpreter)."""
    return run([sys.executable, "-m", "sweep", *args], env=env, cwd=cwd, timeout=timeout,
               check=check)


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
    """Wait until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.2)


def read_jsonl(path: Path) -> list[dict]:
    """Whole lines of a JSON-lines file (a line cut by a kill is left out)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
