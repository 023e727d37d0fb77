"""Tests for the example jobs in ``jobs/``: the numpy MLP, its command-line twin, the PyTorch
version and the sweep files that drive them."""

from __future__ import annotations

import ast
import doctest
import importlib
import json
import math
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "jobs"
if str(REPO) not in sys.path:  # `jobs` is imported from the repository root
    sys.path.insert(0, str(REPO))

import jobs.cli_train as cli_train  # noqa: E402
import jobs.mlp as mlp  # noqa: E402

GOOD = {
    "lr": 0.003,
    "hidden": 64,
    "batch_size": 32,
    "optimizer": "adam",
    "dropout": False,
    "weight_decay": 1e-5,
    "epochs": 10,
}
YAML_FILES = ["mlp", "mlp_quick", "cli_train", "torch_mlp", "coarse_to_fine"]
DISTRIBUTIONS = {
    "log_uniform_values",
    "loguniform",
    "uniform",
    "randint",
    "lograndint",
    "quniform",
    "choice",
    "bernoulli",
    "normal",
    "lognormal",
}


def _check_metrics(metrics: dict[str, Any], epochs: int) -> None:
    assert set(metrics) >= {"val_error", "train_loss", "epochs"}
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["val_error"] <= 1.0
    assert 0.0 <= metrics["train_loss"] <= mlp.DIVERGED_LOSS
    assert isinstance(metrics["epochs"], int)
    assert 1 <= metrics["epochs"] <= epochs


# --- data -----------------------------------------------------------------------------------


def test_data_file_is_the_digits() -> None:
    with np.load(JOBS / "data" / "digits.npz") as data:
        x, y = data["X"], data["y"]
    assert x.shape == (1797, 64) and x.dtype == np.uint8
    assert x.min() == 0 and x.max() == 16
    assert y.shape == (1797,) and np.issubdtype(y.dtype, np.integer)
    assert sorted(np.unique(y).tolist()) == list(range(10))
    assert (JOBS / "data" / "README.md").read_text().strip()


def test_split_is_fixed_and_disjoint() -> None:
    x_train, y_train, x_val, y_val = mlp.load_split()
    assert x_train.shape == (1437, 64) and x_val.shape == (360, 64)
    assert len(y_train) == 1437 and len(y_val) == 360
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert not x_train.flags.writeable
    assert mlp.load_split() is mlp.load_split()  # cached
    # The split is a permutation: together the two parts hold every sample once.
    with np.load(mlp.DATA_PATH) as data:
        assert len(y_train) + len(y_val) == len(data["y"])
        assert (
            np.bincount(np.concatenate([y_train, y_val])).tolist()
            == np.bincount(data["y"]).tolist()
        )


def test_mlp_does_not_import_sklearn() -> None:
    tree = ast.parse((JOBS / "mlp.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "sklearn" not in imported
    assert imported <= {
        "__future__",
        "functools",
        "math",
        "collections",
        "dataclasses",
        "pathlib",
        "sweep",  # sweep.report: per-epoch reports (a no-op outside a sweep)
        "typing",
        "numpy",
        # checkpoint: true: the state saved per epoch in a temporary folder
        "contextlib",
        "os",
        "shutil",
        "tempfile",
    }


# --- the numpy MLP ---------------------------------------------------------------------------


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 0.3), ("adam", 0.003), ("rmsprop", 0.001)])
def test_good_config_learns(optimizer: str, lr: float) -> None:
    metrics = mlp.train({**GOOD, "optimizer": optimizer, "lr": lr})
    _check_metrics(metrics, 10)
    assert metrics["epochs"] == 10
    assert metrics["val_error"] < 0.15
    assert metrics["train_loss"] < 1.0


def test_dropout_and_weight_decay_still_learn() -> None:
    metrics = mlp.train({**GOOD, "dropout": True, "weight_decay": 1e-3, "hidden": 128})
    assert metrics["val_error"] < 0.15


def test_returns_exactly_the_documented_metrics() -> None:
    metrics = mlp.train({**GOOD, "epochs": 1})
    assert set(metrics) == {"val_error", "train_loss", "epochs"}
    assert all(isinstance(metrics[k], float) for k in ("val_error", "train_loss"))


