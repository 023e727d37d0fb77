"""Early stopping on a local Ray: reports reach the driver while trials run, rules stop
bad trials and free their slots, stopped trials are stored with their step, resume."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import sweep

pytestmark = pytest.mark.usefixtures("ray_session")
WAIT_S = 120.0


def journal_steps(results: str, folder: str) -> list[dict]:
    """The reports the driver has journaled so far (curves-*.jsonl)."""
    rows = []
    journal = Path(results) / folder / ".journal"
    for path in journal.glob("curves-*.jsonl"):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
    return rows


def run_in_thread(doc: dict, results: str) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target() -> None:
        try:
            out["df"] = sweep.run(doc, results=results)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def never_stops() -> dict:
    # A rule that needs more trials than the sweep has: the hub is on, nothing stops.
    return {"type": "median", "min_samples": 100}


@pytest.mark.parametrize("kind", ["python", "command", "wandb"])
def test_reports_reach_the_driver_while_the_trial_runs(results, tmp_path, kind):
    """A report reaches the driver while its trial runs: a Python objective's
    (sweep.report), a command's JSON line, and a command's wandb.log (W&B's run file,
    read when it changes). ``-s`` prints the latency of each (issue 25, item 6)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    if kind == "python":
        job = {"objective": "tests.objectives:report_then_wait"}
    else:
        script = tmp_path / "job.py"
        report = {"command": 'print(json.dumps({"step": step, "loss": 1.0 / (step + 1)}), '
                             'flush=True)',
                  "wandb": 'wandb.log({"loss": 1.0 / (step + 1)})'}[kind]
        script.write_text(textwrap.dedent("""
            import json, os, sys, time
            markers = sys.argv[1].split("=", 1)[1]
            if KIND == "wandb":
                import wandb
                wandb.init()
            for step in range(3):
                REPORT
                with open(os.path.join(markers, "reports.jsonl"), "a") as f:
                    f.write(json.dumps({"step": step, "t": time.time()}) + "\\n")
            while not os.path.exists(os.path.join(markers, "release")):
                time.sleep(0.02)
            print(json.dumps({"loss": 0.25}))
        """).replace("KIND", repr(kind)).replace("REPORT", report))
        job = {"command": [sys.executable, str(script), "${args}"]}
    name = f"live-{kind}"
    doc = {"name": name, **job, "metric": {"name": "loss"},
           "parameters": {"marker_dir": {"value": str(markers)}},
           "method": "grid", "early_terminate": never_stops()}
    thread, out = run_in_thread(doc, results)
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            steps = {r["step"]: r for r in journal_steps(results, name)}
            if 2 in steps:
                break
            assert thread.is_alive(), out
            time.sleep(0.02)
        arrived = time.time()
        assert 2 in steps, "no report reached the driver while the trial ran"
        assert not (markers / "release").exists()  # the trial is still running
        reported = [json.loads(line) for line in (markers / "reports.jsonl").read_text()
                    .splitlines()]
        latency = arrived - reported[-1]["t"]
        print(f"{kind}: report of step 2 journaled by the driver {latency:.3f} s after it "
              f"was made")
    finally:
        (markers / "release").write_text("go")
        thread.join(WAIT_S)
    assert "error" not in out, out.get("error")
    df = out["df"]
    assert list(df["status"]) == ["ok"] and df["step"].iloc[0] == 2
    # The curves table holds all three steps, as pandas reads it.
    curves = pd.read_parquet(os.path.join(results, name, "curves"))
    assert sorted(curves["step"]) == [0, 1, 2] and "metrics.loss" in curves.columns


def test_forked_children_that_report_do_not_hang_the_sweep(results):
    """Issue 25, item 14: forked multiprocessing children calling sweep.report with a
    stopping rule on left the sweep running forever (here, before the fix, their calls
    into Ray's client crashed the node's raylet). A child's reports are dropped with a
    warning on its stderr; the trial ends ok."""
    doc = {"name": "forked", "objective": "tests.objectives:report_from_forked_children",
           "metric": {"name": "loss"}, "parameters": {"x": {"value": 1}},
           "method": "grid", "early_terminate": never_stops()}
    df = sweep.run(doc, results=results)
    assert list(df["status"]) == ["ok"] and df["metrics.children"].iloc[0] == 10.0


