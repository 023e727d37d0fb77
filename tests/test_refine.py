"""Coarse-to-fine: refine stages built from stored results, boxes, resume."""

from __future__ import annotations

import json
import math
import os
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

import sweep
from sweep.core.errors import SweepError
from sweep.core.metric import Metric
from sweep.core.records import TrialRecord
from sweep.plans import ProposingPlan, refine_options
from sweep.plans.adaptive_refine import AdaptiveRefine
from sweep.plans.anchors import AnchorRule
from sweep.plans.refine import Anchor, Refine
from sweep.space import Choice, LogUniform, RandInt, Space, Uniform
from sweep.spec.stages import parse_stages

LR = {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}
X = {"distribution": "uniform", "min": 0.0, "max": 1.0}


def doc(name, stages, **extra):
    d = {"name": name, "objective": "tests.objectives:quadratic",
         "metric": {"name": "loss", "goal": "minimize"},
         "parameters": {"lr": LR, "x": X}, "stages": stages}
    d.update(extra)
    return d


def boxes_of(results, name, stage=1):
    with open(os.path.join(results, name, "stages", f"stage-{stage}.json")) as f:
        return json.load(f)


def inside(row, box):
    for param, (lo, hi) in box["bounds"].items():
        value = row[f"params.{param}"]
        if not lo - 1e-12 <= value <= hi + 1e-12:
            return False
    return all(row[f"params.{param}"] in values for param, values in box["categories"].items())


# ------------------------------------------------------------- no Ray needed


def told(values, stage=0, metric="acc"):
    return [TrialRecord(sweep="t", stage=stage, trial_id=f"t{i}", params={"x": x},
                        status="ok" if v is not None else "failed",
                        metrics={} if v is None else {metric: v})
            for i, (x, v) in enumerate(values)]


def both_refines(rule, trials=8):
    space = Space({"x": Uniform(0.0, 1.0)})
    return [Refine(space, trials=trials, region="each", rule=rule, seed=0),
            AdaptiveRefine(space, trials, rule=rule, seed=0, sample="random")]


def test_both_refines_take_their_anchors_by_one_rule_and_the_metric_s_goal():
    rule = AnchorRule(Metric("acc", "maximize"), k=2, sources=[0], stage=1)
    records = told([(0.1, 0.5), (0.2, 0.9), (0.3, None), (0.4, 0.7), (0.5, math.nan)])
    assert [a.trial_id for a in rule.choose(records)] == ["t1", "t3"]  # highest first
    for plan in both_refines(rule):
        plan.tell(records)
        plan.start()
        assert [a.trial_id for a in plan.anchors] == ["t1", "t3"], type(plan).__name__
        assert plan.notes == []


def test_both_refines_say_nothing_to_refine_and_too_few_anchors_alike():
    rule = AnchorRule(Metric("acc", "maximize"), k=3, sources=[0], stage=1)
    errors = []
    for plan in both_refines(rule):
        plan.tell(told([(0.1, None), (0.2, math.inf)]))
        with pytest.raises(SweepError, match="nothing to refine") as caught:
            plan.start()
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "no trial of stage 0 finished ok" in errors[0]
    notes = []
    for plan in both_refines(rule):
        plan.tell(told([(0.1, 0.3), (0.2, None)]))
        plan.start()
        notes.append(plan.notes)
    assert notes[0] == notes[1] == [
        "stage 1: only 1 trials of stage 0 succeeded; refining around those (top_k=3)"]


def test_refine_is_a_learning_plan_finished_with_its_last_proposal():
    rule = AnchorRule(Metric("acc", "maximize"), k=2, sources=[0], stage=1)
    plan = Refine(Space({"x": Uniform(0.0, 1.0)}), trials=6, region="each", rule=rule, seed=0)
    assert isinstance(plan, ProposingPlan) and plan.learns
    plan.tell(told([(0.1, 0.5), (0.6, 0.9)]))
    plan.start()
    assert len(plan.ask(6)) == 6 and plan.finished  # no empty answer needed to say so
    assert plan.ask(1) == []


def test_the_sweep_file_and_the_plans_share_one_set_of_refine_defaults():
    import inspect

    space = Space({"x": Uniform(0.0, 1.0)})
    raw = [{"plan": "random", "trials": 8}, {"plan": "refine", "trials": 8, "region": "each"},
           {"plan": "refine", "trials": 8}]
    _, each, adaptive = parse_stages(raw, space, seed=0, points={})

    def defaults(cls):
        return {k: p.default for k, p in inspect.signature(cls).parameters.items()}

    fixed, moving = defaults(Refine), defaults(AdaptiveRefine)
    assert adaptive.region == refine_options.DEFAULT_REGION == "adaptive"
    for key in ("shrink", "margin", "min_width", "categorical", "sample"):
        assert getattr(each, key) == fixed[key], key
    for key in ("shrink", "min_width", "categorical", "sample"):
        assert getattr(adaptive, key) == moving[key], key
    assert each.refine_top_k == refine_options.default_top_k(8, "each")


