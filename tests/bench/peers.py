"""The same sweep through sweep, Ray Tune and Optuna: wall time, memory, files.

What it measures
----------------
One search space (lr loguniform 1e-4..1, x uniform 0..1, opt a choice of 3) and
N random trials of an objective -- ``trivial`` (returns at once) or ``5ms``
(sleeps 5 ms) -- run by:

* ``sweep``: ``sweep.run(spec, results=<tmp dir>)`` (random plan, one stage);
* ``tune``: ``tune.Tuner(fn, param_space=..., tune_config=TuneConfig(num_samples=N,
  metric="loss", mode="min"), run_config=RunConfig(storage_path=<tmp dir>,
  verbose=0))`` -- Tune's defaults otherwise (random search, FIFO scheduler, one
  CPU per trial, a fresh actor per trial); the objective calls ``tune.report``;
* ``tune-reuse``: the same with ``TuneConfig(reuse_actors=True)``;
* ``optuna``: ``optuna.create_study(sampler=RandomSampler(seed=0))`` then
  ``study.optimize(objective, n_trials=N, n_jobs=<cores>)`` (threads, in-memory
  storage).

Every (tool, objective, N) runs in a fresh subprocess. The Ray tools call
``ray.init(num_cpus=<cores>)`` there first; that start-up is shown in its own
column (``init``) and is not part of ``wall``, which times the sweep call alone
(``sweep.run`` / ``Tuner.fit`` / ``create_study`` + ``optimize``). ``peak RSS``
is the subprocess's (the driver's) ``ru_maxrss``: Ray's own processes and the
trial workers are not in it. ``files`` counts the files left under the tool's
output folder (sweep's results root, Tune's storage_path; Optuna keeps its study
in memory: 0). ``vs sweep`` is wall / sweep's wall for the same objective and N.
A run longer than ``--max-seconds`` is killed (with its Ray) and shown as
``timeout``.

The script prints the machine and the exact command first, then one table that
can be pasted into the README. It prints figures and asserts nothing.

How to run
----------
From the repository root, with the bench extra (``pip install -e '.[bench]'``,
i.e. ``ray[tune]`` and ``optuna``); run it as a script (the objectives reach
Ray's workers by value)::

    python tests/bench/peers.py                       # N = 200 and 1,000 (~15 min)
    python tests/bench/peers.py --quick               # N = 200 only
    python tests/bench/peers.py --tools sweep,optuna --objectives trivial --ns 1000
    python tests/bench/peers.py --max-seconds 120 --repeats 3

Timings on a shared machine are noisy: compare the ratios printed by one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _machine import machine  # tests/bench/_machine.py; scripts run from their folder

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOOLS = ("sweep", "tune", "tune-reuse", "optuna")
OBJECTIVES = {"trivial": 0.0, "5ms": 0.005}
OPTS = ["sgd", "adam", "adamw"]


# ---------------------------------------------------------------- objectives


def evaluate(config: dict[str, Any], sleep: float) -> float:
    if sleep:
        time.sleep(sleep)
    return config["x"]


def sweep_trivial(config: dict[str, Any]) -> dict[str, float]:
    return {"loss": evaluate(config, 0.0)}


def sweep_5ms(config: dict[str, Any]) -> dict[str, float]:
    return {"loss": evaluate(config, 0.005)}


def tune_trivial(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({"loss": evaluate(config, 0.0)})


def tune_5ms(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({"loss": evaluate(config, 0.005)})


# ------------------------------------------------------------------ per tool


def count_files(root: str) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def init_ray(cores: int) -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    return time.perf_counter() - t0


def run_sweep(objective: str, n: int, cores: int, out: str) -> dict[str, Any]:
    import sweep

    init_s = init_ray(cores)
    fn = {"trivial": sweep_trivial, "5ms": sweep_5ms}[objective]
    doc = {
        "name": "peers", "objective": fn, "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": sweep.loguniform(1e-4, 1.0), "x": sweep.uniform(0.0, 1.0),
                       "opt": sweep.choice(OPTS)},
        "stages": [{"plan": "random", "trials": n}],
    }
    t0 = time.perf_counter()
    df = sweep.run(doc, results=out)
    wall = time.perf_counter() - t0
    return {"wall": wall, "init_s": init_s, "trials": len(df),
            "ok": int((df["status"] == "ok").sum())}


def run_tune(objective: str, n: int, cores: int, out: str, reuse: bool) -> dict[str, Any]:
    from ray import tune

    init_s = init_ray(cores)
    fn = {"trivial": tune_trivial, "5ms": tune_5ms}[objective]
    space = {"lr": tune.loguniform(1e-4, 1.0), "x": tune.uniform(0.0, 1.0),
             "opt": tune.choice(OPTS)}
    config = tune.TuneConfig(num_samples=n, metric="loss", mode="min",
                             **({"reuse_actors": True} if reuse else {}))
    run_config = tune.RunConfig(storage_path=out, name="peers", verbose=0)
    t0 = time.perf_counter()
    results = tune.Tuner(fn, param_space=space, tune_config=config,
                         run_config=run_config).fit()
    wall = time.perf_counter() - t0
    ok = sum(1 for r in results if r.error is None and "loss" in (r.metrics or {}))
    return {"wall": wall, "init_s": init_s, "trials": len(results), "ok": ok}


def run_optuna(objective: str, n: int, cores: int) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sleep = OBJECTIVES[objective]

    def fn(trial: Any) -> float:
        config = {"lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
                  "x": trial.suggest_float("x", 0.0, 1.0),
                  "opt": trial.suggest_categorical("opt", OPTS)}
        return evaluate(config, sleep)

    t0 = time.perf_counter()
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(fn, n_trials=n, n_jobs=cores)
    wall = time.perf_counter() - t0
    ok = sum(1 for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    return {"wall": wall, "init_s": 0.0, "trials": len(study.trials), "ok": ok}


def child(tool: str, objective: str, n: int, cores: int, out: str) -> None:
    """One measurement in this (fresh) process, writing under ``out``; prints one JSON
    line."""
    if tool == "sweep":
        rec = run_sweep(objective, n, cores, out)
    elif tool in ("tune", "tune-reuse"):
        rec = run_tune(objective, n, cores, out, reuse=tool == "tune-reuse")
    else:
        rec = run_optuna(objective, n, cores)
    rec["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("\n" + json.dumps(rec), flush=True)


def finished_tune_trials(out: str) -> int:
    """Trials of a (killed) Tune run that reported: non-empty result.json files."""
    done = 0
    for folder, _, files in os.walk(out):
        if "result.json" in files and os.path.getsize(os.path.join(folder, "result.json")):
            done += 1
    return done


# ------------------------------------------------------------------- parent


def measure(tool: str, objective: str, n: int, cores: int, max_seconds: float
            ) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix=f"peers-{tool}-")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool, objective,
           str(n), out, "--cores", str(cores)]
    env = dict(os.environ, RAY_DEDUP_LOGS="0", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env, start_new_session=True)
    try:
        try:
            stdout, stderr = proc.communicate(timeout=max_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the child and the Ray it started
            proc.communicate()
            rec: dict[str, Any] = {"timeout": True}
            if tool.startswith("tune"):
                rec["finished"] = finished_tune_trials(out)
            return rec
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            return {"error": f"exit {proc.returncode}: {stderr.strip()[-600:]}"}
        rec = json.loads(lines[-1])
        rec["files"] = count_files(out)
        return rec
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 200 only")
    parser.add_argument("--ns", default=None, help="comma-separated Ns (default 200,1000)")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated, from {', '.join(TOOLS)}")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES),
                        help=f"comma-separated, from {', '.join(OBJECTIVES)}")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="num_cpus for ray.init and Optuna's n_jobs (default: all cores)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="kill a run after this long and print 'timeout' (default 600)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh runs per cell, best wall kept (default 1)")
    parser.add_argument("--child", nargs=4, metavar=("TOOL", "OBJECTIVE", "N", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        tool, objective, n, out = args.child
        child(tool, objective, int(n), args.cores, out)
        return

    tools = [t for t in args.tools.split(",") if t]
    objectives = [o for o in args.objectives.split(",") if o]
    for name, allowed in (("tool", TOOLS), ("objective", OBJECTIVES)):
        bad = [x for x in (tools if name == "tool" else objectives) if x not in allowed]
        if bad:
            parser.error(f"unknown {name}(s) {bad}; choose from {list(allowed)}")
    if args.ns:
        ns = [int(x) for x in args.ns.split(",") if x]
    else:
        ns = [200] if args.quick else [200, 1000]

    print("# sweep vs Ray Tune vs Optuna: same space, same N random trials")
    print(f"# command: python {shlex.join(['tests/bench/peers.py', *(argv or sys.argv[1:])])}")
    print(f"# machine: {machine(('ray', 'optuna'))}")
    print(f"# each cell in a fresh process; ray.init(num_cpus={args.cores}) not in wall "
          f"(see init); optuna n_jobs={args.cores}; best of {args.repeats}; "
          f"timeout {args.max_seconds:g} s")
    print()
    header = (f"| {'tool':<10} | {'objective':<9} | {'N':>5} | {'wall s':>8} | "
              f"{'trials/s':>8} | {'vs sweep':>8} | {'init s':>6} | {'peak RSS MiB':>12} | "
              f"{'files':>5} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for objective in objectives:
        for n in ns:
            sweep_wall: float | None = None
            for tool in tools:
                best: dict[str, Any] | None = None
                note = ""
                for _ in range(args.repeats):
                    rec = measure(tool, objective, n, args.cores, args.max_seconds)
                    if "wall" in rec:
                        if best is None or rec["wall"] < best["wall"]:
                            best = rec
                    elif "timeout" in rec:
                        note = f"timeout (> {args.max_seconds:g} s)"
                        if "finished" in rec:
                            note += (f": {rec['finished']}/{n} trials reported "
                                     f"(~{rec['finished'] / args.max_seconds:.2f} trials/s "
                                     f"incl. ray.init)")
                        break
                    else:
                        note = f"error: {rec['error']}"
                        break
                if best is None:
                    print(f"| {tool:<10} | {objective:<9} | {n:>5} | {note}")
                    continue
                wall = best["wall"]
                if tool == "sweep":
                    sweep_wall = wall
                vs = f"{wall / sweep_wall:8.2f}" if sweep_wall else f"{'-':>8}"
                short = "" if best["ok"] == n else f" ({best['ok']}/{n} ok)"
                print(f"| {tool:<10} | {objective:<9} | {n:>5} | {wall:8.2f} | "
                      f"{n / wall:8.1f} | {vs} | {best['init_s']:6.1f} | "
                      f"{best['peak_kb'] / 1024:12.1f} | {best['files']:>5} |{short}",
                      flush=True)


if __name__ == "__main__":
    main()
