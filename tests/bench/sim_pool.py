"""Idle slots waiting for proposals, on a simulated cluster (no Ray), for learning plans
at thousands of trials: the real ``Driver`` and plans, a simulated pool and clock.

What it measures
----------------
A sweep of ``--trials`` (5,000) trials on ``--slots`` (64 and 256) slots whose trials
last ``--trial-s`` (1 s and 10 s; each trial's time is drawn log-normally around it,
sigma 0.3, seeded) over 8 axes (6 continuous, an integer, a categorical: the space of
``tests/bench/ask_cost.py``), for three sweep files: ``random`` (the floor: no plan
compute), ``bayes`` (one stage) and ``default``, the default coarse-to-fine in the shape
of ``jobs/mlp.yaml`` (a random stage of two thirds of the trials, then ``plan: refine``,
adaptive, top_k 4, the rest). Each learning sweep runs twice: ``background`` (today:
proposals made by ``sweep.engine.proposals.Proposer``) and ``sync`` (the plan asked in
the driver's loop, ``Driver(background=False)``: the code before the proposer).

The figure: the share of slot-time that slots sat idle, counted while the running stage
still had trials to submit (a stage's tail, when everything is submitted and slots
drain before the next stage starts, is not waiting for a proposal and is not
counted); the goal is under 2 %. Also printed: the simulated makespan, its ratio to the
ideal (trials x mean trial time / slots), and the real CPU seconds the plan and the
driver used. The plans' slow imports (scipy: ``sweep.engine.planning.warm_imports``)
are done before the clock starts, as ``sweep run`` does them while Ray starts; in a
process that had not, the first stage of a learning plan would wait 0.5-1 s for them
(at 256 slots of 1-s trials, bayes: 3.2-3.7% of slot-time idle instead of 1.0%).

How the concurrency is simulated
--------------------------------
* The simulated clock advances only by events: a trial ends (its task was submitted at
  simulated time t and its trials last their drawn times), a wait times out, or a
  proposal becomes available.
* The driver's own compute is charged to the clock: the CPU time (``time.process_time``)
  the driver spends between two calls into the pool is added to the clock before each
  submission and each wait (its trial ids, the results store, and, on the ``sync`` path,
  every ask and tell of the plan).
* The background proposer has its own timeline. Its thread is replaced by
  ``Proposer(threaded=False)``: whenever the simulated worker is free and has work (the
  queued results, the proposals wanted), the pool runs one ``Proposer.step`` inline,
  starting at the current simulated time, and times it in CPU seconds; each proposal it
  makes is published to the buffer only when the clock reaches (start + the CPU time the
  step had spent when it was made), and the worker is busy until (start + the step's
  total). Its compute is not charged to the driver: a thread on another core (numpy and
  scipy release the GIL in their BLAS/LAPACK calls; the Python between them does not,
  which this simulation leaves out).
* The driver sees the buffer only when it looks: its pool wait is not cut short by a
  proposal becoming available (``ray.wait`` is not either), only by a trial ending or
  its timeout (2 ms while a slot is free and a proposal is being made, as in the real
  loop); with nothing in flight it waits on the proposer, which wakes it at once.

The ``sync`` path of the code before a change (an older checkout first on PYTHONPATH;
one without ``sweep.engine.proposals`` runs the sync path only) is measured the same
way.

Run from the repository root (one BLAS thread)::

    python tests/bench/sim_pool.py                               # everything (~1 h)
    python tests/bench/sim_pool.py --slots 64 --trial-s 10 --sweeps bayes --trials 1000
"""

from __future__ import annotations

import argparse
import heapq
import math
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import _threads  # noqa: F401  (one BLAS thread; before numpy)
import numpy as np

import sweep
from sweep.core.records import Report, TrialRecord
from sweep.engine import driver as driver_module
from sweep.engine.driver import Driver
from sweep.engine.progress import Progress
from sweep.engine.runner import open_writer
from sweep.engine.tasks import Done, Task
from sweep.spec.sweep_file import load_spec
from sweep.store.reader import ResultsReader
from sweep.worker.wrapper import BatchResult

