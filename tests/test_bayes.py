"""The bayes plan (sweep.plans.bayes): proposals inside every prior, reproducibility, trials in
flight, budget and resume, failures, and that it learns. No Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweep.core.records import TrialRecord
from sweep.plans import RandomPlan
from sweep.plans.bayes import Bayes
from sweep.space import (
    Bernoulli,
    Choice,
    Constant,
    LogNormal,
    LogRandInt,
    LogUniform,
    Normal,
    QLogUniform,
    QUniform,
    RandInt,
    Space,
    Uniform,
    value_key,
)
from tests import plan_loop

EVERY_PRIOR = Space({
    "u": Uniform(-1.0, 3.0),
    "lr": LogUniform(1e-5, 1e-1),
    "q": QUniform(0.0, 1.0, 0.25),
    "ql": QLogUniform(1, 1024, 1),
    "n": RandInt(2, 9),
    "h": LogRandInt(8, 512),
    "z": Normal(0.0, 2.0),
    "ln": LogNormal(-3.0, 1.0),
    "opt": Choice(["sgd", "adam", "adamw", "lamb"], weights=[2.0, 1.0, 1.0, 0.0]),
    "flag": Bernoulli(0.3),
    "epochs": Constant(7),
    "box": Uniform(0.0, 10.0).narrow(0.2, 0.4),
    "ibox": RandInt(0, 100).narrow(0.5, 0.6),
})


def rec(params, value, stage=0, status="ok", tid=None, metric="loss"):
    metrics = {} if value is None else {metric: value}
    return TrialRecord(sweep="t", stage=stage, trial_id=tid or f"{stage}-{sorted(params.items())}",
                       status=status, params=params, metrics=metrics)


def objective(p):
    """A smooth function of every axis of EVERY_PRIOR (minimum inside the space)."""
    v = (p["u"] - 1.0) ** 2 + (math.log10(p["lr"]) + 3.0) ** 2 + (p["q"] - 0.5) ** 2
    v += (math.log2(p["ql"]) - 5) ** 2 / 10 + (p["n"] - 4) ** 2 / 10 + abs(p["z"]) / 3
    v += (math.log2(p["h"]) - 6) ** 2 / 10 + 0.5 * (p["opt"] != "adam") + 0.2 * p["flag"]
    return v + (p["box"] - 3.0) ** 2 + (p["ibox"] - 55) ** 2 / 25


def run(plan, fn, concurrency=1, stage=0):
    """Drive a plan like the driver: ``concurrency`` trials in flight, oldest told first."""
    metric = plan.metric.name
    return plan_loop.drive(plan, lambda i, p: rec(p, fn(p), stage, tid=f"t{i}", metric=metric),
                           concurrency)


def inside(space, p):
    for name, dist in space.items():
        v = p[name]
        if not dist.is_dimension:
            assert v == dist.from_unit(0.5), name
        elif dist.cardinality is not None and dist.cardinality <= 10_000:
            assert value_key(v) in {value_key(x) for x in dist.support()}, (name, v)
        else:
            assert dist.to_unit(v) == pytest.approx(dist.to_unit(dist.from_unit(dist.to_unit(v))))
        if dist.kind == "int":
            assert isinstance(v, int) and not isinstance(v, bool), (name, v)


def test_proposals_stay_inside_every_prior():
    plan = Bayes(EVERY_PRIOR, trials=30, seed=3, metric="loss", n_initial=6)
    done = run(plan, objective, concurrency=4)
    assert len(done) == 30 and plan.finished
    assert plan.describe()["phase"] == "model"
    for r in done:
        p = r.params
        inside(EVERY_PRIOR, p)
        assert -1.0 <= p["u"] <= 3.0 and 1e-5 <= p["lr"] <= 1e-1 and 1 <= p["ql"] <= 1024
        assert p["opt"] != "lamb"  # zero weight: never proposed
        assert isinstance(p["flag"], bool) and p["epochs"] == 7
        assert 2.0 <= p["box"] <= 4.0 and 50 <= p["ibox"] <= 60
        assert p["ln"] > 0


def test_sequential_runs_are_reproducible_for_a_seed():
    space = Space({"x": Uniform(0, 1), "lr": LogUniform(1e-4, 1), "c": Choice(["a", "b"])})

    def fn(p):
        return (p["x"] - 0.3) ** 2 + (math.log10(p["lr"]) + 2) ** 2 / 4 + (p["c"] == "a")

    runs = [[r.params for r in run(Bayes(space, 16, seed, metric="loss"), fn)]
            for seed in (5, 5, 6)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def observed(space, n, seed, fn):
    return [rec(c, fn(c), tid=f"s{i}") for i, c in enumerate(RandomPlan(space, n, seed))]


def test_trials_in_flight_get_distinct_spread_out_proposals():
    space = Space({f"x{i}": Uniform(0, 1) for i in range(3)})

    def fn(p):
        return sum((p[f"x{i}"] - 0.5) ** 2 for i in range(3))

    plan = Bayes(space, 40, 0, metric="loss", n_initial=5)
    plan.tell(observed(space, 12, 1, fn))
    plan.start()
    batch = plan.ask(8)
    assert len(batch) == 8 and plan.describe()["pending"] == 8
    points = np.array([space.to_unit(c.params) for c in batch])
    gaps = [np.linalg.norm(points[i] - points[j]) for i in range(8) for j in range(i)]
    assert min(gaps) > 1e-3  # a liar spreads them; without one they would coincide


def test_budget_and_finished():
    space = Space({"x": Uniform(0, 1)})
    plan = Bayes(space, 5, 0, metric="loss")
    assert not plan.finished and plan.total == 5
    got = plan.ask(3) + plan.ask(10)
    assert len(got) == 5 and plan.finished and plan.ask(4) == []


def test_resume_counts_stored_own_records_and_never_repeats_a_discrete_config():
    space = Space({"n": RandInt(0, 4), "c": Choice(["a", "b", "c"])})  # 15 configs
    stored = [rec({"c": c, "n": n}, n + (c == "b"), stage=2) for n in range(4) for c in "abc"]
    earlier = [rec({"c": "a", "n": 4}, 0.0, stage=1)]  # an earlier stage: not budget
    plan = Bayes(space, 14, 0, metric="loss", stage=2)
    plan.tell(earlier + stored[:10])
    plan.start()
    assert plan.used == 10 and not plan.finished
    first = plan.ask(10)
    assert len(first) == 4 and plan.finished  # 14 - 10 stored
    told = {(r.params["n"], r.params["c"]) for r in stored[:10] + earlier}
    assert not told & {(c.params["n"], c.params["c"]) for c in first}
    # Told records of what it proposed itself are not counted twice.
    plan.tell([rec(c.params, 1.0, stage=2) for c in first])
    assert plan.used == 14


def test_a_small_discrete_space_is_exhausted_without_duplicates():
    space = Space({"n": RandInt(0, 2), "f": Bernoulli(0.5)})  # 6 configs
    plan = Bayes(space, 20, 1, metric="loss", n_initial=2)
    assert plan.total == 6
    done = run(plan, lambda p: p["n"] + p["f"], concurrency=2)
    assert len({(r.params["n"], r.params["f"]) for r in done}) == len(done) == 6
    assert plan.finished


def test_failed_nan_and_missing_metrics_are_tolerated():
    space = Space({"x": Uniform(0, 1), "y": Uniform(0, 1)})
    plan = Bayes(space, 30, 0, metric="loss", n_initial=3)
    plan.start()
    values = [0.5, None, math.nan, math.inf, 0.2, -math.inf, 0.9]
    statuses = ["ok", "failed", "ok", "ok", "timeout", "ok", "stopped"]
    for i, (v, s) in enumerate(zip(values, statuses)):
        (c,) = plan.ask(1)
        plan.tell([rec(c.params, v, status=s, tid=f"t{i}")])
    plan.tell([rec({"x": 0.5}, 1.0, tid="partial"), rec({"x": "bad", "y": 2}, 1.0, tid="odd")])
    more = plan.ask(4)
    assert len(more) == 4 and plan.describe()["failed"] >= 4
    assert plan.describe()["incumbent"]["loss"] == 0.5  # timeout, inf, NaN: worst


def test_all_failed_still_proposes():
    space = Space({"x": Uniform(0, 1)})
    plan = Bayes(space, 12, 0, metric="loss", n_initial=2)
    run(plan, lambda p: None)
    assert plan.finished and plan.describe()["incumbent"] is None


def test_earlier_stages_are_observations_and_skip_the_initial_design():
    space = Space({"x": Uniform(0, 1), "y": Uniform(0, 1)})

    def fn(p):
        return (p["x"] - 0.7) ** 2 + (p["y"] - 0.2) ** 2

    coarse = [r._replace(stage=0) for r in observed(space, 16, 2, fn)]
    plan = Bayes(space, 8, 0, metric="loss", stage=1)
    plan.tell(coarse)
    plan.start()
    assert plan.describe()["phase"] == "model" and plan.describe()["history"] == 16
    picks = [run_one(plan, fn) for _ in range(6)]
    assert min(picks) < min(r.metrics["loss"] for r in coarse)
    alone = Bayes(space, 8, 0, metric="loss", stage=1, history="none")
    alone.tell(coarse)
    assert alone.describe()["phase"] == "initial design"


def run_one(plan, fn):
    (c,) = plan.ask(1)
    v = fn(c.params)
    plan.tell([rec(c.params, v, stage=plan.stage)])
    return v


def test_maximize_goal():
    space = Space({"x": Uniform(0, 1)})
    plan = Bayes(space, 14, 0, metric="acc", goal="maximize", n_initial=4)
    done = run(plan, lambda p: 1 - (p["x"] - 0.8) ** 2)
    best = max(done, key=lambda r: r.metrics["acc"])
    assert abs(best.params["x"] - 0.8) < 0.05


def test_space_of_constants_only():
    plan = Bayes(Space({"a": Constant(1)}), 5, 0, metric="loss")
    assert plan.total == 1
    assert [c.params for c in plan.ask(3)] == [{"a": 1}] and plan.finished


def test_learns_better_than_random_on_a_quadratic():
    space = Space({f"x{i}": Uniform(-2.0, 2.0) for i in range(4)})
    centre = [0.7, -1.1, 0.3, 1.4]

    def fn(p):
        return sum((p[f"x{i}"] - c) ** 2 for i, c in enumerate(centre))

    bayes, random = [], []
    for seed in range(3):
        bayes.append(min(r.metrics["loss"] for r in run(Bayes(space, 40, seed, metric="loss"),
                                                        fn)))
        random.append(min(fn(p) for p in RandomPlan(space, 40, seed)))
    # Fixed seeds: deterministic. Bayes gets within 0.05 of the minimum; 40 random points
    # in 4 dimensions rarely get within 0.5.
    assert max(bayes) < 0.05 < 0.5 < float(np.median(random))


def test_hyperparameters_are_refitted_as_the_data_grows_not_at_every_ask():
    space = Space({f"x{i}": Uniform(0, 1) for i in range(6)} | {"c": Choice(list("abcd"))})

    def fn(p):
        return sum((p[f"x{i}"] - 0.3) ** 2 for i in range(6)) + (p["c"] != "b")

    plan = Bayes(space, 400, 0, metric="loss")
    plan.tell(observed(space, 128, 3, fn))
    plan.start()
    counts = []
    for i in range(40):  # ask one, tell its result: what the driver does
        (c,) = plan.ask(1)
        counts.append(plan.describe()["optimisations"])
        plan.tell([rec(c.params, fn(c.params), tid=f"n{i}")])
    # Optimised for the first ask (128 observations), then each time the data had grown
    # by about a tenth (~142, ~157): not at each of the 40 asks (the per-ask cost is
    # printed by tests/bench/ask_cost.py).
    assert counts[0] == 1
    assert 2 <= counts[-1] <= 4


def test_bad_arguments():
    space = Space({"x": Uniform(0, 1)})
    with pytest.raises(ValueError, match="goal"):
        Bayes(space, 4, metric="loss", goal="up")
    with pytest.raises(ValueError, match="liar"):
        Bayes(space, 4, metric="loss", liar="sometimes")


def test_proposals_do_not_depend_on_the_budget():
    """A B-trial run proposes what the first B proposals of a longer run are (the
    quality benchmark relies on it)."""
    space = Space({"x": Uniform(0, 1), "n": RandInt(1, 50), "c": Choice(["a", "b"])})

    def fn(p):
        return (p["x"] - 0.2) ** 2 + (p["n"] - 17) ** 2 / 400 + (p["c"] == "b")

    short = [r.params for r in run(Bayes(space, 12, 4, metric="loss"), fn, concurrency=3)]
    long = [r.params for r in run(Bayes(space, 20, 4, metric="loss"), fn, concurrency=3)]
    assert short == long[:12]


@pytest.mark.parametrize("options", [{"history": "stage"}, {"history": "none"},
                                     {"liar": "worst"}, {"liar": "best"},
                                     {"transform": "copula"}, {"transform": "standard"},
                                     {"early_local": False}])
def test_options(options):
    space = Space({"x": Uniform(0, 1), "y": LogUniform(1e-3, 1)})

    def fn(p):
        return (p["x"] - 0.6) ** 2 + (math.log10(p["y"]) + 1) ** 2

    plan = Bayes(space, 8, 0, metric="loss", stage=1, n_initial=3, **options)
    plan.tell([r._replace(stage=0) for r in observed(space, 6, 1, fn)])
    done = run(plan, fn, concurrency=3, stage=1)
    assert len(done) == 8 and plan.finished
    with pytest.raises(ValueError):
        Bayes(space, 4, metric="loss", transform="log")


def test_below_its_cap_the_model_is_exact_and_proposals_do_not_depend_on_the_cap():
    space = Space({"x": Uniform(0, 1), "y": Uniform(0, 1), "c": Choice(["a", "b"])})

    def fn(p):
        return (p["x"] - 0.3) ** 2 + (p["y"] - 0.6) ** 2 + 0.2 * (p["c"] == "a")

    proposals = []
    for cap in (40, 10_000):
        plan = Bayes(space, 40, 0, metric="loss")
        plan.model.cap = cap
        proposals.append([r.params for r in run(plan, fn, concurrency=3)])
    assert proposals[0] == proposals[1]


def test_a_long_history_is_modelled_on_a_bounded_subset_and_still_searched():
    space = Space({f"x{i}": Uniform(0, 1) for i in range(4)})

    def fn(p):
        return sum((p[f"x{i}"] - 0.3) ** 2 for i in range(4))

    plan = Bayes(space, 100, 0, metric="loss", stage=1, sources=[0])
    plan.model.cap = 64
    plan.tell(observed(space, 600, 5, fn))
    plan.start()
    for i in range(6):
        (c,) = plan.ask(1)
        plan.tell([rec(c.params, fn(c.params), stage=1, tid=f"n{i}")])
    assert plan.model.n_observed == 606 and len(plan.model.gp.y) <= 64
    best_told = min(fn(r.params) for r in observed(space, 600, 5, fn))
    batch = plan.ask_many(8)
    assert len(batch) == 8 and plan.used == 6 + 8
    assert len({tuple(c.params.values()) for c in batch}) == 8
    assert min(fn(c.params) for c in batch) < 2 * best_told + 0.05


def test_ask_many_spreads_a_batch_from_one_fit_within_the_budget():
    space = Space({"x": Uniform(0, 1), "y": Uniform(0, 1)})

    def fn(p):
        return (p["x"] - 0.3) ** 2 + (p["y"] - 0.6) ** 2

    def nearest(candidates):
        xy = np.array([[c.params["x"], c.params["y"]] for c in candidates])
        gaps = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy))
        return gaps.min(axis=1)

    plans = []
    for _ in range(2):
        plans.append(Bayes(space, 30, 0, metric="loss", stage=1, sources=[0]))
        plans[-1].tell(observed(space, 20, 1, fn))
        plans[-1].start()
    plan = plans[0]
    before = plan.model.optimisations
    batch = plan.ask_many(12)
    assert len(batch) == 12 and plan.used == 12
    assert plan.model.optimisations - before <= 1  # one fit for the batch
    # Distinct, and spread by the pending picks at least as much as 12 asked one by one.
    assert nearest(batch).min() > 0
    assert np.median(nearest(batch)) >= np.median(nearest(plans[1].ask(12)))
    assert len(plan.ask_many(50)) == 18 and plan.finished  # the budget, exactly
