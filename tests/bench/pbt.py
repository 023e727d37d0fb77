"""Population-based training: sweep's ``plan: pbt`` against Ray Tune's
``PopulationBasedTraining`` (same population, steps, interval, quantile and mutations)
and against random search with the same compute, over several seeds.

Problems:

* ``toy``: PBT's toy problem (``jobs/pbt_toy.py``: the accuracy grows fastest at a
  learning rate that follows a triangle wave as the accuracy rises), lr in
  loguniform(1e-4, 1e-1), score: the best final ``mean_accuracy`` (higher is better).
  A step sleeps ``--step-s`` (0.05 s) in both tools: sweep's PBT decides on reports as
  they reach the driver, and a step of microseconds would outrun every decision.
* ``mlp``: ``jobs/mlp.py`` (numpy MLP on the digits, Adam) with a checkpoint per epoch
  and the lr PBT mutates, lr in loguniform(1e-4, 1e-1); score: the best final
  ``val_error`` (lower is better).

Same compute: each method trains ``population`` models for ``steps`` steps (PBT's
exploited members stop and their replacements go on from the donor's step, so the
population runs population x steps steps, as random search does). All runs share one
local Ray (``--cpus``), each trial holding cpus/population CPUs so that the whole
population runs at once. Wall time is each run's own (Ray already started).

    nice -n 10 python tests/bench/pbt.py --seeds 10                 # both problems
    python tests/bench/pbt.py --problems toy --seeds 3 --picture schedule.png

``--picture`` writes a PNG of the schedule sweep's PBT found on the toy problem (the
lr of the best final model's lineage against the optimal lr), with matplotlib if it is
installed. A benchmark: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LR = (1e-4, 1e-1)
PROBLEMS = {
    # metric, goal, steps, interval
    "toy": ("mean_accuracy", "maximize", 60, 4),
    "mlp": ("val_error", "minimize", 16, 4),
}


# ------------------------------------------------------------------ trainables


def toy_tune(config: dict[str, Any]) -> None:
    """The toy problem as a Ray Tune function trainable, a checkpoint per step."""
    import numpy as np
    from ray import tune

    from jobs.pbt_toy import optimal_lr, step_accuracy

    accuracy, start = 0.0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path, open(os.path.join(path, "state.json")) as f:
            state = json.load(f)
        accuracy, start = float(state["accuracy"]), int(state["step"]) + 1
    work = tempfile.mkdtemp(prefix="tune-toy-")
    try:
        for step in range(start, int(config["steps"])):
            time.sleep(float(config.get("sleep", 0.0)))
            rng = np.random.default_rng([int(config["seed"]), step,
                                         int(float(config["lr"]) * 1e12) % 2**31])
            accuracy = step_accuracy(accuracy, float(config["lr"]), rng)
            with open(os.path.join(work, "state.json"), "w") as f:
                json.dump({"accuracy": accuracy, "step": step}, f)
            tune.report({"mean_accuracy": accuracy, "lr": float(config["lr"]),
                         "optimal_lr": optimal_lr(accuracy)},
                        checkpoint=tune.Checkpoint.from_directory(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mlp_tune(config: dict[str, Any]) -> None:
    """jobs/mlp.py under Ray Tune: its report and restore are Tune's."""
    from ray import tune

    from jobs.mlp import train

    def restore() -> str | None:
        checkpoint = tune.get_checkpoint()
        return None if checkpoint is None else checkpoint.to_directory()

    def report(step: int, checkpoint: str | None = None, **metrics: float) -> None:
        tune.report(dict(metrics, step=step),
                    checkpoint=None if checkpoint is None
                    else tune.Checkpoint.from_directory(checkpoint))

    train(config, report=report, restore=restore)


# ------------------------------------------------------------------ runs


def _fixed(problem: str, steps: int, seed: int, step_s: float = 0.0) -> dict[str, Any]:
    if problem == "toy":
        return {"steps": steps, "seed": seed, "sleep": step_s}
    return {"epochs": steps, "seed": seed, "optimizer": "adam", "hidden": 64,
            "checkpoint": True}


