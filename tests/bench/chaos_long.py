"""Long trials and dying nodes (``python tests/bench/chaos.py --long``): how much work a
node kill costs a trial that checkpoints every step, with sweep's checkpoints, without
them, and with Ray Tune's checkpoints and ``FailureConfig`` on the same cluster shape.

Each run is a fresh process with a Ray of its own (private RAY_TMPDIR, a fresh token): a
``ray.cluster_utils.Cluster`` with a 0-CPU head and ``--nodes`` worker nodes of 1 CPU.
``--trials`` trials of ``--steps`` steps (each ``--step-s`` seconds of sleep, then a
checkpoint of 64 KiB) run on it; every ``--kill-every`` seconds the node of a running
trial is killed without warning and a fresh node added. Each step run is logged (trial,
step, node) by the trial itself, so the steps lost are counted independently of the
orchestrator: lost = steps run - trials x steps.

Runs: ``sweep`` (checkpoints on: a retry restores the last one), ``sweep, no
checkpoints`` (``checkpoints: false``: a retry starts over), ``tune`` (Ray Tune's
function trainable: ``tune.report(..., checkpoint=...)``, ``tune.get_checkpoint()``,
``FailureConfig(max_failures=retries)``, ``CheckpointConfig(num_to_keep=1)``). A
benchmark: it prints figures and asserts nothing.
"""

from __future__ import annotations

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
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.chaos import SYSTEM_CONFIG, Tail, _clean_up  # noqa: E402
from tests.procs import read_jsonl  # noqa: E402

NAME = "chaos-long"
MODES = ("sweep", "sweep, no checkpoints", "tune")


