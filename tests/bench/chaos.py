"""Nodes dying at random: a sweep of short trials on a multi-node Ray cluster whose worker
nodes are killed one after another (and replaced), against the same run without kills.

Each run happens in a fresh Python process with a Ray of its own (a private RAY_TMPDIR,
RAY_AUTH_MODE=token with a fresh token): a ``ray.cluster_utils.Cluster`` with a 0-CPU head
and ``--nodes`` worker nodes of 1 CPU each. ``sweep.run`` (connected with
``address=cluster.address``) runs a random sweep of ``--trials`` trials of
``tests.objectives:marked_sleep``, each sleeping 20-50 ms and logging its START (x, pid,
node id, time) to an append-only ``starts.jsonl`` (and its end to ``done.jsonl``), so that
attempts are counted independently of sweep. Meanwhile a thread kills a worker node every
``--kill-every`` seconds (``cluster.remove_node(node, allow_graceful=False)``; the victim is
drawn at random among the nodes running a trial at that moment) and adds a fresh one
(``cluster.add_node(num_cpus=1)``), like Ray Tune's fault-tolerance release tests. The
first kill waits for the first results (the log files, not a sleep).

It prints, for both runs: trials, rows, unique trial ids, kills, wall time and throughput,
the ratio, and the check: every trial ended exactly once (one row, status ok), no row lost
(every trial that started has its row), and ``attempts`` in the table equal to the STARTs
logged for that trial -- or precisely how they differ. A benchmark: it asserts nothing.

    nice -n 10 python tests/bench/chaos.py                       # 2,000 trials, 4 nodes
    nice -n 10 python tests/bench/chaos.py --trials 5000 --nodes 6 --kill-every 2

``tests/test_chaos.py`` runs the same (``run_one``) at a CI scale and asserts.

``--long``: the long-trial case (``tests/bench/chaos_long.py``): trials of 40 steps that
checkpoint every step, a node killed every few seconds; the steps each kill costs with
sweep's checkpoints, without them, and with Ray Tune's checkpoints and FailureConfig.

    nice -n 10 python tests/bench/chaos.py --long                # 4 trials x 40 steps
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.procs import read_jsonl  # noqa: E402  (after the path is set)

NAME = "chaos"
# Node death is noticed within about 2 s (the GCS's health checks), as in tests/test_faults.
SYSTEM_CONFIG = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                 "health_check_failure_threshold": 4}


def spec(trials: int, seed: int, markers: str, retries: int, sleep: tuple[float, float]
         ) -> dict[str, Any]:
    """The sweep: ``trials`` random (x, sleep) configs of tests.objectives:marked_sleep."""
    return {
        "name": NAME, "objective": "tests.objectives:marked_sleep",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0},
                       "sleep": {"min": sleep[0], "max": sleep[1]},
                       "marker_dir": {"value": markers}},
        "stages": [{"plan": "random", "trials": trials, "seed": seed}],
        "retries": retries,
    }


# ------------------------------------------------------------- the child


class Tail:
    """The whole JSON lines appended to a file since the last call."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rest = path, 0, b""

    def new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        self.offset += len(chunk)
        data = self.rest + chunk
        *lines, self.rest = data.split(b"\n")
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


class Killer:
    """Kills a worker node and adds a fresh one every ``every`` seconds, and sooner when
    the sweep's progress passes the marks that guarantee ``min_kills`` kills in the run.
    Progress is read from the objective's log files. It runs in the main thread (adding
    a node installs signal handlers), the sweep in another."""

    def __init__(self, cluster: Any, markers: Path, trials: int, every: float,
                 min_kills: int, seed: int):
        self.cluster, self.trials, self.every, self.min_kills = cluster, trials, every, min_kills
        self.rng = random.Random(seed)
        self.starts, self.dones = Tail(markers / "starts.jsonl"), Tail(markers / "done.jsonl")
        self.running: dict[tuple[float, int], str] = {}  # (x, pid) -> node id, started only
        self.done_n = 0
        self.done_x: set[float] = set()
        self.kills: list[dict[str, Any]] = []
        self.error: str | None = None

    def _progress(self) -> None:
        for r in self.starts.new():
            self.running[(r["x"], r["pid"])] = r["node"]
        for r in self.dones.new():
            self.done_x.add(r["x"])  # distinct trials: a rerun may complete a trial again
            self.done_n = len(self.done_x)
            self.running.pop((r["x"], r["pid"]), None)

    def _due(self, last: float) -> bool:
        if self.done_n == 0:
            return False  # not before the first results
        if time.monotonic() - last >= self.every:
            return True
        k = len(self.kills)
        # Kill k+1 is due at (k+1)/(min_kills+2) of the trials at the latest, which leaves
        # room for the last of them even when adding a node takes seconds.
        return k < self.min_kills and self.done_n >= (k + 1) * self.trials / (self.min_kills + 2)

    def run(self, halt: threading.Event) -> None:
        """Kill until ``halt`` is set (the sweep is over)."""
        try:
            last = time.monotonic()
            while not halt.is_set():
                self._progress()
                if not self._due(last):
                    halt.wait(0.05)
                    continue
                last = time.monotonic()  # kill to kill, adding the fresh node included
                self._kill_one()
        except Exception as exc:  # reported by the child, never silent
            self.error = f"{type(exc).__name__}: {exc}"

    def _kill_one(self) -> None:
        workers = list(self.cluster.worker_nodes)
        by_id = {n.node_id: n for n in workers}
        busy = sorted({node for node in self.running.values() if node in by_id})
        victim = by_id[self.rng.choice(busy)] if busy else self.rng.choice(workers)
        in_flight = sum(1 for node in self.running.values() if node == victim.node_id)
        t0 = time.time()
        self.cluster.remove_node(victim, allow_graceful=False)
        t1 = time.time()
        fresh = self.cluster.add_node(num_cpus=1)
        self.kills.append({"t": t0, "node": victim.node_id, "running": in_flight,
                           "done_before": self.done_n, "remove_s": t1 - t0,
                           "add_s": time.time() - t1, "fresh": fresh.node_id})


