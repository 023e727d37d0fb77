"""Tests for sweep.spec: W&B sweep files load unchanged and give W&B's grids; every invalid
document raises SpecError (and nothing else) naming the path of the bad field.

The W&B files under tests/data/wandb/ follow the examples of W&B's documentation
("Define a sweep configuration", "Sweep configuration options").
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

import sweep
from sweep import SpecError
from sweep.plans import Grid, RandomPlan, sampler
from sweep.space import (
    Choice,
    Constant,
    LogNormal,
    LogUniform,
    Normal,
    QLogUniform,
    QUniform,
    RandInt,
    Uniform,
)
from sweep.spec.sweep_file import Spec, Stage, load_spec, loads_spec
from sweep.stopping import MedianRule

WANDB = Path(__file__).parent / "data" / "wandb"
# FUZZ_N=3000 for a longer hunt (about 10 minutes); the default keeps the file fast.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_N", 100)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FEW = settings(FUZZ, max_examples=25)


def stage_plan(spec: Spec, stage: Stage):
    """The plan the scheduler runs for a grid / random / sobol / lhs stage."""
    space = stage.space(spec.space)
    if stage.plan == "grid":
        grid = Grid(space, points=stage.axis_points, values=stage.values)
        n = min(len(grid), stage.trials) if stage.truncate and stage.trials else len(grid)
        return [grid[i] for i in range(n)]
    return sampler(space, stage.plan, stage.trials, stage.seed)


def load_quiet(path: Path) -> Spec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_spec(path)


# ------------------------------------------------------------------ W&B files


def test_wandb_grid_file_gives_wandb_grid():
    spec = load_spec(WANDB / "grid.yaml")
    assert spec.name == "grid-demo" and spec.program == "train.py"
    assert spec.command == ["${env}", "${interpreter}", "${program}", "${args}"]
    assert (spec.metric.name, spec.metric.goal) == ("validation_loss", "minimize")
    assert len(spec.stages) == 1 and spec.stages[0].plan == "grid"
    configs = stage_plan(spec, spec.stages[0])
    # W&B: parameters sorted by name, itertools.product, the last name varies fastest
    # (the file lists optimizer first; the order does not depend on it)
    expected = [
        (16, 5, "adam"), (16, 5, "sgd"), (16, 10, "adam"), (16, 10, "sgd"),
        (16, 15, "adam"), (16, 15, "sgd"),
        (32, 5, "adam"), (32, 5, "sgd"), (32, 10, "adam"), (32, 10, "sgd"),
        (32, 15, "adam"), (32, 15, "sgd"),
        (64, 5, "adam"), (64, 5, "sgd"), (64, 10, "adam"), (64, 10, "sgd"),
        (64, 15, "adam"), (64, 15, "sgd"),
    ]
    assert [(c["batch_size"], c["epochs"], c["optimizer"]) for c in configs] == expected
    assert all(c["learning_rate"] == 0.001 for c in configs)
    assert [list(c) for c in configs[:1]] == [["batch_size", "epochs", "learning_rate",
                                               "optimizer"]]


def test_wandb_nested_grid_file():
    spec = load_spec(WANDB / "nested_grid.yaml")
    configs = stage_plan(spec, spec.stages[0])
    expected = [
        (1, 0.9, "sgd"), (1, 0.9, "adam"), (1, 0.99, "sgd"), (1, 0.99, "adam"),
        (2, 0.9, "sgd"), (2, 0.9, "adam"), (2, 0.99, "sgd"), (2, 0.99, "adam"),
    ]
    got = [(c["batch_size"], c["optimizer.momentum"], c["optimizer.name"]) for c in configs]
    assert got == expected
    assert spec.nest(configs[1]) == {"batch_size": 1, "epochs": 3,
                                     "optimizer": {"momentum": 0.9, "name": "adam"}}


def test_wandb_random_file_distributions():
    spec = load_spec(WANDB / "random.yaml")
    space = spec.space
    assert space["epochs"] == RandInt(1, 20)  # both ints: int_uniform
    assert space["dropout"] == Uniform(0.0, 0.5)  # a float bound: uniform
    assert isinstance(space["dropout"].lo, (int, float))
    assert space["learning_rate"] == LogUniform(1e-5, 0.1)  # '1e-5' read as a number
    assert space["weight_decay"] == LogUniform(1e-6, 0.01)
    assert isinstance(space["batch_size"], QUniform) and space["batch_size"].kind == "int"
    assert (space["batch_size"].lo, space["batch_size"].hi, space["batch_size"].q) == (16, 256, 16)
    assert space["hidden"] == QLogUniform(32, 1024, 32)
    assert space["momentum"] == Normal(0.9, 0.02)
    assert space["noise"] == LogNormal(-2.0, 0.5)
    opt = space["optimizer"]
    assert isinstance(opt, Choice) and opt.values == ["adam", "sgd", "rmsprop"]
    assert opt.probabilities() == pytest.approx([0.5, 0.3, 0.2])
    assert space["model.layers"] == Choice([1, 2, 3])
    assert space["model.activation"] == Constant("relu")
    assert space["model.head.width"] == RandInt(8, 64)
    assert list(space) == sorted(space)
    assert spec.paths["model.head.width"] == ("model", "head", "width")
    assert spec.program == "train.py"
    assert spec.command == ["${env}", "${interpreter}", "${program}", "--data=/datasets/mnist",
                            "${args}"]
    assert (spec.metric.name, spec.metric.goal) == ("val_acc", "maximize")
    assert [(s.plan, s.trials) for s in spec.stages] == [("random", 40)]


def test_wandb_random_file_configs():
    spec = load_spec(WANDB / "random.yaml")
    configs = list(stage_plan(spec, spec.stages[0]))
    assert len(configs) == 40
    assert configs == list(stage_plan(load_spec(WANDB / "random.yaml"), spec.stages[0]))
    for c in configs:
        assert 1 <= c["epochs"] <= 20 and type(c["epochs"]) is int
        assert 0 <= c["dropout"] <= 0.5
        assert 1e-5 <= c["learning_rate"] <= 0.1
        assert 1e-6 <= c["weight_decay"] <= 0.01
        assert c["batch_size"] % 16 == 0 and 16 <= c["batch_size"] <= 256
        assert c["hidden"] % 32 == 0 and 32 <= c["hidden"] <= 1024
        assert c["noise"] > 0 and math.isfinite(c["momentum"])
        assert c["optimizer"] in ("adam", "sgd", "rmsprop")
        nested = spec.nest(c)
        assert nested["model"] == {"layers": c["model.layers"], "activation": "relu",
                                   "head": {"width": c["model.head.width"]}}
        assert "model.layers" not in nested and nested["epochs"] == c["epochs"]


def test_wandb_probabilities_are_sampled():
    spec = load_spec(WANDB / "random.yaml")
    counts = Counter(c["optimizer"] for c in RandomPlan(spec.space, n=10_000, seed=21))
    observed = [counts[v] for v in ("adam", "sgd", "rmsprop")]
    assert chisquare(observed, [5000, 3000, 2000]).pvalue > 0.01
    assert chisquare(observed).pvalue < 0.01  # and they are not uniform


def test_wandb_deprecated_log_uniform_takes_exponents():
    with pytest.warns(UserWarning, match="natural-log exponents"):
        spec = load_spec(WANDB / "log_uniform.yaml")
    lr = spec.space["learning_rate"]
    assert isinstance(lr, LogUniform)
    assert lr.lo == pytest.approx(math.exp(-9.21034)) and lr.hi == pytest.approx(
        math.exp(-2.30259))
    assert lr.lo == pytest.approx(1e-4, rel=1e-4) and lr.hi == pytest.approx(0.1, rel=1e-4)
    values = [c["learning_rate"] for c in stage_plan(spec, spec.stages[0])]
    assert len(values) == 10 and all(lr.lo <= v <= lr.hi for v in values)


def test_wandb_inv_log_uniform_exponents():
    doc = yaml.safe_load((WANDB / "log_uniform.yaml").read_text())
    doc["parameters"]["learning_rate"] = {"distribution": "inv_log_uniform", "min": 1, "max": 3}
    with pytest.warns(UserWarning, match="natural-log exponents"):
        spec = load_spec(doc)
    lr = spec.space["learning_rate"]
    assert (lr.lo, lr.hi) == (pytest.approx(math.exp(-3)), pytest.approx(math.exp(-1)))


def test_wandb_bayes_file_is_one_bayes_stage():
    with pytest.warns(UserWarning, match="method: bayes without run_cap: running 32"):
        spec = load_spec(WANDB / "bayes.yaml")
    assert [(s.plan, s.trials) for s in spec.stages] == [("bayes", 32)]
    assert spec.metric.name == "validation_loss"
    doc = yaml.safe_load((WANDB / "bayes.yaml").read_text())
    del doc["metric"]
    with pytest.raises(SpecError) as info:
        load_spec(doc)
    assert info.value.path == "metric" and "stage 0 (bayes)" in str(info.value)


def test_wandb_random_without_run_cap_warns_and_picks_a_budget():
    doc = yaml.safe_load((WANDB / "random.yaml").read_text())
    del doc["run_cap"]
    with pytest.warns(UserWarning, match="run_cap"):
        spec = load_spec(doc)
    assert spec.stages[0].trials == 20


def test_wandb_grid_with_run_cap_runs_the_first_points():
    doc = yaml.safe_load((WANDB / "grid.yaml").read_text())
    doc["run_cap"] = 4
    with pytest.warns(UserWarning, match="run_cap 4 < grid of 18"):
        spec = load_spec(doc)
    configs = stage_plan(spec, spec.stages[0])
    assert [(c["batch_size"], c["epochs"], c["optimizer"]) for c in configs] == [
        (16, 5, "adam"), (16, 5, "sgd"), (16, 10, "adam"), (16, 10, "sgd")]


def test_yaml_11_numeric_strings_accepted_in_numeric_fields():
    text = """