@pytest.mark.parametrize("optimizer", mlp.OPTIMIZERS)
@pytest.mark.parametrize("lr", [1.0e3, 1.0e8, 1.0e30])
def test_huge_learning_rate_is_finite_and_quiet(optimizer: str, lr: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarnings either
        metrics = mlp.train({**GOOD, "optimizer": optimizer, "lr": lr, "epochs": 3})
    _check_metrics(metrics, 3)
    assert metrics["val_error"] > 0.5  # no learning, but a number, not a NaN or an exception


def test_diverged_run_reports_chance_level() -> None:
    metrics = mlp.train({**GOOD, "optimizer": "sgd", "lr": 1e30, "epochs": 5})
    assert metrics["train_loss"] == mlp.DIVERGED_LOSS
    assert 0.85 <= metrics["val_error"] <= 0.95
    assert metrics["epochs"] < 5  # stopped early


@pytest.mark.parametrize("dropout", [False, True])
def test_deterministic_for_a_config(dropout: bool) -> None:
    config = {**GOOD, "dropout": dropout, "epochs": 3, "seed": 7}
    assert mlp.train(config) == mlp.train(dict(config))
    assert mlp.train(config) != mlp.train({**config, "seed": 8})


def test_config_parsing() -> None:
    cfg = mlp.parse_config(
        {
            "lr": "1e-3",
            "hidden": 32.0,
            "optimizer": "RMSProp",
            "dropout": "True",
            "epochs": np.int64(2),
            "other": "ignored",
        }
    )
    assert (cfg.lr, cfg.hidden, cfg.optimizer, cfg.dropout, cfg.epochs) == (
        1e-3,
        32,
        "rmsprop",
        True,
        2,
    )
    assert cfg.batch_size == mlp.DEFAULTS["batch_size"]
    for bad in (
        {"optimizer": "lbfgs"},
        {"lr": 0},
        {"lr": float("nan")},
        {"hidden": 2.5},
        {"batch_size": 0},
        {"epochs": 0},
        {"weight_decay": -1},
        {"dropout": "maybe"},
    ):
        with pytest.raises(ValueError):
            mlp.parse_config(bad)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("false", False),
        ("True", True),
        ("False", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        (np.bool_(True), True),
    ],
)
def test_parse_bool(text: Any, value: bool) -> None:
    assert mlp.parse_bool(text) is value


def test_trial_is_fast() -> None:
    mlp.train({**GOOD, "epochs": 1})  # warm the data cache
    start = time.perf_counter()
    mlp.train({**GOOD, "batch_size": 16, "hidden": 256, "dropout": True, "epochs": 10})
    # About 0.3 s here (the slowest config of the sweep space); generous for loaded CI boxes.
    assert time.perf_counter() - start < 5.0


def test_doctests() -> None:
    for module in (mlp, cli_train):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


# --- the command-line job --------------------------------------------------------------------