def _log_step(log_dir: str, row: dict[str, Any]) -> None:
    fd = os.open(os.path.join(log_dir, "steps.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                 0o644)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
    finally:
        os.close(fd)


def _node() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def _steps(config: dict[str, Any], start: int, save: Any) -> float:
    """The training loop both orchestrators run: sleep, log, checkpoint, report."""
    loss = 1.0
    work = tempfile.mkdtemp(prefix="chaos-long-")
    try:
        for step in range(start, int(config["steps"])):
            time.sleep(float(config["step_s"]))
            loss = (config["x"] - 0.3) ** 2 + 1.0 / (step + 1)
            _log_step(config["log_dir"], {"x": config["x"], "step": step, "node": _node(),
                                          "t": time.time()})
            with open(os.path.join(work, "state.json"), "w") as f:
                json.dump({"step": step}, f)
            with open(os.path.join(work, "weights.bin"), "wb") as f:
                f.write(b"\0" * 65536)
            save(step, work, loss)
        return loss
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sweep_trial(config: dict[str, Any]) -> dict[str, float]:
    """The trial under sweep: ``sweep.restore`` / ``sweep.report(checkpoint=...)``."""
    import sweep

    start = 0
    path = sweep.restore()
    if path is not None:
        with open(os.path.join(path, "state.json")) as f:
            start = json.load(f)["step"] + 1

    def save(step: int, work: str, loss: float) -> None:
        sweep.report(step=step, checkpoint=work, loss=loss)

    return {"loss": _steps(config, start, save)}


def tune_trial(config: dict[str, Any]) -> None:
    """The same trial under Ray Tune: ``tune.get_checkpoint`` / ``tune.report``."""
    from ray import tune

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path, open(os.path.join(path, "state.json")) as f:
            start = json.load(f)["step"] + 1

    def save(step: int, work: str, loss: float) -> None:
        tune.report({"loss": loss, "step": step},
                    checkpoint=tune.Checkpoint.from_directory(work))

    _steps(config, start, save)


# ------------------------------------------------------------------ the child


class Killer:
    """Kills the node of a running trial every ``every`` seconds and adds a fresh one
    (in the main thread: adding a node installs signal handlers)."""

    def __init__(self, cluster: Any, log_dir: Path, every: float, seed: int):
        self.cluster, self.every = cluster, every
        self.rng = random.Random(seed)
        self.steps = Tail(log_dir / "steps.jsonl")
        self.last_seen: dict[str, float] = {}  # node -> time of its last step
        self.kills: list[dict[str, Any]] = []
        self.error: str | None = None

    def run(self, halt: threading.Event) -> None:
        try:
            last = None
            while not halt.is_set():
                for r in self.steps.new():
                    self.last_seen[r["node"]] = time.monotonic()
                if last is None and self.last_seen:
                    last = time.monotonic()  # the first kill waits for the first steps
                if last is None or time.monotonic() - last < self.every:
                    halt.wait(0.05)
                    continue
                last = time.monotonic()
                self._kill_one()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _kill_one(self) -> None:
        by_id = {n.node_id: n for n in self.cluster.worker_nodes}
        now = time.monotonic()
        busy = sorted(n for n, t in self.last_seen.items() if n in by_id and now - t < 2.0)
        if not busy:
            return
        victim = by_id[self.rng.choice(busy)]
        self.cluster.remove_node(victim, allow_graceful=False)
        self.last_seen.pop(victim.node_id, None)
        fresh = self.cluster.add_node(num_cpus=1)
        self.kills.append({"t": time.time(), "node": victim.node_id, "fresh": fresh.node_id})


def _run_sweep(args: Any, address: str, checkpoints: bool) -> dict[str, Any]:
    import sweep

    doc = {"name": NAME, "objective": "tests.bench.chaos_long:sweep_trial",
           "metric": {"name": "loss"},
           "parameters": {"x": {"values": [round(0.1 * i, 2) for i in range(args.trials)]},
                          "steps": {"value": args.steps}, "step_s": {"value": args.step_s},
                          "log_dir": {"value": args.log_dir}},
           "stages": [{"plan": "grid"}], "retries": args.retries,
           "checkpoints": {"keep": 1} if checkpoints else False}
    df = sweep.run(doc, results=args.results, address=address)
    return {"rows": len(df), "ok": int((df["status"] == "ok").sum()),
            "attempts": int(df["attempts"].sum())}


def _run_tune(args: Any) -> dict[str, Any]:
    from ray import tune

    tuner = tune.Tuner(
        tune_trial,
        param_space={"x": tune.grid_search([round(0.1 * i, 2) for i in range(args.trials)]),
                     "steps": args.steps, "step_s": args.step_s, "log_dir": args.log_dir},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(
            name=NAME, storage_path=args.results, verbose=0,
            failure_config=tune.FailureConfig(max_failures=args.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    grid = tuner.fit()
    return {"rows": len(grid), "ok": sum(1 for r in grid if r.error is None),
            "errors": [str(r.error)[:300] for r in grid if r.error is not None][:3]}


def child(args: Any) -> None:
    """One run in this process: print one RESULT line."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "_system_config": SYSTEM_CONFIG})
    killer = None
    try:
        for _ in range(args.nodes):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        over = threading.Event()
        box: dict[str, Any] = {}

        def runner() -> None:
            try:
                t0 = time.perf_counter()
                if args.mode == "tune":
                    box.update(_run_tune(args))
                else:
                    box.update(_run_sweep(args, cluster.address, args.mode == "sweep"))
                box["wall_s"] = time.perf_counter() - t0
            except BaseException:
                box["error"] = traceback.format_exc()[-3000:]
            finally:
                over.set()

        thread = threading.Thread(target=runner, daemon=True)
        thread.start()
        if args.kill_every > 0:
            killer = Killer(cluster, Path(args.log_dir), args.kill_every, args.seed)
            killer.run(over)
        over.wait()
        thread.join()
        print("RESULT " + json.dumps({**box, "kills": killer.kills if killer else [],
                                      "killer_error": killer.error if killer else None}),
              flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


# ------------------------------------------------------------------ the parent


def run_one(mode: str, args: Any, kill_every: float, timeout: float = 900.0
            ) -> dict[str, Any]:
    from tests.procs import ray_env

    work = Path(tempfile.mkdtemp(prefix="sweep-chaos-long-"))
    log_dir, results = work / "logs", work / "results"
    log_dir.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="scl-", dir="/tmp")
    env = ray_env("token", RAY_TMPDIR=ray_tmp, RAY_AIR_NEW_OUTPUT="0")
    cmd = [sys.executable, str(REPO / "tests" / "bench" / "chaos.py"), "--long", "--child",
           "--mode", mode, "--trials", str(args.trials), "--steps", str(args.steps),
           "--step-s", str(args.step_s), "--nodes", str(args.nodes),
           "--kill-every", str(kill_every), "--seed", str(args.seed),
           "--retries", str(args.retries), "--log-dir", str(log_dir),
           "--results", str(results)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _clean_up(ray_tmp, proc.pid, grace_s=2.0)
        stdout, stderr = proc.communicate()
    finally:
        leftovers = _clean_up(ray_tmp, proc.pid, grace_s=5.0)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    out = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    figures: dict[str, Any] = json.loads(out[-1][len("RESULT "):]) if out else {}
    steps = read_jsonl(log_dir / "steps.jsonl")
    per_trial = Counter(r["x"] for r in steps)
    once = Counter((r["x"], r["step"]) for r in steps)
    figures.update(returncode=proc.returncode, leftovers=len(leftovers),
                   stderr_tail=stderr[-3000:], steps_run=len(steps),
                   steps_needed=args.trials * args.steps,
                   trials_done=sum(1 for x in per_trial
                                   if {s for (y, s) in once if y == x} ==
                                   set(range(args.steps))))
    shutil.rmtree(work, ignore_errors=True)
    return figures


def report(args: Any) -> None:
    from tests.bench._machine import machine

    print(machine(("ray", "pandas")), flush=True)
    print(f"{args.trials} trials of {args.steps} steps ({args.step_s:g} s each, a 64 KiB "
          f"checkpoint per step) on {args.nodes} worker nodes of 1 CPU (0-CPU head); a node "
          f"running a trial killed and replaced every {args.kill_every:g} s; retries "
          f"{args.retries}; seed {args.seed}", flush=True)
    rows = []
    for mode in MODES:
        for every in (args.kill_every, 0.0):
            if every == 0.0 and mode != "sweep":
                continue  # one baseline without kills: the work itself
            r = run_one(mode, args, every)
            kills = len(r.get("kills", []))
            lost = r["steps_run"] - r["steps_needed"]
            label = mode + ("" if every else ", no kills")
            rows.append((label, kills, r["steps_run"], lost,
                         lost / kills if kills else float("nan"), r.get("wall_s"),
                         r.get("ok"), r["trials_done"]))
            if r.get("error") or r.get("errors") or r["returncode"]:
                print(f"[{label}] exit {r['returncode']}: {r.get('error') or r.get('errors')}"
                      f"\n{r['stderr_tail'][-1500:]}", flush=True)
            print(f"[{label}] kills {kills}, steps run {r['steps_run']} of "
                  f"{r['steps_needed']} needed, lost {lost}, wall "
                  f"{r.get('wall_s') or float('nan'):.1f} s, trials ok {r.get('ok')}",
                  flush=True)
    print("\n| run | kills | steps run | steps lost | lost per kill | wall s | ok trials |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, kills, run, lost, per, wall, ok, done in rows:
        print(f"| {label} | {kills} | {run} | {lost} | {per:.1f} | "
              f"{wall or float('nan'):.1f} | {ok} (all steps: {done}) |")


__all__ = ["MODES", "child", "report", "run_one", "sweep_trial", "tune_trial"]
