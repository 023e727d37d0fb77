"""Population-based training (``plan: pbt``): the plan and its exploit decision on a
scripted population (no Ray, no driver), explore's mutations, the sweep-file keys; and
one short PBT sweep on the session Ray whose table tells each segment's story."""

from __future__ import annotations

import math

import numpy as np
import pytest

import sweep
from sweep.core.metric import Metric
from sweep.core.records import Report, TrialRecord
from sweep.engine.planning import make_plan
from sweep.plans import Candidate
from sweep.plans.pbt import Mutation, PopulationBasedTraining, explore
from sweep.space import Choice, LogUniform, RandInt, Space, Uniform
from sweep.spec.sweep_file import load_spec
from sweep.worker.trial_ids import trial_id

SPACE = Space({"lr": LogUniform(1e-4, 1e-1), "momentum": Uniform(0.0, 0.99)})


class Population:
    """A scripted population: each member's trial id is 't<i>', the segments 'seg<n>'."""

    def __init__(self, plan: PopulationBasedTraining):
        self.plan = plan
        self.ids: dict[str, Candidate] = {}
        self.start()

    def start(self) -> list[str]:
        started = []
        for cand in self.plan.ask(16):
            tid = f"t{cand.key[1:]}" if cand.key.startswith("m") else f"seg{cand.key[1:]}"
            self.plan.submitted(tid, cand)
            self.ids[tid] = cand
            started.append(tid)
        return started

    def report(self, tid: str, step: int, loss: float, checkpoint: bool = True) -> bool:
        """One report of a member: the plan is told it, then asked (as the driver does)."""
        self.plan.tell_report(Report(tid, step, {"loss": loss}, checkpoint=checkpoint))
        stop = self.plan.should_stop(tid, step, loss)
        if stop:
            self.plan.tell([TrialRecord(trial_id=tid, status="stopped", step=step)])
        return stop


def plan_of(population=4, interval=2, **options):
    return PopulationBasedTraining(SPACE, Metric("loss"), population=population,
                                   interval=interval, seed=7, **options)


def test_the_bottom_quantile_exploits_the_top_at_its_interval():
    pop = Population(plan_of(population=4, interval=2))
    assert sorted(pop.ids) == ["t0", "t1", "t2", "t3"] and not pop.plan.finished
    losses = {"t0": 0.1, "t1": 0.2, "t2": 0.3, "t3": 0.9}
    # Step 0: nobody is due (a member decides after `interval` steps of its own).
    assert not any(pop.report(t, 0, v) for t, v in losses.items())
    # Step 1: due. quantile 0.25 of 4 = 1 member each side: t3 (worst) exploits t0.
    decisions = {t: pop.report(t, 1, v) for t, v in losses.items()}
    assert decisions == {"t0": False, "t1": False, "t2": False, "t3": True}
    [segment] = pop.start()
    cand = pop.ids[segment]
    assert cand.parent == "t0" and cand.restore_from == "t0"
    assert cand.params != pop.ids["t0"].params  # explored
    assert pop.plan.decisions == [{"stopped": "t3", "at_step": 1, "parent": "t0",
                                   "parent_checkpoint": 1}]
    # Not due again before another `interval` steps: step 2 decides nothing.
    assert not any(pop.report(t, 2, v) for t, v in losses.items() if t != "t3")
    # The segment's clock starts at the step it restored (its first report - 1).
    assert not pop.report(segment, 2, 0.95)
    assert pop.report(segment, 3, 0.95)  # due, worst again: exploits the top
    assert pop.plan.decisions[-1]["parent"] == "t0"


def test_members_are_ranked_at_one_step_not_by_how_far_they_have_run():
    """t0 runs ahead and learns slowly: at step 9 its loss (0.91) beats t3's at step 1
    (0.96), but at step 1 it was the worst (0.99). Ranked by latest scores (Tune's rule)
    t3 would copy t1 for being behind; ranked at one step, t0 is the bottom."""
    pop = Population(plan_of(population=4, interval=2))
    for t, v in {"t0": 1.00, "t1": 0.99, "t2": 0.98, "t3": 0.97}.items():
        assert not pop.report(t, 0, v, checkpoint=False)
    for step in range(1, 10):  # no top member has a checkpoint yet: nobody exploits
        assert not pop.report("t0", step, 1.0 - 0.01 * step, checkpoint=False)
    assert not pop.report("t1", 1, 0.90)
    assert not pop.report("t2", 1, 0.91)
    assert not pop.report("t3", 1, 0.96)  # at step 1 t0 (0.99) is the worst, not t3
    assert not pop.plan.decisions
    assert not pop.report("t0", 10, 0.90, checkpoint=False)
    assert pop.report("t0", 11, 0.89, checkpoint=False)  # due: the worst at step 1
    assert pop.plan.decisions == [{"stopped": "t0", "at_step": 11, "parent": "t1",
                                   "parent_checkpoint": 1}]


