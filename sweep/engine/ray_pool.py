"""A thin pool of Ray tasks: submit, wait, expire, stop, cancel — and nothing else.

In the spirit of ``ray.util.ActorPool``: a dict of futures over ``ray.wait``. Each
task runs ``sweep.worker.entry.run_batch`` on one or more trials with the sweep's
resources (``max_retries=0``: the driver counts retries itself, so ``attempts`` is
exact). When the sweep has a stopping rule the pool also starts the report hub and
long-polls it in the same ``ray.wait``, so reports and finished tasks arrive
together, and ``collect`` takes what the hub still holds when a stage ends. The
driver's policy lives in ``sweep.engine.driver``, which runs as well on a fake pool
with no Ray (the tests do).

Example:
    >>> pool = RayPool(objective, spec.resources, with_hub=False)   # doctest: +SKIP
    >>> pool.submit(Task([Item("t1", {"x": 1}, None, None)], attempt=1))
    >>> done, reports = pool.wait(0.5)
"""

from __future__ import annotations

import functools
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..core.records import Report
from ..worker.entry import run_batch
from ..worker.wrapper import Objective
from .tasks import Done, Task, payload

log = logging.getLogger("sweep")
DRAIN_S = 0.5
# Tasks of at most this many trials (each 12 ms or more: batches aim at 200 ms) record each
# trial's start (about 0.2 ms), so that a crash charges attempts only to trials that
# started.
MARK_MAX_TRIALS = 16


@dataclass
class _Flight:
    """A task in flight: the driver's task, its Ray ref, and the key prefix of its trials'
    start marks (None: too many trials to mark)."""

    task: Task
    ref: Any
    marks: str | None


@functools.cache
def _batch_task(ray: Any, delivered: bool = False) -> Any:
    """``run_batch`` as one Ray remote function for the process: Ray exports a remote
    function once per job (again after a new ``ray.init``) and each worker loads an
    export before running it, which made every ``sweep.run`` in a loop pay a few ms.
    ``delivered``: the hub's variant, which returns once the hub has every report."""
    from .report_hub import run_batch_delivered

    return ray.remote(run_batch_delivered if delivered else run_batch)


