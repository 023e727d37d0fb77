"""The Gaussian-process surrogate (sweep.plans.surrogate) through its public API: what it
observes, its losses, box candidates, pending points and constant liars, its targets.
No Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweep.core.metric import Metric
from sweep.core.records import TrialRecord
from sweep.plans.base import make_rng
from sweep.plans.surrogate import Surrogate, normal_scores, transform
from sweep.space import Choice, RandInt, Space, Uniform

SPACE = Space({"x": Uniform(0.0, 1.0), "n": RandInt(1, 4),
               "opt": Choice(["sgd", "adam", "adamw"])})


def rec(i, params, value, stage=0, status="ok", metric="loss"):
    metrics = {} if value is None else {metric: value}
    return TrialRecord(sweep="t", stage=stage, trial_id=f"t{stage}-{i}", status=status,
                       params=params, metrics=metrics)


def grid_records(stage=0, metric="loss", sign=1.0):
    out = []
    for i, x in enumerate(np.linspace(0.05, 0.95, 8)):
        params = {"x": float(x), "n": 1 + i % 4, "opt": ["sgd", "adam", "adamw"][i % 3]}
        out.append(rec(i, params, sign * (x - 0.3) ** 2, stage, metric=metric))
    return out


def test_it_observes_its_stage_and_sources_only_and_says_which():
    model = Surrogate(SPACE, Metric("loss"), stage=2, sources=[0])
    records = grid_records(0)[:3] + grid_records(1)[:2] + grid_records(2)[:2] + grid_records(3)
    taken = model.tell(records)
    assert [r.stage for r in taken] == [0, 0, 0, 2, 2]
    assert model.n_observed == 5 and model.n_earlier == 3
    # A retried trial's last attempt replaces the first: no second observation.
    model.tell([records[0]._replace(status="failed", metrics={})])
    assert model.n_observed == 5 and model.summary()["failed"] == 1


def test_losses_follow_the_metric_and_failures_are_infinite():
    model = Surrogate(SPACE, Metric("acc", "maximize"))
    params = {"x": 0.5, "n": 2, "opt": "sgd"}
    assert model.loss(rec(0, params, 0.9, metric="acc")) == -0.9
    assert model.loss(rec(1, params, None, status="failed", metric="acc")) == math.inf
    assert model.loss(rec(2, params, math.nan, metric="acc")) == math.inf
    assert model.loss(rec(3, params, 0.4, status="stopped", metric="acc")) == -0.4


def test_the_incumbent_is_reported_in_the_metric_not_the_loss():
    model = Surrogate(SPACE, Metric("acc", "maximize"))
    model.tell(grid_records(metric="acc", sign=-1.0))
    best = model.summary()["incumbent"]
    assert best["trial_id"] == "t0-2"  # x = 0.307, the highest accuracy
    assert best["acc"] == pytest.approx(-((0.05 + 2 * 0.9 / 7) - 0.3) ** 2)


def test_box_rows_stay_in_their_box_with_the_given_categories():
    model = Surrogate(SPACE, Metric("loss"))
    enc = model.encoder
    rows = enc.box_rows(make_rng(0), 200, {"x": (0.2, 0.4), "n": (0.5, 1.0)},
                        {"opt": ["adam", "adamw"]})
    configs = [enc.decode(r) for r in rows]
    assert all(0.2 <= c["x"] <= 0.4 for c in configs)
    assert {c["n"] for c in configs} == {3, 4}  # snapped to the cells of the upper half
    assert {c["opt"] for c in configs} == {"adam", "adamw"}
    assert np.all(enc.possible(rows)) and np.allclose(enc.prior_weights(rows), 1 / 3)


def test_pending_points_change_the_scores_until_they_are_told():
    model = Surrogate(SPACE, Metric("loss"))
    model.tell(grid_records())
    assert model.ready
    rows = model.encoder.box_rows(make_rng(1), 64, {"x": (0.0, 1.0), "n": (0.0, 1.0)},
                                  {"opt": ["sgd"]})
    before = model.expected_improvement(rows)
    flight = {"x": 0.31, "n": 2, "opt": "sgd"}
    model.pend(flight)
    assert model.n_pending == 1
    assert not np.allclose(model.expected_improvement(rows), before)
    model.tell([rec(99, flight, None, stage=1)])  # a later stage: not this model's
    assert model.n_pending == 1
    model.tell([rec(99, flight, 0.0001)])
    assert model.n_pending == 0


def test_a_constant_liar_is_undone_when_it_ends():
    model = Surrogate(SPACE, Metric("loss"))
    model.tell(grid_records())
    model.fit()
    model.pend({"x": 0.31, "n": 2, "opt": "sgd"})
    rows = model.encoder.box_rows(make_rng(2), 32, {"x": (0.2, 0.4), "n": (0.0, 1.0)},
                                  {"opt": ["sgd", "adam"]})
    _, means = model.conditioned()
    before = model.log_ei(rows, float(np.min(means)))
    with model.lying("worst"):
        assert model.n_pending == 0
        assert len(model.conditioned()[0]) == model.n_observed + 1
    assert model.n_pending == 1 and len(model.conditioned()[0]) == model.n_observed
    assert np.array_equal(model.log_ei(rows, float(np.min(means))), before)


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="history"):
        Surrogate(SPACE, Metric("loss"), history="all")
    with pytest.raises(ValueError, match="transform"):
        Surrogate(SPACE, Metric("loss"), transform="log")


def test_target_transforms():
    v = np.array([3.0, 1.0, 2.0, math.inf])
    z = transform(v, "median")
    assert z[1] < z[2] < z[0] and z[3] == z[0]  # capped at the median; failed = worst
    assert list(np.argsort(normal_scores(np.array([0.3, 0.1, 0.2])))) == [1, 2, 0]
    assert np.all(transform(np.array([math.inf, math.nan]), "median") == 0)


def test_huge_metric_values_still_rank():
    z = transform(np.array([1e160, 1e170, 1.0, 2.0]), "standard")
    assert np.all(np.isfinite(z)) and z[1] > z[0] > z[3] >= z[2]


def many_records(n, seed=0, stage=0):
    rng = make_rng(seed)
    out = []
    for i in range(n):
        params = {"x": float(rng.random()), "n": int(rng.integers(1, 5)),
                  "opt": ["sgd", "adam", "adamw"][int(rng.integers(3))]}
        out.append(rec(i, params, (params["x"] - 0.3) ** 2 + 0.1 * params["n"], stage))
    return out


def test_up_to_its_cap_the_model_holds_every_observation_and_beyond_a_bounded_subset():
    told = many_records(300)
    exact = Surrogate(SPACE, Metric("loss"), cap=300)
    exact.tell(told)
    exact.fit()
    assert len(exact.gp.y) == 300
    capped = Surrogate(SPACE, Metric("loss"), cap=64)
    capped.tell(told)
    capped.fit()
    X = capped.gp.X
    assert len(X) <= 64
    # The best half by loss is in the model ...
    losses = sorted(capped.loss(r) for r in told)
    best = {tuple(capped.encoder.encode(r.params)) for r in told
            if capped.loss(r) <= losses[31]}
    assert best <= {tuple(row) for row in X}
    # ... and every observation told since the space-filling sample was drawn.
    later = many_records(5, seed=1)
    later = [r._replace(trial_id=f"late-{i}") for i, r in enumerate(later)]
    capped.tell(later)
    capped.fit()
    rows = {tuple(row) for row in capped.gp.X}
    assert all(tuple(capped.encoder.encode(r.params)) in rows for r in later)
    assert len(capped.gp.X) <= 64


def test_a_batch_scores_like_the_model_with_its_picks_pending():
    model = Surrogate(SPACE, Metric("loss"))
    model.tell(grid_records())
    model.pend({"x": 0.6, "n": 3, "opt": "adam"})
    rows = model.encoder.box_rows(make_rng(3), 40, {"x": (0.0, 1.0), "n": (0.0, 1.0)},
                                  {"opt": ["sgd", "adam"]})
    batch = model.batch(rows[:30])
    batch.add(rows[30:])
    best = float(np.min(model.conditioned()[1]))
    assert np.allclose(batch.log_ei(best), model.log_ei(rows, best))
    for i in (4, 17, 35):  # each pick joins the pending points
        batch.pick(i)
        model.pend(model.encoder.decode(rows[i]))
        # The decoded config is the row itself (integers at their cell centres).
        assert np.allclose(batch.log_ei(best), model.log_ei(rows, best), atol=1e-6)
    draws = model.thompson_many(rows, make_rng(4), 3)
    assert draws.shape == (40, 3) and not np.allclose(draws[:, 0], draws[:, 1])