name: strings
objective: jobs.mlp:train
metric: loss
run_cap: 1e1
seed: 1e0
timeout_s: 1e3
method: random
parameters:
  lr: {distribution: log_uniform_values, min: 1e-5, max: 1e-1}
  wd: {min: 1e-6, max: 1e-2}
  m: {distribution: normal, mu: 5e-1, sigma: 1e-2}
"""
    raw = yaml.safe_load(text)
    assert raw["parameters"]["lr"]["min"] == "1e-5"  # YAML 1.1: a string, not a float
    spec = loads_spec(text)
    assert spec.space["lr"] == LogUniform(1e-5, 0.1)
    assert spec.space["wd"] == Uniform(1e-6, 1e-2)
    assert spec.space["m"] == Normal(0.5, 0.01)
    assert spec.stages[0].trials == 10 and spec.seed == 1 and spec.timeout_s == 1000.0
    with pytest.raises(SpecError, match=r"parameters\.lr\.min"):
        loads_spec(text.replace("min: 1e-5", "min: 1e-5x"))


# ------------------------------------------------------------------ a valid base document

BASE_TEXT = """
name: demo
objective: jobs.mlp:train
metric: {name: val_error, goal: minimize}
seed: 3
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1}
  opt: {values: [sgd, adam], probabilities: [0.7, 0.3]}
  width: {distribution: lograndint, min: 8, max: 512}
  bs: {distribution: q_uniform, min: 16, max: 128, q: 16}
  m: {distribution: normal, mu: 0.9, sigma: 0.05}
  model:
    parameters:
      depth: {min: 1, max: 4}
      dropout: {min: 0.0, max: 0.5}
