"""What the driver hands a pool and gets back, and what it needs of a pool: plain data
and a protocol, no Ray. ``ray_pool.RayPool`` is the pool on Ray; the tests drive the
same driver with a fake one (``tests/fakepool.py``).

Example:
    >>> task = Task([Item("t1", {"x": 1}, None, None)], attempt=1)
    >>> Done(task, error="task error: ...").crashed
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..core.records import Report
from ..worker.wrapper import BatchResult


class Item(NamedTuple):
    """One trial to run: its id, flat params, nested params (None when the same) and
    the trial it was derived from."""

    trial_id: str
    params: dict[str, Any]
    nested: dict[str, Any] | None
    parent: str | None


@dataclass
class Task:
    """A Ray task's worth of trials, and when it is due."""

    items: list[Item]
    attempt: int
    submitted: float = 0.0
    deadline: float | None = None
    lost: int = 0  # times it was lost before any of its trials started


class Done(NamedTuple):
    """A task that ended: its result, or why not. ``crashed``: the worker or node died
    (the driver retries); ``error``: the task itself raised (not retried); ``started``:
    for a crashed task that recorded starts, the ids of the trials that had started."""

    task: Task
    result: BatchResult | None = None
    error: str | None = None
    crashed: bool = False
    started: frozenset[str] | None = None


class Pool(Protocol):
    """What the driver needs of a pool of tasks (``ray_pool.RayPool`` on Ray)."""

    def __len__(self) -> int: ...
    def submit(self, task: Task, timeout_s: float | None = None) -> None: ...
    def wait(self, timeout_s: float) -> tuple[list[Done], list[Report]]: ...
    def collect(self) -> list[Report]: ...
    def next_deadline(self) -> float | None: ...
    def expire(self, now: float) -> list[Task]: ...
    def stop(self, trial_ids: list[str]) -> None: ...
    def settle(self, timeout_s: float = 5.0) -> None: ...
    def cancel_all(self) -> None: ...
    def slots(self) -> int: ...


__all__ = ["Done", "Item", "Pool", "Task"]
