"""The adaptive refine (sweep.plans.adaptive_refine): boxes that follow the best trials so far and
shrink as the budget is spent. No Ray."""

from __future__ import annotations

import math

import pytest

from sweep.core.errors import SweepError
from sweep.core.metric import Metric
from sweep.core.records import TrialRecord
from sweep.plans.adaptive_refine import AdaptiveRefine
from sweep.plans.anchors import Anchor, AnchorRule
from sweep.space import Choice, LogUniform, RandInt, Space, Uniform
from tests import plan_loop

SPACE = Space({"x": Uniform(0.0, 1.0), "lr": LogUniform(1e-4, 1.0),
               "opt": Choice(["sgd", "adam", "adamw"])})


def rec(tid, params, value, stage=0, status="ok"):
    metrics = {} if value is None else {"loss": value}
    return TrialRecord(sweep="t", stage=stage, trial_id=tid, status=status, params=params,
                       metrics=metrics)


def coarse():
    return [rec("a", {"x": 0.2, "lr": 1e-2, "opt": "adam"}, 1.0),
            rec("b", {"x": 0.8, "lr": 1e-3, "opt": "sgd"}, 2.0),
            rec("c", {"x": 0.5, "lr": 1e-1, "opt": "adam"}, 3.0),
            rec("d", {"x": 0.1, "lr": 1e-4, "opt": "sgd"}, None, status="failed")]


def plan_of(trials=20, k=2, **kw):
    rule = AnchorRule(Metric("loss"), k=k, sources=[0], stage=1)
    plan = AdaptiveRefine(SPACE, trials, rule=rule, seed=0, **kw)
    plan.tell(coarse())
    plan.start()
    return plan


def inside(box, params):
    for name, (lo, hi) in box["bounds"].items():
        if not lo - 1e-12 <= params[name] <= hi + 1e-12:
            return False
    return all(params[n] in v for n, v in box["categories"].items())


def test_anchors_are_the_top_k_of_the_coarse_stage_and_boxes_start_at_shrink():
    plan = plan_of(shrink=0.5, min_width=0.05)
    assert [s.trial_id for s in plan.anchors] == ["a", "b"]
    assert plan.width == pytest.approx(0.5)
    box = plan.describe()["boxes"][0]
    lo, hi = box["bounds"]["lr"]
    assert math.log10(lo) == pytest.approx(-3.0) and math.log10(hi) == pytest.approx(-1.0)
    assert box["categories"]["opt"] == ["adam"]


def test_candidates_fall_in_their_anchor_box_and_the_best_anchor_gets_most():
    plan = plan_of(trials=12)
    boxes = {b["anchor"]: b for b in plan.describe()["boxes"]}
    got = plan.ask(6)
    assert len(got) == 6
    for c in got:
        assert inside(boxes[c.parent], c.params)
    parents = [c.parent for c in got]
    assert parents.count("a") > parents.count("b") >= 1


def test_boxes_shrink_as_the_budget_is_spent():
    plan = plan_of(trials=20, shrink=0.5, min_width=0.05)
    widths = []
    for i in range(20):
        widths.append(plan.width)
        (c,) = plan.ask(1)
        plan.tell([rec(f"f{i}", c.params, 5.0, stage=1)])  # worse than every anchor
    assert widths == sorted(widths, reverse=True)
    assert widths[0] == pytest.approx(0.5) and widths[-1] < 0.06
    assert plan.finished and plan.ask(1) == []


def test_a_better_trial_becomes_the_first_anchor_and_draws_the_next_proposals():
    plan = plan_of(trials=20)
    plan.ask(1)
    better = {"x": 0.9, "lr": 0.5, "opt": "adamw"}
    plan.tell([rec("new", better, 0.1, stage=1)])
    assert plan.anchors[0].trial_id == "new" and [s.trial_id for s in plan.anchors] == ["new", "a"]
    box = plan.describe()["boxes"][0]
    assert box["anchor"] == "new" and box["categories"]["opt"] == ["adamw"]
    nxt = plan.ask(3)
    assert nxt[0].parent == "new" and all(inside(box, c.params) for c in nxt
                                          if c.parent == "new")