def test_a_stopped_trial_frees_its_slot_and_keeps_its_step(results, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    doc = {"name": "stops", "objective": "tests.objectives:curve",
           "metric": {"name": "loss"},
           "parameters": {"x": {"values": [1.0, 1.1, 1.2, 9.0, 9.5, 1.3]},
                          "steps": {"value": 20}, "pause": {"value": 0.05},
                          "marker_dir": {"value": str(markers)}},
           "method": "grid",
           "early_terminate": {"type": "asha", "min_step": 2, "max_step": 20, "eta": 2}}
    df = sweep.run(doc, results=results).set_index("params.x")
    stopped = df[df.status == "stopped"]
    assert {9.0, 9.5} <= set(stopped.index)
    assert (stopped["step"] < 19).all() and stopped["metrics.loss"].notna().all()
    done = {json.loads(line)["x"] for line in (markers / "done.jsonl").read_text().splitlines()}
    assert not (done & set(stopped.index)), "a stopped trial ran to its end"
    assert (df[df.status == "ok"]["step"] == 19).all()
    # The rule's rungs are stored for the report, with the values they saw.
    meta = json.loads((Path(results) / "stops" / "stages" / "stage-0.json").read_text())
    assert meta["rungs"] and meta["rungs"][0]["step"] == 2 and meta["rungs"][0]["trials"] == 6


def test_resume_with_stopping_on_reruns_nothing_and_rebuilds_the_rungs(results):
    import pyarrow.parquet as pq

    doc = {"name": "resume-stop", "objective": "tests.objectives:curve",
           "metric": {"name": "loss"},
           "parameters": {"x": {"values": [1.0, 1.5, 2.0, 6.0]}, "steps": {"value": 8},
                          "pause": {"value": 0.1}},
           "stages": [{"plan": "grid"}], "max_concurrent": 1,
           "early_terminate": {"type": "asha", "min_step": 2, "max_step": 8, "eta": 2}}
    first = sweep.run(doc, results=results).set_index("params.x")
    assert first.loc[6.0, "status"] == "stopped"
    again = sweep.run(doc, results=results)
    assert list(again.sort_values("trial_id")["finished_at"]) == \
        list(first.sort_values("trial_id")["finished_at"])  # nothing ran again
    # As if the driver had died before the worst trial ran: drop its row and its curve.
    worst = first.loc[6.0, "trial_id"]
    for table in ("trials", "curves"):
        for path in (Path(results) / "resume-stop" / table).rglob("part-*.parquet"):
            data = pq.read_table(path)
            keep = [t != worst for t in data.column("trial_id").to_pylist()]
            pq.write_table(data.filter(keep), path)
    resumed = sweep.run(doc, results=results).set_index("params.x")
    # It runs again alone (max_concurrent 1), so only rungs rebuilt from the stored
    # curves of the other three can stop it: the same decision as before.
    assert resumed.loc[6.0, "status"] == "stopped"
    assert resumed.loc[6.0, "step"] == first.loc[6.0, "step"]
    others = resumed.drop(index=6.0)
    assert list(others["finished_at"]) == list(first.drop(index=6.0)["finished_at"])


def test_every_report_made_before_a_result_is_stored(results):
    """Issue 25, item 1: trials of short steps push their last reports just before they
    return, and the stage (the sweep) ends with their results: none of those reports may
    be left in the hub. Each trial's reports are all stored, once."""
    steps = 30
    for attempt in range(3):
        name = f"last-reports-{attempt}"
        doc = {"name": name, "objective": "tests.objectives:curve",
               "metric": {"name": "loss"},
               "parameters": {"x": {"values": [1.0, 2.0, 3.0, 4.0]},
                              "steps": {"value": steps}, "pause": {"value": 0.0}},
               "method": "grid", "early_terminate": never_stops()}
        df = sweep.run(doc, results=results)
        assert set(df["status"]) == {"ok"}
        curves = pd.read_parquet(os.path.join(results, name, "curves"))
        per_trial = curves.groupby("trial_id")["step"].apply(sorted).to_dict()
        assert per_trial == {t: list(range(steps)) for t in df["trial_id"]}, attempt
        # Numbered in the order they arrived, each once.
        assert curves["seq"].is_unique and sorted(curves["seq"]) == list(range(len(curves)))