def test_no_exploit_without_a_checkpoint_of_the_top():
    pop = Population(plan_of(population=4, interval=1))
    for step in range(3):
        for t, v in {"t0": 0.1, "t1": 0.2, "t2": 0.3, "t3": 0.9}.items():
            assert not pop.report(t, step, v, checkpoint=(t != "t0"))
    assert not pop.plan.decisions
    # Once the top has a checkpoint, the bottom takes it.
    pop.report("t0", 3, 0.1, checkpoint=True)
    assert pop.report("t3", 3, 0.9)


def test_quantiles_follow_tunes_rule_and_the_stage_ends_with_its_lineages():
    pop = Population(plan_of(population=8, interval=2))
    losses = {f"t{i}": 0.1 * (i + 1) for i in range(8)}
    for t, v in losses.items():
        pop.report(t, 0, v)
    stops = {t for t, v in losses.items() if pop.report(t, 1, v)}
    # ceil(8 * 0.25) = 2 per side: t6, t7 exploit t0 or t1.
    assert stops == {"t6", "t7"}
    assert {d["parent"] for d in pop.plan.decisions} <= {"t0", "t1"}
    segments = pop.start()
    assert len(segments) == 2 and pop.plan.total == 10
    members = [t for t in pop.ids if t not in stops]
    pop.plan.tell([TrialRecord(trial_id=t, status="ok", step=9) for t in members[:-1]])
    assert not pop.plan.finished
    pop.plan.tell([TrialRecord(trial_id=members[-1], status="ok", step=9)])
    assert pop.plan.finished and pop.plan.ask(4) == []


def test_max_trials_caps_the_segments():
    pop = Population(plan_of(population=4, interval=2, max_trials=5))
    for t, v in {"t0": 0.1, "t1": 0.2, "t2": 0.3, "t3": 0.9}.items():
        pop.report(t, 0, v)
    assert pop.report("t3", 1, 0.9)  # the 5th trial
    [segment] = pop.start()
    pop.report(segment, 2, 0.99)
    assert not pop.report(segment, 3, 0.99)  # a 6th would pass the cap


def test_explore_perturbs_by_the_factors_resamples_and_stays_in_range():
    rng = np.random.default_rng(0)
    space = Space({"lr": LogUniform(1e-4, 1e-1), "layers": RandInt(1, 8),
                   "act": Choice(["relu", "tanh", "gelu"]), "p": Uniform(0, 1)})
    config = {"lr": 1e-2, "layers": 4, "act": "tanh", "p": 0.95}
    perturb = {n: Mutation(resample_probability=0.0) for n in space.dims}
    seen = {n: set() for n in space.dims}
    for _ in range(200):
        new = explore(config, space, perturb, rng)
        for n in space.dims:
            seen[n].add(new[n])
    assert {round(v, 12) for v in seen["lr"]} == {0.012, 0.008}
    assert seen["layers"] == {5, 3}  # 4 * 1.2 = 4.8 -> 5, 4 * 0.8 = 3.2 -> 3
    assert seen["act"] == {"relu", "gelu"}  # a neighbour, never itself
    assert seen["p"] == {1.0, 0.76}  # 0.95 * 1.2 clipped to the range
    resample = {"lr": Mutation(resample_probability=1.0)}
    values = [explore(config, space, resample, rng)["lr"] for _ in range(200)]
    assert min(values) >= 1e-4 and max(values) <= 1e-1 and len(set(values)) == 200
    assert all(explore(config, space, resample, rng)["layers"] == 4 for _ in range(5))


def test_pbt_keys_of_a_stage_are_validated():
    base = {"name": "p", "objective": "a:b", "metric": {"name": "loss"},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4,
                                  "max": 1.0}, "epochs": {"value": 10}}}

    def stage(**raw):
        return load_spec(dict(base, stages=[{"plan": "pbt", **raw}])).stages[0]

    s = stage(interval=3, mutations=["lr"], quantile=0.5, population=4)
    assert (s.interval, s.population, s.quantile) == (3, 4, 0.5)
    assert s.mutations == {"lr": {"resample_probability": 0.25,
                                  "perturbation_factors": (1.2, 0.8)}}
    for raw, message in [({}, "stages\\[0\\].interval: expected the steps"),
                         ({"interval": 0}, "interval: got 0"),
                         ({"interval": 2, "population": 1}, "population: got 1"),
                         ({"interval": 2, "quantile": 0.7}, "quantile: got 0.7"),
                         ({"interval": 2, "mutations": ["epochs"]}, "mutations.epochs"),
                         ({"interval": 2, "mutations": {"lr": {"perturbation_factors": [0]}}},
                          "factors > 0"),
                         ({"interval": 2, "resample_probability": 2}, "resample_probability")]:
        with pytest.raises(sweep.SpecError, match=message):
            stage(**raw)
    with pytest.raises(sweep.SpecError, match="no pbt option on a random stage"):
        load_spec(dict(base, stages=[{"plan": "random", "trials": 2, "interval": 2}]))
    spec = load_spec(dict(base, stages=[{"plan": "pbt", "interval": 2}]))
    assert spec.live_reports  # the driver gets reports while trials run


