"""Driver overhead of ``sweep.run`` against raw Ray tasks and against the ideal.

What it measures
----------------
For three objectives -- ``trivial`` (returns at once), ``5ms`` (sleeps 5 ms) and
``1s`` (sleeps 1 s) -- on one search space (lr loguniform 1e-4..1, x uniform 0..1,
opt a choice of 3), the wall time of:

* ``raw``: ``ray.get([f.remote(c) for c in configs])`` with the configs computed
  beforehand -- one Ray task per trial, no results written anywhere;
* ``sweep``: ``sweep.run(spec, results=<tmp dir>)`` on the same, already
  initialised Ray (sweep uses it as it is): planning, trial ids, batching, the
  journal, Parquet files and the final table read included;
* ``ideal``: the sum of trial times / cores (for ``trivial`` the sum of the
  ``duration_s`` that sweep measured inside the workers; for the sleeps, the
  nominal sleep).

One ``ray.init(num_cpus=<cores>)`` serves every measurement (its start-up time is
printed, never counted). Each measurement is repeated (``--repeats``, raw and
sweep alternating) and the best wall time of each is kept; ratios are of those
best times, measured in the same run. Ns: 1,000 and 10,000 trivial trials, 400 of
5 ms, 20 of 1 s.

``rss`` runs ``sweep.run`` on 1,000 and on 100,000 trivial trials, each in a
fresh subprocess (its own ``ray.init`` and a small warm-up sweep first), and
prints the driver's peak resident set size during that ``sweep.run`` (VmHWM,
reset just before it through /proc/self/clear_refs, because ``ray.init`` alone
can peak higher than a small sweep), the RSS just before it, the process's
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, and the ratio of the peaks. Only
the driver process is counted, not Ray's own processes or the workers; the
table ``sweep.run`` returns is part of the driver's peak.

Targets reported against: sweep/raw <= 0.2 for trivial trials at N = 10,000 (5x raw
Ray's throughput); at least the throughput of joblib's ``Parallel`` (loky, auto-batching),
timed on the same configs in the same process with its pool warm; 1-second trials within
3 % of the ideal; 5 ms trials within 1.03x of it (joblib timed too); peak RSS at
100k / 1k <= 1.5. The script prints figures and asserts nothing.

How to run
----------
From the repository root (the objectives live in this file and reach Ray's
workers by value, so run it as a script, not with ``-m``)::

    python tests/bench/overhead.py                  # everything (~5 minutes on 2 cores)
    python tests/bench/overhead.py --quick          # smaller Ns, 2 repeats
    python tests/bench/overhead.py --only trivial --only rss
    python tests/bench/overhead.py --cores 8 --repeats 5

Timings on a shared machine are noisy: compare the ratios printed by one run,
not wall times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _machine import machine  # tests/bench/_machine.py; scripts run from their folder

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ("trivial", "5ms", "1s", "rss")
TARGET_TRIVIAL_RATIO = 0.2
TARGET_LONG_OVERHEAD = 0.03
TARGET_SHORT_RATIO = 1.03
TARGET_RSS_RATIO = 1.5
JOBLIB_WARM: list[bool] = []  # joblib's first call (its pool starting) is timed once


# ---------------------------------------------------------------- objectives


def trivial(config: dict[str, Any]) -> dict[str, float]:
    """Returns at once."""
    return {"loss": config["x"]}


def sleep_5ms(config: dict[str, Any]) -> dict[str, float]:
    time.sleep(0.005)
    return {"loss": config["x"]}


def sleep_1s(config: dict[str, Any]) -> dict[str, float]:
    time.sleep(1.0)
    return {"loss": config["x"]}


OBJECTIVES: dict[str, tuple[Callable[[dict[str, Any]], dict[str, float]], float]] = {
    "trivial": (trivial, 0.0),
    "5ms": (sleep_5ms, 0.005),
    "1s": (sleep_1s, 1.0),
}
OPTS = ["sgd", "adam", "adamw"]


def parameters() -> dict[str, Any]:
    import sweep

    return {"lr": sweep.loguniform(1e-4, 1.0), "x": sweep.uniform(0.0, 1.0),
            "opt": sweep.choice(OPTS)}


def configs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n configs from the same space (for raw Ray; computed before timing)."""
    rng = random.Random(seed)
    return [{"lr": 10 ** rng.uniform(-4.0, 0.0), "x": rng.random(), "opt": rng.choice(OPTS)}
            for _ in range(n)]


def spec(fn: Callable[..., Any], n: int, name: str = "overhead") -> dict[str, Any]:
    return {"name": name, "objective": fn, "metric": {"name": "loss"},
            "parameters": parameters(), "stages": [{"plan": "random", "trials": n}]}


# ------------------------------------------------------------------- helpers


def init_ray(cores: int) -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    return time.perf_counter() - t0


