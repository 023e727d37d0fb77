#!/usr/bin/env python
"""Command-line version of the digits MLP job: the way to sweep code you do not import.

It reads W&B-style ``--key=value`` arguments (``--key value`` works too), trains the MLP of
``jobs/mlp.py`` (loaded by its path next to this script, so any working directory works),
prints a progress line, and ends with exactly one JSON line of metrics on stdout:

    $ python jobs/cli_train.py --lr=0.003 --hidden=64 --optimizer=adam --dropout=false
    training mlp: lr=0.003 hidden=64 batch_size=32 optimizer=adam dropout=False ...
    {"val_error": 0.0222, "train_loss": 0.0931, "epochs": 10}

Driven by ``jobs/cli_train.yaml`` with ``command: ["${interpreter}", "${program}", "${args}"]``.

>>> parse_args(["--lr=0.1", "--dropout=False", "--epochs", "2"]).dropout
False
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_MLP_PATH = Path(__file__).resolve().parent / "mlp.py"


@functools.cache
def load_mlp() -> ModuleType:
    """Import ``mlp.py`` from this script's folder, whatever the working directory.

    >>> load_mlp().OPTIMIZERS
    ('sgd', 'adam', 'rmsprop')
    """
    module = sys.modules.get("jobs.mlp")
    if module is not None and Path(module.__file__ or "").resolve() == _MLP_PATH:
        return module
    spec = importlib.util.spec_from_file_location("_sweep_jobs_mlp", _MLP_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the MLP job from {_MLP_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


def _bool(text: str) -> bool:
    try:
        return bool(load_mlp().parse_bool(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int(text: str) -> int:
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(number)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` by default); unset options take the defaults.

    >>> vars(parse_args(["--optimizer=sgd", "--hidden=32"]))["hidden"]
    32
    """
    defaults: dict[str, Any] = load_mlp().DEFAULTS
    parser = argparse.ArgumentParser(
        description="Train the numpy MLP on the 8x8 digits; print one JSON line of metrics."
    )
    parser.add_argument("--lr", type=float, default=defaults["lr"], help="learning rate")
    parser.add_argument("--hidden", type=_int, default=defaults["hidden"], help="hidden units")
    parser.add_argument("--batch_size", type=_int, default=defaults["batch_size"])
    parser.add_argument(
        "--optimizer", type=str.lower, choices=load_mlp().OPTIMIZERS, default=defaults["optimizer"]
    )
    parser.add_argument("--dropout", type=_bool, default=defaults["dropout"], help="true/false/1/0")
    parser.add_argument("--weight_decay", type=float, default=defaults["weight_decay"])
    parser.add_argument("--epochs", type=_int, default=defaults["epochs"])
    parser.add_argument("--seed", type=_int, default=defaults["seed"])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train with the command-line config and print the metrics as the last stdout line.

    >>> main(["--epochs=1", "--hidden=16"])  # doctest: +ELLIPSIS
    training mlp: ...
    {"val_error": ..., "train_loss": ..., "epochs": 1}
    0
    """
    config = vars(parse_args(argv))
    print("training mlp: " + " ".join(f"{k}={v}" for k, v in config.items()), flush=True)
    metrics = load_mlp().train(config)
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
