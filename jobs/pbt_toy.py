"""The toy problem of population-based training, after the description of Ray Tune's
``pbt_function`` example (written anew here, not copied): a model whose "accuracy"
grows fastest when the learning rate matches an optimum that follows a triangle wave
as the accuracy rises: from 0.001 at accuracy 0 up to 0.01 at accuracy ``MIDPOINT``,
then back down to 0.001 at twice that. A fixed learning rate is right only part of the
way; a schedule that follows the optimum wins, which is what PBT discovers.

Per step, with ``q`` the ratio of the larger to the smaller of lr and the optimum:
within ``TOLERANCE`` the accuracy gains ``uniform(0, 1) / q``; beyond it, a learning
rate too large loses ``(q - TOLERANCE) * uniform(0, 1)`` (a small one gains nothing);
plus a little normal noise; the accuracy never goes below 0.

``step_accuracy`` is the pure step (the benchmark runs it under Ray Tune too);
``train`` is the sweep objective: it restores its accuracy and step from
``sweep.restore()``, checkpoints every step, and reports ``mean_accuracy`` and ``lr``.

Example:
    >>> import numpy as np
    >>> acc = 0.0
    >>> for _ in range(5):
    ...     acc = step_accuracy(acc, 1e-3, np.random.default_rng(0))
    >>> 0 < acc < 10
    True
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np

import sweep

MIDPOINT = 100.0  # the accuracy where the optimal lr peaks
TOLERANCE = 3.0  # how many times off the optimum the lr may be and still help
NOISE = 2.0  # the standard deviation of the noise added per step
LR_LOW, LR_HIGH = 0.001, 0.01


def optimal_lr(accuracy: float) -> float:
    """The triangle wave: the best learning rate at this accuracy."""
    if accuracy < MIDPOINT:
        lr = LR_HIGH * accuracy / MIDPOINT
    else:
        lr = LR_HIGH - LR_HIGH * (accuracy - MIDPOINT) / MIDPOINT
    return min(LR_HIGH, max(LR_LOW, lr))


def step_accuracy(accuracy: float, lr: float, rng: np.random.Generator) -> float:
    """The accuracy after one more step at learning rate ``lr``."""
    best = optimal_lr(accuracy)
    q = max(lr, best) / min(lr, best)
    if q < TOLERANCE:
        accuracy += rng.random() / q
    elif lr > best:
        accuracy -= (q - TOLERANCE) * rng.random()
    accuracy += NOISE * rng.normal()
    return max(0.0, accuracy)


def _rng(config: dict[str, Any], step: int) -> np.random.Generator:
    return np.random.default_rng([int(config.get("seed", 0)), step,
                                  int(float(config["lr"]) * 1e12) % 2**31])


def train(config: dict[str, Any]) -> dict[str, float]:
    """``config``: lr, steps (default 100), seed, sleep (seconds per step, default 0)."""
    accuracy, start = 0.0, 0
    path = sweep.restore()
    if path is not None:
        with open(os.path.join(path, "state.json")) as f:
            state = json.load(f)
        accuracy, start = float(state["accuracy"]), int(state["step"]) + 1
    work = tempfile.mkdtemp(prefix="pbt-toy-")
    try:
        for step in range(start, int(config.get("steps", 100))):
            time.sleep(float(config.get("sleep", 0.0)))
            accuracy = step_accuracy(accuracy, float(config["lr"]), _rng(config, step))
            with open(os.path.join(work, "state.json"), "w") as f:
                json.dump({"accuracy": accuracy, "step": step}, f)
            sweep.report(step=step, checkpoint=work, mean_accuracy=accuracy,
                         lr=float(config["lr"]), optimal_lr=optimal_lr(accuracy))
        return {"mean_accuracy": accuracy}
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["MIDPOINT", "optimal_lr", "step_accuracy", "train"]
