"""Parameter importance (fANOVA on the numpy forest) on functions whose answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sweep.views.forest import Domain, grow_forest
from sweep.views.importance import importance, importance_text

FAST = {"resamples": 4, "trees": 8}


def table(n: int, d: int, f, seed: int = 0, **extra) -> pd.DataFrame:
    """``n`` ok trials with parameters x0..x(d-1) uniform on [0, 1] (and ``extra``
    columns), metric ``y = f(frame)``."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "stage": 0, "status": "ok",
                       **{f"params.x{i}": rng.random(n) for i in range(d)}})
    for name, make in extra.items():
        df[f"params.{name}"] = make(rng, n)
    df["metrics.y"] = f(df)
    return df


def linear(d: int) -> dict[str, str]:
    return {f"x{i}": "linear" for i in range(d)}


def by_name(imp):
    return {p.name: p for p in imp.params}


def test_two_of_eight_parameters_matter():
    df = table(400, 8, lambda t: 2 * np.sin(3 * t["params.x3"])
               + 8 * (t["params.x6"] - 0.5) ** 2)
    imp = importance(df, "y", "minimize", linear(8), **FAST)
    assert {p.name for p in imp.params[:2]} == {"x3", "x6"}
    p = by_name(imp)
    for name in ("x3", "x6"):
        assert p[name].total > 0.35 and p[name].main > 0.3, p[name]
    for name in ("x0", "x1", "x2", "x4", "x5", "x7"):
        assert p[name].total < 0.05 and p[name].main < 0.01, p[name]
    assert imp.fit_r2 > 0.8
    assert imp.trials == imp.ranked == 400


def test_an_additive_function_gets_its_exact_shares():
    # Var(x0) : Var(2 x1) = 1 : 4 on the unit square: 20 % and 80 %, no interaction.
    df = table(1000, 2, lambda t: t["params.x0"] + 2 * t["params.x1"])
    imp = importance(df, "y", "minimize", linear(2), **FAST)
    p = by_name(imp)
    assert p["x0"].main == pytest.approx(0.2, abs=0.03)
    assert p["x1"].main == pytest.approx(0.8, abs=0.03)
    assert p["x0"].interactions < 0.03 and p["x1"].interactions < 0.03


def test_a_pure_interaction_is_found_where_main_effects_see_nothing():
    df = table(400, 4, lambda t: (t["params.x0"] - 0.5) * (t["params.x1"] - 0.5))
    imp = importance(df, "y", "minimize", linear(4), **FAST)
    assert {p.name for p in imp.params[:2]} == {"x0", "x1"}
    p = by_name(imp)
    for name in ("x0", "x1"):
        assert p[name].total > 0.6, p[name]
        assert p[name].main < 0.2, p[name]  # alone it explains little: Optuna's view
    for name in ("x2", "x3"):
        assert p[name].total < 0.1, p[name]
    (pair, *_) = imp.pairs
    assert {pair.a, pair.b} == {"x0", "x1"} and pair.value > 0.5


def test_a_categorical_that_matters():
    effect = {"adam": 0.0, "sgd": 1.0, "rmsprop": 3.0, "adagrad": 0.2}
    df = table(400, 3, lambda t: t["params.opt"].map(effect) + 0.3 * t["params.x0"],
               opt=lambda rng, n: rng.choice(list(effect), n))
    imp = importance(df, "y", "minimize", {**linear(3), "opt": "categorical"}, **FAST)
    assert imp.params[0].name == "opt" and imp.params[0].scale == "categorical"
    assert imp.params[0].main > 0.9
    assert imp.params[1].name == "x0"
    assert all(p.total < 0.01 for p in imp.params[2:])


