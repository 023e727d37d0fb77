"""W&B training scripts run unchanged under ``sweep run`` (real ``wandb`` package, offline).

The script (tests/data/wandb_scripts/train.py) is written as W&B's documentation writes
them: no command-line arguments, ``wandb.init(config=defaults)``, hyperparameters from
``wandb.config``, metrics through ``wandb.log``. Swept from a W&B sweep file whose command
has no ``${args}``, every trial must get its own parameters (through
``WANDB_SWEEP_PARAM_PATH``, as W&B's agent does), nothing may leave the machine, and what
it logged must land in the trials table (last value of each metric) and the curves table
(every logged step). The same function run as a W&B function agent
(``sweep run FILE --objective``) works the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweep.cli import main

pytestmark = pytest.mark.usefixtures("ray_session")
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "data" / "wandb_scripts" / "train.py"


def expected_loss(lr: float, layers: int, momentum: float, epoch: int) -> float:
    return 1.0 / (1.0 + lr * layers * (1.0 + momentum) * (epoch + 1))


def wandb_file(tmp_path: Path, **extra: object) -> Path:
    doc = {
        "name": "W&B script sweep",   # display text, as W&B allows
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {
            "lr": {"values": [0.01, 0.1]},
            "layers": {"values": [1, 3]},
            "optimizer": {"parameters": {"name": {"value": "adam"},
                                         "momentum": {"values": [0.0, 0.9]}}},
            "epochs": {"value": 4},
        },
    }
    doc.update(extra)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_wandb_script_without_args_gets_its_parameters_and_logs_land_in_parquet(
        tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # nothing of W&B's may land in the real home
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    path = wandb_file(tmp_path, program=str(SCRIPT),
                      command=["${env}", "${interpreter}", "${program}"])
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--quiet"]) == 0
    out = capsys.readouterr().out
    folder = next(p for p in results.iterdir() if p.name.startswith("W-B-script-sweep-"))
    assert f"results: {folder}/trials" in out
    df = pd.read_parquet(folder / "trials")
    assert len(df) == 8 and set(df["status"]) == {"ok"}, df["error"].tolist()
    assert set(df["sweep"]) == {"W&B script sweep"}
    for row in df.to_dict("records"):
        lr, layers = row["params.lr"], row["params.layers"]
        momentum = row["params.optimizer.momentum"]
        # The last logged value of each metric; W&B's summary keys land too.
        assert row["metrics.loss"] == pytest.approx(expected_loss(lr, layers, momentum, 3))
        assert row["metrics.grad.norm"] == pytest.approx(lr * 4)
        assert row["metrics.best_acc"] == pytest.approx(1 - expected_loss(lr, layers,
                                                                           momentum, 3))
    # Every trial got its own parameters: 8 distinct losses for 8 distinct configs.
    assert df["metrics.loss"].nunique() == 8
    curves = pd.read_parquet(folder / "curves")
    assert curves.groupby("trial_id").size().to_dict() == {t: 4 for t in df["trial_id"]}
    first = df.iloc[0]
    steps = curves[curves.trial_id == first["trial_id"]].sort_values("step")
    assert list(steps["step"]) == [0, 1, 2, 3]
    assert list(steps["metrics.loss"]) == pytest.approx(
        [expected_loss(first["params.lr"], first["params.layers"],
                       first["params.optimizer.momentum"], e) for e in range(4)])
    assert not any(home.rglob("*")), "W&B wrote into HOME"


def test_a_wandb_function_agent_runs_with_objective(tmp_path, capsys):
    path = wandb_file(tmp_path)  # no program, no command: W&B's function-agent config
    assert main(["validate", str(path)]) == 0
    assert "--objective" in capsys.readouterr().out
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--quiet"]) == 2
    assert "--objective module:function" in capsys.readouterr().err
    code = main(["run", str(path), "--results", str(results), "--quiet",
                 "--objective", "tests.data.wandb_scripts.train:train"])
    assert code == 0, capsys.readouterr().err[-3000:]
    folder = next(results.iterdir())
    df = pd.read_parquet(folder / "trials")
    assert len(df) == 8 and set(df["status"]) == {"ok"}, df["error"].tolist()
    assert df["metrics.loss"].nunique() == 8
    for row in df.to_dict("records"):
        assert row["metrics.loss"] == pytest.approx(expected_loss(
            row["params.lr"], row["params.layers"], row["params.optimizer.momentum"], 3))
    stored = yaml.safe_load((folder / "spec.yaml").read_text())
    # A rerun resumes with the same function.
    assert stored["objective"] == "tests.data.wandb_scripts.train:train"


def test_wandb_args_macros_pass_values_the_way_wandb_agent_does(tmp_path):
    """${args} with a nested parameter and a bool, as W&B's agent writes them."""
    out = tmp_path / "argv.json"
    script = tmp_path / "echo.py"
    script.write_text("import json, sys\n"
                      f"open({str(out)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                      "print(json.dumps({'loss': 0.5}))\n")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "args", "method": "grid", "program": str(script),
        "metric": {"name": "loss"},
        "command": ["${env}", "${interpreter}", "${program}", "${args_no_boolean_flags}"],
        "parameters": {"flag": {"values": [True, False]},
                       "opt": {"parameters": {"lr": {"value": 0.1}}}},
    }))
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--quiet"]) == 0
    argvs = sorted(json.loads(line) for line in out.read_text().splitlines())
    assert argvs == [["--flag", "--opt={'lr': 0.1}"], ["--opt={'lr': 0.1}"]]
    assert os.path.exists(tmp_path / "r" / "args" / "trials")


def test_a_wandb_bayes_file_runs_end_to_end_with_its_script(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    path = wandb_file(tmp_path, method="bayes", run_cap=10, program=str(SCRIPT),
                      command=["${env}", "${interpreter}", "${program}", "${args}"],
                      parameters={
                          "lr": {"distribution": "log_uniform_values", "min": 1e-3,
                                 "max": 1.0},
                          "layers": {"distribution": "int_uniform", "min": 1, "max": 4},
                          "optimizer": {"parameters": {
                              "name": {"values": ["adam", "sgd"]},
                              "momentum": {"min": 0.0, "max": 0.9}}},
                          "epochs": {"value": 2},
                      })
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--quiet"]) == 0
    folder = next(results.iterdir())
    df = pd.read_parquet(folder / "trials")
    assert len(df) == 10 and set(df["status"]) == {"ok"}, df["error"].tolist()
    assert df["trial_id"].is_unique
    assert df["params.lr"].between(1e-3, 1.0).all()
    assert set(df["params.layers"]) <= {1, 2, 3, 4}
    assert set(df["params.optimizer.name"]) <= {"adam", "sgd"}
    for row in df.to_dict("records"):
        assert row["metrics.loss"] == pytest.approx(expected_loss(
            row["params.lr"], row["params.layers"], row["params.optimizer.momentum"], 1))
    stage = json.loads((folder / "stages" / "stage-0.json").read_text())
    assert stage["plan"] == "bayes" and stage["used"] == 10
    assert not any(home.rglob("*")), "W&B wrote into HOME"