def run_sweep(problem: str, plan: str, args: Any, seed: int, results: str
              ) -> tuple[float, float, Any]:
    """(score, wall s, table) of sweep's PBT (``plan: pbt``) or random search."""
    import sweep

    metric, goal, steps, interval = _settings(problem, args)
    stage: dict[str, Any] = ({"plan": "pbt", "population": args.population,
                              "interval": interval, "seed": seed}
                             if plan == "pbt" else
                             {"plan": "random", "trials": args.population, "seed": seed})
    doc = {"name": f"{problem}-{plan}-{seed}",
           "objective": "jobs.pbt_toy:train" if problem == "toy" else "jobs.mlp:train",
           "metric": {"name": metric, "goal": goal},
           "parameters": {"lr": {"distribution": "log_uniform_values", "min": LR[0],
                                 "max": LR[1]},
                          **{k: {"value": v} for k, v in
                             _fixed(problem, steps, seed, args.step_s).items()}},
           "stages": [stage], "max_concurrent": args.population,
           "resources": {"num_cpus": args.cpus / args.population}}
    t0 = time.perf_counter()
    df = sweep.run(doc, results=results)
    wall = time.perf_counter() - t0
    done = df[df["status"] == "ok"][f"metrics.{metric}"]
    score = done.max() if goal == "maximize" else done.min()
    return float(score), wall, df


def run_tune(problem: str, args: Any, seed: int, storage: str) -> tuple[float, float]:
    """(score, wall s) of Ray Tune's PopulationBasedTraining, same settings."""
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search import BasicVariantGenerator

    metric, goal, steps, interval = _settings(problem, args)
    random.seed(seed)
    mode = "max" if goal == "maximize" else "min"
    scheduler = PopulationBasedTraining(
        time_attr="training_iteration", perturbation_interval=interval,
        hyperparam_mutations={"lr": tune.loguniform(*LR)}, quantile_fraction=0.25,
        resample_probability=0.25, perturbation_factors=(1.2, 0.8))
    trainable = tune.with_resources(toy_tune if problem == "toy" else mlp_tune,
                                    {"cpu": args.cpus / args.population})
    tuner = tune.Tuner(
        trainable,
        param_space={"lr": tune.loguniform(*LR), **_fixed(problem, steps, seed, args.step_s)},
        # reuse_actors: Tune's own advice for PBT (an exploit reconfigures a live actor).
        tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=scheduler,
                                    num_samples=args.population, reuse_actors=True,
                                    search_alg=BasicVariantGenerator(random_state=seed)),
        # Every checkpoint kept: Tune's PBT may exploit an older checkpoint of its donor
        # (with num_to_keep=2 its trials failed: "checkpoint does not exist anymore").
        run_config=tune.RunConfig(name=f"{problem}-{seed}", storage_path=storage, verbose=0,
                                  stop={"training_iteration": steps},
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=None)))
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    finals = [r.metrics.get(metric) for r in grid if r.metrics and r.error is None]
    finals = [v for v in finals if v is not None and math.isfinite(v)]
    if not finals:  # every trial failed (printed above by Tune)
        return math.nan, wall
    return float(max(finals) if mode == "max" else min(finals)), wall


def _settings(problem: str, args: Any) -> tuple[str, str, int, int]:
    metric, goal, steps, interval = PROBLEMS[problem]
    steps = args.steps or steps
    return metric, goal, steps, args.interval or interval


def _lineage_of(df: Any) -> list[dict[str, Any]]:
    from sweep.views.schedule import lineage

    best = df[df["status"] == "ok"].sort_values("metrics.mean_accuracy").iloc[-1]
    return lineage(df, best["trial_id"])


def _curves(results: str, df: Any) -> Any:
    from sweep.engine.runner import open_reader
    from sweep.spec.sweep_file import loads_spec
    from sweep.store.folder import ResultsFolder

    name = str(df["sweep"].iloc[0])
    spec = loads_spec(ResultsFolder(results, name).read_spec() or "")
    return open_reader(spec, results).read_curves()