def _log_crashes(path: Path) -> None:
    """Observe, without changing it, what the pool tells the driver about each task whose
    worker or node died: one line per crashed task (its trials, attempt, Ray's error)."""
    from sweep.engine import ray_pool as sweep_pool

    outcome = sweep_pool.RayPool._outcome

    def logged(self: Any, flight: Any) -> Any:
        done = outcome(self, flight)
        task = getattr(flight, "task", flight)  # the pool's in-flight entry, or the task
        if done.crashed:
            line = json.dumps({"t": time.time(), "submitted": task.submitted,
                               "attempt": task.attempt,
                               "trials": [i.trial_id for i in task.items],
                               "x": [i.params.get("x") for i in task.items],
                               "started": None if done.started is None
                               else sorted(done.started),
                               "error": (done.error or "")[:600]})
            with open(path, "a") as f:
                f.write(line + "\n")
        return done

    sweep_pool.RayPool._outcome = logged


def child(args: argparse.Namespace) -> None:
    """One run in this process (a Ray of its own): print one JSON line of figures."""
    import ray
    from ray.cluster_utils import Cluster

    import sweep

    markers = Path(args.markers)
    _log_crashes(markers / "crashes.jsonl")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "_system_config": SYSTEM_CONFIG})
    killer = None
    try:
        for _ in range(args.nodes):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        over = threading.Event()
        box: dict[str, Any] = {}

        def sweeper() -> None:
            try:
                t0 = time.perf_counter()
                df = sweep.run(spec(args.trials, args.seed, str(markers), args.retries,
                                    (args.sleep_min, args.sleep_max)),
                               results=args.results, address=cluster.address)
                box.update(wall_s=time.perf_counter() - t0, rows=len(df))
            except BaseException:
                box["error"] = traceback.format_exc()
            finally:
                over.set()

        thread = threading.Thread(target=sweeper, daemon=True)
        thread.start()
        if args.kill_every > 0:
            killer = Killer(cluster, markers, args.trials, args.kill_every, args.min_kills,
                            args.seed)
            killer.run(over)
        over.wait()
        thread.join()
        print("RESULT " + json.dumps({
            **box, "kills": killer.kills if killer else [],
            "killer_error": killer.error if killer else None,
        }), flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


# ------------------------------------------------------------- the parent


def check(results: str, markers: Path, trials: int) -> dict[str, Any]:
    """The store against the objective's own log: rows, ids, statuses, attempts."""
    import pandas as pd

    folder = Path(results) / NAME / "trials"
    df = pd.read_parquet(folder) if folder.exists() else pd.DataFrame(
        columns=["trial_id", "status", "attempts", "params.x", "node"])
    starts = read_jsonl(markers / "starts.jsonl")
    dones = read_jsonl(markers / "done.jsonl")
    started = Counter(r["x"] for r in starts)
    finished = Counter(r["x"] for r in dones)
    start_nodes: dict[float, list[str]] = defaultdict(list)
    for r in starts:
        start_nodes[r["x"]].append(r["node"][:8])
    crashes: dict[str, list[str]] = defaultdict(list)
    crashed_tasks = read_jsonl(markers / "crashes.jsonl")
    for c in crashed_tasks:
        for tid in c["trials"]:
            crashes[tid].append(f"attempt {c['attempt']} of a task of {len(c['trials'])}: "
                                + c["error"].split("\n")[0][:200])
    rows_per_id = Counter(df["trial_id"])
    table_x = set(df["params.x"].astype(float))
    more, fewer = [], []  # attempts above / below the logged starts
    for tid, x, attempts, status, node, error in zip(
            df["trial_id"], df["params.x"], df["attempts"], df["status"], df["node"],
            df["error"] if "error" in df else [None] * len(df)):
        n = started.get(float(x), 0)
        entry = {"trial_id": tid, "x": float(x), "attempts": int(attempts), "starts": n,
                 "completions": finished.get(float(x), 0), "status": status,
                 "row_node": node if isinstance(node, str) else None,
                 "start_nodes": start_nodes.get(float(x), []),
                 "error": error[:300] if isinstance(error, str) and error else None,
                 "crashes": crashes.get(tid, [])}
        if attempts > n:
            more.append(entry)
        elif attempts < n:
            fewer.append(entry)
    return {
        "trials": trials, "rows": len(df), "unique": len(rows_per_id),
        "duplicated_ids": sorted(t for t, n in rows_per_id.items() if n > 1),
        "status": dict(Counter(df["status"])),
        "started_trials": len(started), "starts": len(starts), "completions": len(dones),
        "lost": sorted(x for x in started if x not in table_x),  # started, but no row
        "attempts": dict(Counter(int(a) for a in df["attempts"])),
        "attempts_equal_starts": len(df) - len(more) - len(fewer),
        "attempts_above_starts": more, "attempts_below_starts": fewer,
        "completed_twice": sum(1 for n in finished.values() if n > 1),
        "crashed_tasks": len(crashed_tasks),
        "crash_errors": dict(Counter(c["error"].split(":")[0] for c in crashed_tasks)),
        "span_s": (max(r["t"] for r in dones) - min(r["t"] for r in starts)) if dones else 0.0,
    }


def _with_env(ray_tmp: str) -> list[int]:
    """Pids whose environment names ``ray_tmp`` as RAY_TMPDIR: every process of that Ray,
    Ray's workers too (their command lines are rewritten to ``ray::...``), even one a
    killed node left behind."""
    needle = f"RAY_TMPDIR={ray_tmp}\0".encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read() + b"\0":
                        out.append(int(entry))
            except OSError:
                continue
    return out


def _clean_up(ray_tmp: str, root: int, grace_s: float) -> set[int]:
    from tests.procs import kill_marked

    return kill_marked(ray_tmp, roots=[root, *_with_env(ray_tmp)], grace_s=grace_s)


def run_one(work: Path, *, trials: int, nodes: int, kill_every: float, seed: int,
            min_kills: int = 0, retries: int = 10, sleep: tuple[float, float] = (0.02, 0.05),
            timeout: float = 1200.0) -> dict[str, Any]:
    """One run in a fresh process with a private RAY_TMPDIR; its figures and ``check``.
    Every process it started is gone when it returns."""
    from tests.procs import ray_env

    work = Path(work)
    markers, results = work / "markers", work / "results"
    markers.mkdir(parents=True, exist_ok=True)
    ray_tmp = tempfile.mkdtemp(prefix="sch-", dir="/tmp")  # unix socket paths stay short
    env = ray_env("token", RAY_TMPDIR=ray_tmp)  # RAY_AUTH_MODE=token and a fresh token
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
           "--trials", str(trials), "--nodes", str(nodes), "--kill-every", str(kill_every),
           "--seed", str(seed), "--min-kills", str(min_kills), "--retries", str(retries),
           "--sleep-min", str(sleep[0]), "--sleep-max", str(sleep[1]),
           "--markers", str(markers), "--results", str(results)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _clean_up(ray_tmp, proc.pid, grace_s=2.0)
        stdout, stderr = proc.communicate()
    finally:
        # The Cluster's processes, and any worker a killed node left behind: every process
        # whose command line or environment names the private RAY_TMPDIR, and the child's
        # descendants.
        leftovers = _clean_up(ray_tmp, proc.pid, grace_s=5.0)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    out = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    figures: dict[str, Any] = json.loads(out[-1][len("RESULT "):]) if out else {}
    figures.update(returncode=proc.returncode, timed_out=timed_out, ray_tmp=ray_tmp,
                   leftover_processes=len(leftovers), stderr_tail=stderr[-4000:],
                   check=check(str(results), markers, trials))
    return figures


def _verdict(c: dict[str, Any]) -> list[str]:
    lines = []
    once = c["rows"] == c["unique"] == c["trials"] and not c["duplicated_ids"]
    ok = c["status"].get("ok", 0) == c["trials"]
    lines.append(f"  every trial ended exactly once: {'yes' if once else 'NO'} "
                 f"(rows {c['rows']}, unique ids {c['unique']}, of {c['trials']}; "
                 f"duplicated ids {len(c['duplicated_ids'])}); statuses {c['status']}"
                 f"{'' if ok else '  <-- not all ok'}")
    lines.append(f"  no row lost: {'yes' if not c['lost'] else 'NO'} "
                 f"({c['started_trials']} trials started, {len(c['lost'])} of them without a row)")
    above, below = c["attempts_above_starts"], c["attempts_below_starts"]
    same = not above and not below
    lines.append(f"  attempts == logged STARTs: {'yes' if same else 'NO'} "
                 f"({c['attempts_equal_starts']} equal, {len(above)} above, {len(below)} below);"
                 f" attempts histogram {dict(sorted(c['attempts'].items()))}; STARTs "
                 f"{c['starts']}, completions {c['completions']} "
                 f"({c['completed_twice']} trials completed more than once); crashed tasks "
                 f"{c['crashed_tasks']} {c['crash_errors']}")
    for label, entries in (("attempts > STARTs", above), ("attempts < STARTs", below)):
        for e in entries[:8]:
            lines.append(f"    {label}: x={e['x']:.6f} attempts={e['attempts']} "
                         f"starts={e['starts']} completions={e['completions']} "
                         f"status={e['status']} start nodes={e['start_nodes']} "
                         f"row node={e['row_node']}" + (f" error={e['error']!r}"
                                                         if e['error'] else ""))
            for crash in e["crashes"]:
                lines.append(f"      crashed: {crash}")
        if len(entries) > 8:
            lines.append(f"    ... and {len(entries) - 8} more")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=4, help="worker nodes of 1 CPU each")
    parser.add_argument("--kill-every", type=float, default=3.0,
                        help="seconds between node kills (0: no kills)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retries", type=int, default=10,
                        help="the sweep's retries (a trial may lose several nodes)")
    parser.add_argument("--min-kills", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--sleep-min", type=float, default=0.02, help=argparse.SUPPRESS)
    parser.add_argument("--sleep-max", type=float, default=0.05, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--markers", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--results", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--long", action="store_true",
                        help="the long-trial case: checkpoints against node deaths")
    parser.add_argument("--steps", type=int, default=40, help="--long: steps per trial")
    parser.add_argument("--step-s", type=float, default=0.1, help="--long: seconds a step")
    parser.add_argument("--mode", default="sweep", help=argparse.SUPPRESS)
    parser.add_argument("--log-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.long:
        from tests.bench import chaos_long

        if args.child:
            chaos_long.child(args)
        else:
            if "--trials" not in (argv or sys.argv):
                args.trials = 4
            if "--nodes" not in (argv or sys.argv):
                args.nodes = 3
            if "--kill-every" not in (argv or sys.argv):
                args.kill_every = 4.0
            chaos_long.report(args)
        return 0
    if args.child:
        child(args)
        return 0

    from tests.bench._machine import machine

    print(machine(("ray", "pandas")), flush=True)
    print(f"{args.trials} trials of 20-50 ms on {args.nodes} worker nodes of 1 CPU "
          f"(0-CPU head); retries {args.retries}; a node killed and replaced every "
          f"{args.kill_every:g} s; seed {args.seed}", flush=True)
    runs = {}
    for label, every in (("kills", args.kill_every), ("no kills", 0.0)):
        work = Path(tempfile.mkdtemp(prefix="sweep-chaos-"))
        try:
            r = run_one(work, trials=args.trials, nodes=args.nodes, kill_every=every,
                        seed=args.seed, retries=args.retries)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        runs[label] = r
        c = r["check"]
        wall = r.get("wall_s")
        rate = f"{args.trials / wall:.1f}" if wall else "-"
        print(f"\n[{label}] exit {r['returncode']}{' (timed out)' if r['timed_out'] else ''}; "
              f"trials {c['trials']}, rows {c['rows']}, unique trial ids {c['unique']}, "
              f"kills {len(r.get('kills', []))}, wall {wall or float('nan'):.1f} s "
              f"(first START to last end {c['span_s']:.1f} s), {rate} trials/s; "
              f"leftover processes killed {r['leftover_processes']}", flush=True)
        kills = r.get("kills", [])
        if kills:
            print(f"  kills: {sum(k['running'] for k in kills)} trials were running on the "
                  f"killed nodes; remove {sum(k['remove_s'] for k in kills) / len(kills):.2f} s"
                  f", add {sum(k['add_s'] for k in kills) / len(kills):.2f} s on average",
                  flush=True)
        if r.get("killer_error"):
            print(f"  the killer thread failed: {r['killer_error']}")
        for line in _verdict(c):
            print(line, flush=True)
        if r["returncode"] != 0 or not r.get("wall_s"):
            print("  stderr: " + r["stderr_tail"][-3000:])
    a, b = runs["kills"], runs["no kills"]
    if a.get("wall_s") and b.get("wall_s"):
        ta, tb = args.trials / a["wall_s"], args.trials / b["wall_s"]
        print(f"\nthroughput with kills / without: {ta:.1f} / {tb:.1f} trials/s = "
              f"{ta / tb:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