def run_sweep(fn: Callable[..., Any], n: int) -> tuple[float, Any]:
    """(wall seconds, table) of one sweep.run into a fresh results dir."""
    import sweep

    root = tempfile.mkdtemp(prefix="sweep-overhead-")
    try:
        t0 = time.perf_counter()
        df = sweep.run(spec(fn, n), results=root)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if len(df) != n or set(df["status"]) != {"ok"}:
        print(f"  warning: sweep returned {len(df)} rows, statuses {sorted(set(df['status']))}")
    return wall, df


def run_raw(remote: Any, cfgs: Sequence[dict[str, Any]]) -> float:
    import ray

    t0 = time.perf_counter()
    ray.get([remote.remote(c) for c in cfgs])
    return time.perf_counter() - t0


def run_joblib(fn: Callable[..., Any], cfgs: Sequence[dict[str, Any]], cores: int) -> float:
    """Wall seconds of joblib's ``Parallel(n_jobs=cores)`` (loky processes, auto-batching)
    over the configs: the peer to beat on one machine. Results are returned, not stored."""
    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    Parallel(n_jobs=cores)(delayed(fn)(c) for c in cfgs)
    return time.perf_counter() - t0


def _fmt_s(s: float) -> str:
    return f"{s:8.3f} s"


# ----------------------------------------------------------------- measuring


def bench_objective(kind: str, ns: Sequence[int], cores: int, repeats: int) -> None:
    import ray

    fn, sleep = OBJECTIVES[kind]
    remote = ray.remote(fn)
    ray.get([remote.remote(c) for c in configs(4 * cores, seed=99)])  # export + warm workers
    first, _ = run_sweep(fn, 2 * cores)
    print(f"\n[{kind}] warm-up sweep.run of {2 * cores} trials: {first:.2f} s, ideal "
          f"{2 * sleep:.2f} s (not counted; the first call on a fresh Ray also pays the "
          f"workers' import of sweep)")
    for n in ns:
        cfgs = configs(n)
        raws: list[float] = []
        sweeps: list[float] = []
        work: list[float] = []
        print(f"\n[{kind}] N = {n:,}")
        for r in range(repeats):
            raws.append(run_raw(remote, cfgs))
            wall, df = run_sweep(fn, n)
            sweeps.append(wall)
            work.append(float(df["duration_s"].sum()))
            print(f"  repeat {r + 1}: raw {_fmt_s(raws[-1])}   sweep {_fmt_s(sweeps[-1])}"
                  f"   (ratio {sweeps[-1] / raws[-1]:.3f})")
        jobs: list[float] = []
        if kind in ("trivial", "5ms"):
            cold = run_joblib(fn, cfgs, cores) if not JOBLIB_WARM else None
            JOBLIB_WARM.append(True)
            jobs = [run_joblib(fn, cfgs, cores) for _ in range(repeats)]
            first = "" if cold is None else f"first call {cold:.3f} s (its pool starting), "
            print(f"  joblib : {first}then best {min(jobs):.3f} s "
                  f"({n / min(jobs):,.0f} trials/s, pool warm)")
        raw, sw = min(raws), min(sweeps)
        measured = min(work) / cores
        ideal = measured if sleep == 0.0 else n * sleep / cores
        print(f"  best   : raw {_fmt_s(raw)} ({n / raw:9,.0f} trials/s)   "
              f"sweep {_fmt_s(sw)} ({n / sw:9,.0f} trials/s)   "
              f"ideal {_fmt_s(ideal)} ({'measured trial time' if sleep == 0.0 else 'nominal'})")
        if sleep:
            print(f"           ideal from the trial times sweep measured in the workers: "
                  f"{_fmt_s(measured)} (sweep/that {sw / measured:.3f})")
        line = f"  ratios : sweep/raw {sw / raw:.3f}   sweep/ideal {sw / ideal:.3f}" if ideal > 0 \
            else f"  ratios : sweep/raw {sw / raw:.3f}"
        line += f"   raw/ideal {raw / ideal:.3f}" if ideal > 0 else ""
        print(line)
        if kind == "trivial" and n >= 10_000:
            print(f"  target : sweep/raw <= {TARGET_TRIVIAL_RATIO} (5x raw throughput): "
                  f"{'met' if sw / raw <= TARGET_TRIVIAL_RATIO else 'NOT met'}; "
                  f"sweep is {raw / sw:.2f}x raw Ray")
        if jobs:
            print(f"  target : at least joblib's throughput (warm pool): "
                  f"{'met' if sw <= min(jobs) else 'NOT met'} (sweep {n / sw:,.0f}/s, "
                  f"joblib {n / min(jobs):,.0f}/s; sweep also writes every result to Parquet)")
        if kind == "5ms":
            print(f"  target : within {TARGET_SHORT_RATIO:.2f}x of the ideal: "
                  f"{'met' if sw / ideal <= TARGET_SHORT_RATIO else 'NOT met'} "
                  f"(sweep {sw / ideal:.3f}x, joblib {min(jobs) / ideal:.3f}x, raw Ray "
                  f"{raw / ideal:.3f}x)")
        if kind == "1s":
            over = sw / ideal - 1.0
            print(f"  target : within {TARGET_LONG_OVERHEAD:.0%} of ideal: "
                  f"{'met' if over <= TARGET_LONG_OVERHEAD else 'NOT met'} "
                  f"(sweep {over:+.1%}, raw {raw / ideal - 1.0:+.1%})")


