"""The engine on a local Ray: columns, failures, timeouts, command jobs, scale, resume."""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap

import pandas as pd
import pyarrow.parquet as pq
import pytest

import sweep
from sweep.core.errors import SweepError
from sweep.core.metric import Metric
from sweep.store.folder import ResultsFolder
from sweep.store.reader import ResultsReader

pytestmark = pytest.mark.usefixtures("ray_session")


def spec(name, objective, parameters, stages, **extra):
    doc = {"name": name, "objective": objective, "metric": {"name": "loss", "goal": "minimize"},
           "parameters": parameters, "stages": stages}
    doc.update(extra)
    return doc


X = {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0}}


def test_columns_present_and_typed(results):
    df = sweep.run(spec("typed", "tests.objectives:quadratic", {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
        "x": {"min": 0.0, "max": 1.0},
        "n": {"distribution": "int_uniform", "min": 1, "max": 5},
        "opt": {"values": ["sgd", "adam"]},
        "flag": {"distribution": "bernoulli"},
        "nested": {"parameters": {"depth": {"value": 3}}},
    }, [{"plan": "random", "trials": 12}]), results=results)
    assert len(df) == 12
    raw = pd.read_parquet(f"{results}/typed/trials")
    assert len(raw) == 12
    expected = {
        "sweep": "object", "trial_id": "object", "parent_id": "object", "status": "object",
        "params.lr": "float64", "params.x": "float64", "params.n": "int64",
        "params.opt": "object", "params.flag": "bool", "params.nested.depth": "int64",
        "metrics.loss": "float64", "metrics.twice": "float64", "error": "object",
        "attempts": "int64", "duration_s": "float64", "node": "object", "gpu_ids": "object",
    }
    for column, kind in expected.items():
        assert column in raw.columns, column
        got = raw[column].dtype
        assert got == kind or (kind == "object" and pd.api.types.is_string_dtype(got)), (
            column, got)
    for column in ("started_at", "finished_at"):
        assert str(raw[column].dtype) in ("datetime64[us, UTC]", "datetime64[ns, UTC]")
    assert set(raw["status"]) == {"ok"}
    assert (raw["attempts"] == 1).all()
    assert (raw["finished_at"] >= raw["started_at"]).all()
    assert raw["node"].str.len().min() > 0
    assert raw["trial_id"].is_unique
    assert sorted(df.columns) == sorted([*raw.columns])  # stage comes from the folder
    assert set(df["stage"]) == {0}


def test_failures_are_per_trial_and_the_sweep_goes_on(results):
    df = sweep.run(spec("boom", "tests.objectives:boom", X,
                        [{"plan": "random", "trials": 4}]), results=results)
    assert len(df) == 4
    assert set(df["status"]) == {"failed"}
    assert df["error"].str.contains("ValueError: boom at x=").all()
    assert df["error"].str.contains("Traceback").all()


def test_missing_metric_names_it(results):
    df = sweep.run(spec("missing", "tests.objectives:missing_metric", X,
                        [{"plan": "random", "trials": 3}]), results=results)
    assert set(df["status"]) == {"failed"}
    assert df["error"].str.contains("no metric 'loss'").all()
    assert df["error"].str.contains("other").all()


def test_nan_metric_is_stored_and_ranks_last(results):
    from sweep.core.ranking import rank

    df = sweep.run(spec("nan", "tests.objectives:nan_metric", X,
                        [{"plan": "random", "trials": 20, "seed": 3}]), results=results)
    assert set(df["status"]) == {"ok"}
    nan_rows = df[df["metrics.loss"].isna()]
    assert 0 < len(nan_rows) < 20
    ranked = rank(df, Metric("loss"))
    assert len(ranked) == 20 - len(nan_rows)
    assert ranked["metrics.loss"].is_monotonic_increasing


def test_timeout_marks_the_trial_and_frees_the_slot(results):
    df = sweep.run(spec("slow", "tests.objectives:sleepy", {
        "sleep": {"values": [0.05, 30.0]},
    }, [{"plan": "grid"}], timeout_s=1.5), results=results)
    by_sleep = df.set_index("params.sleep")
    assert by_sleep.loc[30.0, "status"] == "timeout"
    assert "timeout_s=1.5" in by_sleep.loc[30.0, "error"]
    assert by_sleep.loc[0.05, "status"] == "ok"
    assert by_sleep.loc[30.0, "duration_s"] < 1.5 + 3.0


