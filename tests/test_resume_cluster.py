"""Checkpoints on Ray: a node dies under a trial that checkpoints every epoch (a
``ray.cluster_utils.Cluster`` in a subprocess, results and checkpoints on the S3 test
server: the retry on another node restores from there), and a SIGKILLed driver whose
rerun resumes its running trials from their checkpoints.

Each scenario runs its Ray in a subprocess with a private RAY_TMPDIR (tests/test_faults.py
says why); progress is observed through the epochs log the objective writes
(tests.objectives:epochs_with_checkpoints), never through sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.engine.runner import open_reader
from sweep.store.checkpoints import CheckpointStore
from sweep.store.folder import ResultsFolder
from sweep.store.reader import ResultsReader
from tests.procs import REPO, free_port, kill_marked, read_jsonl, wait_port
from tests.test_faults import (
    WAIT_S,
    kill_tree,
    living,
    output_of,
    process_tree,
    run_cluster_scenario,
    start_cli,
    stop,
    sub_env,
    wait_for,
    write_spec,
)

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def ray_tmp():
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="srt-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def epochs_doc(name, log_dir, xs, epochs, sleep, **extra):
    doc = {"name": name, "objective": "tests.objectives:epochs_with_checkpoints",
           "metric": {"name": "loss"},
           "parameters": {"x": {"values": list(xs)}, "epochs": {"value": epochs},
                          "sleep": {"value": sleep}, "log_dir": {"value": str(log_dir)},
                          "bytes": {"value": 65536}},
           "stages": [{"plan": "grid"}]}
    doc.update(extra)
    return doc


def check_curves(curves: pd.DataFrame, xs_by_trial: dict[str, float], epochs: int) -> None:
    per_step = curves.groupby(["trial_id", "step"]).size()
    assert (per_step == 1).all(), per_step[per_step > 1]  # every step stored once
    for tid in xs_by_trial:
        assert sorted(curves.loc[curves["trial_id"] == tid, "step"]) == list(range(epochs))


# --------------------------------------------------- a node dies; S3 checkpoints

CLUSTER_SCRIPT = r"""
import json, os, sys, threading, time
import ray
from ray.cluster_utils import Cluster
import sweep

spec_path, results, log_dir, kills = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 0,
    "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                       "health_check_failure_threshold": 4},
})
nodes = {}
for _ in range(kills + 1):  # the trials run on 2 nodes at a time, kills leave 1
    node = cluster.add_node(num_cpus=1)
    nodes[node.node_id] = node
cluster.wait_for_nodes()
ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
state = {"killed": []}

def epochs():
    rows = []
    try:
        with open(os.path.join(log_dir, "epochs.jsonl")) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return rows

def killer():
    # Each kill: the node of the trial that has run 6 epochs since the last kill (or the
    # start) goes without warning (a spare node is there from the start: Cluster.add_node
    # cannot run on this thread).
    mark = 0
    deadline = time.time() + 400
    while time.time() < deadline and len(state["killed"]) < kills:
        rows = epochs()
        fresh = rows[mark:]
        counts = {}
        for r in fresh:
            counts[r["node"]] = counts.get(r["node"], 0) + 1
        victims = [n for n, c in counts.items() if c >= 6 and n in nodes]
        if victims:
            victim = victims[0]
            last = [r for r in fresh if r["node"] == victim][-1]
            cluster.remove_node(nodes.pop(victim), allow_graceful=False)
            state["killed"].append({"node": victim, "x": last["x"], "epoch": last["epoch"]})
            mark = len(rows)
        time.sleep(0.05)

def guarded():
    try:
        killer()
    except BaseException as exc:
        state["killer_error"] = repr(exc)

