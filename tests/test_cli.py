"""The `sweep` command end to end: the README's run command, errors, status/top/report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from sweep.cli import build_parser, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sweep_cli(*args, cwd=REPO, timeout=300):
    env = dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "token"),
               PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "sweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_readme_run_command_on_a_short_spec(tmp_path):
    """What `sweep run jobs/mlp.yaml` does, on the short version of that sweep."""
    results = str(tmp_path / "results")
    proc = sweep_cli("run", "jobs/mlp_quick.yaml", "--results", results)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "top 5 of" in out and "val_error" in out
    assert "stage 0:" in out and "stage 1:" in out
    assert f"results: {results}" in out
    assert "Traceback" not in proc.stderr
    assert "stage 1 (refine" in proc.stderr  # the log line naming the anchors and boxes
    df = pd.read_parquet(os.path.join(results, "mlp-digits-quick", "trials"))
    assert len(df) == 12 and df["trial_id"].is_unique
    assert set(df["status"]) == {"ok"}
    assert df.groupby("stage", observed=True).size().to_dict() == {0: 8, 1: 4}
    # a rerun resumes: nothing runs again
    again = sweep_cli("run", "jobs/mlp_quick.yaml", "--results", results, "--quiet")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(pd.read_parquet(os.path.join(results, "mlp-digits-quick", "trials"))) == 12

    status = sweep_cli("status", os.path.join(results, "mlp-digits-quick"))
    assert status.returncode == 0
    assert "12 trials stored" in status.stdout and "driver: none running" in status.stdout
    top = sweep_cli("top", os.path.join(results, "mlp-digits-quick"), "-k", "3", "--format", "json")
    records = json.loads(top.stdout)
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert records[0]["metrics"]["val_error"] == df["metrics.val_error"].min()
    assert set(records[0]) == {"rank", "stage", "trial_id", "status", "metrics", "params"}


def test_bad_sweep_file_exits_2_with_the_field_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nobjective: jobs.mlp:train\nmetric: {name: val_error}\n"
                   "parameters:\n  lr: {distribution: log_uniform_values, min: 0, max: 1}\n"
                   "stages:\n  - {plan: random, trials: 4}\n")
    results = tmp_path / "results"
    proc = sweep_cli("run", str(bad), "--results", str(results))
    assert proc.returncode == 2
    assert "parameters.lr.min" in proc.stderr and "got 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not results.exists()


def test_unknown_key_gets_did_you_mean(tmp_path, capsys):
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: t\nobjective: m:f\nmetric: {name: loss}\n"
                   "parameters: {x: {min: 0.0, max: 1.0}}\n"
                   "stages:\n  - {plan: random, trails: 3}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stages[0].trails" in err and "did you mean 'trials'" in err


def test_validate_summarises(capsys):
    assert main(["validate", os.path.join(REPO, "jobs", "mlp.yaml")]) == 0
    out = capsys.readouterr().out
    assert "loguniform(0.0001, 1)" in out and "lograndint(16, 256)" in out
    assert "0: random  48 trials" in out and "1: refine  24 trials around the top 4" in out


def test_validate_describes_the_stopping_rule(tmp_path, capsys):
    text = ("name: s\nobjective: m:f\nmetric: {name: loss}\n"
            "parameters: {x: {min: 0.0, max: 1.0}}\nstages:\n  - {plan: random, trials: 3}\n")
    plain, stops = tmp_path / "plain.yaml", tmp_path / "stops.yaml"
    plain.write_text(text)
    stops.write_text(text + "early_terminate: {type: asha, max_step: 27}\n")
    assert main(["validate", str(plain)]) == 0
    assert "early termination" not in capsys.readouterr().out
    assert main(["validate", str(stops)]) == 0
    assert "early termination: asha: rungs at steps 1, 3, 9 (" in capsys.readouterr().out


def test_every_command_has_help_with_an_example(capsys):
    parser = build_parser()
    commands = ["validate", "plan", "run", "status", "top", "report", "importance", "dashboard",
                "submit"]
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "example" in text, command
        assert f"sweep {command}" in text or (command == "submit" and "sweep submit" in text)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "sweep run jobs/mlp.yaml" in capsys.readouterr().out


def test_bad_flag_value_is_named(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "jobs/mlp.yaml", "--max-concurrent", "zero"])
    assert exit_info.value.code == 2
    assert "--max-concurrent" in capsys.readouterr().err


def test_missing_results_path_is_a_clear_error(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing-here")]) == 2
    assert "no sweep results" in capsys.readouterr().err


def test_dry_run_runs_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["run", os.path.join(REPO, "jobs", "mlp.yaml"), "--dry-run", "--results",
                 str(results)]) == 0
    out = capsys.readouterr().out
    assert "stage 0: first trials" in out and "refine" in out
    assert not results.exists()


@pytest.mark.usefixtures("ray_session")
def test_top_csv_stage_filter_and_report(tmp_path, capsys):
    import sweep

    results = str(tmp_path / "results")
    sweep.run(os.path.join(REPO, "jobs", "mlp_quick.yaml"), results=results)
    path = os.path.join(results, "mlp-digits-quick")
    assert main(["top", path, "--stage", "1", "-k", "2", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("rank,stage,trial_id,val_error")
    assert len(lines) == 3 and all(line.split(",")[1] == "1" for line in lines[1:])
    out_html = tmp_path / "r.html"
    assert main(["report", path, "-o", str(out_html)]) == 0
    html = out_html.read_text()
    assert "mlp-digits-quick" in html and "<script src=\"http" not in html