def test_each_box_on_a_log_axis_is_shrink_wide_in_decades():
    space = Space({"lr": LogUniform(1e-4, 1.0)})
    plan = Refine(space, [Anchor("s", {"lr": 1e-2})], trials=8, region="each", shrink=0.25,
                  seed=0)
    lo, hi = plan.boxes[0].bounds["lr"]
    assert math.log10(lo) == pytest.approx(-2.5)
    assert math.log10(hi) == pytest.approx(-1.5)
    values = [p["lr"] for p in plan]
    assert len(values) == 8 and all(lo <= v <= hi for v in values)


def test_boxes_are_clipped_to_the_space_and_integers_stay_integers():
    space = Space({"lr": LogUniform(1e-4, 1.0), "n": RandInt(1, 100)})
    plan = Refine(space, [Anchor("s", {"lr": 1.0, "n": 1})], trials=20, region="each",
                  shrink=0.5, seed=1)
    (lo, hi), (nlo, nhi) = plan.boxes[0].bounds["lr"], plan.boxes[0].bounds["n"]
    assert hi == 1.0 and math.log10(lo) == pytest.approx(-1.0)
    assert nlo == 1 and nhi <= 26
    for config in plan:
        assert isinstance(config["n"], int) and 1 <= config["n"] <= nhi
        assert lo <= config["lr"] <= 1.0


def test_each_splits_the_budget_with_the_remainder_to_the_best():
    space = Space({"x": Uniform(0, 1)})
    anchors = [Anchor(f"s{i}", {"x": 0.2 * i}) for i in range(3)]
    plan = Refine(space, anchors, trials=11, region="each", shrink=0.1, seed=0)
    assert [b.trials for b in plan.boxes] == [5, 3, 3]
    parents = [cand.parent for cand in plan.candidates()]
    assert parents.count("s0") == 5 and parents.count("s1") == 3


def test_hull_box_spans_the_anchors_with_margin_and_min_width():
    space = Space({"x": Uniform(0, 1), "y": Uniform(0, 1), "c": Choice(["a", "b", "c"])})
    anchors = [Anchor("s0", {"x": 0.4, "y": 0.5, "c": "a"}), Anchor("s1", {"x": 0.6, "y": 0.5,
                                                                      "c": "b"})]
    plan = Refine(space, anchors, trials=30, region="hull", margin=0.25, min_width=0.1, seed=2)
    box = plan.boxes[0]
    assert box.bounds["x"] == pytest.approx([0.35, 0.65])
    assert box.bounds["y"] == pytest.approx([0.45, 0.55])  # min_width around one value
    assert box.categories["c"] == ["a", "b"]
    for cand in plan.candidates():
        config, parent = cand.params, cand.parent
        assert 0.35 <= config["x"] <= 0.65 and config["c"] in ("a", "b")
        nearest = min(anchors, key=lambda s: (s.params["x"] - config["x"]) ** 2
                      + (s.params["c"] != config["c"]))
        assert parent == nearest.trial_id


def test_categorical_keep_and_narrow():
    space = Space({"x": Uniform(0, 1), "c": Choice(["a", "b", "c"])})
    anchors = [Anchor("s0", {"x": 0.1, "c": "a"}), Anchor("s1", {"x": 0.9, "c": "b"})]
    keep = Refine(space, anchors, trials=10, region="each", seed=0)
    assert {b.anchor: b.categories["c"] for b in keep.boxes} == {"s0": ["a"], "s1": ["b"]}
    narrow = Refine(space, anchors, trials=10, region="each", categorical="narrow", seed=0)
    assert all(b.categories["c"] == ["a", "b"] for b in narrow.boxes)


def test_refine_grid_sample_gives_the_textbook_values():
    space = Space({"lr": LogUniform(1e-4, 1.0)})
    plan = Refine(space, [Anchor("s", {"lr": 1e-2})], trials=None, region="each",
                  shrink=0.5, sample="grid", points=3, seed=0)
    assert [c["lr"] for c in plan] == pytest.approx([1e-3, 1e-2, 1e-1])


# ------------------------------------------------------------------- on Ray


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("region", ["each", "hull"])
def test_fine_stage_runs_by_itself_inside_its_boxes_and_beats_coarse(results, region):
    name = f"c2f-{region}"
    df = sweep.run(doc(name, [
        {"plan": "random", "trials": 24, "seed": 1},
        {"plan": "refine", "trials": 24, "top_k": 3, "region": region, "shrink": 0.25},
    ]), results=results)
    coarse, fine = df[df.stage == 0], df[df.stage == 1]
    assert len(coarse) == 24 and len(fine) == 24
    meta = boxes_of(results, name)
    anchors = [s["trial_id"] for s in meta["anchors"]]
    assert anchors == list(coarse.sort_values(["metrics.loss", "trial_id"]).trial_id[:3])
    boxes = {b["anchor"]: b for b in meta["boxes"]}
    assert set(fine["parent_id"]) <= set(anchors)
    for row in fine.to_dict("records"):
        box = boxes[row["parent_id"]] if region == "each" else meta["boxes"][0]
        assert inside(row, box), (row, box)
    if region == "each":
        for box in meta["boxes"]:
            lo, hi = box["bounds"]["lr"]
            if lo > 1e-4 and hi < 1.0:
                assert math.log10(hi / lo) == pytest.approx(1.0)  # 0.25 of 4 decades
    assert fine["metrics.loss"].min() < coarse["metrics.loss"].min()


