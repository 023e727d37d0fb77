"""``type: median``: the median stopping rule (Vizier; Optuna's ``MedianPruner``, Ray
Tune's ``MedianStoppingRule``).

Example:
    >>> from sweep.core.metric import Metric
    >>> rule = MedianRule(Metric("loss"), min_samples=2)
    >>> [rule.should_stop(t, 1, v) for t, v in [("a", 0.5), ("b", 0.4), ("c", 0.9)]]
    [False, False, True]
"""

from __future__ import annotations

from typing import Any

from ..core.metric import Metric
from .base import Curves, StoppingRule, median, value_of
from .settings import check_keys, setting_int, synonym


class MedianRule(StoppingRule):
    """``type: median``: the median stopping rule (Golovin et al., "Google Vizier", 2017),
    with Optuna's ``MedianPruner`` comparison (optuna/pruners/_percentile.py).

    At a report at step ``t >= grace_period`` (Optuna: ``n_warmup_steps``; Tune:
    ``grace_period``), take the *other* trials' values at step ``t`` (each one's value at
    its smallest reported step ``>= t``, so trials that have reached ``t``); when there are
    at least ``min_samples`` of them (Tune: ``min_samples_required``, default 3), the trial
    stops when its best value so far (every value it reported, before the grace period
    too) is strictly worse than their median (``np.median``, Optuna's 50th
    ``nanpercentile``). Vizier and Tune compare with the median of the others' *running
    averages* up to ``t``; Optuna (and this rule) with their values *at* ``t``.

    Differences from Optuna: Optuna counts only completed trials (and waits for
    ``n_startup_trials=5`` of them); here every other trial that reached ``t`` counts,
    running, finished or stopped, because a decision must follow from the reports alone
    (a replay has no completion events); ``min_samples`` plays both ``n_startup_trials``
    and ``n_min_trials``. NaN/inf are the worst value (Optuna: a trial whose values are all
    NaN is pruned; NaN values of others are skipped); the median of a number and a NaN lies
    past every number (``base.median``): a trial whose values are all NaN stops there, any
    other continues.

    Also different from Optuna, both deliberate: the others' value at ``t`` is each one's
    value at its first reported step at or after ``t`` (Optuna takes only trials that
    reported exactly ``t``), and a step reported twice keeps its last value (Optuna's
    intermediate values keep the first).
    """

    kind = "median"
    KEYS = ("type", "grace_period", "min_step", "min_samples")

    def __init__(self, metric: Metric, *, grace_period: int = 0, min_samples: int = 3):
        super().__init__(metric)
        self.grace_period, self.min_samples = grace_period, min_samples
        self._curves = Curves()

    @classmethod
    def from_dict(cls, raw: Any, metric: Metric, path: str = "early_terminate") -> MedianRule:
        """``{type: median, grace_period | min_step, min_samples}`` as a rule.

        Example: ``MedianRule.from_dict({"type": "median", "grace_period": 5}, Metric("loss"))``
        """
        check_keys(path, raw, cls.kind, cls.KEYS)
        key = synonym(path, raw, ("grace_period", "min_step"))
        grace = setting_int(f"{path}.{key}", raw[key], 0) if key else 0
        min_samples = (setting_int(f"{path}.min_samples", raw["min_samples"], 1)
                       if "min_samples" in raw else 3)
        return cls(metric, grace_period=grace, min_samples=min_samples)

    def _decide(self, trial_id: str, step: int, loss: float) -> bool:
        if step >= self.grace_period:
            self._curves.add_checkpoint(step)
        self._curves.update(trial_id, step, loss)
        if step < self.grace_period:
            return False
        others = [v for t, v in self._curves.at[step].items() if t != trial_id]
        if len(others) < self.min_samples:
            return False
        return self._curves.best(trial_id) > median(others)

    def rungs(self) -> list[dict]:
        out = []
        for step in self._curves.checkpoints:
            values = list(self._curves.at[step].values())
            if len(values) >= self.min_samples:
                out.append({"bracket": 0, "step": step, "trials": len(values),
                            "cutoff": value_of(median(values), self.metric)})
        return out

    def describe(self) -> str:
        return (f"median: from step {self.grace_period}, a trial stops when its best value "
                f"so far is worse than the median of the other trials' values at the same "
                f"step (at least {self.min_samples} of them)")


__all__ = ["MedianRule"]