def test_resumed_stage_counts_stored_records_against_the_budget():
    rule = AnchorRule(Metric("loss"), k=2, sources=[0], stage=1)
    plan = AdaptiveRefine(SPACE, 10, rule=rule, seed=0)
    stored = [rec(f"s{i}", {"x": 0.3 + 0.01 * i, "lr": 1e-2, "opt": "adam"}, 1.5, stage=1)
              for i in range(4)]
    plan.tell(coarse() + stored)
    plan.start()
    assert plan.used == 4
    assert len(plan.ask(100)) == 6 and plan.finished


def test_a_discrete_space_gets_no_duplicates_and_finishes_when_exhausted():
    space = Space({"n": RandInt(0, 3), "c": Choice(["a", "b"])})  # 8 configs
    rule = AnchorRule(Metric("loss"), k=2, sources=[0], stage=1)
    plan = AdaptiveRefine(space, 20, rule=rule, seed=1, shrink=0.25, min_width=0.05)
    plan.tell([rec("a", {"n": 1, "c": "a"}, 1.0), rec("b", {"n": 2, "c": "b"}, 2.0)])
    plan.start()
    assert plan.total == 8
    got = []
    while not plan.finished:
        batch = plan.ask(3)
        if not batch:
            break
        got += batch
    keys = [(c.params["n"], c.params["c"]) for c in got]
    assert len(keys) == len(set(keys)) == 6 and (1, "a") not in keys


def test_no_successful_coarse_trial_is_an_error():
    rule = AnchorRule(Metric("loss"), k=2, sources=[0], stage=1)
    plan = AdaptiveRefine(SPACE, 10, rule=rule)
    plan.tell([rec("d", {"x": 0.1, "lr": 1e-4, "opt": "sgd"}, None, status="failed")])
    with pytest.raises(SweepError, match="nothing to refine"):
        plan.start()


def test_given_anchors_and_narrow_categories():
    rule = AnchorRule(Metric("loss"), k=2, sources=[0], stage=1)
    anchors = [Anchor("p", {"x": 0.5, "lr": 1e-2, "opt": "sgd"}),
             Anchor("q", {"x": 0.4, "lr": 1e-2, "opt": "adamw"})]
    plan = AdaptiveRefine(SPACE, 8, rule=rule, anchors=anchors, categorical="narrow")
    plan.start()
    assert [s.trial_id for s in plan.anchors] == ["p", "q"]
    assert plan.describe()["boxes"][0]["categories"]["opt"] == ["sgd", "adamw"]
    assert {c.params["opt"] for c in plan.ask(8)} <= {"sgd", "adamw"}


def test_bad_arguments():
    rule = AnchorRule(Metric("loss"), k=2, sources=[0], stage=1)
    with pytest.raises(ValueError, match="categorical"):
        AdaptiveRefine(SPACE, 8, rule=rule, categorical="any")
    with pytest.raises(ValueError, match="min_width"):
        AdaptiveRefine(SPACE, 8, rule=rule, shrink=0.1, min_width=0.2)


def drive(plan, fn, concurrency=1):
    return plan_loop.drive(plan, lambda i, p: rec(f"f{i}", p, fn(p), stage=1), concurrency)


def quadratic(p):
    return (p["x"] - 0.37) ** 2 + (math.log10(p["lr"]) + 2.2) ** 2 / 10 + (p["opt"] != "adam")


