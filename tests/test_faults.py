"""Reliability: faults survived, bad input refused, nothing lost.

Workers, nodes and drivers die here on purpose. Scenarios that need a Ray of their own (a
killed driver and the Ray it started, a multi-node ``ray.cluster_utils.Cluster``) run in a
subprocess with a private RAY_TMPDIR, so they never touch the session Ray of the other
tests, nor any other Ray on the machine (a Cluster writes ``<tmp>/ray/ray_current_cluster``,
which plain ``ray.init()`` calls elsewhere would otherwise connect to). CLI drivers that only
need *a* Ray connect to the session Ray with ``--address`` (no second Ray start on a
two-core machine). Every subprocess gets the session's Ray token (tests/conftest.py).

Progress is observed through files (the store's journal, the lock file, logs written by
``tests.objectives:marked_sleep``), never through sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import sweep
from tests.procs import read_jsonl

REPO = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()
WAIT_S = 240.0  # generous: Ray starts slowly on a loaded two-core machine


# ----------------------------------------------------------------- helpers


def write_spec(path: Path, doc: dict) -> str:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def marked(name: str, marker_dir: Path, sleep: float, stages: list, **extra) -> dict:
    """A sweep of tests.objectives:marked_sleep (x in [0, 1], loss (x - 0.3)^2)."""
    doc = {
        "name": name, "objective": "tests.objectives:marked_sleep",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": sleep},
                       "marker_dir": {"value": str(marker_dir)}},
        "stages": stages,
    }
    doc.update(extra)
    return doc


def sub_env(ray_tmp: str | None = None) -> dict[str, str]:
    """The environment of a subprocess: the session's Ray token and mode (conftest), which
    its own Ray (``ray_tmp``) uses too and a CLI driver joining the session Ray needs; no
    inherited RAY_ADDRESS."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    assert env.get("RAY_AUTH_MODE") == "token" and env.get("RAY_AUTH_TOKEN"), \
        "tests/conftest.py gives the session a Ray token of its own"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    if ray_tmp is not None:
        env["RAY_TMPDIR"] = ray_tmp
    return env


def start_cli(args: list[str], logs: Path, env: dict[str, str]) -> subprocess.Popen:
    """``python -m sweep ARGS`` in its own process group; output to logs/driver.{out,err}."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "driver.out", "w") as out, open(logs / "driver.err", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "sweep", *args], cwd=REPO, env=env,
                                stdout=out, stderr=err, start_new_session=True)


def output_of(logs: Path) -> str:
    parts = []
    for name in ("driver.out", "driver.err"):
        with contextlib.suppress(OSError):
            parts.append(f"--- {name}\n" + (logs / name).read_text()[-6000:])
    return "\n".join(parts)


def wait_for(predicate, what: str, proc: subprocess.Popen | None = None,
             logs: Path | None = None, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the driver exited ({proc.returncode}) before {what}\n"
                        + (output_of(logs) if logs else ""))
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n" + (output_of(logs) if logs else ""))
        time.sleep(0.05)


def journal_rows(results: str, name: str) -> list[dict]:
    folder = Path(results) / name / ".journal"
    if not folder.is_dir():
        return []
    rows: list[dict] = []
    for path in sorted(folder.glob("journal-*.jsonl")):
        rows.extend(read_jsonl(path))
    return rows


def part_files(results: str, name: str) -> list[Path]:
    return sorted((Path(results) / name / "trials").rglob("part-*.parquet"))


def parquet_rows(results: str, name: str) -> pd.DataFrame:
    """Every row of every part file, each file read on its own (each must be readable)."""
    frames = []
    for path in part_files(results, name):
        table = pq.read_table(path)
        frame = table.to_pandas()
        frame["stage"] = int(path.parent.name.split("=", 1)[1])
        frame["started_us"] = table.column("started_at").cast(pa.int64()).to_pylist()
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["trial_id", "started_us", "params.x"])
    return pd.concat(frames, ignore_index=True)


def stored(results: str, name: str) -> dict[str, tuple[int, float]]:
    """trial_id -> (started_at in microseconds, x) of every result stored so far (journal
    and Parquet), as a driver killed now would leave them."""
    out = {}
    df = parquet_rows(results, name)
    for tid, us, x in zip(df["trial_id"], df["started_us"], df["params.x"]):
        out[tid] = (int(us), float(x))
    for row in journal_rows(results, name):
        out[row["trial_id"]] = (int(row["started_at"] * 1_000_000), float(row["params"]["x"]))
    return out


def final_table(results: str, name: str) -> pd.DataFrame:
    """The whole table as a user reads it, after checking every part file on its own."""
    raw = parquet_rows(results, name)
    whole = pd.read_parquet(Path(results) / name / "trials")
    assert len(whole) == len(raw)
    return raw


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _stat(pid: int) -> tuple[str, int, int]:
    """(state, parent pid, start time) of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def process_tree(root: int) -> dict[int, int]:
    """pid -> start time of ``root`` and all its descendants (a Ray a driver started)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                _, ppid, started = _stat(int(entry))
                table[int(entry)] = (ppid, started)
    tree: dict[int, int] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid in table and pid not in tree:
            tree[pid] = table[pid][1]
            frontier.extend(child for child, (ppid, _) in table.items() if ppid == pid)
    return tree


def living(tree: dict[int, int]) -> list[int]:
    """The processes of ``tree`` still running (the same processes: start times match)."""
    out = []
    for pid, started in tree.items():
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _, now_started = _stat(pid)
            if now_started == started and state != "Z":
                out.append(pid)
    return out


def kill_tree(tree: dict[int, int], grace: float = 0.0) -> int:
    """Give the processes of ``tree`` ``grace`` seconds to end, then SIGKILL the rest by pid
    and wait until they are gone; returns how many had to be killed."""
    deadline = time.monotonic() + grace
    while living(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = living(tree)
    for pid in survivors:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not living(tree), "leftover processes to die", timeout=60)
    return len(survivors)


def run_cluster_scenario(script: str, args: list[str], env: dict[str, str],
                         timeout: float) -> dict:
    """Run ``script`` (``python -c``) with ``args`` in a session of its own and return the
    state its last ``RESULT {json}`` line gives; past ``timeout`` its whole process tree
    is killed and the test fails with its output."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        tree = process_tree(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        kill_tree(tree)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the cluster scenario did not finish\n{stdout[-3000:]}\n{stderr[-6000:]}")
    out = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and out, (stdout[-4000:], stderr[-6000:])
    return json.loads(out[-1][len("RESULT "):])