try:
    from sweep.engine.proposals import Proposer
except ImportError:  # a checkout from before the proposer: the sync path only
    Proposer = None  # type: ignore[assignment,misc]
try:
    from sweep.engine.planning import warm_imports
except ImportError:  # a checkout from before the plans' imports were warmed
    warm_imports = None  # type: ignore[assignment]

CPU = time.process_time


def loss(p: dict[str, Any]) -> float:
    return (sum((p[f"x{i}"] - 0.3) ** 2 for i in range(6)) + ((p["n"] - 20) / 64) ** 2
            + (0.0 if p["c"] == "b" else 0.3))


PARAMETERS = {**{f"x{i}": sweep.uniform(0.0, 1.0) for i in range(6)},
              "n": sweep.randint(1, 64), "c": sweep.choice(["a", "b", "c", "d"])}


def stages(kind: str, n: int) -> list[dict[str, Any]]:
    if kind == "default":
        coarse = round(2 * n / 3)
        return [{"plan": "random", "trials": coarse},
                {"plan": "refine", "trials": n - coarse, "top_k": 4}]
    return [{"plan": kind, "trials": n}]


class World:
    """The simulated pool, clock and background worker (see the module's text)."""

    def __init__(self, slots: int, trial_s: float, budgets: list[int], seed: int = 0):
        self._slots = slots
        self.trial_s = trial_s
        self.now = 0.0
        self.rng = np.random.default_rng(seed)
        self.running: list[tuple[float, int, Task]] = []  # (end, seq, task), <= slots
        self.queue: deque[Task] = deque()  # submitted, waiting for a slot
        self.seq = 0
        self.tasks = 0
        self._mark = CPU()
        self.driver_cpu = 0.0
        self.plan_cpu = 0.0
        # idle accounting: each task's busy interval, and each stage's window (from
        # when the driver begins the stage to its last submission)
        self.ends = list(np.cumsum(budgets))
        self.stage = 0
        self.submitted = 0
        self.busy: list[tuple[float, float]] = []
        self.windows: list[list[float]] = [[0.0, math.inf]]
        # the background worker
        self.proposer: Proposer | None = None
        self.worker_free = 0.0
        self.held: list[tuple[float, int, Any]] = []  # (available at, seq, candidate)

    # -- clock and accounting
    def _advance(self, t: float) -> None:
        self.now = max(self.now, t)

    def idle_share(self) -> float:
        """Idle slot-time over slot-time, within the stages' windows."""
        idle = span = 0.0
        for a, b in self.windows:
            if b <= a or b == math.inf:
                continue
            busy = sum(max(0.0, min(e, b) - max(s, a)) for s, e in self.busy)
            idle += self._slots * (b - a) - busy
            span += self._slots * (b - a)
        return idle / span if span else 0.0

    def _charge(self) -> None:
        """The driver's compute since it last entered the pool moves the clock."""
        spent = CPU() - self._mark
        self.driver_cpu += spent
        self._advance(self.now + spent)
        self._mark = CPU()

    def _resume_driver(self) -> None:
        self._mark = CPU()

    # -- the pool's verbs (sweep.engine.tasks.Pool)
    def __len__(self) -> int:
        return len(self.running) + len(self.queue)

    def slots(self) -> int:
        return self._slots

    def submit(self, task: Task, timeout_s: float | None = None) -> None:
        self._charge()
        task.submitted = self.now
        task.deadline = None
        self.tasks += 1
        self.submitted += len(task.items)
        if self.stage < len(self.ends) and self.submitted >= self.ends[self.stage]:
            self.windows[-1][1] = self.now  # the stage's tail: not waiting for proposals
        if len(self.running) < self._slots:
            self._start(task, self.now)
        else:
            self.queue.append(task)  # the driver keeps a task queued per slot
        self._resume_driver()

    def _start(self, task: Task, at: float) -> None:
        """A slot starts ``task`` at ``at``: its trials run one after the other."""
        durations = self.trial_s * np.exp(self.rng.normal(0.0, 0.3, len(task.items)) - 0.045)
        task._durations = durations  # type: ignore[attr-defined]
        task._started = at  # type: ignore[attr-defined]
        end = at + float(durations.sum())
        self.busy.append((at, end))
        heapq.heappush(self.running, (end, self.seq, task))
        self.seq += 1

    def next_deadline(self) -> float | None:
        return None

    def expire(self, now: float) -> list[Task]:
        return []

    def stop(self, trial_ids: list[str]) -> None:
        pass

    def settle(self, timeout_s: float = 5.0) -> None:
        pass

    def collect(self) -> list[Report]:
        return []  # trials here make no intermediate reports (no report hub)

    def cancel_all(self) -> None:
        self.running.clear()
        self.queue.clear()

    def wait(self, timeout_s: float) -> tuple[list[Done], list[Report]]:
        self._charge()
        deadline = self.now + timeout_s
        while True:
            self._work()
            end = self.running[0][0] if self.running else math.inf
            t = min(end, deadline, self._next_background())
            self._advance(t)
            self._release()
            if self.running and self.running[0][0] <= self.now:
                done = []
                while self.running and self.running[0][0] <= self.now:
                    end, _, task = heapq.heappop(self.running)
                    if self.queue:  # the pool starts a queued task when a slot frees
                        self._start(self.queue.popleft(), end)
                    done.append(self._finish(task))
                self._resume_driver()
                return done, []
            if self.now >= deadline:
                self._resume_driver()
                return [], []

    def wait_for_proposal(self, timeout_s: float) -> None:
        """``Proposer.wait`` with nothing in flight: until a proposal is published."""
        self._charge()
        deadline = self.now + timeout_s
        assert self.proposer is not None
        while self.now < deadline and self.proposer.busy:
            self._work()
            t = self._next_background()
            if t == math.inf:
                break  # nothing being made (the proposer is no longer busy)
            self._advance(min(deadline, t))
            if self._release():
                break
        self._resume_driver()

    # -- the background worker
    def _next_background(self) -> float:
        t = self.held[0][0] if self.held else math.inf
        if self.proposer is not None and self._has_work():
            t = min(t, max(self.worker_free, self.now))
        return t

    def _has_work(self) -> bool:
        p = self.proposer
        assert p is not None
        with p._lock:
            return p._has_work()

    def _work(self) -> None:
        """Run the worker's next step if it is free (by now) and has work."""
        p = self.proposer
        if p is None or self.worker_free > self.now or not self._has_work():
            return
        start = self.now

        def emit(candidate: Any, elapsed: float) -> None:
            heapq.heappush(self.held, (start + elapsed, self.seq, candidate))
            self.seq += 1

        before = CPU()
        p.step(emit)
        spent = CPU() - before
        self.plan_cpu += spent
        self.worker_free = start + spent

    def _release(self) -> bool:
        out = []
        while self.held and self.held[0][0] <= self.now:
            out.append(heapq.heappop(self.held)[2])
        if out:
            assert self.proposer is not None
            self.proposer.publish(out)
        return bool(out)

    def _finish(self, task: Task) -> Done:
        records = []
        t = task._started  # type: ignore[attr-defined]
        for item, d in zip(task.items, task._durations):  # type: ignore[attr-defined]
            records.append(TrialRecord(
                trial_id=item.trial_id, params=item.params, status="ok",
                metrics={"loss": loss(item.params)}, started_at=t, finished_at=t + d,
                duration_s=float(d)))
            t += d
        if (self.windows[-1][1] < math.inf and not len(self)
                and self.stage + 1 < len(self.ends)):
            self.stage += 1  # the driver begins the next stage now
            self.windows.append([self.now, math.inf])
        return Done(task, result=BatchResult(records, []))


