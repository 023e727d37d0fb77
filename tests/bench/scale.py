"""Driver memory and file count as a sweep grows: 2,000 vs 20,000 trials.

Each size runs in a fresh Python process that starts its own local Ray (in a private
RAY_TMPDIR, RAY_AUTH_MODE=token), runs a one-stage random sweep of the trivial objective
``tests.objectives:trivial`` and reports the driver's peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the driver process only, Ray's own
processes excluded; it includes the baseline of importing and initialising Ray, shown
separately as "after init"). The driver streams its lazy plan with a bounded number of
tasks in flight and writes results in batches, so its memory should grow little with the
number of trials: the target is a ratio of at most 1.5 between the two sizes.

A benchmark: it prints figures and asserts nothing. Run it by hand:

    python tests/bench/scale.py                 # 2,000 and 20,000 trials
    python tests/bench/scale.py --sizes 1000,5000,50000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET_RATIO = 1.5


def child(n: int, results: str) -> None:
    """Run one sweep of n trials in this process and print one JSON line of figures."""
    sys.path.insert(0, str(REPO))
    import ray

    import sweep

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    after_init_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpus = int(ray.cluster_resources().get("CPU", 0))
    t0 = time.perf_counter()
    outcome = sweep.execute({
        "name": f"scale-{n}", "objective": "tests.objectives:trivial",
        "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}},
        "stages": [{"plan": "random", "trials": n, "seed": 0}],
    }, results=results)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    df = outcome.table
    files = list(Path(outcome.store.trials_dir).rglob("part-*.parquet"))
    print(json.dumps({
        "n": n, "cpus": cpus, "wall_s": wall, "rows": len(df),
        "unique": int(df["trial_id"].nunique()), "ok": int((df["status"] == "ok").sum()),
        "files": len(files), "after_init_mib": after_init_kib / 1024,
        "peak_mib": peak_kib / 1024,
    }), flush=True)
    ray.shutdown()


def measure(n: int) -> dict:
    """Run ``child(n)`` in a fresh process with a Ray of its own; its figures."""
    work = tempfile.mkdtemp(prefix="sweep-scale-")
    ray_tmp = tempfile.mkdtemp(prefix="ssc-", dir="/tmp")  # unix socket paths stay short
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["RAY_AUTH_MODE"] = env.get("RAY_AUTH_MODE") or "token"
    env["RAY_TMPDIR"] = ray_tmp
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--results", f"{work}/results"],
            cwd=REPO, env=env, capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{n} trials: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        return json.loads(lines[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,20000",
                        help="comma-separated trial counts (default 2000,20000)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--results", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.results)
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    print(f"{'trials':>8} {'CPUs':>4} {'wall s':>8} {'trials/s':>9} {'rows':>7} "
          f"{'unique':>7} {'files':>5} {'after init MiB':>14} {'peak MiB':>9}", flush=True)
    for n in sizes:
        r = measure(n)
        rows.append(r)
        print(f"{r['n']:>8} {r['cpus']:>4} {r['wall_s']:>8.1f} {r['n'] / r['wall_s']:>9.0f} "
              f"{r['rows']:>7} {r['unique']:>7} {r['files']:>5} {r['after_init_mib']:>14.1f} "
              f"{r['peak_mib']:>9.1f}", flush=True)
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        ratio = large["peak_mib"] / small["peak_mib"]
        growth = large["peak_mib"] - small["peak_mib"]
        verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
        print(f"\npeak RSS ratio {large['n']}/{small['n']} trials: {ratio:.2f} "
              f"({verdict} the target of {TARGET_RATIO}); growth {growth:.1f} MiB, "
              f"{growth * 1024 * 1024 / max(large['n'] - small['n'], 1):.0f} bytes per "
              f"extra trial")
    return 0


if __name__ == "__main__":
    sys.exit(main())