@pytest.fixture
def ray_tmp():
    """A private, short RAY_TMPDIR (unix socket paths must stay short) for a subprocess that
    starts a Ray of its own; it never sees, nor is seen by, any other Ray here."""
    path = tempfile.mkdtemp(prefix="sft-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def session_address(ray_session):
    """The GCS address of the session Ray, for CLI drivers that connect to it."""
    return ray_session.get_runtime_context().gcs_address


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


# ------------------------------------------------------ 1. a worker dies


@pytest.mark.parametrize("objective", ["die_once", "sigkill_once"])
def test_worker_death_is_retried_and_counted(ray_session, results, tmp_path, objective):
    markers = tmp_path / "markers"
    markers.mkdir()
    df = sweep.run({
        "name": f"die-{objective}", "objective": f"tests.objectives:{objective}",
        "metric": {"name": "loss"},
        "parameters": {"x": {"values": [1, 2]}, "marker_dir": {"value": str(markers)}},
        "stages": [{"plan": "grid"}],
    }, results=results)
    assert len(df) == 2
    assert set(df["status"]) == {"ok"}, df["error"].tolist()
    assert (df["attempts"] == 2).all()
    assert sorted(df["metrics.loss"]) == [1.0, 2.0]
    raw = final_table(results, f"die-{objective}")
    assert len(raw) == 2 and raw["trial_id"].is_unique
    print(f"worker death ({objective}): 2 trials ok, attempts 2 each, rows 2 of 2, lost 0")


def test_worker_death_past_the_retries_fails_the_trial_only(ray_session, results, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    df = sweep.run({
        "name": "die-no-retry", "objective": "tests.objectives:die_once",
        "metric": {"name": "loss"}, "retries": 0,
        "parameters": {"x": {"values": [1, 2]}, "marker_dir": {"value": str(markers)}},
        "stages": [{"plan": "grid"}],
    }, results=results)
    assert set(df["status"]) == {"failed"}
    assert (df["attempts"] == 1).all()
    assert df["error"].str.contains("worker died on all 1 attempts").all()


# ----------------------------------------------------- 2. a node dies

CLUSTER_SCRIPT = r"""
import json, os, sys, threading, time
import ray
from ray.cluster_utils import Cluster
import sweep

spec_path, results, marker_dir = sys.argv[1:4]
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 0,
    "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                       "health_check_failure_threshold": 4},
})
nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
victim = nodes[1]
state = {"victim": victim.node_id, "removed": False, "victim_trials": []}

def lines(name):
    rows = []
    try:
        with open(os.path.join(marker_dir, name)) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return rows

def killer():
    deadline = time.time() + 300
    while time.time() < deadline:
        done = lines("done.jsonl")
        finished = {r["x"] for r in done}
        running = [r["x"] for r in lines("starts.jsonl")
                   if r["node"] == victim.node_id and r["x"] not in finished]
        if len(done) >= 2 and running:
            state["victim_trials"] = running
            cluster.remove_node(victim, allow_graceful=False)
            state["removed"] = True
            return
        time.sleep(0.02)

thread = threading.Thread(target=killer, daemon=True)
thread.start()
outcome = sweep.execute(spec_path, results=results)
thread.join(60)
state["stages"] = [{"stage": s.stage, "planned": s.planned, "ran": s.ran} for s in outcome.stages]
print("RESULT " + json.dumps(state), flush=True)
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.slow
def test_node_death_mid_stage_loses_nothing_and_refines_once(results, tmp_path, ray_tmp):
    markers = tmp_path / "markers"
    markers.mkdir()
    spec_path = write_spec(tmp_path / "node.yaml", marked(
        "nodes", markers, 0.6,
        [{"plan": "random", "trials": 8, "seed": 1},
         {"plan": "refine", "trials": 4, "top_k": 2, "region": "each"}]))
    state = run_cluster_scenario(CLUSTER_SCRIPT, [spec_path, results, str(markers)],
                                 sub_env(ray_tmp), timeout=420)
    assert state["removed"] and state["victim_trials"], state

    raw = final_table(results, "nodes")
    # Every trial ends exactly once in the store, and ends ok.
    assert raw["trial_id"].is_unique
    assert sorted(Counter(raw["stage"].astype(int)).items()) == [(0, 8), (1, 4)]
    assert set(raw["status"]) == {"ok"}, raw["error"].tolist()
    # The trial killed with its node was retried elsewhere, and says so.
    by_x = raw.set_index("params.x")
    for x in state["victim_trials"]:
        assert by_x.loc[x, "attempts"] == 2
        assert state["victim"][:8] not in by_x.loc[x, "node"]
    assert (raw["attempts"] <= 2).all()
    # The fine stage was planned once, from stage 0's stored top 2, with its 4 trials.
    meta = json.loads((Path(results) / "nodes" / "stages" / "stage-1.json").read_text())
    top2 = raw[raw["stage"] == 0].sort_values(["metrics.loss", "trial_id"]).head(2)
    assert [s["trial_id"] for s in meta["anchors"]] == list(top2["trial_id"])
    assert sum(b["trials"] for b in meta["boxes"]) == 4
    assert state["stages"][1] == {"stage": 1, "planned": 4, "ran": 4}
    # ... and enqueued once: each fine trial started once; only the victim's trials twice.
    starts = Counter(r["x"] for r in read_jsonl(markers / "starts.jsonl"))
    twice = {x for x, n in starts.items() if n > 1}
    assert twice == set(state["victim_trials"])
    assert all(starts[x] == 1 for x in raw.loc[raw["stage"] == 1, "params.x"])
    print(f"node death: {len(state['victim_trials'])} trial(s) on the removed node retried "
          f"(attempts 2), rows {len(raw)} of 12, stage 1 planned once with 4 trials, lost 0")


# ---------------------------------------------- 3. the driver is SIGKILLed


@pytest.mark.slow
def test_driver_sigkill_mid_stage_resumes_without_rerunning_stored(
        ray_session, results, tmp_path, ray_tmp):
    markers = tmp_path / "markers"
    markers.mkdir()
    name = "killed"
    spec_path = write_spec(tmp_path / "killed.yaml", marked(
        name, markers, 0.5,
        [{"plan": "random", "trials": 6, "seed": 2},
         {"plan": "refine", "trials": 12, "top_k": 2}]))
    logs = tmp_path / "logs"

    def mid_fine_stage():
        # Stage 0 is in Parquet, some stage-1 results only in the journal.
        return ((Path(results) / name / "stages" / "stage-1.json").exists()
                and len(journal_rows(results, name)) >= 2)

    tree: dict[int, int] = {}
    survivors = 0
    for attempt in (1, 2):
        # The driver starts a Ray of its own (in a private RAY_TMPDIR).
        proc = start_cli(["run", spec_path, "--results", results, "--quiet"], logs,
                         sub_env(ray_tmp))

        def progress(proc=proc, seen=[0.0]):  # noqa: B006
            if time.monotonic() - seen[0] > 1.0:  # what the driver started, to clean up
                tree.update(process_tree(proc.pid))
                seen[0] = time.monotonic()
            return mid_fine_stage() or proc.poll() is not None

        try:
            wait_for(progress, "stage 1 results in the journal", timeout=WAIT_S, logs=logs)
            if proc.poll() is None:
                tree.update(process_tree(proc.pid))
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
                proc.wait(30)
                break
        finally:
            stop(proc)
            survivors = kill_tree(tree, grace=30)
        # Ray itself gives up after 30 s when a loaded machine starts its raylet slowly;
        # that is no fault of the sweep's: try once more.
        if attempt == 2 or "timed out during startup" not in output_of(logs):
            pytest.fail(f"the driver exited ({proc.returncode}) before stage 1\n"
                        + output_of(logs))
    # Everything the driver started is dead (what escaped the process group: by pid).
    assert not living(tree)

    before = stored(results, name)
    stage0 = parquet_rows(results, name)
    assert len(stage0) == 6  # stage 0 was flushed before stage 1 began
    journaled = journal_rows(results, name)
    assert journaled and {r["stage"] for r in journaled} == {1}
    started = Counter(r["x"] for r in read_jsonl(markers / "starts.jsonl"))
    stored_x = {x for _, x in before.values()}
    in_flight = set(started) - stored_x
    assert all(n == 1 for n in started.values())

    # Resume (on the session Ray): the same plans, the same ids; only the rest runs.
    df = sweep.run(spec_path, results=results)
    assert len(df) == 6 + 12 and set(df["status"]) == {"ok"}, df["error"].tolist()
    raw = final_table(results, name)
    assert raw["trial_id"].is_unique and len(raw) == 18
    assert not journal_rows(results, name)
    after = dict(zip(raw["trial_id"], raw["started_us"]))
    for tid, (started_us, _x) in before.items():
        assert after[tid] == started_us, f"stored trial {tid} was run again"
    # The fine stage is the same stage again: the journaled fine trials are part of it.
    assert {r["trial_id"] for r in journaled} <= set(raw.loc[raw["stage"] == 1, "trial_id"])
    restarted = {x for x, n in Counter(r["x"] for r in read_jsonl(
        markers / "starts.jsonl")).items() if n > 1}
    assert restarted <= in_flight, "a trial that was not in flight ran twice"
    assert not restarted & stored_x
    print(f"driver SIGKILL: {len(tree)} processes (driver + its Ray), {survivors} outlived "
          f"the group kill by 30 s; stored before the kill {len(before)} (Parquet {len(stage0)}, "
          f"journal {len(journaled)}), in flight {len(in_flight)}, rerun {len(restarted)}, "
          f"rows after resume {len(raw)}, lost 0")


# ------------------------------------------------ 4. SIGINT and SIGTERM


@pytest.mark.parametrize(("signum", "status", "word"),
                         [(signal.SIGINT, 130, "interrupted"),
                          (signal.SIGTERM, 143, "terminated")], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_flushes_and_resumes(session_address, results, tmp_path,
                                            signum, status, word):
    markers = tmp_path / "markers"
    markers.mkdir()
    name = f"sig{int(signum)}"
    spec_path = write_spec(tmp_path / "sig.yaml", marked(
        name, markers, 0.6, [{"plan": "random", "trials": 8, "seed": 3}]))
    logs = tmp_path / "logs"
    proc = start_cli(["run", spec_path, "--results", results, "--quiet",
                      "--address", session_address], logs, sub_env())
    try:
        def mid_run():
            done = {r["x"] for r in read_jsonl(markers / "done.jsonl")}
            running = [r for r in read_jsonl(markers / "starts.jsonl") if r["x"] not in done]
            return len(journal_rows(results, name)) >= 2 and running

        wait_for(mid_run, "two stored trials and one running", proc, logs)
        journaled = {r["trial_id"] for r in journal_rows(results, name)}
        proc.send_signal(signum)
        rc = proc.wait(120)
        t_exit = time.time()
    finally:
        stop(proc)
    err = (logs / "driver.err").read_text()
    if rc != status and "Tried to complete task that was not pending" in err:
        pytest.fail("Ray's core worker aborted the driver while it cancelled its in-flight "
                    "tasks (a race between ray.cancel and a task's reply in Ray itself): the "
                    "driver must not depend on ray.cancel surviving to flush and exit "
                    f"{status}\n" + output_of(logs))
    assert rc == status, output_of(logs)
    assert word in err and "Rerun" in err
    assert "Traceback" not in err, err
    # Flushed: every journaled result is in Parquet, the journal is empty, the lock is gone.
    assert not journal_rows(results, name)
    raw = final_table(results, name)
    assert raw["trial_id"].is_unique
    assert journaled <= set(raw["trial_id"])
    assert not (Path(results) / name / "lock.json").exists()
    # In-flight trials were stopped, not left running: their workers die, none finishes later.
    started = read_jsonl(markers / "starts.jsonl")
    wait_for(lambda: not any(pid_alive(r["pid"]) for r in started
                             if r["x"] not in set(raw["params.x"])),
             "the in-flight trials' workers to exit", timeout=60)
    late = [r for r in read_jsonl(markers / "done.jsonl") if r["t"] > t_exit]
    assert not late, f"trials went on after the driver exited: {late}"

    before = dict(zip(raw["trial_id"], raw["started_us"]))
    df = sweep.run(spec_path, results=results)
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    again = final_table(results, name)
    assert again["trial_id"].is_unique and len(again) == 8
    after = dict(zip(again["trial_id"], again["started_us"]))
    assert all(after[t] == s for t, s in before.items())
    print(f"{signal.Signals(signum).name}: exit {rc}, journaled at the signal {len(journaled)}, "
          f"in Parquet after exit {len(raw)}, run by the resume {8 - len(raw)}, rows after resume "
          f"{len(again)}, lost 0")


# ------------------------------------------------------------ 5. timeouts


def test_timeouts_are_prompt_and_free_their_slots(ray_session, results):
    timeout_s = 4.0
    long = [60.0, 61.0, 62.0]
    short = [round(0.01 * i, 2) for i in range(1, 13)]
    df = sweep.run({
        "name": "timeouts", "objective": "tests.objectives:sleepy",
        "metric": {"name": "loss"}, "timeout_s": timeout_s,
        "parameters": {"sleep": {"values": long + short}},
        "stages": [{"plan": "grid"}],
    }, results=results)
    assert len(df) == len(long) + len(short)
    by_sleep = df.set_index("params.sleep")
    slack = 3.0
    for s in long:
        row = by_sleep.loc[s]
        assert row["status"] == "timeout"
        assert f"timeout_s={timeout_s:g}" in row["error"]
        assert row["duration_s"] < timeout_s + slack
        assert (row["finished_at"] - row["started_at"]).total_seconds() < timeout_s + slack
    # 2 CPUs, 3 sleepers of a minute: the short trials only finish if the slots come back.
    print(f"timeouts: {dict(Counter(by_sleep.loc[long, 'status']))} of the long ones, "
          f"{dict(Counter(by_sleep.loc[short, 'status']))} of the short ones")
    assert (by_sleep.loc[short, "status"] == "ok").all(), by_sleep.loc[short, "error"].tolist()


# ------------------------------------------- 6. results cannot be written


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
            for p in root.rglob("*")}


UNWRITABLE = {
    "under-a-file": ("blocker/results", "is not a folder"),
    "is-a-file": ("blocker", "not writable"),
    "missing-parent": ("no/such/results", "does not exist"),
}


@pytest.mark.parametrize("case", list(UNWRITABLE))
def test_unwritable_results_refused_before_any_trial(tmp_path, capsys, case):
    from sweep.cli import main

    rel, message = UNWRITABLE[case]
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "blocker").write_text("a regular file")
    spec_path = write_spec(tmp_path / "s.yaml", marked(
        "unwritable", markers, 0.0, [{"plan": "random", "trials": 2}]))
    before = snapshot(tmp_path)
    rc = main(["run", spec_path, "--results", str(tmp_path / rel), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: error:"), err
    assert message in err and "Traceback" not in err
    assert snapshot(tmp_path) == before  # nothing written, no trial started


def test_unwritable_results_cli_process(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "blocker").write_text("a regular file")
    spec_path = write_spec(tmp_path / "s.yaml", marked(
        "unwritable", markers, 0.0, [{"plan": "random", "trials": 2}]))
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "sweep", "run", spec_path, "--results",
                           str(tmp_path / "blocker" / "results")], cwd=REPO, env=sub_env(),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "is not a folder" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


# -------------------------------------------------- 7. two drivers, one sweep


def test_second_driver_is_refused_naming_the_first(session_address, results, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    spec_path = write_spec(tmp_path / "lock.yaml", marked(
        "locked", markers, 5.0, [{"plan": "random", "trials": 8}]))
    logs = tmp_path / "logs"
    first = start_cli(["run", spec_path, "--results", results, "--quiet",
                       "--address", session_address], logs, sub_env())
    lock = Path(results) / "locked" / "lock.json"
    try:
        wait_for(lambda: lock.exists() and lock.read_text().strip(), "the first driver's lock",
                 first, logs)
        second = subprocess.run([sys.executable, "-m", "sweep", "run", spec_path, "--results",
                                 results, "--quiet"], cwd=REPO, env=sub_env(),
                                capture_output=True, text=True, timeout=180)
        assert first.poll() is None, "the first driver must still be running"
        assert second.returncode == 2, (second.stdout, second.stderr)
        assert f"pid {first.pid}" in second.stderr and HOST in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert "Traceback" not in second.stderr
        assert json.loads(lock.read_text())["pid"] == first.pid  # the lock is untouched
        first.send_signal(signal.SIGINT)
        assert first.wait(120) == 130, output_of(logs)
    finally:
        stop(first)
    assert not lock.exists()


# ----------------------------------------------------------- bad sweep files

BAD_FILES = {
    "typo-key": ("paramters: {x: {min: 0.0, max: 1.0}}\n", "paramters"),
    "log-bound": ("parameters: {lr: {distribution: log_uniform_values, min: -1.0, "
                  "max: 1.0}}\n", "parameters.lr.min"),
    "stage-field": ("parameters: {x: {min: 0.0, max: 1.0}}\nstages: [{plan: random, "
                    "trials: 4}, {plan: refine, trials: 4, top_k: 0}]\n", "stages[1].top_k"),
    "goal": ("parameters: {x: {min: 0.0, max: 1.0}}\nstages: [{plan: random, trials: 2}]\n",
             "metric.goal"),
    "yaml-syntax": ("parameters: {x: {min: 0.0, max: [1}\n", "line 4"),
}


def bad_file(tmp_path: Path, case: str) -> str:
    body, _ = BAD_FILES[case]
    goal = "minimise" if case == "goal" else "minimize"
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nobjective: tests.objectives:trivial\n"
                    f"metric: {{name: loss, goal: {goal}}}\n" + body)
    return str(path)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_sweep_file_is_one_line_exit_2_nothing_written(tmp_path, capsys, case):
    from sweep.cli import main

    spec_path = bad_file(tmp_path, case)
    results = tmp_path / "results"
    rc = main(["run", spec_path, "--results", str(results)])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: error:"), captured.err
    assert BAD_FILES[case][1] in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not results.exists()


def test_bad_sweep_file_cli_process(tmp_path):
    spec_path = bad_file(tmp_path, "log-bound")
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "sweep", "run", spec_path, "--results",
                           str(results)], cwd=REPO, env=sub_env(), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sweep: error: parameters.lr.min: got -1.0, expected a number > 0 for a log axis"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not results.exists()


# ----------------------------------------------------------------- 11. load


@pytest.mark.slow
def test_twenty_thousand_trials_unique_rows(ray_session, results):
    df = sweep.run({
        "name": "twenty", "objective": "tests.objectives:trivial", "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "stages": [{"plan": "random", "trials": 20_000}],
    }, results=results)
    assert len(df) == 20_000 and df["trial_id"].is_unique
    assert set(df["status"]) == {"ok"}
    raw = final_table(results, "twenty")
    assert len(raw) == 20_000 and raw["trial_id"].is_unique
    assert len(part_files(results, "twenty")) <= 20
