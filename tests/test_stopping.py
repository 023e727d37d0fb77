"""Tests for sweep.stopping: the early stopping rules of ``early_terminate:``.

Where the expected stops come from:

* Hyperband: W&B's engine, the ``sweeps`` package from PyPI (0.3.0, the current release,
  = github.com/wandb/sweeps master), run as an oracle in a throwaway virtualenv (not
  needed here). After every report of a scripted sequence we called
  ``sweeps.stop_runs(config, runs)`` with every run's history at that moment (the
  reporting run "running") and counted the run as stopped at that report when W&B's
  answer contained it: W&B's controller looking at the runs right after each report.
  The same comparison on 2,100 random sequences (ties included), with steps numbered
  from 0, from 1, in tens and with random gaps, found no difference. Bands: W&B's docs
  (``min_iter: 3`` -> [3, 9, 27, 81]; ``max_iter: 27, s: 2`` -> [9, 3]) and
  ``early_terminate_info["bands"]`` of sweeps 0.3.0. (sweeps 0.2.0 read each band one
  logged value later and had no ``strict``; wandb/sweeps#99 fixed the former.)
* ASHA: Ray Tune's ``_Bracket`` (ray/tune/schedulers/async_hyperband.py, Ray 2.60) fed
  the same sequences (reward = -value when minimizing), brackets forced to ours; the
  same comparison on 500 random sequences found no difference.
* Median: worked by hand (below).
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweep.core.errors import SpecError
from sweep.core.hints import did_you_mean
from sweep.core.metric import Metric
from sweep.stopping import (
    REGISTRY,
    AshaRule,
    HyperbandRule,
    MedianRule,
    StoppingRule,
    parse_rule,
    replay,
)

NAN, INF = math.nan, math.inf


def arrivals(curves: dict[str, list[float]], start: dict[str, int] | None = None,
             first_step: int = 1) -> list[tuple[str, int, float]]:
    """Reports of trials training in parallel: trial t's k-th value arrives at time
    start[t] + k (ties in the order of ``curves``), at step first_step + k."""
    start = start or {}
    events = [(start.get(t, 0) + k, i, t, first_step + k, v)
              for i, (t, curve) in enumerate(curves.items()) for k, v in enumerate(curve)]
    return [(t, step, v) for _, _, t, step, v in sorted(events)]


def live(rule: StoppingRule, reports) -> dict[str, int]:
    """Feed reports as a driver does (a stopped trial reports no more): {trial: step}."""
    stops: dict[str, int] = {}
    for trial, step, value in reports:
        if trial in stops:
            continue
        if rule.should_stop(trial, step, value):
            stops[trial] = step
    return stops


def rule_of(raw, goal="minimize") -> StoppingRule:
    rule = parse_rule(raw, Metric("loss", goal))
    assert rule is not None
    return rule


# ------------------------------------------------------------------ hyperband: bands

# (early_terminate settings, W&B's bands): the first two from W&B's docs ("Sweep
# configuration options", early_terminate examples), all from sweeps 0.3.0's
# early_terminate_info["bands"] (the first 8 of an open-ended schedule).
WANDB_BANDS = [
    ({"min_iter": 3}, [3, 9, 27, 81, 243, 729, 2187, 6561]),
    ({"max_iter": 27, "s": 2}, [3, 9]),
    ({"min_iter": 3, "eta": 3}, [3, 9, 27, 81, 243, 729, 2187, 6561]),
    ({"max_iter": 81, "s": 3}, [3, 9, 27]),
    ({"max_iter": 18, "s": 2}, [2, 6]),
    ({"max_iter": 5, "s": 2, "eta": 2}, [1, 2]),
    ({"max_iter": 9, "s": 2}, [1, 3]),
    ({"max_iter": 100, "s": 4, "eta": 2.5}, [2, 6, 16, 40]),
    ({"max_iter": 10, "s": 5}, [1, 3]),  # 10/27 < 1 ends the schedule
    ({"min_iter": 2, "eta": 2}, [2, 4, 8, 16, 32, 64, 128, 256]),
    # W&B gives [1, 1, 2, 3, 5, 7, 11, 17]: the repeated band changes nothing, we keep one
    ({"min_iter": 1, "eta": 1.5}, [1, 2, 3, 5, 7, 11, 17, 25]),
]


@pytest.mark.parametrize(("settings_", "bands"), WANDB_BANDS)
def test_hyperband_bands_match_wandb(settings_, bands):
    rule = rule_of({"type": "hyperband", **settings_})
    assert isinstance(rule, HyperbandRule)
    assert rule.bands[: len(bands)] == bands


def test_hyperband_docs_examples():
    # "min_iter: 3 ... [3, 3*eta, 3*eta*eta, 3*eta*eta*eta], which equals [3, 9, 27, 81]"
    assert rule_of({"type": "hyperband", "min_iter": 3}).bands[:4] == [3, 9, 27, 81]
    # "max_iter: 27, s: 2 ... [27/eta, 27/eta/eta], which equals [9, 3]"
    assert sorted(rule_of({"type": "hyperband", "max_iter": 27, "s": 2}).bands) == [3, 9]


def test_hyperband_defaults_follow_wandbs_engine():
    rule = rule_of({"type": "hyperband", "min_iter": 3})
    assert rule.eta == 3
    assert rule.strict is True  # sweeps >= 0.3.0 (wandb/sweeps#108); W&B's docs say false
    assert "strict" in rule.describe() and "3, 9, 27, 81" in rule.describe()
    assert rule_of({"type": "hyperband", "min_iter": 3, "strict": False}).strict is False


def test_hyperband_s_without_max_iter_is_ignored_as_in_wandb():
    rule = rule_of({"type": "hyperband", "min_iter": 4, "eta": 3, "s": 5})
    assert rule.bands[:3] == [4, 12, 36]
    assert "s is ignored" in rule.describe()


# --------------------------------------------------------------- hyperband: decisions

# Scripted learning curves (losses); expected stops {trial: step} from W&B's engine, see
# the module docstring. H1: 8 trials in lockstep, min_iter 1 (bands 1, 3, 9, ...).
H1 = {
    "t0": [2.07, 1.03, 0.81, 0.65, 0.62, 0.6, 0.35, 0.3, 0.52, 0.38],
    "t1": [1.27, 1.1, 0.87, 1.05, 1.01, 0.73, 0.72, 0.86, 0.97, 0.8],
    "t2": [1.29, 0.78, 0.65, 0.58, 0.44, 0.4, 0.37, 0.42, 0.36, 0.26],
    "t3": [2.23, 1.43, 1.45, 1.3, 1.01, 1.03, 1.11, 1.08, 1.13, 0.96],
    "t4": [2.29, 1.63, 1.46, 1.33, 1.15, 1.12, 0.92, 0.96, 1.1, 0.97],
    "t5": [1.64, 0.97, 0.66, 0.57, 0.52, 0.56, 0.45, 0.39, 0.4, 0.25],
    "t6": [1.84, 0.94, 0.63, 0.43, 0.45, 0.54, 0.44, 0.35, 0.42, 0.21],
    "t7": [2.51, 1.51, 1.14, 1.06, 1.09, 0.74, 0.92, 0.9, 0.89, 0.83],
}
H1_STRICT = {"t3": 1, "t4": 1, "t6": 1, "t7": 1, "t0": 2, "t1": 4, "t5": 9}
H1_LOOSE = {"t3": 1, "t4": 1, "t6": 1, "t7": 1, "t1": 3}

# H2: W&B's docs example max_iter 27, s 2 (bands 3, 9); trial i starts at time 2i.
H2 = {
    "t0": [2.75, 1.8, 1.7, 1.51, 1.4, 1.22, 1.27, 1.23, 1.2, 1.05, 1.11, 1.09],
    "t1": [2.88, 1.76, 1.4, 1.18, 1.01, 0.94, 1.02, 0.95, 0.94, 1.07, 0.94, 0.93],
    "t2": [0.8, 0.47, 0.49, 0.6, 0.47, 0.31, 0.51, 0.47, 0.44, 0.49, 0.44, 0.44],
    "t3": [2.53, 1.3, 1.15, 0.98, 0.8, 0.76, 0.7, 0.79, 0.64, 0.72, 0.55, 0.7],
    "t4": [2.12, 1.63, 1.37, 1.2, 1.06, 1.06, 1.14, 0.96, 1.16, 0.96, 1.14, 0.95],
    "t5": [2.52, 1.75, 1.53, 1.38, 1.22, 1.13, 1.19, 1.29, 1.17, 0.99, 1.2, 1.16],
}
H2_START = {f"t{i}": 2 * i for i in range(6)}
H2_STRICT = {"t0": 6, "t1": 8, "t4": 3, "t5": 3, "t3": 9}
H2_LOOSE = {"t4": 3, "t0": 12, "t5": 3}

# H3: an accuracy (maximize), min_iter 2, eta 2 (bands 2, 4, 8).
H3 = {
    "t0": [-0.59, 0.0, 0.21, 0.49, 0.57, 0.37, 0.57, 0.6, 0.39, 0.56],
    "t1": [-1.11, -0.36, -0.3, -0.27, -0.1, -0.13, -0.08, 0.13, -0.07, 0.0],
    "t2": [-0.03, 0.36, 0.38, 0.38, 0.46, 0.41, 0.58, 0.47, 0.58, 0.44],
    "t3": [-0.43, -0.13, -0.25, -0.03, -0.06, 0.06, 0.01, 0.06, 0.08, 0.02],
    "t4": [-1.54, -0.68, -0.35, -0.24, -0.05, 0.17, 0.0, 0.0, 0.05, 0.17],
}
H3_STOPS = {"t4": 2, "t1": 3, "t3": 4}  # strict and not strict alike


@pytest.mark.parametrize(("curves", "start", "settings_", "goal", "strict", "expected"), [
    (H1, None, {"min_iter": 1}, "minimize", True, H1_STRICT),
    (H1, None, {"min_iter": 1}, "minimize", False, H1_LOOSE),
    (H2, H2_START, {"max_iter": 27, "s": 2}, "minimize", True, H2_STRICT),
    (H2, H2_START, {"max_iter": 27, "s": 2}, "minimize", False, H2_LOOSE),
    (H3, None, {"min_iter": 2, "eta": 2}, "maximize", True, H3_STOPS),
    (H3, None, {"min_iter": 2, "eta": 2}, "maximize", False, H3_STOPS),
])
def test_hyperband_stops_match_wandbs_engine(curves, start, settings_, goal, strict, expected):
    rule = rule_of({"type": "hyperband", **settings_, "strict": strict}, goal)
    assert live(rule, arrivals(curves, start)) == expected
    assert rule.stopped() == expected


@pytest.mark.parametrize("numbering", ["from 0", "tens", "gaps"])
def test_hyperband_counts_reports_not_step_numbers(numbering):
    # W&B: "The numerical value of the step counter is not used in bracket calculations"
    gaps = [1, 3, 4, 9, 10, 11, 20, 21, 50, 51, 52, 99]
    renumber = {"from 0": lambda k: k - 1, "tens": lambda k: 10 * k,
                "gaps": lambda k: gaps[k - 1]}[numbering]
    for curves, start, expected in [(H1, None, H1_STRICT), (H2, H2_START, H2_STRICT)]:
        rule = rule_of({"type": "hyperband", **({"min_iter": 1} if curves is H1 else
                                                 {"max_iter": 27, "s": 2})})
        reports = [(t, renumber(k), v) for t, k, v in arrivals(curves, start)]
        assert live(rule, reports) == {t: renumber(k) for t, k in expected.items()}


def test_hyperband_wandb_test_suite_cases():
    # wandb/sweeps tests/test_hyperband_stopping.py, test_5runs_band1_stop_2 (bands 1, 2):
    # the snapshot stops only b; online, with the runs arriving one after the other.
    rule = rule_of({"type": "hyperband", "max_iter": 5, "eta": 2, "s": 2})
    runs = {"a": [10, 9], "e": [10, 6, 6], "c": [10, 8, 8], "d": [10, 7, 7], "b": [10, 10]}
    reports = [(t, k + 1, v) for t, curve in runs.items() for k, v in enumerate(curve)]
    assert live(rule, reports) == {"b": 2}

    # test_eta_3 (bands 1, 3, not strict): the snapshot stops b and e. Online, in lockstep,
    # the same two; had d reached band 3 before e, d would have been stopped (threshold
    # 3 from [3, 4], as W&B's controller would decide if it looked at that moment).
    lockstep = [("a", 1, 9), ("a", 2, 8), ("b", 1, 11), ("c", 1, 10), ("d", 1, 10),
                ("e", 1, 10), ("b", 2, 11), ("c", 2, 8), ("d", 2, 7), ("e", 2, 6), ("c", 3, 3)]
    settings_ = {"type": "hyperband", "max_iter": 9, "eta": 3, "s": 2, "strict": False}
    assert live(rule_of(settings_), [*lockstep, ("e", 3, 6), ("d", 3, 4)]) == {"b": 1, "e": 3}
    assert live(rule_of(settings_), [*lockstep, ("d", 3, 4), ("e", 3, 6)]) == {
        "b": 1, "d": 3, "e": 3}


def test_hyperband_threshold_and_conditions_worked_by_hand():
    # min_iter 2, eta 2: bands at the 2nd, 4th, ... report; threshold = sorted(values at
    # the band)[int(n / 2)]; every trial reports 5.0 at step 1 first.
    for strict in (True, False):
        rule = rule_of({"type": "hyperband", "min_iter": 2, "eta": 2, "strict": strict})
        for t in "abcx":
            assert not rule.should_stop(t, 1, 0.1 if t == "x" else 5.0)  # before the first band
        assert not rule.should_stop("a", 2, 1.0)  # alone at band 2: the threshold is its value
        assert not rule.should_stop("b", 2, 2.0)  # [1, 2][1] = 2: 2 > 2 is false
        assert rule.should_stop("c", 2, 3.0)      # [1, 2, 3][1] = 2: 3 > 2
        # [1, 2, 3, 5][2] = 3: strict judges x's value at the band (5.0), not strict its
        # best value so far (0.1)
        assert rule.should_stop("x", 2, 5.0) is strict
        assert rule.rungs()[:2] == [
            {"bracket": 0, "step": 2, "cutoff": 3.0, "trials": 4},
            {"bracket": 0, "step": 4, "cutoff": None, "trials": 0},
        ]
        # past the band, W&B keeps judging at the closest band: b's best so far is 0.5
        # (not strict), its band value 2.0 (strict); both pass 3
        assert not rule.should_stop("b", 3, 0.5)
        # a repeated step replaces its value: b's best so far is now 2.0 (still passes)
        assert not rule.should_stop("b", 3, 9.0)
        assert rule._curves.best("b") == 2.0


def h1_band1_cutoff() -> float:
    rule = rule_of({"type": "hyperband", "min_iter": 1})
    live(rule, arrivals(H1))
    return rule.rungs()[0]["cutoff"]


def test_hyperband_maximize_mirrors_minimize():
    curves = {t: [-v for v in c] for t, c in H1.items()}
    rule = rule_of({"type": "hyperband", "min_iter": 1}, "maximize")
    assert live(rule, arrivals(curves)) == H1_STRICT
    assert rule.rungs()[0]["cutoff"] == -h1_band1_cutoff()


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_hyperband_non_finite_is_the_worst(bad):
    rule = rule_of({"type": "hyperband", "min_iter": 1, "eta": 2})
    assert not rule.should_stop("a", 1, 1.0)
    assert not rule.should_stop("b", 1, 2.0)
    assert rule.should_stop("c", 1, bad)  # [1, 2, worst][1] = 2
    rule = rule_of({"type": "hyperband", "min_iter": 1, "eta": 2}, "maximize")
    for t, v in [("a", 1.0), ("b", 2.0)]:
        assert not rule.should_stop(t, 1, v)
    assert rule.should_stop("c", 1, bad)


def test_hyperband_a_jump_in_steps_is_no_gap_and_a_repeated_step_no_new_report():
    rule = rule_of({"type": "hyperband", "min_iter": 3, "strict": True})  # bands 3, 9, ...
    for t, v in [("a", 3.0), ("b", 2.0), ("c", 1.0)]:  # each better than the last
        for step in (1, 2):
            assert not rule.should_stop(t, step, 9.0)
        assert not rule.should_stop(t, 3, v)  # 3rd report: band 3
    assert not rule.should_stop("d", 1, 9.0)
    assert not rule.should_stop("d", 10, 9.0)  # step 10 is d's 2nd report: before band 3
    assert rule.should_stop("d", 10, 0.5) is False  # the same step again: still 2 reports
    assert "d" not in rule._curves.at[3]
    # d's 3rd report (step 20) is its band-3 value: [1, 2, 2.5, 3][int(4 / 3)] = 2 < 2.5
    assert rule.should_stop("d", 20, 2.5)
    rule = rule_of({"type": "hyperband", "min_iter": 1, "eta": 2})
    for t, v in [("a", 1.0), ("b", 2.0), ("c", 1.5)]:
        assert not rule.should_stop(t, 0, v)
    assert rule.should_stop("c", 0, 3.0)  # its value at band 1 is now 3: [1, 2, 3][1] = 2


# ---------------------------------------------------------------------------- ASHA


def test_asha_rungs_and_brackets_as_tune():
    rule = rule_of({"type": "asha", "max_step": 27})
    assert isinstance(rule, AshaRule)
    assert rule.brackets == [[1, 3, 9]]  # Tune: int(log(27)/log(3) + 1) rungs, 27 never judged
    assert rule_of({"type": "asha", "max_step": 81, "brackets": 3}).brackets == [
        [1, 3, 9, 27], [3, 9, 27], [9, 27]]
    assert rule_of({"type": "asha", "min_step": 2, "max_step": 40, "eta": 2}).brackets == [
        [2, 4, 8, 16, 32]]
    assert rule_of({"type": "asha", "max_step": 100, "eta": 2.5}).brackets == [
        [1, 2.5, 6.25, 15.625, 39.0625, 97.65625]]
    assert rule_of({"type": "asha", "grace_period": 5, "max_step": 50}).brackets == [[5, 15, 45]]
    assert rule_of({"type": "asha"}).brackets[0][:5] == [1, 3, 9, 27, 81]  # no max_step


def test_asha_tune_docstring_example():
    # Tune's _Bracket(1, 10, 2, 0) docstring: rewards 2, 4 continue; the cutoff at rung 1
    # is then 3.0 and reward 1 stops; afterwards the cutoff is 2.0.
    rule = rule_of({"type": "asha", "max_step": 10, "eta": 2}, "maximize")
    assert not rule.should_stop("trial1", 1, 2)
    assert not rule.should_stop("trial2", 1, 4)
    assert rule.rungs()[0]["cutoff"] == 3.0
    assert rule.should_stop("trial3", 1, 1)
    assert rule.rungs()[0] == {"bracket": 0, "step": 1, "cutoff": 2.0, "trials": 3}


def test_asha_cutoff_with_fewer_than_eta_values():
    rule = rule_of({"type": "asha", "max_step": 100})  # eta 3: 66.7th percentile of rewards
    assert not rule.should_stop("a", 1, 1.0)   # nothing recorded: continue
    assert rule.should_stop("b", 1, 1.5)       # one value recorded: must be at least as good
    assert not rule.should_stop("c", 1, 1.0)   # ties continue (reward < cutoff stops)
    # recorded losses 1.0, 1.5, 1.0 -> rewards [-1, -1.5, -1]: cutoff -1.0 for the next
    assert rule.rungs()[0]["cutoff"] == 1.0


# A1: 9 trials in lockstep, rungs 1, 3, 9 (max_step 27). A2: accuracies, eta 2, 2 brackets
# (rungs 1, 2, 4, 8 and 2, 4, 8), trial i starts at time i. Expected stops from Tune's
# _Bracket (module docstring).
A1 = {
    "t0": [1.97, 1.17, 0.96, 0.87, 0.68, 0.73, 0.74, 0.76, 0.53, 0.58, 0.51, 0.71],
    "t1": [1.43, 1.14, 0.96, 0.9, 0.73, 0.67, 0.81, 0.66, 0.69, 0.7, 0.63, 0.76],
    "t2": [2.27, 1.42, 1.08, 0.99, 0.84, 0.72, 0.9, 0.87, 0.79, 0.74, 0.6, 0.56],
    "t3": [1.05, 0.63, 0.67, 0.48, 0.62, 0.57, 0.3, 0.35, 0.55, 0.41, 0.56, 0.38],
    "t4": [1.69, 0.82, 0.52, 0.48, 0.59, 0.48, 0.26, 0.27, 0.21, 0.18, 0.39, 0.19],
    "t5": [1.68, 1.26, 0.88, 0.94, 0.72, 0.77, 0.68, 0.68, 0.87, 0.81, 0.65, 0.82],
    "t6": [1.49, 0.88, 0.53, 0.71, 0.42, 0.4, 0.53, 0.37, 0.35, 0.27, 0.27, 0.41],
    "t7": [1.68, 1.01, 0.92, 0.66, 0.62, 0.66, 0.42, 0.39, 0.6, 0.55, 0.37, 0.34],
    "t8": [2.59, 1.86, 1.52, 1.27, 1.12, 0.97, 0.9, 1.14, 0.9, 1.02, 0.87, 1.02],
}
A1_STOPS = {"t2": 1, "t4": 1, "t5": 1, "t7": 1, "t8": 1, "t1": 9}
A2 = {
    "t0": [-1.06, -0.16, 0.12, 0.14, 0.24, 0.13, 0.2, 0.26, 0.29, 0.28, 0.44, 0.37],
    "t1": [-0.97, -0.27, 0.26, 0.23, 0.43, 0.47, 0.39, 0.67, 0.68, 0.44, 0.58, 0.72],
    "t2": [-1.79, -0.93, -0.52, -0.41, -0.41, -0.21, -0.32, -0.09, -0.1, -0.28, -0.13, -0.12],
    "t3": [-0.82, -0.1, -0.11, -0.08, -0.02, 0.11, 0.23, 0.25, 0.17, 0.19, 0.37, 0.34],
    "t4": [-0.79, -0.06, 0.29, 0.16, 0.34, 0.36, 0.48, 0.44, 0.47, 0.36, 0.58, 0.45],
    "t5": [-0.67, 0.03, 0.27, 0.31, 0.57, 0.49, 0.61, 0.61, 0.58, 0.45, 0.61, 0.47],
    "t6": [-1.1, -0.1, 0.05, 0.15, 0.52, 0.5, 0.4, 0.56, 0.62, 0.71, 0.72, 0.56],
    "t7": [-1.98, -0.84, -0.6, -0.57, -0.48, -0.36, -0.19, -0.24, -0.2, -0.22, -0.1, -0.29],
}
A2_BRACKETS = {"t0": 0, "t1": 0, "t2": 1, "t3": 1, "t4": 0, "t5": 1, "t6": 0, "t7": 0}
A2_STOPS = {"t1": 2, "t6": 1, "t7": 1}


def test_asha_stops_match_tune():
    assert live(rule_of({"type": "asha", "max_step": 27}), arrivals(A1)) == A1_STOPS
    rule = rule_of({"type": "asha", "max_step": 16, "eta": 2, "brackets": 2}, "maximize")
    assert {t: rule.bracket(t) for t in A2} == A2_BRACKETS
    assert live(rule, arrivals(A2, {f"t{i}": i for i in range(8)})) == A2_STOPS
    json.dumps(rule.rungs())  # JSON-friendly
    assert {r["bracket"] for r in rule.rungs()} == {0, 1}


def test_asha_bracket_assignment_is_a_stable_hash_with_tunes_probabilities():
    rule = rule_of({"type": "asha", "max_step": 81, "brackets": 3})  # 4, 3, 2 rungs
    again = rule_of({"type": "asha", "max_step": 81, "brackets": 3})
    ids = [f"trial-{i}" for i in range(3000)]
    assigned = [rule.bracket(t) for t in ids]
    assert assigned == [again.bracket(t) for t in reversed(ids)][::-1]
    e = math.e
    probs = [1 / (1 + e**-1 + e**-2), e**-1 / (1 + e**-1 + e**-2), e**-2 / (1 + e**-1 + e**-2)]
    for b, p in enumerate(probs):
        assert abs(assigned.count(b) / len(ids) - p) < 0.03


def test_asha_gap_is_judged_at_every_rung_it_jumps():
    for jump, stops in [(2.5, True), (1.5, False)]:
        rule = rule_of({"type": "asha", "max_step": 100})  # rungs 1, 3, 9, 27, 81
        for t, v in [("a", 3.0), ("b", 2.0), ("c", 1.0)]:  # each better than the last
            assert not rule.should_stop(t, 9, v)  # recorded at rungs 1, 3 and 9 at once
        assert rule._curves[0].at[3] == {"a": 3.0, "b": 2.0, "c": 1.0}
        # rewards -3, -2, -1: the 66.7th percentile is -1.667
        assert not rule.should_stop("d", 1, 0.5)
        # d jumps from 1 to 10: judged at rungs 3 and 9 with its step-10 value
        assert rule.should_stop("d", 10, jump) is stops
        assert rule._curves[0].at[9]["d"] == jump and rule._curves[0].at[1]["d"] == 0.5


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_asha_non_finite_is_the_worst(bad):
    rule = rule_of({"type": "asha", "max_step": 10})
    assert not rule.should_stop("a", 1, 1.0)
    assert rule.should_stop("b", 1, bad)


def test_asha_repeated_step_replaces_the_value_and_judges_again():
    rule = rule_of({"type": "asha", "max_step": 10})
    assert not rule.should_stop("a", 1, 1.0)
    assert not rule.should_stop("b", 1, 0.5)
    assert rule.should_stop("b", 1, 2.0)  # the last report of step 1 counts
    assert rule.stopped() == {"b": 1}
    assert rule.should_stop("b", 2, 0.1)  # a stop is final


def test_asha_a_report_at_max_step_never_stops_the_trial():
    # Issue 25, item 3: a trial that reaches max_step has run every step; a rung below
    # max_step that it first reaches with that report (a step gap, a non-integer eta) is
    # recorded, never judged.
    gap = rule_of({"type": "asha", "max_step": 10})  # rungs 1, 3, 9
    assert not gap.should_stop("a", 1, 0.1) and not gap.should_stop("a", 10, 0.1)
    assert not gap.should_stop("b", 10, 0.9)  # rungs 1, 3, 9 first reached at step 10
    assert gap._curves[0].at[9] == {"a": 0.1, "b": 0.9}  # recorded all the same
    assert gap.stopped() == {}
    assert gap.should_stop("c", 9, 0.9)  # below max_step the same value stops
    odd = rule_of({"type": "asha", "max_step": 16, "eta": 2.5})  # ..., 6.25, 15.625
    for step in range(1, 17):
        assert not odd.should_stop("a", step, 0.1)
    for step in range(1, 16):
        assert not odd.should_stop("b", step, 0.1)
    assert not odd.should_stop("b", 16, 0.9)  # rung 15.625 first reached at max_step 16
    assert odd.rungs()[-1]["trials"] == 2


def test_a_nan_is_the_worst_value_where_a_cutoff_falls_between_it_and_a_number():
    # Issue 25, item 4: a cutoff interpolated between a NaN (the worst) and a number lies
    # past every number: the NaN side stops, every finite value continues, exactly as with
    # a finite worst value made ever worse.
    for bad in (NAN, INF):
        asha = rule_of({"type": "asha", "max_step": 10})
        assert not asha.should_stop("a", 1, bad)
        assert not asha.should_stop("b", 1, 1.0)
        # cutoff at 2/3 of the way from the NaN to 1.0: past every number
        assert asha.should_stop("c", 1, bad)
        assert not asha.should_stop("d", 1, 1e300)
        for finite_worst, stops in ((1e300, True), (1e6, True)):
            twin = rule_of({"type": "asha", "max_step": 10})  # the same with a number
            twin.should_stop("a", 1, finite_worst)
            twin.should_stop("b", 1, 1.0)
            assert twin.should_stop("c", 1, finite_worst) is stops
        med = rule_of({"type": "median", "min_samples": 2})
        assert not med.should_stop("a", 1, bad)
        assert not med.should_stop("b", 1, 1.0)
        assert med.should_stop("c", 1, bad)  # median(NaN, 1.0): past every number
        assert not med.should_stop("d", 1, 1e300)
        json.dumps(asha.rungs() + med.rungs())  # a cutoff past every number shows as null
        assert all(r["cutoff"] is None or math.isfinite(r["cutoff"])
                   for r in asha.rungs() + med.rungs())

    from sweep.stopping.base import PAST_EVERY_NUMBER, median, percentile
    assert percentile([-INF, -1.0], 100 * (1 - 1 / 3)) == -PAST_EVERY_NUMBER
    assert percentile([-INF, -INF, -1.0], 50) == -INF  # exactly on a worst value
    assert percentile([-3.0, -1.0], 50) == -2.0
    assert median([1.0, INF]) == PAST_EVERY_NUMBER and median([INF, INF]) == INF
    assert median([1.0, 3.0, INF]) == 3.0


# -------------------------------------------------------------------------- median

# Worked by hand: grace_period 2, min_samples 2, lockstep in the order a, b, c, d.
#  step 2: a (no other has step 2), b (1 other) continue; c: best 1.4 > median(0.8, 0.9)
#          = 0.85: stop; d: best 0.9 (step 1) > median(0.8, 0.9, 1.4) = 0.9 is false.
#  step 3: a, b continue (fewer than 2 others); d: best 0.9 > median(0.6, 0.7): stop.
M1 = {
    "a": [1.0, 0.8, 0.6, 0.5],
    "b": [1.2, 0.9, 0.7, 0.6],
    "c": [1.5, 1.4, 1.3, 1.2],
    "d": [0.9, 1.6, 1.5, 1.4],
}
M1_STOPS = {"c": 2, "d": 3}


def test_median_worked_example():
    rule = rule_of({"type": "median", "grace_period": 2, "min_samples": 2})
    assert isinstance(rule, MedianRule)
    assert live(rule, arrivals(M1)) == M1_STOPS
    rungs = rule.rungs()
    # the values at step 2 (0.8, 0.9, 1.4, 1.6): their median
    assert rungs[0] == {"bracket": 0, "step": 2, "cutoff": pytest.approx(1.15), "trials": 4}
    json.dumps(rungs)


def test_median_maximize_mirrors_minimize():
    curves = {t: [-v for v in c] for t, c in M1.items()}
    rule = rule_of({"type": "median", "grace_period": 2, "min_samples": 2}, "maximize")
    assert live(rule, arrivals(curves)) == M1_STOPS


def test_median_grace_period_and_min_samples():
    # without a grace period c is judged at step 1 already: 1.5 > median(1.0, 1.2)
    # (step 1: median(1.0, 1.2) = 1.1); then d at step 2: 0.9 > median(0.8, 0.9)
    assert live(rule_of({"type": "median", "min_samples": 2}), arrivals(M1)) == {
        "c": 1, "d": 2}
    # default min_samples 3: only d (the 4th at each step) is judged; at step 3 its best
    # 0.9 > median(0.6, 0.7, 1.3) = 0.7
    assert live(rule_of({"type": "median"}), arrivals(M1)) == {"d": 3}
    assert live(rule_of({"type": "median", "min_step": 5}), arrivals(M1)) == {}


def test_median_gap_uses_the_others_first_value_past_the_step():
    rule = rule_of({"type": "median", "min_samples": 1})
    assert not rule.should_stop("a", 10, 1.0)  # a jumps to 10: its value at any step <= 10
    assert rule.should_stop("b", 4, 2.0)       # 2.0 > median(a at step 4 -> 1.0)
    assert not rule.should_stop("c", 12, 5.0)  # nobody reached 12


def test_median_non_finite_is_the_worst():
    rule = rule_of({"type": "median", "min_samples": 2})
    for t in "ab":
        assert not rule.should_stop(t, 1, 1.0)
    assert rule.should_stop("c", 1, NAN)


def test_median_compares_at_or_after_t_keeps_the_last_value_and_the_readme_says_so():
    # Issue 25, item 5: both are deliberate differences from Optuna's MedianPruner,
    # listed in the README's table of differences.
    from tests.test_spec import readme_differences

    rule = rule_of({"type": "median", "min_samples": 1})
    assert not rule.should_stop("a", 5, 1.0)   # a reported 5, not 4: it counts at t=4
    assert rule.should_stop("b", 4, 2.0)
    again = rule_of({"type": "median", "min_samples": 1})
    assert not again.should_stop("a", 1, 9.0)
    assert not again.should_stop("a", 1, 1.0)  # the last value of step 1 counts
    assert again.should_stop("b", 1, 2.0)      # 2.0 > 1.0 (Optuna: 9.0, no stop)
    rows = readme_differences()
    assert any("MedianPruner" in r and "exactly its step t" in r and "at or after t" in r
               for r in rows)
    assert any("MedianPruner" in r and "first value" in r and "last value counts" in r
               for r in rows)


# ------------------------------------------------------------------ common behaviour

RULES = [
    {"type": "hyperband", "min_iter": 1, "eta": 2},
    {"type": "hyperband", "max_iter": 20, "s": 3, "eta": 2, "strict": False},
    {"type": "asha", "max_step": 30, "eta": 2, "brackets": 2},
    {"type": "asha", "min_step": 3},
    {"type": "median", "min_samples": 1},
    {"type": "median", "grace_period": 4, "min_samples": 2},
]

values = st.one_of(
    st.floats(-5, 5, allow_nan=False, width=16),
    st.sampled_from([0.0, 1.0, NAN, INF, -INF, None]),
)
reports = st.lists(
    st.tuples(st.sampled_from("abcdef"), st.integers(0, 40), values), max_size=80)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(RULES), st.sampled_from(["minimize", "maximize"]), reports)
def test_replay_gives_the_live_decisions(settings_, goal, sequence):
    rule = rule_of(settings_, goal)
    decided = [rule.should_stop(t, s, v) for t, s, v in sequence]
    stopped_live = {t for (t, _, _), d in zip(sequence, decided) if d}
    assert replay(rule_of(settings_, goal), sequence) == stopped_live == set(rule.stopped())
    # finished() is bookkeeping only
    other = rule_of(settings_, goal)
    for i, (t, s, v) in enumerate(sequence):
        if i % 3 == 0:
            other.finished(t)
        assert other.should_stop(t, s, v) == decided[i]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(RULES), st.sampled_from(["minimize", "maximize"]), reports)
def test_no_stop_before_the_first_rung_nor_without_a_value(settings_, goal, sequence):
    sequence = sorted(sequence, key=lambda r: r[1])  # steps that grow
    sequence = [(t, s, None if t == "f" else v) for t, s, v in sequence]
    rule = rule_of(settings_, goal)
    stops = live(rule, sequence)
    assert "f" not in stops  # reported no value
    for trial, step in stops.items():
        if isinstance(rule, HyperbandRule):  # counts reports (distinct steps)
            assert len({s for t, s, _ in sequence if t == trial and s <= step}) >= rule.bands[0]
        elif isinstance(rule, AshaRule):
            assert step >= rule.brackets[rule.bracket(trial)][0]
        else:
            assert step >= rule.grace_period
    assert json.loads(json.dumps(rule.rungs())) == rule.rungs()


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(RULES), reports)
def test_maximize_is_minimize_of_the_negated_metric(settings_, sequence):
    finite = [(t, s, v) for t, s, v in sequence if v is not None and math.isfinite(v)]
    low = live(rule_of(settings_, "minimize"), finite)
    high = live(rule_of(settings_, "maximize"), [(t, s, -v) for t, s, v in finite])
    assert low == high


def test_a_trial_that_never_reports_is_never_stopped():
    for settings_ in RULES:
        rule = rule_of(settings_)
        live(rule, arrivals(H1))
        rule.finished("silent")
        assert "silent" not in rule.stopped()
        assert rule.should_stop("silent", 50, None) is False


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"),
                          st.one_of(st.integers(0, 30), st.just(2**70), st.just(-(2**66))),
                          st.sampled_from([0.5, 1.0, 2.0, 3.0, INF, -1.0])), max_size=60),
       st.lists(st.integers(0, 32), max_size=5))
def test_curves_in_flat_arrays_match_the_plain_definition(reports, extra):
    # The compact curves (16 bytes a point, a running best) against the definition: the
    # last value of each step, the value at c = that of the smallest step >= c.
    from sweep.stopping.base import Curves

    curves = Curves([1, 2.5, 10])
    plain: dict[str, dict[int, float]] = {}
    for trial, step, loss in reports:
        curves.update(trial, step, loss)
        plain.setdefault(trial, {})[step] = loss
        assert curves.best(trial) == min(plain[trial].values())
    for c in extra:
        curves.add_checkpoint(c)
    for c in curves.checkpoints:
        expected = {t: v[min(s for s in v if s >= c)] for t, v in plain.items()
                    if any(s >= c for s in v)}
        assert curves.at[c] == expected, c


def test_a_rule_keeps_16_bytes_a_report_of_a_long_trial():
    # Weak item of issue 25: a trial's curve was a dict of boxed numbers (~150 bytes a
    # report); now two flat arrays.
    import sys

    for raw in ({"type": "asha"}, {"type": "hyperband", "min_iter": 1}):
        rule = rule_of(raw)
        n = 50_000
        for step in range(n):
            rule.should_stop("long", step, 1.0 / (step + 1))
        curves = rule._curves[0] if isinstance(rule, AshaRule) else rule._curves
        held = [curves._points["long"]]
        if isinstance(rule, HyperbandRule):
            held.append(rule._iterations["long"])
        size = sum(sys.getsizeof(p.keys) + sys.getsizeof(p.values) for p in held)
        assert size < 20 * n * len(held), (raw, size)


def test_replay_needs_a_fresh_rule():
    rule = rule_of({"type": "median"})
    rule.should_stop("a", 1, 1.0)
    with pytest.raises(ValueError, match="fresh"):
        replay(rule, [("a", 2, 1.0)])


def test_a_rule_is_fresh_until_it_is_given_a_value():
    rule = rule_of({"type": "median"})
    assert rule.fresh
    assert rule.should_stop("a", 1, None) is False  # no value: nothing seen
    assert rule.fresh
    rule.should_stop("a", 1, 1.0)
    assert not rule.fresh


def test_describe_is_one_line():
    for settings_ in RULES:
        text = rule_of(settings_).describe()
        assert "\n" not in text and text.startswith(settings_["type"])


# --------------------------------------------------------------------------- parsing


def test_the_registry_names_every_rule_and_each_reads_its_own_settings():
    # In the order messages list them (early_terminate.type: expected one of ...).
    assert list(REGISTRY.items()) == [("hyperband", HyperbandRule), ("asha", AshaRule),
                                      ("median", MedianRule)]
    for settings_ in RULES:
        cls = REGISTRY[settings_["type"]]
        rule = cls.from_dict(settings_, Metric("loss"))
        assert type(rule) is cls is type(rule_of(settings_)) and rule.kind == settings_["type"]
        assert rule.describe() == rule_of(settings_).describe()


def test_did_you_mean_names_ours_for_another_tools_setting_before_spelling():
    aliases = {"rf": "eta"}
    assert did_you_mean("rf", ["rfx", "eta"], aliases=aliases) == "did you mean 'eta'?"
    assert did_you_mean("rf", ["rfx"], aliases=aliases) == "did you mean 'rfx'?"
    assert did_you_mean("zz", ["a", "b"], "allowed: ", aliases) == "allowed: a, b"


def test_no_early_terminate_is_no_rule():
    assert parse_rule(None, Metric("loss")) is None


BAD = [
    ("hyperband", "early_terminate: got 'hyperband', expected a mapping"),
    ({}, "early_terminate.type: expected one of hyperband, asha, median"),
    ({"type": "hyperbnd", "min_iter": 3},
     "early_terminate.type: got 'hyperbnd', expected one of hyperband, asha, median "
     "(did you mean 'hyperband'?)"),
    ({"type": "Median"}, "early_terminate.type: got 'Median', expected one of hyperband, "
                         "asha, median (did you mean 'median'?)"),
    ({"type": "envelope"}, "early_terminate.type: got 'envelope', expected one of"),
    ({"type": "hyperband", "min_iter": 3, "etaa": 2},
     "early_terminate.etaa: expected a key of type: hyperband (did you mean 'eta'?)"),
    ({"type": "hyperband", "min_iter": 3, "eta": 1}, "early_terminate.eta: got 1, expected a "
                                                     "number > 1"),
    ({"type": "hyperband", "min_iter": 3, "eta": 0.5}, "early_terminate.eta: got 0.5, expected"),
    ({"type": "hyperband", "min_iter": 3, "eta": True}, "early_terminate.eta: got True, expected"),
    ({"type": "hyperband", "min_iter": 3, "eta": "x"}, "early_terminate.eta: got 'x', expected"),
    ({"type": "hyperband", "min_iter": 0}, "early_terminate.min_iter: got 0, expected an "
                                           "integer >= 1"),
    ({"type": "hyperband", "min_iter": 2.5}, "early_terminate.min_iter: got 2.5, expected an "
                                             "integer >= 1"),
    ({"type": "hyperband", "min_iter": "three"}, "early_terminate.min_iter: got 'three'"),
    ({"type": "hyperband", "max_iter": 27, "s": 0}, "early_terminate.s: got 0, expected an "
                                                    "integer in [1, 100]"),
    ({"type": "hyperband", "max_iter": 27, "s": 1.5}, "early_terminate.s: got 1.5, expected"),
    ({"type": "hyperband", "min_iter": 3, "s": 0}, "early_terminate.s: got 0, expected"),
    ({"type": "hyperband", "max_iter": 27}, "early_terminate.s: expected an integer >= 1 with "
                                            "max_iter"),
    ({"type": "hyperband"}, "early_terminate.min_iter: expected an integer >= 1 (or max_iter "
                            "with s)"),
    ({"type": "hyperband", "s": 2}, "early_terminate.max_iter: expected an integer >= 1 with s"),
    ({"type": "hyperband", "max_iter": 2, "s": 1},
     "early_terminate.max_iter: got 2, expected an integer >= eta (3)"),
    ({"type": "hyperband", "max_iter": 0, "s": 1}, "early_terminate.max_iter: got 0, expected"),
    ({"type": "hyperband", "min_iter": 1, "strict": "yes"},
     "early_terminate.strict: got 'yes', expected true or false"),
    ({"type": "asha", "grace_period": 0}, "early_terminate.grace_period: got 0, expected an "
                                          "integer >= 1"),
    ({"type": "asha", "min_step": -1}, "early_terminate.min_step: got -1, expected an "
                                       "integer >= 1"),
    ({"type": "asha", "min_step": 9, "max_step": 9},
     "early_terminate.max_step: got 9, expected an integer > min_step (9)"),
    ({"type": "asha", "grace_period": 10, "max_step": 5},
     "early_terminate.max_step: got 5, expected an integer > grace_period (10)"),
    ({"type": "asha", "max_step": 27, "brackets": 5},
     "early_terminate.brackets: got 5, expected an integer in [1, 3]"),
    ({"type": "asha", "brackets": 0}, "early_terminate.brackets: got 0, expected an integer in"),
    ({"type": "asha", "min_step": 1, "grace_period": 2},
     "early_terminate.grace_period: got 2, expected no grace_period next to min_step"),
    ({"type": "asha", "eta": 1}, "early_terminate.eta: got 1, expected a number > 1"),
    ({"type": "asha", "max_t": 10},
     "early_terminate.max_t: expected a key of type: asha (did you mean 'max_step'?)"),
    ({"type": "asha", "reduction_factor": 4},
     "early_terminate.reduction_factor: expected a key of type: asha (did you mean 'eta'?)"),
    ({"type": "median", "grace_period": -1},
     "early_terminate.grace_period: got -1, expected an integer >= 0"),
    ({"type": "median", "min_samples": 0},
     "early_terminate.min_samples: got 0, expected an integer >= 1"),
    ({"type": "median", "eta": 3}, "early_terminate.eta: expected a key of type: median "
                                   "(allowed: type, grace_period, min_step, min_samples)"),
    ({"type": "median", "min_samples_required": 3},
     "early_terminate.min_samples_required: expected a key of type: median "
     "(did you mean 'min_samples'?)"),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad_settings_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(SpecError) as info:
        parse_rule(raw, Metric("loss"))
    assert str(info.value).startswith(message)
    assert str(info.value).split(":")[0] == info.value.path


def test_bad_goal_and_custom_path():
    with pytest.raises(SpecError, match=r"^metric.goal: got 'minimise', expected one of"):
        parse_rule({"type": "median"}, Metric("loss", "minimise"))
    with pytest.raises(SpecError, match=r"^stages\[1\].early_terminate.eta: got 1"):
        parse_rule({"type": "asha", "eta": 1}, Metric("loss", "maximize"),
                   path="stages[1].early_terminate")


def test_good_settings_are_accepted():
    assert rule_of({"type": "hyperband", "min_iter": "3", "eta": 3.0}).bands[:2] == [3, 9]
    assert rule_of({"type": "asha", "grace_period": 2, "max_step": 50.0}).brackets == [
        [2, 6, 18]]
    assert rule_of({"type": "median", "min_step": 3}).grace_period == 3


def test_hyperband_with_both_min_iter_and_max_iter_uses_max_iter_as_wandb_does():
    with pytest.warns(UserWarning, match="min_iter is ignored"):
        rule = parse_rule({"type": "hyperband", "min_iter": 3, "max_iter": 27, "s": 2},
                          Metric("loss"))
    assert rule.bands == [3, 9]