def test_command_job_receives_values_verbatim_without_a_shell(results, tmp_path):
    script = tmp_path / "echo_args.py"
    sentinel = tmp_path / "pwned"
    script.write_text(textwrap.dedent("""
        import json, sys
        args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
        print("progress line that is not JSON")
        print(json.dumps({"loss": len(args["text"]), "text": args["text"]}))
    """))
    nasty = f"; touch {sentinel} $(touch {sentinel}) `touch {sentinel}` 'q' \"dq\" é ✓"
    df = sweep.run({
        "name": "cmd", "program": str(script),
        "command": ["${interpreter}", "${program}", "${args}"],
        "metric": {"name": "loss"},
        "parameters": {"text": {"values": [nasty, "plain words"]}},
        "stages": [{"plan": "grid"}],
    }, results=results)
    assert set(df["status"]) == {"ok"}, df["error"].tolist()
    got = dict(zip(df["params.text"], df["metrics.loss"]))
    assert got[nasty] == len(nasty)
    assert got["plain words"] == len("plain words")
    assert not sentinel.exists()


def test_command_job_failure_keeps_stderr_tail(results, tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import sys\nsys.stderr.write('something broke here\\n')\nsys.exit(3)\n")
    df = sweep.run({
        "name": "cmdfail", "program": str(script), "metric": {"name": "loss"},
        "parameters": {"x": {"values": [1]}}, "stages": [{"plan": "grid"}],
    }, results=results)
    assert df.loc[0, "status"] == "failed"
    assert "status 3" in df.loc[0, "error"]
    assert "something broke here" in df.loc[0, "error"]


def test_five_thousand_trials_unique_ids_few_files(results):
    df = sweep.run(spec("many", "tests.objectives:trivial", X,
                        [{"plan": "random", "trials": 5000}]), results=results)
    assert len(df) == 5000
    assert df["trial_id"].is_unique
    raw = pd.read_parquet(f"{results}/many/trials")
    assert len(raw) == 5000 and raw["trial_id"].is_unique
    files = list((pd.io.common.Path(results) / "many" / "trials").rglob("part-*.parquet"))
    assert 1 <= len(files) <= 10


def test_resume_reruns_nothing_stored(results):
    doc = spec("resume", "tests.objectives:quadratic", {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    }, [{"plan": "random", "trials": 30}, {"plan": "refine", "trials": 10, "top_k": 2}])
    first = sweep.run(doc, results=results)
    assert len(first) == 40
    second = sweep.run(doc, results=results)
    pd.testing.assert_frame_equal(
        first.sort_values("trial_id").reset_index(drop=True),
        second.sort_values("trial_id").reset_index(drop=True),
    )
    raw = pd.read_parquet(f"{results}/resume/trials")
    assert len(raw) == 40  # nothing ran twice


def test_resume_after_a_partial_run_runs_only_the_rest(results):
    doc = spec("partial", "tests.objectives:quadratic", {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    }, [{"plan": "random", "trials": 20, "seed": 5}])
    full_ids = set(sweep.run(doc, results=results + "-full")["trial_id"])
    # Store half of the trials as an interrupted run would have left them.
    store_full = ResultsReader(ResultsFolder(results + "-full", "partial"))
    half = store_full.read().sort_values("trial_id").head(10)
    sweep.run(dict(doc, stages=[{"plan": "random", "trials": 20, "seed": 5}]), results=results)
    store = ResultsReader(ResultsFolder(results, "partial"))
    kept = store.read()
    kept_half = kept[kept["trial_id"].isin(half["trial_id"])]
    before = dict(zip(kept_half["trial_id"], kept_half["finished_at"]))
    # Remove the other half's rows, as if the driver had died before running them.
    for path in (pd.io.common.Path(results) / "partial" / "trials").rglob("part-*.parquet"):
        table = pq.read_table(path)
        mask = table.column("trial_id").to_pandas().isin(half["trial_id"])
        pq.write_table(table.filter(mask.to_numpy()), path)
    again = sweep.run(doc, results=results)
    assert set(again["trial_id"]) == full_ids
    after = again[again["trial_id"].isin(before)]
    assert dict(zip(after["trial_id"], after["finished_at"])) == before
    assert len(pd.read_parquet(f"{results}/partial/trials")) == 20


def test_a_different_spec_under_the_same_name_is_refused(results):
    doc = spec("same", "tests.objectives:quadratic", {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    }, [{"plan": "random", "trials": 3}])
    sweep.run(doc, results=results)
    changed = dict(doc, seed=7, stages=[{"plan": "random", "trials": 4}])
    with pytest.raises(SweepError, match="--fresh") as info:
        sweep.run(changed, results=results)
    assert "seed: was None, now 7" in str(info.value)  # it names what changed
    df = sweep.run(changed, results=results, fresh=True)
    assert len(df) == 4
    aside = [p for p in os.listdir(results) if p.startswith("same.old-")]
    assert len(aside) == 1
    old = pd.read_parquet(os.path.join(results, aside[0], "trials"))
    assert len(old) == 3


def test_python_callable_objective_and_extra_metrics(results):
    def objective(config):
        return {"loss": (config["x"] - 0.25) ** 2, "x_seen": config["x"], "label": "text"}

    df = sweep.run({
        "name": "callable", "objective": objective, "metric": {"name": "loss"},
        "parameters": {"x": sweep.uniform(0, 1)},
        "stages": [{"plan": "sobol", "trials": 8}],
    }, results=results)
    assert set(df["status"]) == {"ok"}
    assert "metrics.x_seen" in df.columns and "metrics.label" not in df.columns
    assert (df["metrics.x_seen"] == df["params.x"]).all()


def test_nested_parameters_reach_the_objective_nested(results, tmp_path):
    script = tmp_path / "nested.py"
    script.write_text(
        "import json, sys\ncfg = json.loads(sys.argv[1])\n"
        "print(json.dumps({'loss': cfg['opt']['lr'], 'depth': cfg['opt']['depth']}))\n")
    df = sweep.run({
        "name": "nested", "program": str(script),
        "command": ["${interpreter}", "${program}", "${args_json}"],
        "metric": {"name": "loss"},
        "parameters": {"opt": {"parameters": {"lr": {"values": [0.1, 0.2]},
                                              "depth": {"value": 4}}}},
        "stages": [{"plan": "grid"}],
    }, results=results)
    assert set(df["status"]) == {"ok"}
    assert (df["metrics.loss"] == df["params.opt.lr"]).all()
    assert (df["metrics.depth"] == 4).all()


def test_results_root_missing_parent_fails_before_any_trial(tmp_path):
    doc = spec("nowhere", "tests.objectives:trivial", X, [{"plan": "random", "trials": 2}])
    with pytest.raises(SweepError, match="does not exist"):
        sweep.run(doc, results=str(tmp_path / "no" / "such" / "results"))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SweepError, match="is not a folder"):
        sweep.run(doc, results=str(blocker / "results"))
    with pytest.raises(SweepError, match="not writable"):
        sweep.run(doc, results=str(blocker))
    assert not (tmp_path / "no").exists()


