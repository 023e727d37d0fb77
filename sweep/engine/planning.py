"""Which plan runs a stage, ready to ask: the one place that turns a validated ``Stage``
into a ``Plan`` and tells it the stored history (the driver and ``sweep plan`` both call
``prepare_plan``). The stage names its plan; the plans' registry
(``sweep.plans.REGISTRY``) has the class, which builds itself from the stage's settings.

Example:
    >>> plan = prepare_plan(spec, spec.stages[0], lambda: store.records([0]))  # doctest: +SKIP
    >>> [c.params for c in plan.ask(3)]                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..core.records import TrialRecord
from ..plans import Plan, plan_class
from ..spec.stages import Stage
from ..spec.sweep_file import Spec


def warm_imports(spec: Spec) -> threading.Thread | None:
    """Import the modules the sweep's plans import when they first propose
    (``Plan.imports``: scipy's take 0.5-1 s) on a daemon thread, started now; None when
    there are none. ``sweep run`` calls it before Ray starts, so the first proposals of
    a learning stage do not wait for an import while a cluster's slots are free.

    Example: ``warm_imports(load_spec("jobs/mlp.yaml")).join()``
    """
    names = sorted({m for stage in spec.stages for m in plan_class(stage.plan).imports
                    if m not in sys.modules})
    if not names:
        return None

    def run() -> None:
        for name in names:
            with contextlib.suppress(Exception):  # the plan says so again when it runs
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="sweep-warm-imports", daemon=True)
    thread.start()
    return thread


def make_plan(spec: Spec, stage: Stage) -> Plan:
    """A fresh plan for ``stage`` (seeded: the same plan in every run)."""
    return plan_class(stage.plan).from_stage(stage, stage.space(spec.space), spec.metric)


def prepare_plan(spec: Spec, stage: Stage,
                 history: Callable[[], Iterable[TrialRecord]], *,
                 retry_failed: bool = False,
                 decided: Mapping[str, Any] | None = None) -> Plan:
    """``stage``'s plan, told the stored trials of this stage and the ones before it when
    it learns (``history`` is called only then), then started. With ``retry_failed`` the
    stage's failed and timed-out trials are not told: they give their budget back.
    ``decided`` is what the stage's plan decided when it started in an earlier run (its
    stage file's ``described``): the plan keeps it (``Plan.restore``).

    Example: ``prepare_plan(spec, stage, lambda: store.records(range(stage.index + 1)))``
    """
    plan = make_plan(spec, stage)
    if decided:
        plan.restore(decided)
    if plan.learns:
        records = history()
        if retry_failed:
            records = [r for r in records
                       if r.stage != stage.index or r.status in ("ok", "stopped")]
        plan.tell(records)
    plan.start()
    return plan


__all__ = ["make_plan", "prepare_plan"]