# ------------------------------------------------------------- on the session Ray


def test_a_pbt_sweep_stores_each_segments_params_parent_and_start(ray_session, results):
    df = sweep.run({
        "name": "pbt-toy", "objective": "tests.objectives:toy_pbt",
        "metric": {"name": "mean_accuracy", "goal": "maximize"},
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4,
                              "max": 1e-1},
                       "steps": {"value": 24}, "sleep": {"value": 0.05}},
        "stages": [{"plan": "pbt", "population": 4, "interval": 4, "seed": 3}],
        "resources": {"num_cpus": 0.5}, "max_concurrent": 4,
    }, results=results)
    members = df[df["parent_id"].isna()]
    segments = df[df["parent_id"].notna()]
    assert len(members) == 4 and len(segments) >= 1, df[
        ["trial_id", "status", "parent_id", "step", "restored_from", "checkpoint_bytes",
         "params.lr"]].to_string()
    # The members' ids are those `sweep plan` prints (params and the candidate's key).
    spec = load_spec(f"{results}/pbt-toy/spec.yaml")
    plan = make_plan(spec, spec.stages[0])
    assert {trial_id("pbt-toy", 0, c.params, c.key) for c in plan.ask(4)} == set(
        members["trial_id"])
    curves = sweep.engine.runner.open_reader(
        load_spec(f"{results}/pbt-toy/spec.yaml"), results).read_curves()
    for _, seg in segments.iterrows():
        parent = df.set_index("trial_id").loc[seg["parent_id"]]
        # It started from a checkpoint of its parent. (Not bounded by the parent's
        # curve: a parent stopped at a decision runs on until the stop lands, and a stop
        # that lands between a committed checkpoint and its report leaves that step out
        # of the parent's curve, seen on a loaded machine.)
        assert 0 <= seg["restored_from"] <= 23, (seg["error"], seg, parent["step"])
        # Its curve starts right after that step (none when the parent had reached the
        # last step: a segment of nothing to do); each step once.
        steps = sorted(curves.loc[curves["trial_id"] == seg["trial_id"], "step"])
        assert steps[:1] == ([seg["restored_from"] + 1] if seg["restored_from"] < 23 else []), (
            seg.to_dict(), curves[curves["trial_id"] == seg["trial_id"]])
        assert len(steps) == len(set(steps))
        assert not math.isclose(seg["params.lr"], parent["params.lr"])
    # Every lineage ends ok at the last step; exploited members and segments stop.
    ok = df[df["status"] == "ok"]
    assert len(ok) == 4 and (ok["step"] == 23).all()
    assert set(df["status"]) <= {"ok", "stopped"}
    assert len(df[df["status"] == "stopped"]) == len(segments)


def test_the_report_draws_the_best_lineages_schedule():
    import pandas as pd

    from sweep.views.html import build_report
    from sweep.views.schedule import lineage

    df = pd.DataFrame({
        "sweep": "p", "stage": 0,
        "trial_id": ["m0", "m1", "s1", "s2"], "parent_id": [None, None, "m0", "s1"],
        "status": ["stopped", "ok", "stopped", "ok"], "restored_from": [None, None, 3, 7],
        "step": [3, 11, 7, 11], "params.lr": [0.01, 0.05, 0.012, 0.0096],
        "metrics.acc": [0.3, 0.5, 0.6, 0.9]})
    segments = lineage(df, "s2")
    assert [(s["trial_id"], s["start"], s["end"]) for s in segments] == [
        ("m0", 0, 3), ("s1", 4, 7), ("s2", 8, 11)]
    assert [s["params"]["lr"] for s in segments] == [0.01, 0.012, 0.0096]
    page = build_report(df, metric="acc", goal="maximize", scales={"lr": "log"})
    assert "Hyperparameter schedule of the best trial" in page
    # Without a lineage (no trial was restored from a parent) there is no schedule.
    plain = df.assign(parent_id=None, restored_from=None)
    assert "Hyperparameter schedule" not in build_report(plain, metric="acc",
                                                         goal="maximize")
