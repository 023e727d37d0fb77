"""The report hub: a small Ray actor that carries intermediate reports from running
trials to the driver, and the driver's stop decisions back.

Why an actor: a trial's objective is a plain function that calls ``sweep.report``
from deep inside its training loop, so the report must leave the worker without
returning from the task (a streaming generator task would need the objective to
yield). A worker's push is one small actor call; the driver long-polls ``drain``
alongside its task futures in ``ray.wait``, so a report reaches it within
milliseconds, and the answer to a push says whether the trial has been stopped.
The hub exists only for sweeps with a stopping rule; without one, reports travel
back with the trial's result.

No report is left behind: a task returns only once the hub holds every report its
trials pushed (``run_batch_delivered``), so when the driver has a trial's result, the
trial's reports are in the hub or already drained; at the end of a stage the driver
takes what is left (``take``) before it moves on.

Example:
    >>> hub = start_hub()                                  # doctest: +SKIP
    >>> client = HubClient(hub); client.push(report)       # in a worker: False
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from ..core.records import Report
from ..worker.entry import run_batch
from ..worker.wrapper import BatchResult, Objective

log = logging.getLogger("sweep")


class ReportHub:
    """The actor's body (made remote by ``start_hub``)."""

    def __init__(self) -> None:
        self._reports: list[Report] = []
        self._stopped: set[str] = set()
        self._arrived = asyncio.Event()

    async def push(self, report: Report) -> bool:
        """Take one report; True when its trial has been stopped."""
        self._reports.append(report)
        self._arrived.set()
        return report.trial_id in self._stopped

    async def drain(self, timeout_s: float) -> list[Report]:
        """Every report since the last drain, waiting up to ``timeout_s`` for one."""
        if not self._reports:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
        reports, self._reports = self._reports, []
        self._arrived.clear()
        return reports

    async def take(self) -> list[Report]:
        """Every report since the last drain, at once, and a drain that is waiting wakes
        up (with what is left, usually nothing): the driver's last collection of a stage."""
        reports, self._reports = self._reports, []
        self._arrived.set()
        return reports

    async def stop(self, trial_ids: list[str]) -> None:
        """Mark trials as stopped: their next push is answered True."""
        self._stopped.update(trial_ids)

    async def stopped(self, trial_id: str) -> bool:
        return trial_id in self._stopped

    async def ready(self) -> bool:
        return True


def start_hub(timeout_s: float = 120.0) -> Any:
    """Start the hub actor (no CPU held) and return its handle once it answers: a trial
    must not report into a hub that is still starting (its reports would reach the
    driver only after the trial ended, too late for the rule)."""
    import ray

    hub = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(ReportHub).remote()
    ray.get(hub.ready.remote(), timeout=timeout_s)
    return hub


class HubClient:
    """The worker's side of the hub: ``push`` a report, learn whether to stop.

    A push does not wait for the hub: its answer (stopped or not) is read at a later
    push, when it has long arrived. The driver also interrupts a stopped trial's task,
    so a stop takes effect at once either way; the training loop never waits on a
    round trip. ``flush`` waits until the hub has taken every push (the task's end)."""

    # How long a task's end waits for the hub to take its last pushes (a hub that is
    # restarting takes them when it is back; a dead one never does).
    FLUSH_S = 30.0

    def __init__(self, handle: Any):
        self.handle = handle
        self._pending: list[Any] = []  # pushes the hub may not have taken yet

    def __getstate__(self) -> dict[str, Any]:
        return {"handle": self.handle}  # a worker starts with no pushes of its own

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["handle"])  # type: ignore[misc]

    def push(self, report: Report) -> bool:
        import ray

        stopped = False
        if self._pending:
            ready, self._pending = ray.wait(self._pending, num_returns=len(self._pending),
                                            timeout=0)
            if ready:
                stopped = any(ray.get(ready))
        self._pending.append(self.handle.push.remote(report))
        return stopped

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the hub has taken every push made so far; False when it did not
        within ``timeout_s`` (default ``FLUSH_S``)."""
        import ray

        if not self._pending:
            return True
        wait_s = self.FLUSH_S if timeout_s is None else timeout_s
        _, self._pending = ray.wait(self._pending, num_returns=len(self._pending),
                                    timeout=wait_s)
        return not self._pending

    def stopped(self, trial_id: str) -> bool:
        import ray

        return bool(ray.get(self.handle.stopped.remote(trial_id)))

    def stop(self, trial_ids: Iterable[str]) -> None:
        self.handle.stop.remote(list(trial_ids))


def run_batch_delivered(objective: Objective, payload: list[Any],
                        marks: str | None = None) -> BatchResult:
    """``run_batch``, returning only once the report hub has taken every report the
    batch's trials pushed: when the driver holds a trial's result, none of its reports
    is still on its way (the Ray task of sweeps with a stopping rule)."""
    result = run_batch(objective, payload, marks)
    hub = objective.hub
    if isinstance(hub, HubClient) and not hub.flush():
        log.warning("the report hub did not take this task's last reports within %.0f s; "
                    "they may be missing from the curves table", hub.FLUSH_S)
    return result


__all__ = ["HubClient", "ReportHub", "run_batch_delivered", "start_hub"]
