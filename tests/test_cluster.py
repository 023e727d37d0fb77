"""Clusters: fractional GPUs on the session Ray, and a simulated multi-node cluster
(``ray.cluster_utils.Cluster`` in a process of its own) driven by ``sweep.run`` and by
``sweep run --address``.

The multi-node cluster runs in a helper process (tests/ray_cluster.py) with a temp
folder of its own, so the session Ray of this process is never disturbed (one
``ray.init`` per process), and at the end exactly the processes it started are stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

import sweep
from tests.procs import REPO, kill_marked, ray_env, run, short_tmpdir, sweep_cli


def max_overlap(intervals):
    """The largest number of [start, end) intervals holding at one instant."""
    events = []
    for start, end in intervals:
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # at a tie, an end comes before a start
    level = best = 0
    for _, delta in events:
        level += delta
        best = max(best, level)
    return best


def test_max_overlap_helper():
    assert max_overlap([(0, 2), (1, 3), (2, 4)]) == 2
    assert max_overlap([(0, 1), (1, 2)]) == 1
    assert max_overlap([(0, 10), (1, 2), (1, 3), (2, 5)]) == 3


# ------------------------------------------------------------- fractional GPUs


def test_fractional_gpus_pack_four_trials_on_two_gpus(ray_session, results):
    """num_gpus: 0.5 on 2 logical GPUs: 4 trials at once, never 5, at most 2 per GPU; each
    trial sees (CUDA_VISIBLE_DEVICES) the GPU Ray gave it, and the row records it."""
    assert ray_session.cluster_resources().get("GPU") == 2
    df = sweep.run({
        "name": "gpu-pack", "objective": "tests.objectives:gpu_device",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": list(range(8))}, "sleep": {"value": 3.0}},
        "stages": [{"plan": "grid"}],
        # num_cpus: 0, so the 2 CPUs of the session Ray don't bound the packing.
        "resources": {"num_cpus": 0, "num_gpus": 0.5},
    }, results=results)
    assert len(df) == 8
    assert set(df["status"]) == {"ok"}, df["error"].dropna().tolist()
    assert df["trial_id"].is_unique

    # Each trial ran on one GPU, the one Ray assigned, and the row says which.
    assert set(df["gpu_ids"]) <= {"0", "1"}, df["gpu_ids"].tolist()
    assert (df["metrics.visible_count"] == 1).all()
    assert (df["metrics.device"].astype(int).astype(str) == df["gpu_ids"]).all(), (
        df[["gpu_ids", "metrics.device"]])
    assert set(df["gpu_ids"]) == {"0", "1"}

    # Packing, from the recorded times (never from wall-clock durations of the test).
    start = df["started_at"].astype("int64")
    end = df["finished_at"].astype("int64")
    assert (end > start).all()
    intervals = list(zip(start, end))
    assert max_overlap(intervals) == 4, sorted(intervals)
    for gpu, rows in df.groupby("gpu_ids"):
        per_gpu = list(zip(rows["started_at"].astype("int64"),
                           rows["finished_at"].astype("int64")))
        assert max_overlap(per_gpu) <= 2, (gpu, sorted(per_gpu))

    # Parquet on disk says the same.
    raw = pd.read_parquet(f"{results}/gpu-pack/trials")
    assert sorted(raw["gpu_ids"]) == sorted(df["gpu_ids"])


# ------------------------------------------------------------ multi-node cluster


def _start_cluster(tmp: str, env: dict[str, str]) -> tuple[subprocess.Popen, dict | None]:
    """The helper process and the cluster's {address, head, workers}, or None if it failed."""
    with open(f"{tmp}/helper.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ray_cluster", "--workers", "2", "--worker-cpus", "1"],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            text=True, start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("{"):
                return proc, json.loads(line)
            if not line:
                break
    return proc, None