stages:
  - {plan: random, trials: 16}
  - {plan: refine, trials: 8, top_k: 2}
resources: {num_cpus: 1}
"""
BASE = yaml.safe_load(BASE_TEXT)


def test_base_document_is_valid():
    spec = loads_spec(BASE_TEXT)
    assert spec.space.dims == ["bs", "lr", "m", "model.depth", "model.dropout", "opt", "width"]
    assert [s.plan for s in spec.stages] == ["random", "refine"]
    assert spec.nest({"model.depth": 2, "lr": 0.1}) == {"model": {"depth": 2}, "lr": 0.1}
    assert load_spec(copy.deepcopy(BASE)).space == spec.space


def mutated(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """BASE with the value at a dotted path (``stages[1].top_k``) replaced or deleted."""
    doc = copy.deepcopy(BASE)
    keys: list[Any] = []
    for part in path.split("."):
        name, *indices = part.split("[")
        if name:
            keys.append(name)
        keys.extend(int(i.rstrip("]")) for i in indices)
    node = doc
    for key in keys[:-1]:
        node = node[key]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


def dumped(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


NAN, INF = float("nan"), float("inf")

# (field to change, new value, the path the SpecError must name)
TARGETED = [
    ("parameters.lr.min", "abc", "parameters.lr.min"),
    ("parameters.lr.min", NAN, "parameters.lr.min"),
    ("parameters.lr.max", INF, "parameters.lr.max"),
    ("parameters.lr.min", -INF, "parameters.lr.min"),
    ("parameters.lr.min", [1], "parameters.lr.min"),
    ("parameters.lr.min", True, "parameters.lr.min"),
    ("parameters.lr.min", 5, "parameters.lr.max"),  # min > max
    ("parameters.lr.min", 1, "parameters.lr.max"),  # min == max
    ("parameters.lr.min", 0, "parameters.lr.min"),  # a log axis needs lo > 0
    ("parameters.lr.min", -1e-3, "parameters.lr.min"),
    ("parameters.width.min", 0, "parameters.width.min"),
    ("parameters.width.min", 9.5, "parameters.width.min"),
    ("parameters.width.max", 4, "parameters.width.max"),
    ("parameters.model.parameters.depth.min", 10, "parameters.model.parameters.depth.max"),
    ("parameters.model.parameters.dropout.max", NAN, "parameters.model.parameters.dropout.max"),
    ("parameters.bs.q", 0, "parameters.bs.q"),
    ("parameters.bs.q", "x", "parameters.bs.q"),
    ("parameters.m.sigma", 0, "parameters.m.sigma"),
    ("parameters.m.mu", INF, "parameters.m.mu"),
    ("parameters.opt.values", [], "parameters.opt.values"),
    ("parameters.opt.values", "sgd", "parameters.opt.values"),
    ("parameters.opt.values", [{"a": float("nan")}, 2], "parameters.opt.values[0]"),
    ("parameters.opt.probabilities", [1.0], "parameters.opt.probabilities"),
    ("parameters.opt.probabilities", [-1, 2], "parameters.opt.probabilities"),
    ("parameters.opt.probabilities", [NAN, 1], "parameters.opt.probabilities[0]"),
    ("parameters.opt.distribution", "categorcal", "parameters.opt.distribution"),
    ("parameters.opt.distribution", "beta", "parameters.opt.distribution"),
    ("parameters.lr.mni", 1e-3, "parameters.lr.mni"),
    ("parameters.lr.q", 0.1, "parameters.lr.q"),
    ("parameters.lr", [1, 2], "parameters.lr"),
    ("parameters.lr", {}, "parameters.lr"),
    ("parameters.model.parameters", [], "parameters.model.parameters"),
    ("parameters.model.parameters.depth.points", 0, "parameters.model.parameters.depth.points"),
    ("parameters.bad name", {"value": 1}, "parameters.bad name"),
    ("parameters", [], "parameters"),
    ("parameters", {}, "parameters"),
    ("metric", 5, "metric"),
    ("metric.goal", "minimise", "metric.goal"),
    ("metric.name", "", "metric.name"),
    ("name", "", "name"),
    ("name", "two\nlines", "name"),
    ("name", 7, "name"),
    ("objective", "nocolon", "objective"),
    ("seed", -1, "seed"),
    ("seed", 1.5, "seed"),
    ("retries", "two", "retries"),
    ("timeout_s", 0, "timeout_s"),
    ("resources.num_gpus", -1, "resources.num_gpus"),
    ("resources.num_gpus", 1.5, "resources.num_gpus"),
    ("resources.num_cpu", 1, "resources.num_cpu"),
    ("stages", "random", "stages"),
    ("stages", [], "stages"),
    ("stages[0]", "random", "stages[0]"),
    ("stages[0].plan", "bayesian", "stages[0].plan"),
    ("stages[0].plan", "hyperband", "stages[0].plan"),
    ("stages[0].plan", "refine", "stages[0].plan"),
    ("stages[0].trials", 0, "stages[0].trials"),
    ("stages[0].trials", "many", "stages[0].trials"),
    ("stages[0].trials", 2.5, "stages[0].trials"),
    ("stages[0].top_k", 2, "stages[0].top_k"),
    ("stages[0].points", {"nope": 3}, "stages[0].points.nope"),
    ("stages[1].top_k", 0, "stages[1].top_k"),
    ("stages[1].shrink", 0, "stages[1].shrink"),
    ("stages[1].shrink", 2, "stages[1].shrink"),
    ("stages[1].region", "box", "stages[1].region"),
    ("stages[1].sample", "bayes", "stages[1].sample"),
    ("stages[1].trails", 3, "stages[1].trails"),
    ("stages[1].margin", -0.1, "stages[1].margin"),
    ("stages[1].margin", 0.1, "stages[1].margin"),  # no margin with region: adaptive
    ("stages[1].sample", "sobol", "stages[1].sample"),  # a fixed-box sampler
    ("stages[1].min_width", 0.5, "stages[1].min_width"),  # wider than shrink (0.3)
    ("method", "random", "method"),  # method beside stages
    ("run_cap", 10, "run_cap"),  # run_cap beside stages
    ("paramters", {}, "paramters"),
]


@pytest.mark.parametrize("field,value,path", TARGETED, ids=[f"{f}={v!r}" for f, v, _ in TARGETED])
def test_targeted_mutation_names_the_path(field, value, path):
    text = dumped(mutated(field, value))
    with pytest.raises(SpecError) as info:
        loads_spec(text)
    assert info.value.path == path
    assert str(info.value).startswith(path + ":")


@pytest.mark.parametrize("field", ["name", "metric", "parameters", "stages", "parameters.lr.min",
                                   "stages[0].plan", "stages[0].trials", "metric.name"])
def test_missing_required_field_names_it(field):
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(mutated(field, delete=True)))
    assert info.value.path == field


def test_duplicate_names_after_flattening():
    doc = copy.deepcopy(BASE)
    doc["parameters"]["model.depth"] = {"values": [1, 2]}
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(doc))
    assert "model.depth" in str(info.value) and "unique" in str(info.value)
    assert info.value.path in ("parameters.model.depth", "parameters.model.parameters.depth")


def test_a_key_given_twice_takes_its_last_value_with_a_warning_naming_both_lines():
    # Issue 25, item 7: W&B runs such files (PyYAML keeps the last value); refusing them
    # (round 1) broke real files. The warning names the key, both lines and the value used.
    text = ("name: dup\nobjective: m:f\nmetric: {name: loss}\nmethod: grid\n"
            "parameters:\n  lr: {values: [0.1, 0.2]}\n  x: {value: 1}\n"
            "  lr: {values: [0.3]}\nname: dup-last\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = loads_spec(text, source="w.yaml")
    assert spec.name == "dup-last" and spec.space["lr"].support() == [0.3]
    messages = sorted(str(w.message) for w in caught)
    assert ("w.yaml: 'lr' is given twice in parameters, at lines 6 and 8: the last is used "
            '({"values": [0.3]}), as PyYAML and W&B do') in messages
    assert ("w.yaml: 'name' is given twice, at lines 1 and 9: the last is used "
            '("dup-last"), as PyYAML and W&B do') in messages
    assert spec.space["lr"].support() == [yaml.safe_load(text)["parameters"]["lr"]["values"][0]]


def readme_differences() -> list[str]:
    """The rows of the README's table of differences (What differs, and why)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split("What differs, and why:", 1)[1].split("\n\n", 2)[1]
    return [line for line in table.splitlines() if line.startswith("|")][2:]


