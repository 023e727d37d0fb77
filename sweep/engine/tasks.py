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
    """One trial to run: its id, flat params, nested params (None when the same), the
    trial it was derived from, the trial whose checkpoint it starts from (a PBT
    segment: its parent's) and whether it may have checkpoints of its own already (a
    trial that was running when a driver died)."""

    trial_id: str
    params: dict[str, Any]
    nested: dict[str, Any] | None
    parent: str | None
    restore_from: str | None = None
    resume: bool = False


@dataclass
class Task:
    """A Ray task's worth of trials, and when it is due."""

    items: list[Item]
    attempt: int
    submitted: float = 0.0
    deadline: float | None = None
    lost: int = 0  # times it was lost before any of its trials started


def payload(task: Task) -> list[list[Any]]:
    """What a pool sends a worker for ``task`` (``sweep.worker.entry.run_batch``): per
    trial [id, flat params, nested params], and [attempt, own, source] when it may
    restore a checkpoint (own: a retry, or a trial that has some; source: another
    trial's). Lists, not tuples: Ray packs lists with msgpack and pickles each tuple.

    Example: ``payload(Task([Item("t1", {"x": 1}, None, None)], attempt=2))`` ->
    ``[["t1", {"x": 1}, None, [2, True, None]]]``
    """
    out = []
    for i in task.items:
        own = i.resume or task.attempt > 1
        if own or i.restore_from:
            out.append([i.trial_id, i.params, i.nested, [task.attempt, own, i.restore_from]])
        else:
            out.append([i.trial_id, i.params, i.nested])
    return out


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


__all__ = ["Done", "Item", "Pool", "Task", "payload"]