def test_log_parameters_are_measured_in_decades():
    # The metric steps at lr = 1e-3 and grows with x0: the step covers 2 of 5 decades of
    # lr's range (share p = 0.4) but 0.1 % of it in raw units, so its share of the
    # variance, p(1-p) / (p(1-p) + Var(x0)), is 74 % in decades and 1.2 % in raw units.
    lr = {"lr": lambda rng, n: 10 ** rng.uniform(-5, 0, n)}
    df = table(600, 2, lambda t: (t["params.lr"] < 1e-3).astype(float) + t["params.x0"],
               **lr)

    def share(p: float) -> float:
        return p * (1 - p) / (p * (1 - p) + 1 / 12)

    lo, hi = df["params.lr"].min(), df["params.lr"].max()
    in_decades = by_name(importance(df, "y", "minimize", {**linear(2), "lr": "log"}, **FAST))
    raw = by_name(importance(df, "y", "minimize", {**linear(2), "lr": "linear"}, **FAST))
    assert in_decades["lr"].scale == "log"
    p_log = (math.log10(1e-3) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    assert in_decades["lr"].main == pytest.approx(share(p_log), abs=0.05)
    assert raw["lr"].main == pytest.approx(share((1e-3 - lo) / (hi - lo)), abs=0.01)


def test_the_spread_over_resamples_is_reported():
    df = table(150, 3, lambda t: t["params.x0"] + np.random.default_rng(1).normal(0, .3, 150))
    imp = importance(df, "y", "minimize", linear(3), resamples=6, trees=8)
    assert imp.resamples == 6
    for p in imp.params:
        assert p.total_std > 0 and p.main_std > 0
        assert p.total_range[0] <= p.total <= p.total_range[1]
    # The same seed gives the same figures.
    again = importance(df, "y", "minimize", linear(3), resamples=6, trees=8)
    assert again.params == imp.params


def test_noise_is_flagged_and_small_tables_are_refused():
    rng = np.random.default_rng(2)
    df = table(200, 3, lambda t: rng.normal(size=len(t)))
    imp = importance(df, "y", "minimize", linear(3), **FAST)
    assert imp.fit_r2 < 0.2
    assert any("explains little" in n for n in imp.notes)
    few = importance(df.head(5), "y", "minimize", linear(3), **FAST)
    assert few.params == () and any("too few" in n for n in few.notes)


def test_only_ranked_trials_count_and_large_tables_are_sampled():
    df = table(300, 2, lambda t: t["params.x0"])
    df.loc[:49, "status"] = "failed"
    df.loc[50:59, "metrics.y"] = np.inf
    imp = importance(df, "y", "minimize", linear(2), max_trials=100, **FAST)
    assert imp.ranked == 240 and imp.trials == 100
    assert any("100 of 240 ranked trials used" in n for n in imp.notes)
    assert imp.params[0].name == "x0"


def test_text_and_json():
    df = table(200, 2, lambda t: t["params.x0"] + 0.1 * t["params.x1"])
    imp = importance(df, "y", "minimize", linear(2), **FAST)
    text = importance_text(imp)
    assert text.splitlines()[0].startswith("parameter importance for y (minimize)")
    assert text.splitlines()[2].split()[0] == "x0"
    data = json.loads(json.dumps(imp.to_json()))
    assert [p["name"] for p in data["params"]] == ["x0", "x1"]
    assert set(data["params"][0]) >= {"main", "main_std", "total", "total_std", "scale"}
    assert data["trials"] == 200 and "fANOVA" in data["method"]


def test_forest_categorical_boxes_cover_the_categories():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 5, 300)
    X = np.column_stack([rng.random(300), codes])
    y = np.array([0, 2, 0, 5, 1.0])[codes]
    forest = grow_forest(X, y, Domain(np.array([0, 5]), np.array([0.0, 0]),
                                      np.array([1.0, 0])), trees=3, seed=0)
    for t in range(3):
        leaves = forest.leaves(t)
        # The leaves of a tree tile the space: every category of every x lies in one leaf.
        volume = ((forest.hi[leaves, 0] - forest.lo[leaves, 0])
                  * forest.cats[leaves, 1, :5].sum(axis=1) / 5)
        assert math.isclose(volume.sum(), forest.hi[t, 0] - forest.lo[t, 0])
    pred = forest.predict(np.column_stack([np.full(5, 0.5), np.arange(5)])).mean(axis=0)
    assert np.allclose(pred, [0, 2, 0, 5, 1], atol=1e-9)


# --------------------------------------------------------------------------- the command


def test_the_importance_command(tmp_path, capsys):
    from sweep.cli import main
    from tests.fake_sweep import FakeDriver

    FakeDriver(str(tmp_path / "results")).run(first=150, second=10)
    path = str(tmp_path / "results" / "demo")
    assert main(["importance", path, "--resamples", "3", "--trees", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("parameter importance for loss (minimize)")
    assert "3 resamples of 158 trials" in lines[0]  # 160 less the 2 failed
    ranked = [line.split()[0] for line in lines[2:7]]
    assert ranked[:3] == ["lr", "opt", "x2"] and sorted(ranked[3:]) == ["x3", "x4"]
    assert lines[2].split()[1] == "log" and lines[3].split()[1] == "categorical"

    assert main(["importance", path, "--stage", "0", "--format", "json", "--resamples", "2",
                 "--trees", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sweep"] == "demo" and data["stages"] == [0] and data["trials"] == 148
    assert data["params"][0]["name"] == "lr" and data["resamples"] == 2


def test_the_importance_command_needs_a_metric(tmp_path, capsys):
    from sweep.cli import main
    from tests.fake_sweep import FakeDriver

    driver = FakeDriver(str(tmp_path / "results"))
    driver.folder.write_text("spec.yaml", driver.text.replace(
        "metric: {name: loss, goal: minimize}\n", ""))
    assert main(["importance", str(tmp_path / "results" / "demo")]) == 2
    assert "has no metric" in capsys.readouterr().err


def test_a_constant_that_differs_by_stage_is_named():
    df = table(120, 2, lambda t: t["params.x0"] + (t["stage"] == 1) * 2.0)
    df.loc[60:, "stage"] = 1
    df["metrics.y"] = df["params.x0"] + (df["stage"] == 1) * 2.0
    df["params.epochs"] = np.where(df["stage"] == 1, 15, 3)
    scales = {**linear(2), "epochs": "constant"}
    imp = importance(df, "y", "minimize", scales, **FAST)
    assert any("epochs differs by stage (stage 0: 3; stage 1: 15)" in n for n in imp.notes)
    assert imp.fit_r2 < 0.5  # the stage's effect is what the parameters cannot explain
    within = importance(df, "y", "minimize", scales, stages=[1], **FAST)
    assert not any("differs by stage" in n for n in within.notes) and within.fit_r2 > 0.8
