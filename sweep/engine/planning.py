"""Which plan runs a stage: the one place that turns a validated ``Stage`` into a
``Plan`` (the driver and ``sweep plan`` both call it).

Example:
    >>> plan = make_plan(spec, spec.stages[0])          # doctest: +SKIP
    >>> [c.params for c in plan.ask(3)]                 # doctest: +SKIP
"""

from __future__ import annotations

from ..plans.base import Plan
from ..plans.fixed import Grid, Truncated, sampler
from ..plans.refine import AnchorRule, Refine
from ..spec.stages import Stage
from ..spec.sweep_file import Spec


def make_plan(spec: Spec, stage: Stage) -> Plan:
    """A fresh plan for ``stage`` (seeded: the same plan in every run)."""
    space = stage.space(spec.space)
    if stage.plan == "grid":
        grid = Grid(space, points=stage.axis_points, values=stage.values)
        if stage.truncate and stage.trials is not None:
            return Truncated(grid, stage.trials)
        return grid
    if stage.plan in ("random", "sobol", "lhs"):
        return sampler(space, stage.plan, stage.trials or 0, stage.seed)
    assert spec.metric is not None, "the spec checks that learning plans have a metric"
    if stage.plan == "bayes":
        from ..plans.bayes import Bayes

        return Bayes(space, stage.trials or 0, stage.seed, metric=spec.metric.name,
                     goal=spec.metric.goal, n_initial=stage.initial, stage=stage.index,
                     sources=list(range(stage.index)))
    rule = AnchorRule(spec.metric.name, spec.metric.goal, stage.refine_top_k, stage.sources,
                    stage.index)
    if stage.region == "adaptive":
        from ..plans.adaptive_refine import AdaptiveRefine

        return AdaptiveRefine(space, stage.trials or 0, rule=rule, shrink=stage.shrink,
                              min_width=stage.min_width, categorical=stage.categorical,
                              sample=stage.sample, seed=stage.seed)
    return Refine(space, trials=stage.trials, region=stage.region, shrink=stage.shrink,
                  margin=stage.margin, min_width=stage.min_width,
                  categorical=stage.categorical, sample=stage.sample,
                  points=stage.axis_points, seed=stage.seed, rule=rule)


__all__ = ["make_plan"]