class RayPool:
    """Ray tasks in flight, with the sweep's resources."""

    def __init__(self, objective: Objective, resources: Any, *, with_hub: bool = False):
        import ray

        from .report_hub import HubClient, start_hub

        self.ray = ray
        self.resources = resources
        self._hub = start_hub() if with_hub else None
        if self._hub is not None:
            objective.hub = HubClient(self._hub)
        self._objective_ref = ray.put(objective)
        self._remote = _batch_task(ray, self._hub is not None).options(
            **resources.ray_options(), max_retries=0)
        self._inflight: dict[Any, _Flight] = {}
        self._marks = f"{uuid.uuid4().hex[:12]}"
        self._submitted = 0
        # Tasks of stopped trials, held until they end: their slots count as free at once,
        # and keeping their refs lets Ray deliver the cancellation instead of logging it.
        self._stopping: dict[Any, _Flight] = {}
        self._drain: Any = None

    def __len__(self) -> int:
        return len(self._inflight)

    def submit(self, task: Task, timeout_s: float | None = None) -> None:
        """Start ``task``; ``timeout_s`` sets its backstop deadline from now."""
        self._submitted += 1
        marks = (f"{self._marks}:{self._submitted}"
                 if len(task.items) <= MARK_MAX_TRIALS else None)
        ref = self._remote.remote(self._objective_ref, payload(task), marks)
        task.submitted = time.time()
        task.deadline = None if timeout_s is None else task.submitted + timeout_s
        self._inflight[ref] = _Flight(task, ref, marks)

    def wait(self, timeout_s: float) -> tuple[list[Done], list[Report]]:
        """Tasks that ended and reports that arrived, waiting up to ``timeout_s`` for one."""
        ray = self.ray
        refs = list(self._inflight) + list(self._stopping)
        if self._hub is not None and self._drain is None:
            self._drain = self._hub.drain.remote(DRAIN_S)
        if self._drain is not None:
            refs.append(self._drain)
        if not refs:
            return [], []
        ready, rest = ray.wait(refs, num_returns=1, timeout=max(timeout_s, 0.0))
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        done: list[Done] = []
        reports: list[Report] = []
        for ref in ready:
            if ref is self._drain:
                self._drain = None
                try:
                    reports.extend(ray.get(ref))
                except ray.exceptions.RayError as exc:  # the hub restarts by itself
                    log.warning("the report hub failed (%s); reports resume when it is back",
                                type(exc).__name__)
                continue
            if ref in self._stopping:
                self._stopping.pop(ref)
                continue
            done.append(self._outcome(self._inflight.pop(ref)))
        return done, reports

    def collect(self, timeout_s: float = 30.0) -> list[Report]:
        """The reports the hub holds now, and those of a drain in flight: the driver's
        last collection before a stage ends (every report of a task whose result has
        arrived is in the hub by then: ``report_hub.run_batch_delivered``)."""
        if self._hub is None:
            return []
        ray = self.ray
        refs = ([self._drain] if self._drain is not None else []) + [self._hub.take.remote()]
        self._drain = None
        reports: list[Report] = []
        try:
            # In this order: a drain in flight took its reports before take() ran.
            for batch in ray.get(refs, timeout=timeout_s):
                reports.extend(batch)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            log.warning("the report hub did not answer (%s); reports it holds are not stored",
                        type(exc).__name__)
        return reports

    def _outcome(self, flight: _Flight) -> Done:
        ray, task = self.ray, flight.task
        try:
            return Done(task, result=ray.get(flight.ref))
        except ray.exceptions.TaskCancelledError:
            return Done(task, error="the task was cancelled")
        except ray.exceptions.RayTaskError as exc:
            return Done(task, error=f"task error: {exc}")
        except ray.exceptions.RayError as exc:
            return Done(task, error=f"{type(exc).__name__}: {str(exc)[:2000]}", crashed=True,
                        started=self._started(flight))

    def _started(self, flight: _Flight) -> frozenset[str] | None:
        """The trials of a crashed task that had started (None: the task recorded none)."""
        if flight.marks is None:
            return None
        from ray.experimental import internal_kv

        from ..worker.entry import MARKS

        try:
            return frozenset(item.trial_id for i, item in enumerate(flight.task.items)
                             if internal_kv._internal_kv_exists(f"{flight.marks}:{i}",
                                                                namespace=MARKS))
        except Exception:
            return None

    def forget_marks(self) -> None:
        """Delete the start marks of this pool's tasks."""
        from ray.experimental import internal_kv

        from ..worker.entry import MARKS

        try:
            internal_kv._internal_kv_del(self._marks, del_by_prefix=True, namespace=MARKS)
        except Exception as exc:
            log.debug("could not delete start marks: %s", exc)

    def next_deadline(self) -> float | None:
        """The earliest deadline of a task in flight, if any has one."""
        deadlines = [f.task.deadline for f in self._inflight.values()
                     if f.task.deadline is not None]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[Task]:
        """Cancel and return the tasks whose deadline has passed."""
        out = []
        for ref, flight in list(self._inflight.items()):
            if flight.task.deadline is not None and now >= flight.task.deadline:
                self.ray.cancel(ref, force=True)
                del self._inflight[ref]
                out.append(flight.task)
        return out

    def stop(self, trial_ids: list[str]) -> None:
        """Stop running trials (a stopping rule's decision): their next report raises in
        the objective, their tasks are interrupted, and their slots are free at once."""
        if self._hub is not None:
            self._hub.stop.remote(trial_ids)
        wanted = set(trial_ids)
        for ref, flight in list(self._inflight.items()):
            if any(i.trial_id in wanted for i in flight.task.items):
                self._stopping[ref] = self._inflight.pop(ref)
                try:
                    self.ray.cancel(ref, force=False)
                except Exception as exc:  # the task may have ended meanwhile
                    log.debug("cancel of a stopped trial's task failed: %s", exc)

    def settle(self, timeout_s: float = 5.0) -> None:
        """Wait a little for the tasks of stopped trials to end (so that nothing of them
        is left for Ray to report once the pool is gone); forget the start marks."""
        self.forget_marks()
        if self._stopping:
            self.ray.wait(list(self._stopping), num_returns=len(self._stopping),
                          timeout=timeout_s)
            self._stopping.clear()

    def cancel_all(self) -> None:
        """Cancel everything in flight (the driver is stopping)."""
        for ref in [*self._inflight, *self._stopping]:
            self.ray.cancel(ref, force=True)
        self._inflight.clear()
        self._stopping.clear()

    def slots(self) -> int:
        """How many trials the cluster can run at once with these resources."""
        total = self.ray.cluster_resources()
        res = self.resources
        need = {"CPU": res.num_cpus, "GPU": res.num_gpus, "memory": res.memory or 0,
                **res.custom}
        n = math.inf
        for key, amount in need.items():
            if amount:
                n = min(n, math.floor(total.get(key, 0.0) / amount + 1e-9))
        if n == math.inf:
            n = 1
        if n < 1:
            wanted = {k: v for k, v in need.items() if v}
            log.warning("no node has %s right now; trials wait until one joins", wanted)
            n = 1
        return int(n)


__all__ = ["RayPool"]
