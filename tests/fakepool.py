"""A pool of tasks with no Ray, for driving ``sweep.engine.driver.Driver`` in unit tests.

Tasks run in this process, one per ``wait``, through the real worker wrapper
(``sweep.worker.entry.run_batch``), in the order they were submitted (or the reverse, to
shuffle completions). Scripted faults: a trial whose worker "dies" the first n
times, a trial that hangs until its deadline (a fake clock moves on), intermediate
reports that arrive before a trial ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sweep.core.records import Report
from sweep.engine.tasks import Done, Task, payload
from sweep.worker.entry import run_batch
from sweep.worker.wrapper import BatchResult, Objective


class FakeClock:
    """Seconds that move only when told to."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakePool:
    """The driver's pool verbs over an in-process queue of tasks."""

    def __init__(self, objective: Objective, *, slots: int = 2, clock: FakeClock | None = None,
                 crashes: Mapping[str, int] | None = None, hangs: Sequence[str] = (),
                 reports: Mapping[str, Sequence[tuple[int, float]]] | None = None,
                 metric: str = "loss", lifo: bool = False):
        self.objective = objective
        self._slots = slots
        self.clock = clock or FakeClock()
        self.crashes = dict(crashes or {})
        self.hangs = set(hangs)
        self.scripted_reports = {k: list(v) for k, v in (reports or {}).items()}
        self.metric = metric
        self.lifo = lifo
        self.queue: list[Task] = []
        self.submitted: list[Task] = []
        self.busy_at_submit: list[int] = []  # tasks in flight when each task was submitted
        self.stopped: list[str] = []
        self.max_in_flight = 0

    def __len__(self) -> int:
        return len(self.queue)

    def slots(self) -> int:
        return self._slots

    def submit(self, task: Task, timeout_s: float | None = None) -> None:
        task.submitted = self.clock()
        task.deadline = None if timeout_s is None else task.submitted + timeout_s
        self.busy_at_submit.append(len(self.queue))
        self.queue.append(task)
        self.submitted.append(task)
        self.max_in_flight = max(self.max_in_flight, len(self.queue))

    def next_deadline(self) -> float | None:
        deadlines = [t.deadline for t in self.queue if t.deadline is not None]
        return min(deadlines) if deadlines else None

    def wait(self, timeout_s: float) -> tuple[list[Done], list[Report]]:
        runnable = [t for t in self.queue if not any(i.trial_id in self.hangs for i in t.items)]
        if not runnable:
            self.clock.now += max(timeout_s, 0.01)  # everything hangs: time passes
            return [], []
        task = runnable[-1] if self.lifo else runnable[0]
        pending = [i.trial_id for i in task.items if self.scripted_reports.get(i.trial_id)]
        if pending:  # a trial reports before it ends: one report per wait
            tid = pending[0]
            step, value = self.scripted_reports[tid].pop(0)
            self.clock.now += 0.01
            return [], [Report(tid, step, {self.metric: value}, self.clock())]
        self.queue.remove(task)
        self.clock.now += 0.01
        for item in task.items:
            if self.crashes.get(item.trial_id, 0) > 0:
                self.crashes[item.trial_id] -= 1
                return [Done(task, error="WorkerCrashedError: the worker died",
                             crashed=True)], []
        result: BatchResult = run_batch(self.objective, payload(task))
        return [Done(task, result=result)], []

    def expire(self, now: float) -> list[Task]:
        gone = [t for t in self.queue if t.deadline is not None and now >= t.deadline]
        for task in gone:
            self.queue.remove(task)
        return gone

    def stop(self, trial_ids: list[str]) -> None:
        self.stopped.extend(trial_ids)
        self.queue = [t for t in self.queue if not any(i.trial_id in trial_ids for i in t.items)]

    def settle(self, timeout_s: float = 5.0) -> None:
        pass

    def cancel_all(self) -> None:
        self.queue.clear()


def objective_of(fn: Any, metric: str = "loss") -> Objective:
    return Objective(metric, target=fn, sweep="test")