def picture(df: Any, curves: Any, path: str, steps: int) -> str:
    """A PNG of the lr schedule of the best final model (sweep's PBT, toy problem) and
    the optimal lr along its accuracy; matplotlib if installed, else a note."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no picture: matplotlib is not installed"
    best = df[df["status"] == "ok"].sort_values("metrics.mean_accuracy").iloc[-1]
    segments = _lineage_of(df)
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    xs, ys = [], []
    for seg in segments:
        xs += [seg["start"], seg["end"] + 1]
        ys += [seg["params"]["lr"]] * 2
    ax.step(xs, ys, where="post", label="lr of the best model's lineage (PBT)")
    steps_x, optimum = [], []
    for seg in segments:  # the optimal lr at the accuracy that lineage reached
        rows = curves[(curves["trial_id"] == seg["trial_id"])
                      & curves["step"].between(seg["start"], seg["end"])]
        steps_x += list(rows["step"])
        optimum += list(rows["metrics.optimal_lr"])
    ax.plot(steps_x, optimum, ":", color="grey", label="optimal lr at its accuracy")
    ax.scatter([s["start"] for s in segments[1:]], [s["params"]["lr"] for s in segments[1:]],
               marker="D", s=18, label="exploit + explore")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_xlim(0, steps)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"sweep plan: pbt on the toy problem: final accuracy "
                 f"{best['metrics.mean_accuracy']:.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return f"picture: {path} ({len(segments)} segments)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jsonl", default=None,
                        help="append each run's figures to this file (a long benchmark "
                             "survives an interruption: run the seeds left, then --summary)")
    parser.add_argument("--summary", default=None, help="print the table of a --jsonl file")
    parser.add_argument("--problems", default="toy,mlp")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--steps", type=int, default=0, help="default: the problem's")
    parser.add_argument("--interval", type=int, default=0, help="default: the problem's")
    parser.add_argument("--cpus", type=float, default=2.0)
    parser.add_argument("--methods", default="sweep-pbt,tune-pbt,random")
    parser.add_argument("--picture", default=None, help="a PNG of a discovered schedule")
    parser.add_argument("--step-s", type=float, default=0.05,
                        help="toy: seconds a step sleeps (a training step takes time; "
                             "sweep's PBT decides on reports as they arrive)")
    args = parser.parse_args(argv)
    if args.summary:
        table: dict[tuple[str, str], list[tuple[float, float]]] = {}
        with open(args.summary) as f:
            for line in f:
                row = json.loads(line)
                table.setdefault((row["problem"], row["method"]), []).append(
                    (row["score"], row["wall_s"]))
        print_table(table)
        return 0

    import ray

    from tests.bench._machine import machine

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # A shared machine: other processes' memory must not make Ray kill these trials.
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    print(machine(("ray", "pandas")), flush=True)
    ray.init(num_cpus=int(math.ceil(args.cpus)), include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    methods = args.methods.split(",")
    work = tempfile.mkdtemp(prefix="sweep-pbt-bench-")
    table: dict[tuple[str, str], list[tuple[float, float]]] = {}
    toy_runs: list[tuple[float, Any, Any]] = []  # sweep's PBT on the toy: score, table, curves
    try:
        for problem in args.problems.split(","):
            metric, goal, steps, interval = _settings(problem, args)
            print(f"\n{problem}: population {args.population}, {steps} steps, interval "
                  f"{interval}, quantile 0.25, lr loguniform{LR} resampled with p 0.25 else "
                  f"x1.2/x0.8; score: best final {metric} ({goal}); {args.seeds} seeds",
                  flush=True)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                line = []
                for method in methods:
                    if method == "tune-pbt":
                        score, wall = run_tune(problem, args, seed, f"{work}/tune")
                    else:
                        score, wall, df = run_sweep(problem, method.split("-")[-1], args,
                                                    seed, f"{work}/sweep")
                        if problem == "toy" and method == "sweep-pbt":
                            toy_runs.append((score, df, _curves(f"{work}/sweep", df)))
                    table.setdefault((problem, method), []).append((score, wall))
                    line.append(f"{method} {score:.4g} in {wall:.1f} s")
                    if args.jsonl:
                        with open(args.jsonl, "a") as f:
                            f.write(json.dumps({"problem": problem, "method": method,
                                                "seed": seed, "score": score,
                                                "wall_s": wall, "steps": steps,
                                                "interval": interval,
                                                "population": args.population}) + "\n")
                print(f"  seed {seed}: " + "; ".join(line), flush=True)
    finally:
        ray.shutdown()
    print_table(table)
    if args.picture and toy_runs:
        # The best run whose best model has a schedule (a lineage of 2 segments or more).
        scheduled = [run for run in toy_runs if len(_lineage_of(run[1])) > 1]
        _, df, curves = max(scheduled or toy_runs, key=lambda run: run[0])
        print(picture(df, curves, args.picture, _settings("toy", args)[2]))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def print_table(table: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    print("\n| problem | method | final score, mean ± sd (min..max) | runs | wall s, mean |")
    print("|---|---|---|---|---|")
    for (problem, method), runs in table.items():
        scores = [s for s, _ in runs if math.isfinite(s)]
        if not scores:
            continue
        walls = [w for _, w in runs]
        sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(f"| {problem} | {method} | {statistics.mean(scores):.4g} ± {sd:.2g} "
              f"({min(scores):.4g}..{max(scores):.4g}) | {len(scores)} of {len(runs)} | "
              f"{statistics.mean(walls):.1f} |")


if __name__ == "__main__":
    sys.exit(main())
