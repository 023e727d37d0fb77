"""Unit tests for sweep.plans.fixed (grid order and indexing, seeded random / Sobol / Latin
hypercube plans, sampling without replacement) and for trial ids.

No Ray. Every random check runs on a fixed seed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import sweep
from sweep.plans import Grid, LatinHypercubePlan, RandomPlan, SobolPlan, make_rng, sampler
from sweep.space import Space
from sweep.worker.trial_ids import trial_id

ROOT = Path(__file__).resolve().parents[1]


def small_space() -> Space:
    return Space({
        "opt": sweep.choice(["sgd", "adam", "rmsprop"]),
        "layers": sweep.randint(1, 2),
        "lr": sweep.loguniform(1e-4, 1),
        "epochs": sweep.constant(5),
    })


def mixed_space() -> Space:
    return Space({
        "lr": sweep.loguniform(1e-5, 1e-1),
        "dropout": sweep.uniform(0.0, 0.5),
        "layers": sweep.randint(1, 8),
        "width": sweep.lograndint(16, 1024),
        "opt": sweep.choice(["sgd", "adam", "adamw"], [1, 2, 1]),
        "wd": sweep.normal(0.0, 1.0),
        "step": sweep.quniform(0, 1, 0.1),
        "bias": sweep.bernoulli(0.3),
        "epochs": sweep.constant(3),
    })


# ------------------------------------------------------------------ grid


def test_grid_order_matches_parameter_grid():
    # scikit-learn's ParameterGrid: names sorted, the last name varies fastest
    grid = Grid(small_space(), points={"lr": 2})
    expected = [
        {"epochs": 5, "layers": layers, "lr": lr, "opt": opt}
        for layers, lr, opt in itertools.product([1, 2], [1e-4, 1.0], ["sgd", "adam", "rmsprop"])
    ]
    assert len(grid) == 12
    assert list(grid) == expected
    assert [list(c) for c in grid] == [["epochs", "layers", "lr", "opt"]] * 12


def test_grid_index_equals_iteration():
    grid = Grid(small_space(), points=3)
    materialised = list(grid)
    assert len(materialised) == len(grid) == 2 * 3 * 3
    for i in range(len(grid)):
        assert grid[i] == materialised[i]
        assert grid[i - len(grid)] == materialised[i]  # negative indices
    assert grid[-1] == materialised[-1] == {"epochs": 5, "layers": 2, "lr": 1.0, "opt": "rmsprop"}
    assert grid[np.int64(4)] == materialised[4]
    for bad in (len(grid), -len(grid) - 1, 10**20):
        with pytest.raises(IndexError):
            grid[bad]
    with pytest.raises(TypeError):
        grid[1.0]
    with pytest.raises(TypeError):
        grid["0"]


def test_grid_of_a_trillion_points_is_lazy():
    space = Space({name: sweep.randint(0, 999) for name in "abcd"})
    grid = Grid(space)
    assert len(grid) == 10**12
    assert grid[10**12 - 1] == {"a": 999, "b": 999, "c": 999, "d": 999}
    assert grid[-(10**12)] == {"a": 0, "b": 0, "c": 0, "d": 0}
    assert grid[123_456_789_012] == {"a": 123, "b": 456, "c": 789, "d": 12}
    with pytest.raises(IndexError):
        grid[10**12]
    first = list(itertools.islice(grid, 3))
    assert [c["d"] for c in first] == [0, 1, 2]


def test_grid_points_evenly_spaced_in_unit_space():
    space = Space({"lr": sweep.loguniform(1e-4, 1), "width": sweep.lograndint(8, 512),
                   "drop": sweep.uniform(0, 0.5)})
    grid = Grid(space, points={"lr": 5, "width": 3, "drop": 3})
    axes = dict(grid.axes)
    assert axes["lr"] == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert axes["width"] == [8, 64, 512]
    assert axes["drop"] == [0.0, 0.25, 0.5]
    assert len(grid) == 45


def test_grid_drops_duplicate_axis_values():
    space = Space({"a": sweep.randint(1, 3), "b": sweep.choice([1, True, 1.0, "x"])})
    grid = Grid(space, values={"a": [1, 1, 2, 2, 1]}, points={"a": 5})
    assert dict(grid.axes)["a"] == [1, 2]
    assert dict(grid.axes)["b"] == [1, True, 1.0, "x"]  # 1, True and 1.0 are distinct
    assert len(grid) == 8
    # more points than integers: each integer once
    assert dict(Grid(Space({"a": sweep.randint(1, 3)}), points=10).axes)["a"] == [1, 2, 3]


def test_grid_values_may_be_lists():
    grid = Grid(Space({"layers": sweep.choice([1, 2])}),
                values={"layers": [[64, 64], [128], [64, 64]]})
    assert list(grid) == [{"layers": [64, 64]}, {"layers": [128]}]


def test_grid_needs_points_for_continuous_axes():
    with pytest.raises(ValueError, match=r"parameters\.lr"):
        Grid(Space({"lr": sweep.loguniform(1e-4, 1)}))


def test_grid_keeps_every_category_whatever_the_points():
    space = Space({"opt": sweep.choice(["a", "b", "c", "d", "e"], [5, 1, 1, 1, 1]),
                   "x": sweep.uniform(0, 1)})
    grid = Grid(space, points=2)
    assert dict(grid.axes)["opt"] == ["a", "b", "c", "d", "e"]
    assert len(grid) == 10


# ------------------------------------------------------------------ random


def configs_json(plan) -> str:
    return json.dumps(list(plan), sort_keys=True)


def test_random_plan_same_seed_same_configs():
    a = list(RandomPlan(mixed_space(), n=50, seed=3))
    b = list(RandomPlan(mixed_space(), n=50, seed=3))
    assert a == b
    assert len(a) == 50
    assert list(RandomPlan(mixed_space(), n=50, seed=(3, 1))) == list(
        RandomPlan(mixed_space(), n=50, seed=(3, 1)))


def test_random_plan_different_seed_different_configs():
    a = list(RandomPlan(mixed_space(), n=20, seed=3))
    b = list(RandomPlan(mixed_space(), n=20, seed=4))
    c = list(RandomPlan(mixed_space(), n=20, seed=(3, 1)))
    assert a != b and a != c
    assert not {json.dumps(x, sort_keys=True) for x in a} & {json.dumps(x, sort_keys=True)
                                                             for x in b}


def test_random_plan_is_a_prefix_of_a_longer_plan():
    # chunks are drawn in order: n=10 is the head of n=3000 (chunk boundary at 1024)
    short = list(RandomPlan(mixed_space(), n=10, seed=8))
    long = list(RandomPlan(mixed_space(), n=3000, seed=8))
    assert long[:10] == short
    assert len({json.dumps(c, sort_keys=True) for c in long}) == 3000


def test_plans_reproducible_across_processes():
    code = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, "tests")
        from test_plans import mixed_space
        from sweep.plans import RandomPlan, SobolPlan, LatinHypercubePlan, make_rng
        out = {
            "random": list(RandomPlan(mixed_space(), n=40, seed=(7, 2))),
            "sobol": list(SobolPlan(mixed_space(), n=16, seed=5)),
            "lhs": list(LatinHypercubePlan(mixed_space(), n=16, seed=5)),
            "rng": make_rng((0, 1)).random(3).tolist(),
        }
        import sweep.spec.sweep_file
        out["ray"] = "ray" in sys.modules  # space, plans and spec import no Ray
        print(json.dumps(out, sort_keys=True))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    theirs = json.loads(proc.stdout)
    assert theirs.pop("ray") is False
    ours = json.loads(json.dumps({
        "random": list(RandomPlan(mixed_space(), n=40, seed=(7, 2))),
        "sobol": list(SobolPlan(mixed_space(), n=16, seed=5)),
        "lhs": list(LatinHypercubePlan(mixed_space(), n=16, seed=5)),
        "rng": make_rng((0, 1)).random(3).tolist(),
    }, sort_keys=True))
    assert theirs == ours
    assert len(theirs["random"]) == 40


def test_random_discrete_space_without_replacement():
    space = Space({"a": sweep.randint(1, 4), "b": sweep.choice(["x", "y", "z"]),
                   "c": sweep.constant(0)})
    assert space.cardinality() == 12
    for n in (1, 5, 12):
        configs = list(RandomPlan(space, n=n, seed=n))
        keys = [(c["a"], c["b"]) for c in configs]
        assert len(keys) == n == len(set(keys))
        assert all(c["c"] == 0 for c in configs)
    every = {(c["a"], c["b"]) for c in RandomPlan(space, n=12, seed=0)}
    assert every == set(itertools.product([1, 2, 3, 4], ["x", "y", "z"]))


def test_random_discrete_space_smaller_than_n_warns_and_runs_each_once():
    space = Space({"a": sweep.randint(1, 4), "b": sweep.choice(["x", "y", "z"])})
    with pytest.warns(UserWarning, match="only 12 combinations"):
        plan = RandomPlan(space, n=100, seed=0)
    assert len(plan) == 12
    keys = [(c["a"], c["b"]) for c in plan]
    assert sorted(keys) == sorted(itertools.product([1, 2, 3, 4], ["x", "y", "z"]))


def test_zero_weights_limit_the_combinations():
    # a zero weight rules its value out; asking for more used to crash in numpy
    space = Space({"c": sweep.choice(["a", "b", "c"], [1, 0, 0]), "k": sweep.randint(1, 2)})
    assert sorted((c["c"], c["k"]) for c in RandomPlan(space, n=2, seed=0)) == [
        ("a", 1), ("a", 2)]
    with pytest.warns(UserWarning, match="only 2 combinations"):
        plan = RandomPlan(space, n=5, seed=0)
    assert len(plan) == 2
    assert sorted((c["c"], c["k"]) for c in plan) == [("a", 1), ("a", 2)]


def test_random_no_warning_when_n_fits():
    space = Space({"a": sweep.randint(1, 4), "b": sweep.choice(["x", "y", "z"])})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(RandomPlan(space, n=12, seed=0))) == 12


def test_random_huge_discrete_space_still_distinct():
    space = Space({name: sweep.randint(0, 99) for name in "abcd"})  # 10**8 > enumerate limit
    configs = list(RandomPlan(space, n=3000, seed=1))
    assert len({tuple(c.values()) for c in configs}) == 3000
    assert configs == list(RandomPlan(space, n=3000, seed=1))


def test_weighted_sampling_without_replacement_follows_the_weights():
    # the first pick of a weighted draw without replacement has the prior's probabilities
    from scipy.stats import chisquare

    space = Space({"opt": sweep.choice(["a", "b", "c"], [0.6, 0.3, 0.1]),
                   "k": sweep.randint(1, 2)})
    firsts = [next(iter(RandomPlan(space, n=2, seed=s)))["opt"] for s in range(1500)]
    counts = [firsts.count(v) for v in "abc"]
    assert chisquare(counts, [900, 450, 150]).pvalue > 0.01


def test_space_without_dimensions_gives_one_config():
    space = Space({"a": sweep.constant(1), "b": sweep.constant("x")})
    with pytest.warns(UserWarning, match="only 1 combinations"):
        assert list(RandomPlan(space, n=5, seed=0)) == [{"a": 1, "b": "x"}]
    assert list(Grid(space)) == [{"a": 1, "b": "x"}]


# ------------------------------------------------------------------ quasi-random


def in_bounds(config) -> bool:
    return (1e-5 <= config["lr"] <= 1e-1 and 0.0 <= config["dropout"] <= 0.5
            and 1 <= config["layers"] <= 8 and 16 <= config["width"] <= 1024
            and config["opt"] in ("sgd", "adam", "adamw") and math.isfinite(config["wd"])
            and 0.0 <= config["step"] <= 1.0 and config["bias"] in (False, True)
            and config["epochs"] == 3)


@pytest.mark.parametrize("cls", [SobolPlan, LatinHypercubePlan, RandomPlan])
def test_unit_plans_reproducible_and_in_bounds(cls):
    a = list(cls(mixed_space(), n=64, seed=9))
    assert a == list(cls(mixed_space(), n=64, seed=9))
    assert a != list(cls(mixed_space(), n=64, seed=10))
    assert len(a) == 64
    assert all(in_bounds(c) for c in a)


def continuous_space() -> Space:
    return Space({"x": sweep.uniform(-5, 5), "lr": sweep.loguniform(1e-4, 1),
                  "z": sweep.uniform(0, 1)})


@pytest.mark.parametrize("n", [7, 50, 200])
def test_latin_hypercube_one_point_per_slice(n):
    space = continuous_space()
    units = np.array([space.to_unit(c) for c in LatinHypercubePlan(space, n=n, seed=1)])
    assert units.shape == (n, 3)
    for axis in range(3):
        slices = np.floor(units[:, axis] * n).astype(int)
        assert sorted(slices.tolist()) == list(range(n))


def test_random_plan_is_not_a_latin_hypercube():
    # the slice check above can fail: plain random points miss some slices
    space = continuous_space()
    units = np.array([space.to_unit(c) for c in RandomPlan(space, n=50, seed=1)])
    assert len(set(np.floor(units[:, 0] * 50).astype(int).tolist())) < 50


def test_sobol_balance_with_a_power_of_two():
    space = continuous_space()
    units = np.array([space.to_unit(c) for c in SobolPlan(space, n=64, seed=2)])
    for axis in range(3):
        assert sorted(np.floor(units[:, axis] * 64).astype(int).tolist()) == list(range(64))


def test_sobol_does_not_warn_for_odd_n():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(SobolPlan(continuous_space(), n=10, seed=0))) == 10


def test_sampler_names():
    space = continuous_space()
    assert isinstance(sampler(space, "random", 4, 0), RandomPlan)
    assert isinstance(sampler(space, "sobol", 4, 0), SobolPlan)
    assert isinstance(sampler(space, "lhs", 4, 0), LatinHypercubePlan)
    assert isinstance(sampler(space, "grid", 4, 0, points=2), Grid)
    with pytest.raises(ValueError, match="unknown plan"):
        sampler(space, "bayes", 4, 0)


# ------------------------------------------------------------------ trial ids


def test_trial_id_ignores_key_order():
    assert trial_id("demo", 0, {"a": 1, "b": "x"}) == trial_id("demo", 0, {"b": "x", "a": 1})


def test_trial_id_depends_on_stage_sweep_and_values():
    base = trial_id("demo", 0, {"lr": 0.1})
    assert trial_id("demo", 1, {"lr": 0.1}) != base
    assert trial_id("other", 0, {"lr": 0.1}) != base
    assert trial_id("demo", 0, {"lr": 0.1000000001}) != base
    assert trial_id("demo", 0, {"lr": 0.2}) != base
    assert trial_id("demo", 0, {"lr": 0.1, "x": None}) != base
    assert trial_id("demo", 0, {"k": 1}) != trial_id("demo", 0, {"k": True})
    # numpy scalars from a plan hash like the Python numbers they hold
    assert trial_id("demo", 0, {"lr": np.float64(0.1)}) == base
    assert trial_id("demo", 0, {"k": np.int64(3)}) == trial_id("demo", 0, {"k": 3})
    assert trial_id("demo", np.int64(0), {"lr": 0.1}) == base


def test_trial_id_is_pinned():
    # Computed once and written here: a change of hashing or of the canonical JSON
    # would silently re-run every finished trial of a resumed sweep.
    config = {"lr": 0.001, "opt": "adam", "layers": 3, "model.dropout": 0.25, "bias": True,
              "name": "ü", "none": None}
    assert trial_id("demo", 1, config) == "3eee3ef1ddb5973b"
    canonical = ('{"params":{"bias":true,"layers":3,"lr":0.001,"model.dropout":0.25,'
                 '"name":"ü","none":null,"opt":"adam"},"stage":1,"sweep":"demo"}')
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16] == "3eee3ef1ddb5973b"
    assert trial_id("demo", 0, {"lr": 0.1, "opt": "adam"}) == "8bf0b5019eb95080"


def test_ids_of_a_plan_are_distinct_and_stable():
    ids = [trial_id("s", 0, c) for c in RandomPlan(mixed_space(), n=200, seed=0)]
    assert len(set(ids)) == 200
    assert ids == [trial_id("s", 0, c) for c in RandomPlan(mixed_space(), n=200, seed=0)]
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def test_one_registry_names_every_stage_plan_and_builds_it_from_the_stage():
    from sweep.engine.planning import make_plan
    from sweep.plans import REGISTRY, AdaptiveRefine, Bayes, Plan, Refine, plan_class, register
    from sweep.spec.stages import PLANS
    from sweep.spec.sweep_file import load_spec

    assert set(REGISTRY) == set(PLANS)
    stages = [{"plan": "grid", "points": 2}, {"plan": "random", "trials": 4},
              {"plan": "sobol", "trials": 4}, {"plan": "lhs", "trials": 4},
              {"plan": "bayes", "trials": 4}, {"plan": "refine", "trials": 4, "region": "hull"},
              {"plan": "refine", "trials": 4}]
    spec = load_spec({"name": "registry", "metric": {"name": "acc", "goal": "maximize"},
                      "parameters": {"x": sweep.uniform(0, 1)}, "stages": stages})
    plans = [make_plan(spec, s) for s in spec.stages]
    assert [type(p) for p in plans] == [Grid, RandomPlan, SobolPlan, LatinHypercubePlan, Bayes,
                                        Refine, AdaptiveRefine]
    assert len(plans[0]) == 2 and plans[1].total == 4
    assert plans[4].metric.goal == "maximize" and plans[5].rule.metric.goal == "maximize"
    assert plans[5].rule.sources == [4] and plans[6].rule.k == 1
    with pytest.raises(ValueError, match="unknown plan 'tpe': expected one of grid, random"):
        plan_class("tpe")

    @register
    class Corners(Plan):
        name = "corners-of-a-test"

    try:
        assert plan_class("corners-of-a-test") is Corners
    finally:
        del REGISTRY["corners-of-a-test"]


# ----------------------------------------------- long discrete axes (issue 25, 13)


def _peak_bytes(fn) -> int:
    import tracemalloc

    fn()  # imports and caches first: the measured run is the plan's own memory
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["random", "sobol", "lhs", "bayes", "each", "adaptive"])
def test_no_plan_holds_memory_per_value_of_a_long_integer_range(kind):
    """Issue 25 item 13: in an all-discrete space a plan held 8 bytes per integer of a
    range (a W&B-style ``seed: 0..2**31-1`` raised MemoryError under a 4 GB cap). Every
    plan's memory is the same for any range: bounded here, far below one list of it."""
    from sweep.core.metric import Metric
    from sweep.core.records import TrialRecord
    from sweep.plans import AdaptiveRefine, Anchor, AnchorRule, Bayes, Refine, distinct_sample

    space = Space({"seed": sweep.randint(0, 2**31 - 1), "opt": sweep.choice(["a", "b"])})

    def run():
        if kind in ("random", "sobol", "lhs"):
            configs = list(sampler(space, kind, 16, seed=0))
            assert len(list(distinct_sample(space, kind, 16, (0, 1)))) == 16
        elif kind == "bayes":
            plan = Bayes(space, trials=8, seed=0, metric="loss", n_initial=4)
            configs = [c.params for c in plan.ask(4)]
            plan.tell([TrialRecord(trial_id=str(i), stage=0, params=c,
                                   metrics={"loss": c["seed"] / 2**31})
                       for i, c in enumerate(configs)])
            configs += [c.params for c in plan.ask(2)]
        elif kind == "each":
            plan = Refine(space, [Anchor("t", {"seed": 12345, "opt": "a"})], trials=8,
                          region="each", seed=0)
            configs = [c.params for c in plan.candidates()]
        else:
            plan = AdaptiveRefine(space, 8, rule=AnchorRule(Metric("loss"), 2, [0], 1),
                                  seed=0)
            plan.tell([TrialRecord(trial_id=str(i), stage=0, params=c,
                                   metrics={"loss": c["seed"] / 2**31})
                       for i, c in enumerate(sampler(space, "sobol", 6, seed=1))])
            plan.start()
            configs = [c.params for c in plan.ask(8)]
        assert len({(c["seed"], c["opt"]) for c in configs}) == len(configs) > 0

    assert _peak_bytes(run) < 8_000_000  # 2**31 values at 8 bytes would be 17 GB


