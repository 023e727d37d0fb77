"""Early stopping on a real job: epochs saved and best result kept, against Ray Tune's ASHA.

The job is ``jobs/mlp.py`` (a numpy MLP on the 8x8 digits) trained for up to 30 epochs,
reporting ``val_error`` after every epoch (``sweep.report``). For each of 5 seeds the
same 32 random configs (the space of ``jobs/mlp.yaml``) run

* with sweep, every trial to the end (the reference: its best ``val_error`` and the
  spread of that best over the 5 seeds);
* with sweep and ``early_terminate: {type: asha, min_step: 1, max_step: 30, eta: 3}``;
* with sweep and W&B's ``early_terminate: {type: hyperband, min_iter: 1, eta: 3}``;
* with Ray Tune: ``Tuner`` + ``ASHAScheduler(grace_period=1, max_t=30,
  reduction_factor=3)`` (Tune's defaults but max_t) over the same 32 configs
  (``tune.grid_search``), the same function reporting each epoch with ``tune.report``.

``--grace 3`` runs every rule with a first rung at epoch 3 instead.

Each run is a fresh Python process with its own ``ray.init(num_cpus=2)`` (not counted),
one CPU per trial. Printed per tool: wall time, epochs trained (the sum over trials of the
epochs each ran) as a share of the full runs' epochs, and the best ``val_error`` found
(mean over seeds, and per seed). The target: with at most 35% of the epochs, a mean
best no worse than the full runs' mean best by more than the spread (max - min) of the
full runs' best over the seeds.

    python tests/bench/early_stop.py              # 5 seeds, all tools (~10 minutes)
    python tests/bench/early_stop.py --seeds 2 --tools sweep-full,sweep-asha
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

EPOCHS = 30
CONFIGS = 32
GRACE = int(os.environ.get("SWEEP_BENCH_GRACE", "1"))
RULES = {
    "sweep-full": None,
    "sweep-asha": {"type": "asha", "min_step": GRACE, "max_step": EPOCHS, "eta": 3},
    "sweep-hyperband": {"type": "hyperband", "min_iter": GRACE, "eta": 3},
}
TOOLS = (*RULES, "tune-asha")


def space_doc() -> dict[str, Any]:
    return {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
        "hidden": {"distribution": "lograndint", "min": 16, "max": 256},
        "batch_size": {"values": [16, 32, 64, 128]},
        "optimizer": {"values": ["sgd", "adam", "rmsprop"]},
        "dropout": {"distribution": "bernoulli", "p": 0.5},
        "weight_decay": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-2},
        "epochs": {"value": EPOCHS},
    }


def configs(seed: int) -> list[dict[str, Any]]:
    """The seed's 32 configs: exactly those of sweep's random stage of that seed."""
    from sweep.engine.planning import make_plan
    from sweep.spec.sweep_file import load_spec

    spec = load_spec(sweep_doc("configs", seed, None))
    return [c.params for c in make_plan(spec, spec.stages[0]).candidates()]


def sweep_doc(name: str, seed: int, rule: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name, "objective": "jobs.mlp:train",
        "metric": {"name": "val_error", "goal": "minimize"}, "parameters": space_doc(),
        "stages": [{"plan": "random", "trials": CONFIGS, "seed": seed}],
        "resources": {"num_cpus": 1},
    }
    if rule is not None:
        doc["early_terminate"] = rule
    return doc


def run_sweep(tool: str, seed: int) -> dict[str, Any]:
    import ray

    import sweep

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    results = tempfile.mkdtemp(prefix="early-stop-")
    start = time.perf_counter()
    df = sweep.run(sweep_doc(f"{tool}-{seed}", seed, RULES[tool]), results=results)
    wall = time.perf_counter() - start
    # Epochs trained: the trial's own count when it ran to the end, its last report when
    # it was stopped (steps are epochs, counted from 1).
    ran = [int(r["metrics.epochs"]) if r["status"] == "ok" else int(r["step"])
           for r in df.to_dict("records")]
    ok = df[df.status == "ok"]
    return {"wall_s": wall, "epochs": sum(ran), "best": float(ok["metrics.val_error"].min()),
            "stopped": int((df.status == "stopped").sum()), "trials": len(df)}


def run_tune(seed: int) -> dict[str, Any]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    trials = configs(seed)

    def trainable(config: dict[str, Any]) -> None:
        import sweep as sweep_module
        from jobs.mlp import train

        # jobs/mlp.py reports each epoch with sweep.report: send those reports to Tune.
        sweep_module.report = lambda step=None, **metrics: tune.report(metrics)
        train(config["trial"])

    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=EPOCHS, grace_period=GRACE,
                              reduction_factor=3)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"trial": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(metric="val_error", mode="min", scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="tune-"),
                                  verbose=0),
    )
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    epochs = sum(int(r.metrics.get("training_iteration", 0)) for r in grid)
    finished = [r.metrics["val_error"] for r in grid
                if r.metrics.get("training_iteration") == EPOCHS]
    return {"wall_s": wall, "epochs": epochs, "best": float(min(finished)),
            "stopped": sum(1 for r in grid if r.metrics.get("training_iteration") != EPOCHS),
            "trials": len(trials)}


def one(tool: str, seed: int) -> None:
    """Run one tool on one seed in this process and print its result as JSON."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    result = run_tune(seed) if tool == "tune-asha" else run_sweep(tool, seed)
    print("RESULT " + json.dumps(dict(result, tool=tool, seed=seed)), flush=True)


