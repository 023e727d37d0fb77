"""Which plan runs a stage: the one place that turns a validated ``Stage`` into a
``Plan`` (the driver and ``sweep plan`` both call it). The stage names its plan; the
plans' registry (``sweep.plans.REGISTRY``) has the class, which builds itself from the
stage's settings.

Example:
    >>> plan = make_plan(spec, spec.stages[0])          # doctest: +SKIP
    >>> [c.params for c in plan.ask(3)]                 # doctest: +SKIP
"""

from __future__ import annotations

from ..core.metric import Metric
from ..plans import Plan, plan_class
from ..spec.stages import Stage
from ..spec.sweep_file import Spec


def make_plan(spec: Spec, stage: Stage) -> Plan:
    """A fresh plan for ``stage`` (seeded: the same plan in every run)."""
    metric = None if spec.metric is None else Metric(spec.metric.name, spec.metric.goal)
    return plan_class(stage.plan).from_stage(stage, stage.space(spec.space), metric)


__all__ = ["make_plan"]