def test_q_uniform_weighs_every_value_alike_and_the_readme_says_how_wandb_differs():
    # Issue 25, item 9: W&B's engine rounds a uniform draw (its two end values get half
    # the weight); sweep keeps every value of min, min+q, ..., max equally likely, so
    # that stored sweeps draw the same points: a deliberate difference, documented.
    spec = loads_spec("name: q\nobjective: m:f\nmethod: random\nrun_cap: 1\nparameters:\n"
                      "  x: {distribution: q_uniform, min: 0, max: 4, q: 1}\n")
    dist = spec.space["x"]
    assert dist.support() == [0, 1, 2, 3, 4]
    assert dist.probabilities() == pytest.approx([0.2] * 5)
    rows = [r for r in readme_differences() if r.startswith("| `q_uniform` random draws")]
    assert rows and "half the weight" in rows[0] and "equally likely" in rows[0]


def test_grid_larger_than_the_stage_trials():
    doc = mutated("stages", [{"plan": "grid", "points": 3, "trials": 10}])
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(doc))
    assert info.value.path == "stages[0].trials"
    assert "grid" in str(info.value)
    # ... and fine with a budget that holds it: 3 points on each axis, both optimizers
    doc["stages"][0]["trials"] = 10**6
    spec = loads_spec(dumped(doc))
    assert len(Grid(spec.space, points=spec.stages[0].axis_points)) == 3**6 * 2


