"""Nodes dying at random, at a CI scale (``tests/bench/chaos.py`` runs it at full size).

A ``ray.cluster_utils.Cluster`` (a 0-CPU head, 4 worker nodes of 1 CPU) runs in a
subprocess with a private RAY_TMPDIR and RAY_AUTH_MODE=token; ``sweep.run`` runs 400
trials of 40-80 ms there (long enough that 3 kills, each taking ~2 s to add a fresh node
on 2 cores, fall inside the run) while the main thread of that process kills a worker node
(``remove_node(allow_graceful=False)``, the victim drawn among the nodes running a trial)
and adds a fresh one every 1.5 s, and sooner when the sweep's progress, read from the
objective's own log, passes the marks that guarantee 3 kills. The objective
(``tests.objectives:marked_sleep``) logs each START, so attempts are counted without sweep.

``attempts`` must equal the objective's own count of starts: a trial whose task died before
its objective started (a batch-mate, a task lost with its node) is not charged an attempt
(``test_a_batch_mate_that_never_started_is_not_charged_an_attempt``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

import sweep
from tests.bench.chaos import _with_env, run_one
from tests.procs import read_jsonl
from tests.test_faults import final_table

TRIALS = 400


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_nodes_dying_at_random_lose_nothing_and_count_attempts(tmp_path):
    r = run_one(tmp_path, trials=TRIALS, nodes=4, kill_every=1.5, seed=7, min_kills=3,
                retries=10, timeout=150, sleep=(0.04, 0.08))
    tail = r["stderr_tail"][-4000:]
    assert r["returncode"] == 0 and not r["timed_out"] and "wall_s" in r, tail
    assert "error" not in r and r["killer_error"] is None, (r.get("error"), r["killer_error"])
    # Nothing of that Ray is left, killed nodes' workers included.
    assert not _with_env(r["ray_tmp"])
    kills = r["kills"]
    assert len(kills) >= 3, kills
    # The kills happened during the run: trials still ended after the third one.
    assert kills[2]["done_before"] < TRIALS, kills

    c = r["check"]
    raw = final_table(str(tmp_path / "results"), "chaos")  # each part file readable
    # Every trial ends exactly once, ok; nothing lost.
    assert len(raw) == TRIALS and raw["trial_id"].is_unique
    assert c["rows"] == c["unique"] == TRIALS and not c["duplicated_ids"]
    assert set(raw["status"]) == {"ok"}, raw.loc[raw["status"] != "ok", "error"].tolist()
    assert not c["lost"] and c["started_trials"] == TRIALS
    # Node deaths were retried, and counted: no trial ran more often than it says.
    assert raw["attempts"].max() >= 2, c["attempts"]
    assert not c["attempts_below_starts"], c["attempts_below_starts"][:5]
    starts = Counter(row["x"] for row in read_jsonl(tmp_path / "markers" / "starts.jsonl"))
    crashed = [json.loads(line) for line in
               (tmp_path / "markers" / "crashes.jsonl").read_text().splitlines()]
    lost_before_start = Counter()  # trial id -> attempts lost with a node before it started
    for task in crashed:
        assert task["error"].startswith(("NodeDiedError", "WorkerCrashedError")), task
        for tid, x in zip(task["trials"], task["x"]):
            started_on_dead = any(node in task["error"] for node in
                                  _start_nodes(tmp_path, x))
            if not started_on_dead:
                lost_before_start[tid] += 1
    surplus = {}
    for tid, x, attempts in zip(raw["trial_id"], raw["params.x"], raw["attempts"]):
        extra = int(attempts) - starts[float(x)]
        if extra:
            surplus[tid] = extra
    # attempts is exact: a task lost with its node before the trial started is not
    # charged (the trials record their starts in Ray's key-value store).
    assert not surplus, (surplus, dict(lost_before_start),
                         [t for t in crashed if set(t["trials"]) & set(surplus)])
    print(f"chaos: {len(kills)} kills, {TRIALS} trials ok once each, attempts "
          f"{dict(sorted(c['attempts'].items()))}, {c['starts']} starts, wall "
          f"{r['wall_s']:.1f} s; {sum(lost_before_start.values())} task(s) lost before "
          f"their trial started, not charged")


def _start_nodes(tmp_path: Path, x: float) -> list[str]:
    return [row["node"] for row in read_jsonl(tmp_path / "markers" / "starts.jsonl")
            if row["x"] == x]


# -------------------------------------------------------- the bug, reduced


def die_first_once(config: dict) -> float:
    """Logs each start; x == 0 kills its worker process the first time it runs."""
    with open(os.path.join(config["marker_dir"], "starts.jsonl"), "a") as f:
        f.write(json.dumps({"x": config["x"], "pid": os.getpid()}) + "\n")
    marker = os.path.join(config["marker_dir"], "died")
    if config["x"] == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return float(config["x"])


def test_a_batch_mate_that_never_started_is_not_charged_an_attempt(ray_session, results,
                                                                   tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    df = sweep.run({
        "name": "batch-crash", "objective": "tests.test_chaos:die_first_once",
        "metric": {"name": "loss"}, "batch": 2,
        "parameters": {"x": {"values": [0, 1]}, "marker_dir": {"value": str(markers)}},
        "stages": [{"plan": "grid"}],
    }, results=results)
    starts = Counter(row["x"] for row in read_jsonl(markers / "starts.jsonl"))
    attempts = dict(zip(df["params.x"], df["attempts"]))
    assert set(df["status"]) == {"ok"}
    # x=0 ran twice (its worker died the first time): attempts 2 is right.
    assert starts[0] == 2 and attempts[0] == 2
    # x=1 was queued behind it in the same task and ran once, on the retry: attempts 1.
    assert starts[1] == 1
    assert attempts[1] == 1, f"x=1 ran once but is stored with attempts={attempts[1]}"