def test_a_random_plan_over_a_long_axis_of_a_small_space_runs():
    """A space small enough to draw without replacement from its enumeration, with an
    axis longer than a grid lists (a grid needs `points` above 10,000): it used to fail
    with the grid's error."""
    space = Space({"x": sweep.randint(0, 499_999)})
    configs = list(RandomPlan(space, n=50, seed=0))
    assert len({c["x"] for c in configs}) == 50
    assert configs == list(RandomPlan(space, n=50, seed=0))
    assert len(Grid.every_config(space)) == 500_000


# ----------------------------------------------- raised budgets (issue 25, 17)


SPACES = {
    "continuous": lambda: Space({"x": sweep.uniform(0, 1), "lr": sweep.loguniform(1e-4, 1)}),
    "mixed": mixed_space,
    "small discrete": lambda: Space({"a": sweep.randint(1, 9), "b": sweep.choice(list("xyz"))}),
    "large discrete": lambda: Space({k: sweep.randint(0, 999) for k in "abc"}),
}


@pytest.mark.parametrize("space_name", list(SPACES))
def test_every_fixed_plan_that_says_it_extends_does(space_name):
    """Issue 25 item 17: a raised budget redrew an lhs and an all-discrete random stage
    (8 -> 12 held 20 and 18 trials of two designs). Each fixed plan says whether a larger
    budget extends its design (``extension_problem``); every one that says so must give
    its smaller design first, in every kind of space. Those that cannot are refused on
    resume (tests/test_spec.py), so no plan mixes two designs."""
    from sweep.plans import REGISTRY, FixedPlan
    from sweep.spec.stages import parse_stages

    space = SPACES[space_name]()
    fixed = [name for name, cls in REGISTRY.items() if issubclass(cls, FixedPlan)]
    assert {"grid", "random", "sobol", "lhs"} <= set(fixed)
    extend = {}
    for name in fixed:
        raw = {"plan": name, "trials": 12, "seed": 5}
        if name == "grid":
            raw = {"plan": "grid", "points": 4}
        stage = parse_stages([raw], space, seed=0, points={})[0]
        extend[name] = REGISTRY[name].extension_problem(stage, space) is None
        if not extend[name]:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for small, large in ((1, 12), (8, 12), (12, 1100)):
                head = list(sampler(space, name, small, seed=5, points=4))
                longer = list(sampler(space, name, large, seed=5, points=4))
                assert longer[:len(head)] == head, (name, small, large)
    assert not extend["lhs"]
    assert extend["sobol"] and extend["grid"]
    assert extend["random"] == (space_name != "small discrete")