def test_grid_without_points_for_a_continuous_axis():
    doc = mutated("stages", [{"plan": "grid"}])
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(doc))
    assert info.value.path == "stages[0].points"
    assert "lr" in str(info.value)


@pytest.mark.parametrize("field,value,suggestion", [
    ("paramters", {}, "parameters"),
    ("stages[0].trails", 3, "trials"),
    ("parameters.lr.distrbution", "uniform", "distribution"),
    ("parameters.lr.distribution", "log_uniform_value", "log_uniform_values"),
    ("stages[0].plan", "randon", "random"),
    ("metric.gaol", "minimize", "goal"),
    ("resources.num_gpu", 1, "num_gpus"),
])
def test_unknown_key_gets_did_you_mean(field, value, suggestion):
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(mutated(field, value)))
    assert f"did you mean {suggestion!r}?" in str(info.value)


def test_early_terminate_is_read_once_into_fresh_rules_that_judge_by_the_metrics_goal():
    doc = copy.deepcopy(BASE)
    doc["metric"] = {"name": "acc", "goal": "maximize"}
    doc["early_terminate"] = {"type": "median", "min_samples": 1}
    spec = load_spec(doc)
    assert spec.early_terminate == {"type": "median", "min_samples": 1}  # kept as written
    first, second = spec.stopping_rule(), spec.stopping_rule()
    assert isinstance(first, MedianRule) and first is not second
    assert not first.should_stop("a", 1, 0.9)
    assert first.should_stop("b", 1, 0.1)  # higher is better: 0.1 is below the median 0.9
    assert second.fresh
    assert load_spec(copy.deepcopy(BASE)).stopping_rule() is None


