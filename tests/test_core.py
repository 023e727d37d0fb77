"""The bottom layer: the one Metric (goal, sign, the value to minimise), the one
"did you mean" hint, and the docstring examples of the core modules."""

from __future__ import annotations

import doctest
import math

import pytest

import sweep.core.hints
import sweep.core.metric
import sweep.core.records
import sweep.engine.tasks
import sweep.worker.trial_ids
from sweep.core import GOALS, Metric, SpecError, TrialRecord, did_you_mean
from sweep.core.ranking import rank_records


def test_metric_turns_either_goal_into_a_loss():
    low, high = Metric("loss"), Metric("acc", "maximize")
    assert (low.sign, high.sign) == (1.0, -1.0)
    assert low.loss(0.25) == 0.25 and high.loss(0.25) == -0.25
    assert low.better(0.1, 0.2) and not low.better(0.2, 0.1)
    assert high.better(0.9, 0.8) and not high.better(0.8, 0.9)
    assert not low.better(0.1, 0.1)  # strictly better only
    assert math.isnan(high.loss(float("nan")))
    assert low.column == "metrics.loss"
    assert GOALS == ("minimize", "maximize")


def test_a_bad_goal_names_the_field_and_the_value():
    with pytest.raises(SpecError) as info:
        Metric("loss", "minimise")
    assert info.value.path == "metric.goal" and "minimise" in str(info.value)
    assert "minimize, maximize" in str(info.value)


def test_ranking_follows_the_metric():
    records = [TrialRecord(trial_id=t, metrics={"m": v}) for t, v in
               [("a", 0.3), ("b", 0.1), ("c", float("nan")), ("d", 0.2), ("e", 0.1)]]
    assert [r.trial_id for r in rank_records(records, Metric("m"))] == ["b", "e", "d", "a"]
    assert [r.trial_id for r in rank_records(records, Metric("m", "maximize"), k=2)] == \
        ["a", "d"]


def test_did_you_mean():
    assert did_you_mean("lr_min", ["lr", "lr_max", "momentum"]) == "did you mean 'lr_max'?"
    assert did_you_mean("zzz", ["a", "b"]) == ""
    assert did_you_mean("zzz", ["a", "b"], fallback="allowed: ") == "allowed: a, b"
    assert did_you_mean(3, ["3x"], fallback="known: ") in ("did you mean '3x'?", "known: 3x")


@pytest.mark.parametrize("module", [sweep.core.hints, sweep.core.metric, sweep.core.records,
                                    sweep.engine.tasks, sweep.worker.trial_ids])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, module.__name__
