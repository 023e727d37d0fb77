"""Live progress of a sweep: a one-line bar on a terminal, periodic plain lines
elsewhere (CI, ``ray job`` logs), nothing with ``quiet``.

Example:
    >>> p = Progress(stream=sys.stderr, quiet=True)
    >>> p.start_stage(0, "random", total=10)
    >>> p.update(done=3, running=2, failed=0, best=0.12, best_params={"lr": 0.01})
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _params_text(params: dict[str, Any] | None, limit: int = 60) -> str:
    if not params:
        return ""
    parts = []
    for k, v in params.items():
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Progress:
    """Per-stage progress: done/total, running, failed, best so far, elapsed, ETA."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        interval: float | None = None,
        metric: str = "metric",
    ):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.metric = metric
        self._stage = 0
        self._plan = ""
        self._total = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._state: dict[str, Any] = {}

    def log(self, message: str) -> None:
        """A line of its own (above the bar on a terminal)."""
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(message + "\n")
        self.stream.flush()

    def start_stage(self, stage: int, plan: str, total: int, skipped: int = 0) -> None:
        self._stage, self._plan, self._total = stage, plan, total
        self._start = time.monotonic()
        self._last = 0.0
        self._state = {"done": 0, "running": 0, "failed": 0, "best": None, "best_params": None}
        resumed = f" ({skipped} already stored)" if skipped else ""
        self.log(f"stage {stage} ({plan}): {total} trials{resumed}")

    def update(self, *, done: int, running: int, failed: int, best: float | None,
               best_params: dict[str, Any] | None, force: bool = False,
               note: str = "") -> None:
        self._state = {"done": done, "running": running, "failed": failed, "best": best,
                       "best_params": best_params, "note": note}
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = self._line(now)
        if self.tty:
            width = 120
            self.stream.write("\r\x1b[2K" + line[:width])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _line(self, now: float) -> str:
        s = self._state
        total = max(self._total, 1)
        done = s["done"]
        elapsed = now - self._start
        eta = "--:--" if done == 0 else _clock(elapsed / done * (self._total - done))
        best = "" if s["best"] is None else (
            f" best {self.metric}={s['best']:.4g} ({_params_text(s['best_params'])})"
        )
        failed = f" failed {s['failed']}" if s["failed"] else ""
        failed += f", {s['note']}" if s.get("note") else ""
        if self.tty:
            filled = int(24 * done / total)
            bar = "#" * filled + "-" * (24 - filled)
            return (f"stage {self._stage} [{bar}] {done}/{self._total} running {s['running']}"
                    f"{failed} {_clock(elapsed)}<{eta}{best}")
        return (f"stage {self._stage}: {done}/{self._total} done, {s['running']} running"
                f"{failed}, elapsed {_clock(elapsed)}, eta {eta}{best}")

    def finish_stage(self) -> None:
        if self.quiet:
            return
        self.update(force=True, **self._state)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