def test_early_terminate_needs_a_metric_in_a_spec_built_by_hand_too():
    spec = load_spec(copy.deepcopy(BASE))
    spec.metric, spec.early_terminate = None, {"type": "median"}
    with pytest.raises(SpecError, match=r"^metric: expected .*early_terminate"):
        spec.stopping_rule()


def test_regressions_found_by_fuzzing():
    # an int too large for a float (OverflowError before)
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(mutated("parameters.lr.max", 10**400)))
    assert info.value.path == "parameters.lr.max"
    # non-string names under a stage's points / values (TypeError in difflib before)
    for key in ("points", "values"):
        doc = mutated("stages", [{"plan": "grid", key: {5: [1] if key == "values" else 1}}])
        with pytest.raises(SpecError) as info:
            loads_spec(dumped(doc))
        assert info.value.path == f"stages[0].{key}.5"


def test_grid_values_may_be_lists():
    # list values in a grid stage (unhashable: TypeError in the grid before)
    doc = mutated("parameters", {"layers": {"values": [1, 2]}, "lr": {"value": 0.1}})
    doc["stages"] = [{"plan": "grid", "values": {"layers": [[64], [64, 64], [64]]}}]
    spec = loads_spec(dumped(doc))
    assert stage_plan(spec, spec.stages[0]) == [{"layers": [64], "lr": 0.1},
                                                {"layers": [64, 64], "lr": 0.1}]


# ------------------------------------------------------------------ fuzzing

# names that pass PARAM_RE, for the targeted-mutation property
NAMES = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,8}\Z", fullmatch=True)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.integers(10**308, 10**400),  # ints too large for a float
    st.sampled_from(["grid", "random", "refine", "sobol", "lhs", "bayes", "min", "max",
                     "values", "1e-5", "nan", ".inf", "-1", "0", "", "jobs.mlp:train",
                     "log_uniform_values", "int_uniform", "q_uniform", "log_normal"]),
)
KEYS = st.one_of(st.text(max_size=10), st.sampled_from(
    ["name", "objective", "metric", "parameters", "stages", "method", "run_cap", "plan",
     "trials", "values", "value", "min", "max", "distribution", "q", "mu", "sigma",
     "probabilities", "points", "top_k", "fixed", "seed", "program", "command", "resources",
     "goal"]), st.integers(), st.booleans())
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(KEYS, children, max_size=6)),
    max_leaves=30,
)


def loads_only_specerror(text: str) -> Spec | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            spec = loads_spec(text)
        except SpecError:
            return None
        # a document that validates must also give configs for its first stage
        first = spec.stages[0]
        if first.plan == "grid":
            stage_plan(spec, first)[:3]
        else:
            list(itertools.islice(iter(stage_plan(spec, first)), 3))
        return spec


@FUZZ
@given(TREES)
def test_random_yaml_documents_raise_only_specerror(tree):
    loads_only_specerror(yaml.safe_dump(tree, allow_unicode=True))


@FUZZ
@given(st.text(max_size=200))
def test_random_text_raises_only_specerror(text):
    loads_only_specerror(text)


