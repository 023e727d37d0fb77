"""A sweep as it grows to a million trials: driver memory, sustained throughput, files,
and the commands a user runs on the result.

Each size runs in a fresh Python process that starts its own local Ray (in a private
RAY_TMPDIR, RAY_AUTH_MODE=token) and does what ``sweep run`` does -- a one-stage random
sweep of the trivial objective ``tests.objectives:trivial``, then the final top-5 table
and per-stage lines, read from the store without loading the table -- and reports the
driver's peak resident memory (``ru_maxrss``: the driver process only, Ray's own
processes excluded; the baseline of importing and initialising Ray is shown as "after
init"), the throughput in each tenth of the run (sustained to the end?), and the number
of Parquet files. Then ``sweep status``, ``sweep top`` and ``sweep report`` run on the
result, each in a fresh process, timed.

Targets: peak RSS at the largest size no more than 1.5x that at the smallest; files in
the tens, not thousands; status and top in a few seconds. A benchmark: it prints
figures and asserts nothing. Run it by hand:

    python tests/bench/scale.py                          # 10,000 and 1,000,000 trials
    python tests/bench/scale.py --sizes 2000,20000 --no-commands
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
    from sweep.engine.progress import Progress
    from sweep.views.tables import store_stage_lines, top_table

    class Timeline(Progress):
        """Records (seconds, trials done) about every 0.1 s."""

        def __init__(self) -> None:
            super().__init__(quiet=True)
            self.points: list[tuple[float, int]] = []
            self.t0 = time.perf_counter()

        def update(self, *, done: int, **kwargs: object) -> None:
            now = time.perf_counter() - self.t0
            if not self.points or now - self.points[-1][0] >= 0.1:
                self.points.append((now, done))

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    after_init_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpus = int(ray.cluster_resources().get("CPU", 0))
    spec = {
        "name": f"scale-{n}", "objective": "tests.objectives:trivial",
        "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}},
        "stages": [{"plan": "random", "trials": n, "seed": 0}],
    }
    timeline = Timeline()
    t0 = time.perf_counter()
    outcome = sweep.execute(spec, results=results, progress=timeline, read_table=False)
    wall = time.perf_counter() - t0
    reader, metric = outcome.reader, outcome.spec.metric
    counts = reader.counts()
    summary = top_table(reader.best(metric, 5), metric, k=5, title=True,
                        total=int(counts["n"].sum()))
    lines = store_stage_lines(reader, metric)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ids = reader.folder.trials.table(columns=["trial_id"])
    files = list(Path(reader.folder.trials.directory).rglob("part-*.parquet"))
    timeline.points.append((wall, n))
    print(json.dumps({
        "n": n, "cpus": cpus, "wall_s": wall, "rows": int(counts["n"].sum()),
        "unique": len(set(ids.column("trial_id").to_pylist())),
        "ok": int(counts.loc[counts.status == "ok", "n"].sum()),
        "files": len(files), "after_init_mib": after_init_kib / 1024,
        "peak_mib": peak_kib / 1024, "timeline": timeline.points,
        "summary_lines": len(summary.splitlines()) + len(lines),
        "folder": reader.folder.dir,
    }), flush=True)
    ray.shutdown()


def deciles(timeline: list[list[float]], n: int) -> list[float]:
    """Trials per second in each tenth of the trials."""
    out = []
    for k in range(1, 11):
        lo, hi = n * (k - 1) / 10, n * k / 10
        t_lo = next((t for t, d in timeline if d >= lo), None)
        t_hi = next((t for t, d in timeline if d >= hi), None)
        out.append((hi - lo) / (t_hi - t_lo) if t_lo is not None and t_hi and t_hi > t_lo
                   else float("nan"))
    return out


def command_times(folder: str) -> dict[str, float]:
    """Wall time of sweep status, top and report on a results folder, each in a fresh
    process (Python start and imports included)."""
    times = {}
    for name, args in (("status", ["status", folder]), ("top", ["top", folder, "-k", "10"]),
                       ("report", ["report", folder, "-o", folder + "-report.html"])):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "sweep", *args], cwd=REPO,
                              capture_output=True, text=True, check=False)
        times[name] = time.perf_counter() - t0
        if proc.returncode != 0:
            times[name] = float("nan")
            print(f"  sweep {name} failed: {proc.stderr[-500:]}", flush=True)
    size = Path(folder + "-report.html")
    times["report_mib"] = size.stat().st_size / 2**20 if size.exists() else float("nan")
    return times


def measure(n: int, commands: bool) -> dict:
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
        figures = json.loads(lines[-1])
        if commands:
            figures.update(command_times(figures["folder"]))
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000",
                        help="comma-separated trial counts (default 10000,1000000)")
    parser.add_argument("--no-commands", action="store_true",
                        help="skip timing sweep status / top / report on the results")
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
        r = measure(n, not args.no_commands)
        rows.append(r)
        print(f"{r['n']:>8} {r['cpus']:>4} {r['wall_s']:>8.1f} {r['n'] / r['wall_s']:>9.0f} "
              f"{r['rows']:>7} {r['unique']:>7} {r['files']:>5} {r['after_init_mib']:>14.1f} "
              f"{r['peak_mib']:>9.1f}", flush=True)
        rates = deciles(r["timeline"], n)
        print("         trials/s per tenth of the run: "
              + " ".join(f"{x:,.0f}" for x in rates), flush=True)
        if "status" in r:
            print(f"         sweep status {r['status']:.1f} s, top {r['top']:.1f} s, report "
                  f"{r['report']:.1f} s ({r['report_mib']:.1f} MiB)", flush=True)
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