class SimProposer(Proposer or object):  # type: ignore[misc]
    """The proposer on the world's background timeline (no thread)."""

    world: World

    def __init__(self, plan: Any, **kwargs: Any):
        kwargs.pop("threaded", None)
        super().__init__(plan, threaded=False, timer=CPU, **kwargs)
        self.world.proposer = self
        self.world.worker_free = self.world.now
        self.world.held.clear()

    @property
    def busy(self) -> bool:
        return super().busy or bool(self.world.held)

    def _in_hand(self) -> int:
        return len(self._buffer) + len(self.world.held)  # made, published or not yet

    def wait(self, timeout_s: float) -> None:
        self.world.wait_for_proposal(timeout_s)


def simulate(kind: str, path: str, slots: int, trial_s: float, n: int,
             log: Callable[[str], None] | None = None) -> dict[str, float]:
    shape = stages(kind, n)
    doc = {"name": f"sim-{kind}", "objective": "tests.objectives:quadratic",
           "metric": {"name": "loss"}, "parameters": PARAMETERS, "stages": shape}
    spec = load_spec(doc)
    if warm_imports is not None:  # as `sweep run` does while Ray starts (not timed)
        thread = warm_imports(spec)
        if thread is not None:
            thread.join()
    world = World(slots, trial_s, [s["trials"] for s in shape])
    SimProposer.world = world
    real = getattr(driver_module, "Proposer", None)
    driver_module.Proposer = SimProposer  # type: ignore[misc]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            writer = open_writer(spec, tmp)
            reader = ResultsReader(writer.folder, writer.codec)
            options = {} if Proposer is None else {"background": path == "background"}
            if path == "background" and Proposer is None:
                raise SystemExit("this checkout has no background proposer")
            drv = Driver(spec, writer, reader, world, progress=Progress(quiet=True),
                         clock=lambda: world.now, **options)
            started = time.perf_counter()
            world._resume_driver()
            results = drv.run()
            wall = time.perf_counter() - started
    finally:
        driver_module.Proposer = real  # type: ignore[misc]
    ran = sum(r.ran for r in results)
    ideal = n * trial_s / slots
    return {"idle": world.idle_share(), "makespan": world.now,
            "ideal": ideal, "ran": ran, "plan_cpu": world.plan_cpu,
            "driver_cpu": world.driver_cpu, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--slots", default="64,256")
    parser.add_argument("--trial-s", default="1,10")
    parser.add_argument("--sweeps", default="random,bayes,default")
    parser.add_argument("--paths", default="background,sync")
    args = parser.parse_args()
    print(f"{args.trials} trials; idle = share of slot-time idle while the stage had "
          f"trials to submit (goal < 2%)")
    print(f"{'slots':>5} {'trial':>6} {'sweep':<8} {'path':<10} {'idle':>7} "
          f"{'makespan':>9} {'x ideal':>8} {'plan cpu':>9} {'driver cpu':>10}")
    for slots in [int(s) for s in args.slots.split(",")]:
        for trial_s in [float(t) for t in args.trial_s.split(",")]:
            for kind in args.sweeps.split(","):
                paths = ["-"] if kind == "random" else args.paths.split(",")
                for path in paths:
                    r = simulate(kind, "sync" if path == "-" else path, slots, trial_s,
                                 args.trials)
                    assert r["ran"] == args.trials, r
                    print(f"{slots:>5} {trial_s:>5g}s {kind:<8} {path:<10} "
                          f"{100 * r['idle']:>6.2f}% {r['makespan']:>8.1f}s "
                          f"{r['makespan'] / r['ideal']:>7.3f}x {r['plan_cpu']:>8.1f}s "
                          f"{r['driver_cpu']:>9.1f}s", flush=True)


if __name__ == "__main__":
    main()