def paths_of(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths_of(v, (*prefix, i))
    return out


BASE_PATHS = paths_of(BASE)


@st.composite
def mutations_of_base(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(BASE_PATHS))
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        action = draw(st.sampled_from(["replace", "delete", "add", "wrap"]))
        if action == "replace":
            node[path[-1]] = draw(TREES)
        elif action == "delete":
            del node[path[-1]]
        elif action == "wrap":
            node[path[-1]] = [node[path[-1]]]
        elif isinstance(node[path[-1]], dict):
            node[path[-1]][draw(KEYS)] = draw(TREES)
        elif isinstance(node[path[-1]], list):
            node[path[-1]].append(draw(TREES))
    return doc


@FUZZ
@given(mutations_of_base())
def test_mutated_valid_file_raises_only_specerror(doc):
    loads_only_specerror(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.text(alphabet=":-[]{}#&*!|>'\"%@`, \n\t?abc01.", max_size=20), st.integers(0, 400))
def test_corrupted_valid_text_raises_only_specerror(junk, at):
    at = min(at, len(BASE_TEXT))
    loads_only_specerror(BASE_TEXT[:at] + junk + BASE_TEXT[at:])


BAD_BOUNDS = [
    ("min", "abc"), ("min", NAN), ("max", INF), ("min", -INF), ("min", [0]), ("min", {}),
    ("min", None), ("max", False),
]


@FUZZ
@given(
    NAMES,
    st.sampled_from(["uniform", "log_uniform_values", "int_uniform", "q_uniform",
                     "q_log_uniform_values", "log_int_uniform"]),
    st.one_of(
        st.sampled_from(BAD_BOUNDS).map(lambda kv: ("bad", *kv)),
        st.tuples(st.just("swap"), st.integers(1, 100), st.integers(0, 1)),
        st.tuples(st.just("nonpositive"), st.floats(-100, 0), st.just(None)),
        st.tuples(st.just("unknown"), st.sampled_from(["mn", "maxx", "mu", "stepq", "vals"]),
                  st.just(None)),
    ),
    st.booleans(),
)
def test_targeted_mutations_name_their_path(name, dist, mutation, nest):
    """Bad bounds, min > max, lo <= 0 on log axes, unknown keys: the message names
    parameters.<name>.<field> (under the nesting when the parameter is nested)."""
    log_axis = dist in ("log_uniform_values", "q_log_uniform_values", "log_int_uniform")
    param: dict[str, Any] = {"distribution": dist, "min": 1, "max": 64}
    kind, a, b = mutation
    if kind == "bad":
        param[a] = b
        field = a
    elif kind == "swap":  # min > max
        param["min"], param["max"] = a + 1, b
        field = "max"
    elif kind == "nonpositive":
        if not log_axis:
            return
        param["min"] = a
        field = "min"
    else:
        param[a] = 1
        field = a
    doc = copy.deepcopy(BASE)
    if nest:
        doc["parameters"]["outer"] = {"parameters": {name: param}}
        where = f"parameters.outer.parameters.{name}.{field}"
    else:
        doc["parameters"][name] = param
        where = f"parameters.{name}.{field}"
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(doc))
    assert info.value.path == where, str(info.value)
    assert where in str(info.value)


@FEW
@given(NAMES, st.integers(2, 6), st.integers(1, 4))
def test_grid_too_large_for_the_trials_names_the_stage(name, points, n_axes):
    doc = copy.deepcopy(BASE)
    doc["parameters"] = {f"{name}{i}": {"min": 0.0, "max": 1.0} for i in range(n_axes)}
    size = points**n_axes
    doc["stages"] = [{"plan": "random", "trials": 4},
                     {"plan": "grid", "points": points, "trials": size - 1}]
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(doc))
    assert info.value.path == "stages[1].trials"
    assert str(size) in str(info.value)
    doc["stages"][1]["trials"] = size
    spec = loads_spec(dumped(doc))
    assert len(stage_plan(spec, spec.stages[1])) == size


@FEW
@given(st.text(min_size=1, max_size=12).filter(
    lambda s: s not in ("grid", "random", "sobol", "lhs", "refine")))
def test_unknown_plan_names(plan):
    with pytest.raises(SpecError) as info:
        loads_spec(dumped(mutated("stages[0].plan", plan)))
    assert info.value.path == "stages[0].plan"


def test_top_level_api():
    assert sweep.SpecError is SpecError
    assert sweep.load_spec is load_spec


def test_wandb_file_without_a_name_takes_the_file_name(tmp_path):
    path = tmp_path / "my sweep.yaml"
    path.write_text("method: grid\nmetric: {name: loss}\nprogram: train.py\n"
                    "parameters:\n  a: {values: [[64], [64, 64]]}\n  e: {value: 3}\n")
    spec = sweep.load_spec(path)
    assert spec.name == "my sweep"  # display text, as in W&B
    assert spec.folder.startswith("my-sweep-") and "/" not in spec.folder
    assert spec.space["a"].support() == [[64], [64, 64]]  # W&B allows list values