def test_cli_prints_one_json_line_from_any_cwd(tmp_path: Path) -> None:
    args = [
        "--lr=0.003",
        "--hidden=32",
        "--batch_size=64",
        "--optimizer=adam",
        "--dropout=False",
        "--weight_decay=1e-05",
        "--epochs=2",
    ]
    proc = subprocess.run(
        [sys.executable, str(JOBS / "cli_train.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    json_lines = [line for line in lines if line.lstrip().startswith("{")]
    assert len(json_lines) == 1 and json_lines[0] == lines[-1]
    metrics = json.loads(lines[-1])
    _check_metrics(metrics, 2)
    expected = mlp.train({**GOOD, "hidden": 32, "batch_size": 64, "epochs": 2})
    assert metrics["val_error"] == pytest.approx(expected["val_error"], abs=0.01)
    assert metrics["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-3)


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(JOBS / "cli_train.py"), "--dropout=maybe"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "dropout" in proc.stderr


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("false", False), ("True", True), ("False", False), ("1", True), ("0", False)],
)
def test_cli_dropout_forms(text: str, value: bool) -> None:
    assert cli_train.parse_args([f"--dropout={text}"]).dropout is value


def test_cli_parses_all_keys() -> None:
    ns = cli_train.parse_args(
        [
            "--lr=0.5",
            "--hidden=17",
            "--batch_size",
            "8",
            "--optimizer=sgd",
            "--weight_decay=0.001",
            "--epochs=4",
            "--seed=3",
        ]
    )
    assert vars(ns) == {
        "lr": 0.5,
        "hidden": 17,
        "batch_size": 8,
        "optimizer": "sgd",
        "dropout": False,
        "weight_decay": 0.001,
        "epochs": 4,
        "seed": 3,
    }


# --- the PyTorch job -------------------------------------------------------------------------


def test_torch_job_imports_without_torch_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch_mlp = importlib.import_module("jobs.torch_mlp")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match=re.escape("pip install 'sweep[torch]'")):
        torch_mlp.train({**GOOD, "epochs": 1})


def test_torch_job_trains() -> None:
    pytest.importorskip("torch")
    torch_mlp = importlib.import_module("jobs.torch_mlp")
    metrics = torch_mlp.train({**GOOD, "epochs": 3})
    assert set(metrics) == {"val_error", "train_loss", "epochs", "cuda"}
    _check_metrics(metrics, 3)
    assert metrics["cuda"] in (0.0, 1.0)
    assert metrics["val_error"] < 0.3
    diverged = torch_mlp.train({**GOOD, "optimizer": "sgd", "lr": 1e30, "epochs": 2})
    _check_metrics(diverged, 2)
    assert diverged["val_error"] > 0.5


# --- sweep files -----------------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    with open(JOBS / f"{name}.yaml") as fh:
        spec = yaml.safe_load(fh)
    assert isinstance(spec, dict)
    return spec


@pytest.mark.parametrize("name", YAML_FILES)
def test_sweep_file_shape(name: str) -> None:
    spec = _load(name)
    assert set(spec) <= {
        "name",
        "objective",
        "command",
        "program",
        "metric",
        "parameters",
        "stages",
        "resources",
    }
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", spec["name"])
    assert spec["metric"] == {"name": "val_error", "goal": "minimize"}
    assert ("objective" in spec) != ("command" in spec)
    if "objective" in spec:
        module_name, func_name = spec["objective"].split(":")
        assert callable(getattr(importlib.import_module(module_name), func_name))
    else:
        assert spec["command"] == ["${interpreter}", "${program}", "${args}"]
        assert (REPO / spec["program"]).is_file()

    params = spec["parameters"]
    assert set(params) <= set(mlp.DEFAULTS)
    for key, param in params.items():
        assert isinstance(param, dict), key
        if "value" in param:
            assert set(param) == {"value"}, key
        elif "values" in param:
            assert set(param) == {"values"} and param["values"], key
        else:
            assert param["distribution"] in DISTRIBUTIONS, key
            for bound in ("min", "max", "p"):
                if bound in param:  # a YAML `1e-4` (no dot) would load as a string
                    assert isinstance(param[bound], int | float), (key, bound)
            if "min" in param:
                assert param["min"] < param["max"], key
    mlp.parse_config(
        {
            k: p.get("value", (p.get("values") or [p.get("min", 1)])[0])
            for k, p in params.items()
            if "p" not in p
        }
    )

    assert isinstance(spec["stages"], list) and spec["stages"]
    for stage in spec["stages"]:
        assert stage["plan"] in {"grid", "random", "sobol", "lhs", "refine"}
    resources = spec["resources"]
    assert set(resources) <= {"num_cpus", "num_gpus"} and resources["num_cpus"] >= 1


def _stage_summary(name: str) -> list[tuple[str, int | None, int | None]]:
    return [
        (s["plan"], s.get("trials"), s.get("fixed", {}).get("epochs"))
        for s in _load(name)["stages"]
    ]


def test_mlp_sweep_files() -> None:
    full, quick = _load("mlp"), _load("mlp_quick")
    assert full["objective"] == quick["objective"] == "jobs.mlp:train"
    assert full["parameters"] == quick["parameters"]
    assert full["parameters"]["lr"] == {
        "distribution": "log_uniform_values",
        "min": 1.0e-4,
        "max": 1.0,
    }
    assert full["parameters"]["hidden"] == {"distribution": "lograndint", "min": 16, "max": 256}
    assert full["parameters"]["batch_size"] == {"values": [16, 32, 64, 128]}
    assert full["parameters"]["optimizer"] == {"values": ["sgd", "adam", "rmsprop"]}
    assert full["parameters"]["dropout"] == {"distribution": "bernoulli", "p": 0.5}
    assert full["parameters"]["epochs"] == {"value": 10}
    assert _stage_summary("mlp") == [("random", 48, 3), ("refine", 24, 15)]
    assert _stage_summary("mlp_quick") == [("random", 8, 1), ("refine", 4, 2)]
    assert full["resources"] == {"num_cpus": 1, "num_gpus": 0}


def test_cli_sweep_file() -> None:
    spec = _load("cli_train")
    assert spec["program"] == "jobs/cli_train.py"
    assert [s["plan"] for s in spec["stages"]] == ["random"]
    assert spec["stages"][0]["trials"] == 8
    # Every swept key is an option of the script.
    argv = [f"--{k}=1" for k in spec["parameters"] if k != "optimizer"]
    assert set(spec["parameters"]) <= set(vars(cli_train.parse_args(argv)))


def test_torch_sweep_file() -> None:
    spec = _load("torch_mlp")
    assert spec["objective"] == "jobs.torch_mlp:train"
    assert spec["resources"] == {"num_cpus": 1, "num_gpus": 0.5}


def test_coarse_to_fine_sweep_file() -> None:
    spec = _load("coarse_to_fine")
    params = spec["parameters"]
    assert params["batch_size"] == {"distribution": "lograndint", "min": 8, "max": 512}
    assert params["lr"]["min"] == 1.0e-4 and params["lr"]["max"] == 1.0
    fixed = {k: p["value"] for k, p in params.items() if "value" in p}
    assert fixed == {
        "hidden": 64,
        "optimizer": "adam",
        "dropout": False,
        "weight_decay": 1.0e-5,
        "epochs": 3,
    }
    coarse, fine = spec["stages"]
    assert coarse == {"plan": "grid", "points": 3}
    assert fine == {
        "plan": "refine",
        "top_k": 1,
        "region": "each",
        "shrink": 0.15,
        "sample": "grid",
        "points": 3,
        "trials": 9,
    }
    # Three points evenly spaced in unit space are the textbook values on both log axes.
    unit = np.linspace(0.0, 1.0, 3)
    lr = np.exp(np.log(1e-4) + unit * (np.log(1.0) - np.log(1e-4)))
    batch = np.rint(np.exp(np.log(8) + unit * (np.log(512) - np.log(8))))
    assert np.allclose(lr, [1e-4, 1e-2, 1.0]) and batch.tolist() == [8, 64, 512]
