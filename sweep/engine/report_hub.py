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

Example:
    >>> hub = start_hub()                                  # doctest: +SKIP
    >>> client = HubClient(hub); client.push(report)       # in a worker: False
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from ..core.records import Report


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

    A push does not wait for the hub: its answer (stopped or not) is read at the next
    push, when it has long arrived. The driver also interrupts a stopped trial's task,
    so a stop takes effect at once either way; the training loop never waits on a
    round trip."""

    def __init__(self, handle: Any):
        self.handle = handle
        self._last: Any = None

    def push(self, report: Report) -> bool:
        import ray

        stopped = False
        if self._last is not None:
            ready, _ = ray.wait([self._last], timeout=0)
            if ready:
                stopped = bool(ray.get(self._last))
        self._last = self.handle.push.remote(report)
        return stopped

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until the last push has reached the hub (a trial's end: its last report
        is in the hub before its result reaches the driver)."""
        import ray

        if self._last is not None:
            ray.wait([self._last], timeout=timeout_s)

    def stopped(self, trial_id: str) -> bool:
        import ray

        return bool(ray.get(self.handle.stopped.remote(trial_id)))

    def stop(self, trial_ids: Iterable[str]) -> None:
        self.handle.stop.remote(list(trial_ids))


__all__ = ["HubClient", "ReportHub", "start_hub"]