def test_grid_values_on_a_constant_make_an_axis():
    from sweep.plans import Grid

    spec = sweep.load_spec({
        "name": "g", "objective": "m:f", "metric": {"name": "loss"},
        "parameters": {"e": {"value": 3}, "x": {"values": [1, 2]}},
        "stages": [{"plan": "grid", "values": {"e": [1, 2, 4]}}],
    })
    stage = spec.stages[0]
    grid = Grid(stage.space(spec.space), points=stage.axis_points, values=stage.values)
    assert [(c["e"], c["x"]) for c in grid] == [(1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2)]


# ------------------------------------------------ raised budgets (issue 25, 17)


def test_a_raised_budget_resumes_only_where_it_extends_the_stage_design():
    """Issue 25 item 17: a raised budget resumed with a redrawn design (an lhs of 8 -> 12
    held 20 trials of two designs; an all-discrete random stage 8 -> 12 held 18). Given
    the spec to run, ``resume_problem`` refuses a raise that would not extend the stage's
    design, naming the stage and why; the raises that extend still resume."""
    from sweep.spec.sweep_file import resume_problem

    continuous = {"x": {"distribution": "uniform", "min": 0, "max": 1}}
    discrete = {"x": {"values": [1, 2, 3, 4]}, "k": {"distribution": "int_uniform",
                                                     "min": 0, "max": 9}}

    def document(params, stages, **extra):
        return {"name": "raise", "objective": "m:f", "metric": {"name": "loss"},
                "parameters": params, "stages": stages, **extra}

    def problem(params, old_stages, new_stages, **extra):
        old = load_spec(document(params, old_stages, **extra)).document
        return resume_problem(old, load_spec(document(params, new_stages, **extra)))

    refused = [
        (continuous, [{"plan": "lhs", "trials": 8}], [{"plan": "lhs", "trials": 12}],
         r"stages\[0\]\.trials: was 8, now 12, but a Latin hypercube cuts each axis"),
        (discrete, [{"plan": "random", "trials": 8}], [{"plan": "random", "trials": 12}],
         r"stages\[0\]\.trials: was 8, now 12, but a random stage over an all-discrete "
         r"space of 40 configs draws its budget together"),
        (discrete, [{"plan": "random", "trials": 4}, {"plan": "refine", "trials": 6,
                                                      "region": "each"}],
         [{"plan": "random", "trials": 4}, {"plan": "refine", "trials": 9, "region": "each"}],
         r"stages\[1\]\.trials: was 6, now 9, but its boxes over an all-discrete space"),
    ]
    for params, old, new, message in refused:
        assert re.search(message, problem(params, old, new) or ""), (old, new)
    extended = [
        (continuous, [{"plan": "random", "trials": 8}], [{"plan": "random", "trials": 12}]),
        (continuous, [{"plan": "sobol", "trials": 8}], [{"plan": "sobol", "trials": 12}]),
        (discrete, [{"plan": "sobol", "trials": 8}], [{"plan": "sobol", "trials": 12}]),
        (discrete, [{"plan": "bayes", "trials": 8}], [{"plan": "bayes", "trials": 12}]),
        (discrete, [{"plan": "random", "trials": 8}], [{"plan": "random", "trials": 40}]),
        (continuous, [{"plan": "random", "trials": 4}, {"plan": "refine", "trials": 6,
                                                        "region": "each"}],
         [{"plan": "random", "trials": 9}, {"plan": "refine", "trials": 9, "region": "each"}]),
        (discrete, [{"plan": "random", "trials": 4}, {"plan": "refine", "trials": 6}],
         [{"plan": "random", "trials": 4}, {"plan": "refine", "trials": 9}]),
        (continuous, [{"plan": "lhs", "trials": 8}], [{"plan": "lhs", "trials": 8},
                                                      {"plan": "lhs", "trials": 4}]),
    ]
    for params, old, new in extended:
        assert problem(params, old, new) is None, (old, new)
    # W&B's method with a raised run_cap: the same rule.
    wandb = {"method": "random"}
    old = load_spec({**document(discrete, None, run_cap=8, **wandb)}).document
    old.pop("stages", None)
    new = dict(old, run_cap=12)
    assert "run_cap: was 8, now 12, but a random stage" in resume_problem(
        old, load_spec(new))
    # A document alone (no spec to build plans from) is only compared.
    assert resume_problem(load_spec(document(continuous, [{"plan": "lhs", "trials": 8}]))
                          .document, document(continuous, [{"plan": "lhs", "trials": 12}])
                          ) is None
