"""``sweep submit``: a sweep as a Ray Job on a real ``ray start`` cluster (a head and a
worker on 127.0.0.1, token authentication), followed to the end, results read back.

Other Ray instances on this machine hold Ray's default ports, so every port of the
head and of the worker is chosen here; both nodes keep their files under a temp
folder of this test, and only the processes that carry it (and their children) are
stopped at the end: never ``ray stop``, which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pandas as pd
import pytest
import yaml

from tests.procs import (
    free_port,
    free_ports,
    kill_marked,
    ray_env,
    run,
    short_tmpdir,
    sweep_cli,
    wait_port,
)

RAY = [sys.executable, "-m", "ray.scripts.scripts"]
OBJECT_STORE = str(100 * 1024 * 1024)


def _port_range(n: int) -> tuple[int, int]:
    """A run of n consecutive ports, free right now (for Ray's worker processes)."""
    for _ in range(200):
        base = free_port()
        if base + n > 65000:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base, base + n - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def _node_ports() -> list[str]:
    agent, grpc, metrics, runtime_env, node_manager, object_manager = free_ports(6)
    low, high = _port_range(40)
    return [
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={grpc}",
        f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
        f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
        f"--min-worker-port={low}", f"--max-worker-port={high}",
    ]


STARTED = "Ray runtime started"


def _start_node(args: list[str], env: dict[str, str], log: str, procs: list,
                timeout: float = 150.0) -> bool:
    """``ray start --block ARGS``; True once it says it started, False when it exits."""
    with open(log, "w") as out:
        proc = subprocess.Popen([*RAY, "start", "--block", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log, errors="replace") as f:
            if STARTED in f.read():
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def ray_head():
    """``ray start --head`` (0 CPUs, dashboard on 127.0.0.1) and one ``ray start --address``
    worker with 1 CPU, token authentication with a token of this test. On a loaded machine
    a node can miss Ray's own startup deadlines: each node gets three tries."""
    tmp = short_tmpdir("sws")
    env = ray_env("token", RAY_TMPDIR=tmp,
                  # Ray's startup waits, generous: other test sessions load this machine.
                  RAY_raylet_start_wait_time_s="120", RAY_agent_register_timeout_ms="120000")
    procs: list[subprocess.Popen] = []
    logs: list[str] = []
    try:
        for attempt in range(3):
            gcs, dashboard, client = free_ports(3)
            log = f"{tmp}/head-{attempt}.log"
            logs.append(log)
            if _start_node(
                ["--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=0",
                 "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                 f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
                 f"--temp-dir={tmp}/head-{attempt}", f"--object-store-memory={OBJECT_STORE}",
                 "--disable-usage-stats", *_node_ports()], env, log, procs):
                break
            kill_marked(f"{tmp}/head-{attempt}", roots=[procs[-1].pid])
        else:
            pytest.fail(f"ray start --head failed three times\n{_logs(logs)}")
        for attempt in range(3):
            log = f"{tmp}/worker-{attempt}.log"
            logs.append(log)
            if _start_node(
                [f"--address=127.0.0.1:{gcs}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                 f"--temp-dir={tmp}/worker-{attempt}", f"--object-store-memory={OBJECT_STORE}",
                 "--disable-usage-stats", *_node_ports()], env, log, procs):
                break
            kill_marked(f"{tmp}/worker-{attempt}", roots=[procs[-1].pid])
        else:
            pytest.fail(f"ray start --address failed three times\n{_logs(logs)}")
        wait_port(dashboard, timeout=120)
        yield {"address": f"http://127.0.0.1:{dashboard}", "env": env, "tmp": tmp}
    finally:
        kill_marked(tmp, roots=[p.pid for p in procs], grace_s=8)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def _logs(paths: list[str]) -> str:
    text = []
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                text.append(f"--- {path}\n{f.read()[-3000:]}")
        except OSError:
            pass
    return "\n".join(text)


def _workdir(tmp_path, name):
    """A small folder to upload: the spec and a tiny objective module."""
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "tinyobj.py").write_text(textwrap.dedent("""
        import os

        def score(config):
            return {"loss": (config["x"] - 2) ** 2, "pid": float(os.getpid())}
    """))
    doc = {
        "name": name, "objective": "tinyobj:score",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": [0, 1, 2, 3]}},
        "stages": [{"plan": "grid"}],
        "resources": {"num_cpus": 1},
    }
    (wd / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return wd


def test_submit_follow_runs_the_sweep_as_a_ray_job(ray_head, tmp_path):
    wd = _workdir(tmp_path, "submitted")
    results = tmp_path / "results"
    job = f"sweep-test-{uuid.uuid4().hex[:8]}"
    proc = sweep_cli("submit", str(wd / "spec.yaml"), "--address", ray_head["address"],
                     "--results", str(results), "--follow", "--working-dir", str(wd),
                     "--submission-id", job, env=ray_head["env"], cwd=tmp_path, timeout=300)
    out = proc.stdout
    assert f"submitted {job} to {ray_head['address']}" in out, out
    assert f"job {job}: SUCCEEDED" in out, out
    assert "top 5 of 4 trials" in out, out  # the job's own output, streamed

    df = pd.read_parquet(results / "submitted" / "trials")
    assert len(df) == 4 and df["trial_id"].is_unique
    assert set(df["status"]) == {"ok"}, df["error"].dropna().tolist()
    assert sorted(df["params.x"]) == [0, 1, 2, 3]
    best = df.sort_values("metrics.loss").iloc[0]
    assert best["params.x"] == 2 and best["metrics.loss"] == 0
    # Trials ran on the one worker (the head has no CPUs).
    assert df["node"].nunique() == 1 and df["node"].iloc[0]

    # Resubmitting the same sweep resumes it: the job succeeds and reruns nothing.
    again = sweep_cli("submit", str(wd / "spec.yaml"), "--address", ray_head["address"],
                      "--results", str(results), "--follow", "--working-dir", str(wd),
                      env=ray_head["env"], cwd=tmp_path, timeout=300)
    assert "SUCCEEDED" in again.stdout, again.stdout
    df2 = pd.read_parquet(results / "submitted" / "trials")
    assert sorted(df2["started_at"]) == sorted(df["started_at"])


def test_submit_without_follow_prints_commands_that_work(ray_head, tmp_path):
    """Without --follow: the id and the commands to follow and stop the job; the printed
    stop command (run as printed, with the token from the environment) stops it."""
    wd = _workdir(tmp_path, "detached")
    job = f"sweep-test-{uuid.uuid4().hex[:8]}"
    proc = sweep_cli("submit", str(wd / "spec.yaml"), "--address", ray_head["address"],
                     "--results", str(tmp_path / "results"), "--working-dir", str(wd),
                     "--submission-id", job, env=ray_head["env"], cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert f"submitted {job} to {ray_head['address']}" in lines
    follow = [ln.split(":", 1)[1].split() for ln in lines if ln.startswith("follow it:")]
    stop = [ln.split(":", 1)[1].split() for ln in lines if ln.startswith("stop it:")]
    assert follow == [["ray", "job", "logs", "--address", ray_head["address"], "-f", job]]
    assert stop == [["ray", "job", "stop", "--address", ray_head["address"], job]]

    stopped = run([*RAY, *stop[0][1:]], env=ray_head["env"], timeout=180)
    status = run([*RAY, "job", "status", "--address", ray_head["address"], job],
                 env=ray_head["env"], timeout=120)
    said = (status.stdout + status.stderr).lower()
    # Stopped, or (on a fast machine) already finished before the stop arrived.
    assert f"job '{job}' was stopped" in said or f"job '{job}' succeeded" in said, (
        stopped.stderr, said)


# ------------------------------------------------------------------ no cluster


def test_submit_refuses_a_spec_outside_the_working_dir(tmp_path):
    wd = _workdir(tmp_path, "outside")
    other = tmp_path / "other"
    other.mkdir()
    proc = sweep_cli("submit", str(wd / "spec.yaml"), "--address", "http://127.0.0.1:9",
                     "--working-dir", str(other), env=ray_env("disabled"), check=False)
    assert proc.returncode == 2
    assert "is not inside the working directory" in proc.stderr


def test_submit_to_an_address_where_nothing_listens_fails_clearly(tmp_path):
    wd = _workdir(tmp_path, "nowhere")
    port = free_port()
    proc = sweep_cli("submit", str(wd / "spec.yaml"), "--address", f"http://127.0.0.1:{port}",
                     "--working-dir", str(wd), env=ray_env("disabled"), check=False,
                     timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "sweep: error:" in proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