def test_uses_the_ray_already_initialised(results):
    import ray

    sweep.run(spec("keep", "tests.objectives:trivial", X, [{"plan": "random", "trials": 2}]),
              results=results)
    assert ray.is_initialized()


def test_bad_objective_results_each_get_a_status(results):
    kinds = ["none", "string", "list", "no_metric", "nan", "inf", "huge", "object", "extras",
             "huge_string", "bool", "ok"]
    df = sweep.run(spec("bad", "tests.objectives:bad_results",
                        {"kind": {"values": kinds}}, [{"plan": "grid"}], batch=3),
                   results=results).set_index("params.kind")
    failed = {"none", "string", "list", "no_metric", "object", "huge_string"}
    for kind in kinds:
        expected = "failed" if kind in failed else "ok"
        assert df.loc[kind, "status"] == expected, (kind, df.loc[kind, "error"])
    assert "expected a number" in df.loc["none", "error"]
    assert "no metric 'loss'" in df.loc["no_metric", "error"]
    assert len(df.loc["huge_string", "error"]) < 2000
    assert math.isnan(df.loc["nan", "metrics.loss"])
    assert math.isinf(df.loc["inf", "metrics.loss"])
    assert df.loc["huge", "metrics.loss"] == 1e308
    assert df.loc["extras", "metrics.nested.a"] == 1.0
    assert df.loc["bool", "metrics.loss"] == 1.0  # a bool is 1.0 / 0.0, bare or in a dict
    # One schema for every part file: no column changes type between batches.
    schemas = {str(pq.read_schema(p)) for p in
               (pd.io.common.Path(results) / "bad" / "trials").rglob("part-*.parquet")}
    assert len(schemas) == 1


def test_plan_json_lines_match_the_run(results, capsys):
    from sweep.cli import main

    doc_path = os.path.join(os.path.dirname(results), "s.json")
    doc = spec("planned", "tests.objectives:trivial", X, [{"plan": "random", "trials": 5}])
    with open(doc_path.replace(".json", ".yaml"), "w") as f:
        json.dump(doc, f)  # JSON is YAML
    assert main(["plan", doc_path.replace(".json", ".yaml")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    df = sweep.run(doc, results=results)
    assert {r["trial_id"] for r in lines} == set(df["trial_id"])
    assert sys.version_info >= (3, 10)