@pytest.mark.parametrize("sample", ["thompson", "model", "random"])
def test_every_sampler_is_reproducible_and_improves_on_the_anchors(sample):
    runs = []
    for _ in range(2):
        plan = plan_of(trials=16, sample=sample)
        runs.append(drive(plan, quadratic, concurrency=4))
    assert [r.params for r in runs[0]] == [r.params for r in runs[1]]
    assert len(runs[0]) == 16
    assert min(r.metrics["loss"] for r in runs[0]) < quadratic(coarse()[0].params)


def test_a_batch_asked_at_once_is_distinct_and_inside_the_boxes():
    plan = plan_of(trials=16)
    boxes = {b["anchor"]: b for b in plan.describe()["boxes"]}
    batch = plan.ask(8)
    assert len(batch) == 8
    assert len({(c.params["x"], c.params["lr"]) for c in batch}) == 8
    assert all(inside(boxes[c.parent], c.params) for c in batch)
    assert plan.progress == 0.0  # nothing is back yet: the boxes keep their width


@pytest.mark.parametrize("sample", ["thompson", "model"])
def test_ask_many_makes_a_batch_shared_by_rank_distinct_and_inside_the_boxes(sample):
    plan = plan_of(trials=16, sample=sample)
    boxes = {b["anchor"]: b for b in plan.describe()["boxes"]}
    batch = plan.ask_many(9)
    assert len(batch) == 9 and plan.used == 9
    assert len({(c.params["x"], c.params["lr"]) for c in batch}) == 9
    assert all(inside(boxes[c.parent], c.params) for c in batch)
    # Shares by rank (1 : 1/2): the best anchor gets 6 of 9, as one at a time.
    assert [c.parent for c in batch].count("a") == 6
    assert len(plan.ask_many(20)) == 7 and plan.finished


def test_unknown_sampler():
    rule = AnchorRule(Metric("loss"), k=2, sources=[0], stage=1)
    with pytest.raises(ValueError, match="sample"):
        AdaptiveRefine(SPACE, 8, rule=rule, sample="grid")


@pytest.mark.parametrize("sample", ["random", "thompson"])
def test_an_exhausted_discrete_space_never_proposes_a_zero_weight_value(sample):
    from sweep.space import Bernoulli

    space = Space({"opt": Choice(["sgd", "adam", "bad"], weights=[1, 1, 0]),
                   "n": RandInt(1, 2), "flag": Bernoulli(0.0)})
    rule = AnchorRule(Metric("loss"), 1, [0], 1)
    plan = AdaptiveRefine(space, 10, rule=rule, seed=0, sample=sample)
    plan.tell([rec("a", {"opt": "sgd", "n": 1, "flag": False}, 1.0)])
    plan.start()
    assert plan.total == 4  # the configs with a positive prior
    proposed = [c.params for c in plan.ask(10)]
    assert len(proposed) == 3 and plan.finished  # the anchor's own config is not repeated
    assert all(p["opt"] != "bad" and p["flag"] is False for p in proposed)


def test_a_long_integer_axis_is_searched_without_enumerating_it():
    from sweep.space import LogRandInt

    space = Space({"n": LogRandInt(1, 20000)})
    plan = AdaptiveRefine(space, 200, rule=AnchorRule(Metric("loss"), 1, [0], 1), seed=0,
                          sample="random")
    plan.tell([rec(f"c{v}", {"n": v}, float(v)) for v in (1, 300, 5000)])
    plan.start()
    seen = []
    for i in range(200):  # the best anchor sits at the axis' edge (n=1): boxes run dry
        (c,) = plan.ask(1)
        seen.append(c.params["n"])
        plan.tell([rec(f"f{i}", c.params, float(c.params["n"]), stage=1)])
    assert len(set(seen)) == 200 and plan.finished


def test_a_told_config_with_a_non_numeric_value_is_not_an_anchor():
    plan = plan_of()
    plan.tell([rec("z", {"x": "auto", "lr": 1e-2, "opt": "adam"}, 0.0)])
    assert "z" not in [a.trial_id for a in plan.anchors]
    assert len(plan.ask(4)) == 4
