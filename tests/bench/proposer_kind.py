"""Where a learning plan should propose off the driver's loop: a thread, a process or a
Ray actor (the choice behind ``sweep.engine.proposals``).

What it measures
----------------
A ``bayes`` plan over the 8 axes of ``tests/bench/ask_cost.py``, told ``--history``
random trials, makes ``--proposals`` proposals one at a time (ask one, tell its result)
on each kind of background worker, while the main thread runs a stand-in for the
driver's loop (build a trial record, hash its params, append it to a list: pure Python,
the kind of work the driver does per result). Printed per kind:

* ``proposals/s``: the worker's throughput, hand-over included (for a process and an
  actor: pickling every result and proposal, a pipe or Ray's object store);
* ``hand-over``: the round trip of a call that does nothing (the cost every proposal
  and every result pays on top of the plan's own work);
* ``driver turn``: the median time of one turn of the stand-in loop (50 records' worth of
  pure Python, then a 1 ms wait as for the next result) while the worker runs, and
  ``alone`` without it. A thread shares the GIL with the loop (numpy and scipy release
  it inside BLAS/LAPACK only, and a waiting driver holds none); a process or an actor
  competes only for the CPU.

On a machine with fewer free cores than workers, every kind slows the loop; compare
the kinds within one run.

Run from the repository root (one BLAS thread)::

    python tests/bench/proposer_kind.py                 # thread, process, ray
    python tests/bench/proposer_kind.py --kinds thread,process --proposals 40
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
from typing import Any

import _threads  # noqa: F401  (one BLAS thread; before numpy)
from ask_cost import SPACE, record

from sweep.plans import RandomPlan
from sweep.plans.bayes import Bayes


def make_plan(history: int) -> Bayes:
    plan = Bayes(SPACE, history + 10_000, 0, metric="loss", stage=1)
    plan.tell([record(p, 0, i) for i, p in enumerate(RandomPlan(SPACE, history, 7))])
    plan.start()
    plan.ask(1)  # the first fit (hyperparameters) is not what is compared
    return plan


class Worker:
    """The plan behind a call interface: ``step(i)`` asks one and tells its result."""

    def __init__(self, history: int):
        self.plan = make_plan(history)

    def step(self, i: int) -> dict[str, Any]:
        (c,) = self.plan.ask(1)
        self.plan.tell([record(c.params, 1, i)])
        return c.params

    def noop(self, payload: Any = None) -> None:
        return None


def _serve(conn: Any, history: int) -> None:
    worker = Worker(history)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, arg = msg
        conn.send(worker.step(arg) if kind == "step" else worker.noop(arg))


def driver_loop(stop: threading.Event, times: list[float]) -> None:
    """The stand-in for the driver: per result, a little pure Python (a trial record
    built, its params hashed and kept), then a wait for the next result (``ray.wait``
    releases the GIL); each turn's work is timed."""
    rows: list[Any] = []
    n = 0
    while not stop.is_set():
        started = time.perf_counter()
        for _ in range(50):
            params = {"x": n * 0.001, "y": n % 7, "c": "abc"[n % 3]}
            rows.append((hash(tuple(sorted(params.items()))), params))
            n += 1
        if len(rows) > 10_000:
            rows.clear()
        times.append(time.perf_counter() - started)
        time.sleep(0.001)


def loop_turn(seconds: float, during: Any = None) -> float:
    """The driver stand-in's median time per turn, alone or while ``during`` runs."""
    stop, times = threading.Event(), []
    t = threading.Thread(target=driver_loop, args=(stop, times))
    t.start()
    if during is not None:
        during()
    else:
        time.sleep(seconds)
    stop.set()
    t.join()
    times.sort()
    return times[len(times) // 2]


def run_thread(history: int, proposals: int) -> tuple[float, float, float]:
    worker = Worker(history)
    started = time.perf_counter()
    for _ in range(1000):
        worker.noop()
    handover = (time.perf_counter() - started) / 1000
    elapsed = []

    def work() -> None:
        t0 = time.perf_counter()
        th = threading.Thread(target=lambda: [worker.step(i) for i in range(proposals)])
        th.start()
        th.join()
        elapsed.append(time.perf_counter() - t0)

    rate = loop_turn(0, work)
    return proposals / elapsed[0], handover, rate


def run_process(history: int, proposals: int) -> tuple[float, float, float]:
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(there, history), daemon=True)
    proc.start()
    assert here.recv() == "ready"
    started = time.perf_counter()
    for _ in range(200):
        here.send(("noop", None))
        here.recv()
    handover = (time.perf_counter() - started) / 200
    elapsed = []

    def work() -> None:
        t0 = time.perf_counter()
        for i in range(proposals):
            here.send(("step", i))
            here.recv()
        elapsed.append(time.perf_counter() - t0)

    rate = loop_turn(0, work)
    here.send(None)
    proc.join(5)
    return proposals / elapsed[0], handover, rate


def run_ray(history: int, proposals: int) -> tuple[float, float, float]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actor = ray.remote(Worker).remote(history)
        ray.get(actor.noop.remote())
        started = time.perf_counter()
        for _ in range(200):
            ray.get(actor.noop.remote())
        handover = (time.perf_counter() - started) / 200
        elapsed = []

        def work() -> None:
            t0 = time.perf_counter()
            for i in range(proposals):
                ray.get(actor.step.remote(i))
            elapsed.append(time.perf_counter() - t0)

        rate = loop_turn(0, work)
        return proposals / elapsed[0], handover, rate
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--proposals", type=int, default=60)
    parser.add_argument("--kinds", default="thread,process,ray")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over the kinds (each figure: the best round)")
    args = parser.parse_args()
    print(f"bayes told {args.history} trials, {args.proposals} proposals one at a time; "
          f"best of {args.repeats} interleaved rounds")
    runs = {"thread": run_thread, "process": run_process, "ray": run_ray}
    kinds = args.kinds.split(",")
    best: dict[str, tuple[float, float, float, float]] = {}
    for _ in range(args.repeats):
        for kind in kinds:
            alone = loop_turn(1.0)  # measured next to each kind: the machine's load drifts
            per_s, handover, turn = runs[kind](args.history, args.proposals)
            old = best.get(kind)
            best[kind] = (max(per_s, old[0]) if old else per_s,
                          min(handover, old[1]) if old else handover,
                          min(turn, old[2]) if old else turn,
                          min(alone, old[3]) if old else alone)
    print(f"{'kind':<8} {'proposals/s':>12} {'hand-over':>11} {'driver turn':>12} "
          f"{'alone':>9}")
    for kind in kinds:
        per_s, handover, turn, alone = best[kind]
        print(f"{kind:<8} {per_s:>12.1f} {handover * 1e6:>9.0f}us {turn * 1e6:>10.0f}us "
              f"{alone * 1e6:>7.0f}us")


if __name__ == "__main__":
    main()