def _stop_cluster(proc: subprocess.Popen, tmp: str) -> None:
    if proc.poll() is None:
        proc.stdin.close()  # the helper shuts its Cluster down
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=90)
    kill_marked(tmp, roots=[proc.pid])
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster():
    """A 0-CPU head and two 1-CPU worker nodes, in a helper process; stopped at the end
    (the helper shuts its Cluster down; leftovers of its temp folder are killed by pid).
    On a loaded machine Ray can miss its own startup deadlines: three tries."""
    tmp = short_tmpdir("swc")
    env = ray_env("token", RAY_raylet_start_wait_time_s="120",
                  RAY_agent_register_timeout_ms="120000")
    errors = []
    try:
        for attempt in range(3):
            folder = f"{tmp}/{attempt}"
            os.makedirs(folder)
            env_attempt = dict(env, RAY_TMPDIR=folder)
            proc, info = _start_cluster(folder, env_attempt)
            if info is not None:
                break
            _stop_cluster(proc, folder)
            with open(f"{folder}/helper.log", errors="replace") as f:
                errors.append(f.read()[-3000:])
        else:
            pytest.fail("the test cluster did not start:\n" + "\n---\n".join(errors))
        try:
            yield dict(info, env=env_attempt, tmp=folder)
        finally:
            _stop_cluster(proc, folder)
    finally:
        kill_marked(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def _spec_file(tmp_path, name, trials=8, sleep=0.5):
    doc = {
        "name": name, "objective": "tests.objectives:sleepy",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": list(range(trials))}, "sleep": {"value": sleep}},
        "stages": [{"plan": "grid"}],
        "resources": {"num_cpus": 1},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _node_ids(df):
    # node is "<ip>/<first 8 hex digits of the node id>"
    return {str(n).rsplit("/", 1)[-1] for n in df["node"]}


def test_trials_spread_over_both_worker_nodes(cluster, tmp_path):
    spec = _spec_file(tmp_path, "spread")
    results = tmp_path / "results"
    driver = (
        "import json, sys, sweep\n"
        "df = sweep.run(sys.argv[1], results=sys.argv[2], address=sys.argv[3])\n"
        "print(json.dumps({'rows': len(df)}))\n"
    )
    proc = run([sys.executable, "-c", driver, str(spec), str(results), cluster["address"]],
               env=cluster["env"])
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rows": 8}

    df = pd.read_parquet(results / "spread" / "trials")
    assert len(df) == 8 and df["trial_id"].is_unique
    assert set(df["status"]) == {"ok"}, df["error"].dropna().tolist()
    assert sorted(df["params.x"]) == list(range(8))
    assert (df["metrics.loss"] == 0.5).all()
    assert df["node"].nunique() == 2, df["node"].tolist()
    workers = {w[:8] for w in cluster["workers"]}
    assert _node_ids(df) == workers
    assert cluster["head"][:8] not in _node_ids(df)  # the 0-CPU head runs no trial


def test_cli_run_with_address_connects_to_the_cluster(cluster, tmp_path):
    spec = _spec_file(tmp_path, "cli-address", trials=6, sleep=0.3)
    results = str(tmp_path / "results")
    proc = sweep_cli("run", str(spec), "--results", results, "--address", cluster["address"],
                     "--quiet", env=cluster["env"])
    assert "top 5 of 6 trials" in proc.stdout, proc.stdout
    df = pd.read_parquet(f"{results}/cli-address/trials")
    assert len(df) == 6 and set(df["status"]) == {"ok"}
    # It ran on the cluster's worker nodes, not on a private local Ray.
    assert _node_ids(df) <= {w[:8] for w in cluster["workers"]}

    # Rerunning resumes against the same cluster: nothing runs again.
    again = sweep_cli("run", str(spec), "--results", results, "--address", cluster["address"],
                      "--quiet", env=cluster["env"])
    assert "top 5 of 6 trials" in again.stdout
    df2 = pd.read_parquet(f"{results}/cli-address/trials")
    assert len(df2) == 6
    assert sorted(df2["started_at"]) == sorted(df["started_at"])
