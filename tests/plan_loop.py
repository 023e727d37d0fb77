"""Drive an ask/tell plan the way the driver does, without the driver (plan unit tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sweep.core.records import TrialRecord
from sweep.plans import Plan


def drive(plan: Plan, record: Callable[[int, dict[str, Any]], TrialRecord],
          concurrency: int = 1) -> list[TrialRecord]:
    """Run ``plan`` to the end with ``concurrency`` trials in flight, the oldest told
    first; ``record(i, params)`` is the i-th proposal's finished record. Returns the
    records in the order they were told.

    Example: ``drive(plan, lambda i, p: TrialRecord(trial_id=f"t{i}", params=p,
    metrics={"loss": f(p)}), concurrency=8)``
    """
    plan.start()
    flight: list[TrialRecord] = []
    done: list[TrialRecord] = []
    i = 0
    while True:
        if not plan.finished and len(flight) < concurrency:
            for c in plan.ask(concurrency - len(flight)):
                flight.append(record(i, dict(c.params)))
                i += 1
        if not flight:
            return done
        r = flight.pop(0)
        plan.tell([r])
        done.append(r)