@pytest.mark.usefixtures("ray_session")
def test_per_stage_fixed_values_and_three_stages(results):
    d = doc("three", [
        {"plan": "sobol", "trials": 16, "fixed": {"x": 0.3}},
        {"plan": "refine", "trials": 8, "top_k": 2, "shrink": 0.25, "region": "each"},
        {"plan": "refine", "trials": 8, "top_k": 1, "shrink": 0.05, "from": "all",
         "region": "each"},
    ])
    df = sweep.run(d, results=results)
    assert df.groupby("stage").size().to_dict() == {0: 16, 1: 8, 2: 8}
    assert (df[df.stage == 0]["params.x"] == 0.3).all()
    assert df[df.stage == 1]["params.x"].nunique() > 1
    best = df.groupby("stage")["metrics.loss"].min()
    assert best[2] < best[0]  # stage 1 also moves x, which stage 0 held at its optimum
    meta2 = boxes_of(results, "three", 2)
    first_two = df[df.stage < 2].sort_values(["metrics.loss", "trial_id"])
    assert [s["trial_id"] for s in meta2["anchors"]] == [first_two.trial_id.iloc[0]]
    lo, hi = meta2["boxes"][0]["bounds"]["lr"]
    assert math.log10(hi / lo) == pytest.approx(0.2)  # 0.05 of 4 decades
    assert set(df[df.stage == 2].parent_id) == {first_two.trial_id.iloc[0]}


@pytest.mark.usefixtures("ray_session")
def test_resumed_in_the_fine_stage_gives_the_same_trials(results):
    d = doc("resume-fine", [
        {"plan": "random", "trials": 20, "seed": 4},
        {"plan": "refine", "trials": 12, "top_k": 3, "region": "each"},
    ])
    full = sweep.run(d, results=results + "-a")
    sweep.run(d, results=results)
    # Make it look as if the driver died in stage 1: drop half the stage-1 rows.
    stage1 = os.path.join(results, "resume-fine", "trials", "stage=1")
    kept_ids = set(sorted(full[full.stage == 1].trial_id)[:6])
    for name in os.listdir(stage1):
        path = os.path.join(stage1, name)
        table = pq.read_table(path)
        mask = table.column("trial_id").to_pandas().isin(kept_ids).to_numpy()
        pq.write_table(table.filter(mask), path)
    before = pd.read_parquet(stage1)
    again = sweep.run(d, results=results)
    assert set(again.trial_id) == set(full.trial_id)
    assert len(pd.read_parquet(os.path.join(results, "resume-fine", "trials"))) == 32
    kept = again[again.trial_id.isin(kept_ids)].set_index("trial_id")["finished_at"]
    assert kept.to_dict() == before.set_index("trial_id")["finished_at"].to_dict()


@pytest.mark.usefixtures("ray_session")
def test_fewer_successes_than_top_k_and_none(results, tmp_path):
    d = doc("few", [
        {"plan": "grid", "values": {"x": [0.2, 0.4]}, "fixed": {"lr": 0.01}},
        {"plan": "refine", "trials": 4, "top_k": 5, "region": "each"},
    ])
    df = sweep.run(d, results=results)
    assert len(df[df.stage == 1]) == 4
    assert len(boxes_of(results, "few")["anchors"]) == 2
    failing = {"name": "none-ok", "objective": "tests.objectives:boom",
               "metric": {"name": "loss"}, "parameters": {"x": X},
               "stages": [{"plan": "random", "trials": 3},
                          {"plan": "refine", "trials": 3}]}
    with pytest.raises(SweepError, match="nothing to refine"):
        sweep.run(failing, results=results)


@pytest.mark.usefixtures("ray_session")
def test_textbook_coarse_to_fine_job_runs_end_to_end(tmp_path, monkeypatch):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.chdir(repo)
    results = str(tmp_path / "results")
    df = sweep.run(os.path.join(repo, "jobs", "coarse_to_fine.yaml"), results=results)
    coarse, fine = df[df.stage == 0], df[df.stage == 1]
    assert sorted(coarse["params.lr"].unique()) == pytest.approx([1e-4, 1e-2, 1.0])
    assert sorted(coarse["params.batch_size"].unique()) == [8, 64, 512]
    best_lr = coarse.sort_values(["metrics.val_error", "trial_id"])["params.lr"].iloc[0]
    lrs = sorted(fine["params.lr"].unique())
    assert len(lrs) == 3 and lrs[1] == pytest.approx(best_lr)
    ratio = lrs[2] / lrs[1]
    assert ratio == pytest.approx(lrs[1] / lrs[0]) and ratio == pytest.approx(10 ** 0.3)
    assert (df.status == "ok").all()
    shutil.rmtree(results)
