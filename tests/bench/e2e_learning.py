"""Learning plans end to end: ``sweep.run`` on a local Ray of 2 slots with short trials,
against the ideal time, so that the plan, not the trials, would set the pace.

What it measures
----------------
For three sweep files over 8 axes (6 continuous, an integer, a categorical) whose
objective sleeps ``--sleep`` (20 ms) and returns a smooth loss -- ``random`` (the
reference), ``bayes`` (one stage) and ``default`` (the default coarse-to-fine in the
shape of ``jobs/mlp.yaml``: a random stage of two thirds of the trials, then
``plan: refine``, adaptive, top_k 4) -- the wall time of ``sweep.run`` of ``--trials``
trials (1,000) on an already started ``ray.init(num_cpus=2)`` (its start-up is not
counted), against the ideal: trials x sleep / 2 slots. Goal: within 1.5x for the
learning plans. Every run writes to a fresh results folder.

To measure another checkout (the code before a change), run this file with that
checkout first on PYTHONPATH: the objective travels to Ray's workers by value.

Run from the repository root, as a script::

    python tests/bench/e2e_learning.py
    python tests/bench/e2e_learning.py --trials 400 --sweeps bayes
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import _threads  # noqa: F401  (one BLAS thread; before numpy)
from sim_pool import PARAMETERS, stages  # the same sweep files, on Ray

import sweep

SLEEP = [0.02]


def objective(config: dict[str, Any]) -> float:
    time.sleep(SLEEP[0])
    return (sum((config[f"x{i}"] - 0.3) ** 2 for i in range(6))
            + ((config["n"] - 20) / 64) ** 2 + (0.0 if config["c"] == "b" else 0.3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=0.02)
    parser.add_argument("--sweeps", default="random,bayes,default")
    args = parser.parse_args()
    SLEEP[0] = args.sleep
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ideal = args.trials * args.sleep / 2
    print(f"{args.trials} trials of {args.sleep * 1000:.0f} ms on 2 slots; ideal "
          f"{ideal:.1f} s; sweep from {os.path.dirname(sweep.__file__)}")
    try:
        for kind in args.sweeps.split(","):
            doc = {"name": f"e2e-{kind}", "objective": objective,
                   "metric": {"name": "loss"}, "parameters": PARAMETERS,
                   "stages": stages(kind, args.trials), "seed": 0}
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                df = sweep.run(doc, results=tmp)
                wall = time.perf_counter() - started
            best = float(df["metrics.loss"].min())
            print(f"{kind:<8} {len(df):>6} trials {wall:>7.1f} s  {wall / ideal:>6.2f}x ideal  "
                  f"best loss {best:.4f}", flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