def fresh_process(tool: str, seed: int) -> dict[str, Any]:
    env = dict(os.environ, RAY_AUTH_MODE="token", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, __file__, "--one", tool, "--seed", str(seed)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{tool} seed {seed} failed:\n{done.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--grace", type=int, default=1,
                        help="first rung (epochs) of every rule (default 1, Tune's default)")
    parser.add_argument("--one", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one(args.one, args.seed)
        return
    os.environ["SWEEP_BENCH_GRACE"] = str(args.grace)
    from tests.bench._machine import machine

    print(machine(("ray", "numpy")))
    print(f"rules' first rung: epoch {args.grace}")
    tools = args.tools.split(",")
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    for seed in range(args.seeds):
        for tool in tools:
            result = fresh_process(tool, seed)
            rows[tool].append(result)
            print(f"  seed {seed} {tool:<16} wall {result['wall_s']:6.1f} s  epochs "
                  f"{result['epochs']:4d}  stopped {result['stopped']:2d}  best "
                  f"{result['best']:.4f}", flush=True)
    full_epochs = statistics.mean(r["epochs"] for r in rows["sweep-full"]) \
        if "sweep-full" in rows else CONFIGS * EPOCHS
    full_best = [r["best"] for r in rows.get("sweep-full", [])]
    spread = (min(full_best), max(full_best)) if full_best else (float("nan"),) * 2
    print(f"\n{args.seeds} seeds x {CONFIGS} configs x up to {EPOCHS} epochs; full runs' best "
          f"val_error over the seeds: {spread[0]:.4f} .. {spread[1]:.4f}")
    print(f"{'tool':<16} {'wall s':>8} {'epochs':>8} {'share':>7} {'best (mean)':>12}  "
          f"best per seed")
    for tool, results in rows.items():
        wall = statistics.mean(r["wall_s"] for r in results)
        epochs = statistics.mean(r["epochs"] for r in results)
        best = statistics.mean(r["best"] for r in results)
        per_seed = " ".join(f"{r['best']:.4f}" for r in results)
        print(f"{tool:<16} {wall:8.1f} {epochs:8.0f} {epochs / full_epochs:7.1%} {best:12.4f}  "
              f"{per_seed}")
    width = spread[1] - spread[0]
    full_mean = statistics.mean(full_best) if full_best else float("nan")
    for tool in (t for t in rows if t != "sweep-full"):
        results = rows[tool]
        share = statistics.mean(r["epochs"] for r in results) / full_epochs
        gap = statistics.mean(r["best"] for r in results) - full_mean
        print(f"target {tool}: epochs {share:.1%} (<= 35%: {'met' if share <= 0.35 else 'MISSED'})"
              f"; mean best - full runs' mean best = {gap:+.4f}, within the seeds' spread "
              f"{width:.4f}: {'met' if gap <= width else 'MISSED'}")


if __name__ == "__main__":
    main()