thread = threading.Thread(target=guarded, daemon=True)
thread.start()
outcome = sweep.execute(spec_path, results=results)
thread.join(30)
print("RESULT " + json.dumps(state), flush=True)
ray.shutdown()
cluster.shutdown()
"""


@pytest.fixture
def s3_server():
    """An S3 test server (tests/s3_server.py) with a bucket; yields its URI query."""
    env = dict(os.environ, **CREDENTIALS)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.s3_server", str(port)], cwd=REPO,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_port(port)
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", **{
            "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region_name": "us-east-1"}).create_bucket(Bucket="ckpt")
        yield f"endpoint_override=127.0.0.1:{port}&scheme=http"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill_marked("", roots=[proc.pid])


@pytest.mark.slow
def test_node_killed_under_checkpointing_trials_resumes_from_s3_on_another_node(
        tmp_path, ray_tmp, s3_server):
    logs = tmp_path / "logs"
    logs.mkdir()
    epochs, kills = 30, 2
    root = f"s3://ckpt/results?{s3_server}"
    # A median rule that never stops (min_samples 99): reports come live through the
    # report hub, so the driver's curve gate is on the path too.
    spec_path = write_spec(tmp_path / "nodes.yaml", epochs_doc(
        "ckpt-nodes", logs, [0.1, 0.5], epochs, 0.3,
        early_terminate={"type": "median", "min_samples": 99}))
    env = dict(sub_env(ray_tmp), **CREDENTIALS)
    state = run_cluster_scenario(CLUSTER_SCRIPT, [spec_path, root, str(logs), str(kills)],
                                 env, timeout=540)
    killed = state["killed"]
    assert len(killed) == kills, json.dumps([state, read_jsonl(logs / "epochs.jsonl")])

    os.environ.update(CREDENTIALS)
    reader = ResultsReader(ResultsFolder(root, "ckpt-nodes"))
    df = reader.read()
    assert len(df) == 2 and set(df["status"]) == {"ok"}, df["error"].tolist()
    runs = Counter(r["x"] for r in read_jsonl(logs / "epochs.jsonl"))
    kills_of = Counter(k["x"] for k in killed)
    for _, row in df.iterrows():
        x = row["params.x"]
        # Each kill cost at most one interval (1 epoch) of work; the trial went on.
        assert epochs <= runs[x] <= epochs + kills_of[x], (x, runs, killed)
        assert row["attempts"] == 1 + kills_of[x]
        if kills_of[x]:
            # Restored from a checkpoint (on S3, read by another node), not from step 0:
            # the epochs-run bound above says it was the last one (a kill cost at most
            # one epoch). The killer's epoch is only when it decided: the node goes a
            # moment later, so the exact step is not asserted.
            assert row["restored_from"] >= 0, row.to_dict()
            victims = {k["node"][:8] for k in killed if k["x"] == x}
            assert row["node"].rsplit("/", 1)[-1] not in victims
    restores = [r for r in read_jsonl(logs / "epochs.jsonl") if r["restored"] is not None]
    assert {r["node"] for r in restores}.isdisjoint({k["node"] for k in killed})
    check_curves(reader.read_curves(), dict(zip(df["trial_id"], df["params.x"])), epochs)
    # Retention: each trial (both in the top 5) keeps its final checkpoint only.
    store = CheckpointStore(root, "ckpt-nodes")
    assert {t: [c.step for c in store.list(t)] for t in df["trial_id"]} == {
        t: [epochs - 1] for t in df["trial_id"]}
    print(f"node deaths: {kills} nodes killed under checkpointing trials; epochs run "
          f"{dict(runs)} of {epochs} each; restored from S3 on other nodes; every step "
          f"stored once")


# ------------------------------------------------------- the driver is SIGKILLed


@pytest.mark.slow
def test_driver_sigkill_rerun_resumes_running_trials_from_checkpoints(
        ray_session, results, tmp_path, ray_tmp):
    logs = tmp_path / "logs"
    logs.mkdir()
    epochs = 24
    spec_path = write_spec(tmp_path / "killed.yaml",
                           epochs_doc("ckpt-killed", logs, [0.1, 0.5], epochs, 0.25))
    cli_logs = tmp_path / "cli"
    tree: dict[int, int] = {}
    for attempt in (1, 2):
        proc = start_cli(["run", spec_path, "--results", results, "--quiet"], cli_logs,
                         sub_env(ray_tmp))

        def both_running(proc=proc, seen=[0.0]):  # noqa: B006
            if time.monotonic() - seen[0] > 1.0:
                tree.update(process_tree(proc.pid))
                seen[0] = time.monotonic()
            runs = Counter(r["x"] for r in read_jsonl(logs / "epochs.jsonl"))
            return (len(runs) == 2 and min(runs.values()) >= 5) or proc.poll() is not None

        try:
            wait_for(both_running, "two trials 5 epochs in", timeout=WAIT_S, logs=cli_logs)
            if proc.poll() is None:
                tree.update(process_tree(proc.pid))
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
                proc.wait(30)
                break
        finally:
            stop(proc)
            kill_tree(tree, grace=30)
        if attempt == 2 or "timed out during startup" not in output_of(cli_logs):
            pytest.fail(f"the driver exited ({proc.returncode}) early\n" + output_of(cli_logs))
    assert not living(tree)
    at_kill = Counter(r["x"] for r in read_jsonl(logs / "epochs.jsonl"))
    assert not Path(results, "ckpt-killed", "trials").exists()  # nothing finished

    df = sweep.run(spec_path, results=results)  # the rerun, on the session Ray
    assert len(df) == 2 and set(df["status"]) == {"ok"}, df["error"].tolist()
    assert (df["attempts"] == 1).all()
    runs = Counter(r["x"] for r in read_jsonl(logs / "epochs.jsonl"))
    for _, row in df.iterrows():
        x = row["params.x"]
        # Restarted from the checkpoint of its last epoch before the kill (or the one
        # before: the epoch in flight), not from epoch 0.
        assert at_kill[x] - 2 <= row["restored_from"] <= at_kill[x] - 1, (row, at_kill)
        assert runs[x] <= epochs + 1
    reader = open_reader(sweep.load_spec(spec_path), results)
    check_curves(reader.read_curves(), dict(zip(df["trial_id"], df["params.x"])), epochs)
    print(f"driver SIGKILL: epochs at the kill {dict(at_kill)}, rerun restored "
          f"{dict(zip(df['params.x'], df['restored_from']))}, epochs run {dict(runs)} of "
          f"{epochs} each, every step stored once")
