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

from sweep.core.records import Report, TrialRecord
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

    def collect(self) -> list[Report]:
        return []

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


class Cut(BaseException):
    """Raised by ``ScriptedPool.wait`` at the wait it was told to: the driver dies there."""


class ScriptedPool:
    """Trials that only report, in an order a ``random.Random`` chooses, as the report
    hub can deliver them: each wait, a running trial makes its next report (it goes in
    flight), or some reports in flight arrive (in any order), or a trial that has made
    all its reports finishes (its result may overtake its last reports). A stopped
    trial makes no more reports; those in flight still arrive. ``collect`` hands over
    everything in flight. ``timelines`` maps a trial's ``params["i"]`` to its reports
    [(step, value or None)]; ``made`` lists every report made, as made."""

    def __init__(self, timelines: Mapping[int, Sequence[tuple[int, float | None]]],
                 rng: Any, *, metric: str = "loss", slots: int = 3,
                 cut_at: int | None = None):
        self.timelines = {i: list(t) for i, t in timelines.items()}
        self.rng = rng
        self.metric = metric
        self._slots = slots
        self.cut_at = cut_at
        self.waits = 0
        self.clock = 1_000_000.0
        self.tasks: dict[str, tuple[Task, int, int]] = {}  # id -> (task, i, reports made)
        self.in_flight: list[Report] = []
        self.made: list[Report] = []
        self.stopped: list[str] = []

    def __len__(self) -> int:
        return len(self.tasks)

    def slots(self) -> int:
        return self._slots

    def submit(self, task: Task, timeout_s: float | None = None) -> None:
        task.submitted, task.deadline = self.clock, None
        for item in task.items:
            self.tasks[item.trial_id] = (task, int(item.params["i"]), 0)

    def next_deadline(self) -> float | None:
        return None

    def _tick(self) -> float:
        self.clock += 0.001
        return self.clock

    def _report(self, tid: str) -> None:
        task, i, made = self.tasks[tid]
        step, value = self.timelines[i][made]
        metrics = {} if value is None else {self.metric: value}
        report = Report(tid, step, metrics, self._tick())
        self.in_flight.append(report)
        self.made.append(report)
        self.tasks[tid] = (task, i, made + 1)

    def _arrive(self, k: int) -> list[Report]:
        chosen = sorted(self.rng.sample(range(len(self.in_flight)), k))
        out = [self.in_flight[j] for j in chosen]
        self.rng.shuffle(out)
        self.in_flight = [r for j, r in enumerate(self.in_flight) if j not in set(chosen)]
        return out

    def _finish(self, tid: str) -> Done:
        task, i, _ = self.tasks.pop(tid)
        timeline = self.timelines[i]
        last = timeline[-1] if timeline else None
        metrics = {} if last is None or last[1] is None else {self.metric: last[1]}
        now = self._tick()
        record = TrialRecord(trial_id=tid, status="ok", metrics=metrics,
                             started_at=task.submitted, finished_at=now,
                             duration_s=now - task.submitted, node="node",
                             step=None if last is None else last[0])
        return Done(task, result=BatchResult([record], []))

    def wait(self, timeout_s: float) -> tuple[list[Done], list[Report]]:
        self.waits += 1
        if self.cut_at is not None and self.waits >= self.cut_at:
            raise Cut()
        done: list[Done] = []
        reports: list[Report] = []
        while not done and not reports:
            reporting = [t for t, (_, i, made) in self.tasks.items()
                         if made < len(self.timelines[i])]
            finished = [t for t, (_, i, made) in self.tasks.items()
                        if made == len(self.timelines[i])]
            moves = ["report"] * bool(reporting) + ["arrive"] * bool(self.in_flight) \
                + ["finish"] * bool(finished)
            move = self.rng.choice(moves)
            if move == "report":
                self._report(self.rng.choice(reporting))
            elif move == "arrive":
                reports = self._arrive(self.rng.randint(1, len(self.in_flight)))
            else:
                done = [self._finish(self.rng.choice(finished))]
                if self.in_flight and self.rng.random() < 0.5:
                    reports = self._arrive(self.rng.randint(1, len(self.in_flight)))
        return done, reports

    def collect(self) -> list[Report]:
        return self._arrive(len(self.in_flight))

    def expire(self, now: float) -> list[Task]:
        return []

    def stop(self, trial_ids: list[str]) -> None:
        self.stopped.extend(trial_ids)
        for tid in trial_ids:
            self.tasks.pop(tid, None)

    def settle(self, timeout_s: float = 5.0) -> None:
        pass

    def cancel_all(self) -> None:
        self.tasks.clear()