def _status_kb(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux: /proc/self/clear_refs = 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_child(n: int, cores: int) -> None:
    """In a fresh process: ray.init, a warm-up sweep, then sweep.run of n trivial trials;
    print JSON. ``ray.init`` itself peaks higher than a small sweep, so the high-water
    mark is reset after the warm-up (where Linux allows) and the sweep's own peak is
    read from VmHWM; ru_maxrss (the whole process life) is reported too."""
    import sweep  # noqa: F401  (imported before the baseline)

    init_s = init_ray(cores)
    run_sweep(trivial, 4 * cores)  # imports and worker start-up, outside the measure
    base = _status_kb("VmRSS") or 0
    reset = _reset_peak()
    wall, _ = run_sweep(trivial, n)
    run_peak = _status_kb("VmHWM") if reset else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"n": n, "run_peak_kb": run_peak, "maxrss_kb": maxrss, "base_kb": base,
                      "wall": wall, "init_s": init_s}))


def bench_rss(ns: Sequence[int], cores: int) -> None:
    print("\n[rss] driver peak RSS, trivial trials, each N in a fresh process")
    out: dict[int, dict[str, Any]] = {}
    for n in ns:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", str(n),
               "--cores", str(cores)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"  N = {n:>7,}: failed (exit {proc.returncode})\n{proc.stderr[-2000:]}")
            continue
        rec = json.loads(lines[-1])
        rec["peak_kb"] = rec["run_peak_kb"] or rec["maxrss_kb"]
        out[n] = rec
        growth = (rec["peak_kb"] - rec["base_kb"]) / 1024
        print(f"  N = {n:>7,}: peak during sweep.run {rec['peak_kb'] / 1024:7.1f} MiB   "
              f"before {rec['base_kb'] / 1024:7.1f} MiB   growth {growth:7.1f} MiB   "
              f"ru_maxrss {rec['maxrss_kb'] / 1024:7.1f} MiB   "
              f"sweep.run {rec['wall']:.1f} s ({n / rec['wall']:,.0f} trials/s)")
        if rec["run_peak_kb"] is None:
            print("    (the high-water mark could not be reset: peak is ru_maxrss, "
                  "ray.init included)")
    if len(out) == 2:
        small, large = sorted(out)
        ratio = out[large]["peak_kb"] / out[small]["peak_kb"]
        growth = ((out[large]["peak_kb"] - out[large]["base_kb"])
                  / max(out[small]["peak_kb"] - out[small]["base_kb"], 1))
        print(f"  ratio  : peak RSS {large:,} / {small:,} = {ratio:.2f}   target <= "
              f"{TARGET_RSS_RATIO}: {'met' if ratio <= TARGET_RSS_RATIO else 'NOT met'}   "
              f"(growth above the pre-run RSS: {growth:.1f}x)")


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller Ns (trivial 500/1,000, 5ms 100, 1s 6, rss 1k/10k), "
                             "2 repeats")
    parser.add_argument("--only", action="append", choices=KINDS,
                        help="run only these parts (repeatable)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="num_cpus for ray.init (default: all cores)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per measurement, best kept (default 3; 2 with --quick)")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.rss_child is not None:
        rss_child(args.rss_child, args.cores)
        return

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    only = args.only or list(KINDS)
    repeats = args.repeats or (2 if args.quick else 3)
    ns = {
        "trivial": [500, 1_000] if args.quick else [1_000, 10_000],
        "5ms": [100] if args.quick else [400],
        "1s": [6] if args.quick else [20],
        "rss": [1_000, 10_000] if args.quick else [1_000, 100_000],
    }
    print("# sweep driver overhead")
    print(f"# command: python {shlex.join(['tests/bench/overhead.py', *(argv or sys.argv[1:])])}")
    print(f"# machine: {machine(('ray',))}")
    print(f"# ray.init(num_cpus={args.cores}); best of {repeats} repeats; ratios within this run")

    timed = [k for k in ("trivial", "5ms", "1s") if k in only]
    if timed:
        import ray

        print(f"ray.init: {init_ray(args.cores):.1f} s (not counted)")
        try:
            for kind in timed:
                bench_objective(kind, ns[kind], args.cores, repeats)
        finally:
            ray.shutdown()
    if "rss" in only:
        bench_rss(ns["rss"], args.cores)


if __name__ == "__main__":
    main()
