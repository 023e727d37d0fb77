"""Objectives used by the tests (importable by Ray workers as tests.objectives:NAME)."""

from __future__ import annotations

import math
import os
import time
from typing import Any


def quadratic(config: dict[str, Any]) -> dict[str, float]:
    """A smooth bowl with its minimum at lr=1e-2, x=0.3; extra metric 'twice'."""
    lr = config["lr"]
    loss = (math.log10(lr) + 2.0) ** 2 + (config.get("x", 0.3) - 0.3) ** 2
    return {"loss": loss, "twice": 2 * loss}


def trivial(config: dict[str, Any]) -> float:
    return 0.0


def boom(config: dict[str, Any]) -> float:
    raise ValueError(f"boom at x={config.get('x')}")


def missing_metric(config: dict[str, Any]) -> dict[str, float]:
    return {"other": 1.0}


def nan_metric(config: dict[str, Any]) -> float:
    return float("nan") if config["x"] > 0.5 else config["x"]


def sleepy(config: dict[str, Any]) -> float:
    time.sleep(config["sleep"])
    return config["sleep"]


def die_once(config: dict[str, Any]) -> float:
    """Kills its worker process on the first attempt of each config."""
    marker = os.path.join(config["marker_dir"], f"{config['x']}.seen")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("1")
        os._exit(1)
    return float(config["x"])


def bad_results(config: dict[str, Any]) -> Any:
    """Returns one of many malformed results, chosen by config['kind']."""
    kind = config["kind"]
    return {
        "none": None,
        "string": "0.5",
        "list": [0.5],
        "no_metric": {"accuracy": 0.9},
        "nan": float("nan"),
        "inf": float("inf"),
        "huge": 1e308,
        "object": {"loss": object()},
        "extras": {"loss": 0.25, "note": "text", "obj": object(), "nested": {"a": 1.0}},
        "huge_string": "x" * 1_000_000,
        "bool": True,
        "ok": 0.125,
    }[kind]


def gpu_probe(config: dict[str, Any]) -> dict[str, float]:
    """Holds its (logical) GPU for a moment and reports what it saw."""
    time.sleep(config.get("sleep", 0.5))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return {"loss": float(config["x"]), "visible_count": float(len(visible.split(",")))}
