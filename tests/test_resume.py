"""Checkpoints and resume without Ray: the worker side (``sweep.report(checkpoint=...)``,
``sweep.restore()``, a command job's checkpoint lines) and the driver's (a retry, a
timeout with retry_timeouts and a killed driver each resume from the last checkpoint;
each step of a curve is stored once; retention), on the fake pool of tests/fakepool.py.
The same on a Ray cluster whose nodes die: tests/test_resume_cluster.py."""

from __future__ import annotations

import sys
import textwrap
from collections import Counter

import pandas as pd
import pytest

import sweep
from sweep.core.records import Report
from sweep.engine.driver import Driver
from sweep.engine.progress import Progress
from sweep.engine.runner import checkpoints_of, open_reader, open_writer
from sweep.engine.tasks import Done, Item, Task, payload
from sweep.spec.sweep_file import load_spec
from sweep.store.checkpoints import CheckpointStore
from sweep.store.reader import ResultsReader
from sweep.worker.checkpointing import Resume
from sweep.worker.wrapper import Objective, run_trial
from tests.fakepool import FakeClock, FakePool
from tests.objectives import epochs_with_checkpoints
from tests.procs import read_jsonl

# ------------------------------------------------------------------ the worker


def test_report_saves_a_checkpoint_and_restore_resumes_with_the_curve(tmp_path):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    obj = Objective("loss", target=epochs_with_checkpoints, sweep="demo", checkpoints=store)
    config = {"x": 0.5, "epochs": 8, "every": 2, "log_dir": str(tmp_path), "die_at": 4}
    first, reports = run_trial(obj, "t1", config, config)
    assert first.status == "failed" and "SimulatedDeath" in first.error
    assert [r.step for r in reports] == [0, 1, 2, 3, 4]  # no hub: they come with the row
    assert [r.checkpoint for r in reports] == [False, True, False, True, False]
    assert first.restored_from is None and first.checkpoint_bytes > 2048
    assert [c.step for c in store.list("t1")] == [3]  # keep: 1 while it runs

    again, reports = run_trial(obj, "t1", config, config, resume=Resume(2, own=True))
    assert again.status == "ok" and again.restored_from == 3 and again.step == 7
    # The curve goes on: steps 0-3 come back from the checkpoint, 4-7 are run again.
    assert [r.step for r in reports] == list(range(8))
    epochs = [r["epoch"] for r in read_jsonl(tmp_path / "epochs.jsonl")]
    assert epochs == [0, 1, 2, 3, 4, 4, 5, 6, 7]


def test_restore_outside_a_sweep_and_with_checkpoints_off_is_none(tmp_path):
    assert sweep.restore() is None
    sweep.report(step=1, checkpoint=str(tmp_path), loss=1.0)  # a no-op outside a sweep
    obj = Objective("loss", target=epochs_with_checkpoints, sweep="demo")  # no store
    config = {"x": 0.5, "epochs": 2, "log_dir": str(tmp_path)}
    record, reports = run_trial(obj, "t1", config, config, resume=Resume(2, own=True))
    assert record.status == "ok" and record.restored_from is None
    assert [r.step for r in reports] == [0, 1]
    assert "checkpoints off" in record.error  # the objective offered two


def test_a_fresh_trial_never_lists_the_store(tmp_path):
    class Counting(CheckpointStore):
        fetched = 0

        def fetch(self, trial_id, dest_dir=None):
            Counting.fetched += 1
            return super().fetch(trial_id, dest_dir)

    store = Counting(str(tmp_path), "demo")
    obj = Objective("loss", target=epochs_with_checkpoints, sweep="demo", checkpoints=store)
    config = {"x": 0.1, "epochs": 2, "log_dir": str(tmp_path)}
    assert run_trial(obj, "t1", config, config)[0].restored_from is None
    assert Counting.fetched == 0
    assert payload(Task([Item("t1", {}, None, None)], attempt=1)) == [["t1", {}, None]]
    assert payload(Task([Item("t1", {}, None, None)], attempt=2)) == [
        ["t1", {}, None, [2, True, None]]]
    assert payload(Task([Item("t2", {}, None, "p", "p")], attempt=1)) == [
        ["t2", {}, None, [1, False, "p"]]]


def test_a_segment_restores_its_parents_checkpoint_without_its_curve(tmp_path):
    store = CheckpointStore(str(tmp_path), "demo")
    obj = Objective("loss", target=epochs_with_checkpoints, sweep="demo", checkpoints=store)
    parent = {"x": 0.3, "epochs": 4, "log_dir": str(tmp_path)}
    run_trial(obj, "parent", parent, parent)
    child = {"x": 0.4, "epochs": 6, "log_dir": str(tmp_path)}
    record, reports = run_trial(obj, "child", child, child, resume=Resume(1, source="parent"))
    assert record.status == "ok" and record.restored_from == 3
    assert [r.step for r in reports] == [4, 5]  # its own curve starts after the parent's
    # Restored at the parent's last step, a segment has nothing to run: its row's step is
    # the step its model is at.
    done = {"x": 0.4, "epochs": 4, "log_dir": str(tmp_path)}
    record, reports = run_trial(obj, "late", done, done, resume=Resume(1, source="parent"))
    assert (record.status, record.step, record.restored_from, reports) == ("ok", 3, 3, [])
    assert [c.step for c in store.list("child")] == [5]
    assert [c.step for c in store.list("parent")] == [3]


def test_keep_two_while_running_and_a_failing_store_is_said_not_fatal(tmp_path):
    store = CheckpointStore(str(tmp_path), "demo")
    obj = Objective("loss", target=epochs_with_checkpoints, sweep="demo", checkpoints=store,
                    keep=2)
    config = {"x": 0.2, "epochs": 5, "log_dir": str(tmp_path)}
    run_trial(obj, "t1", config, config)
    assert [c.step for c in store.list("t1")] == [3, 4]

    class Broken(CheckpointStore):
        def save(self, *args, **kwargs):
            raise sweep.SweepError("disk full")

    obj = Objective("loss", target=epochs_with_checkpoints, sweep="demo",
                    checkpoints=Broken(str(tmp_path), "demo"))
    record, _ = run_trial(obj, "t2", config, config)
    assert record.status == "ok" and record.metrics["loss"] == pytest.approx(0.01 + 0.2)
    assert "checkpoint at step 0 not saved: disk full" in record.error


COMMAND_JOB = textwrap.dedent("""
    import json, os, sys
    restore, step = os.environ.get("SWEEP_RESTORE_DIR"), os.environ.get("SWEEP_RESTORE_STEP")
    base = os.environ["SWEEP_CHECKPOINT_DIR"]
    start = 0
    if restore:
        start = json.load(open(os.path.join(restore, "state.json")))["epoch"] + 1
        assert start == int(step) + 1
    for epoch in range(start, 6):
        folder = os.path.join(base, f"step-{epoch}")
        os.makedirs(folder)
        json.dump({"epoch": epoch}, open(os.path.join(folder, "state.json"), "w"))
        print(json.dumps({"step": epoch, "checkpoint": f"step-{epoch}", "loss": 1 / (epoch + 1)}),
              flush=True)
        if epoch == int(sys.argv[1]):
            sys.exit(3)
    print(json.dumps({"loss": 1 / 6, "start": start}))
""")


def test_command_job_checkpoints_through_its_environment(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(COMMAND_JOB)
    store = CheckpointStore(str(tmp_path / "results"), "demo")

    def run(die_at, resume):
        obj = Objective("loss", command=[sys.executable, str(script), str(die_at)],
                        sweep="demo", checkpoints=store)
        return run_trial(obj, "c1", {}, {}, resume=resume)

    first, reports = run(2, None)
    assert first.status == "failed" and "status 3" in first.error
    assert [r.step for r in reports] == [0, 1, 2]
    # The saver thread committed the last line's checkpoint before the record came back.
    assert store.latest("c1").step == 2 and first.checkpoint_bytes > 0
    again, reports = run(99, Resume(2, own=True))
    assert again.status == "ok" and again.restored_from == 2
    assert again.metrics["start"] == 3
    assert [r.step for r in reports] == list(range(6))
    assert store.latest("c1").step == 5


# ------------------------------------------------------------------ the driver


class DyingPool(FakePool):
    """The fake pool, with a hub when ``hub`` (a trial's reports reach the driver in the
    wait that runs it, before its result) and with workers that die: a trial that raised
    SimulatedDeath makes a crashed task, as a lost worker or node does."""

    def __init__(self, *args, hub: bool = False, kill_driver_at_death: bool = False,
                 lost_pushes: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.pushed: list[Report] = []
        self.kill_driver_at_death = kill_driver_at_death
        self.lost_pushes = lost_pushes  # a dying worker's last pushes never arrive
        self.deaths = 0
        if hub:
            self.objective.hub = self

    def push(self, report: Report) -> bool:  # the hub's verb
        self.pushed.append(report)
        return report.trial_id in self.stopped

    def wait(self, timeout_s):
        if self.deaths and self.kill_driver_at_death:
            raise KeyboardInterrupt("the driver is killed")
        done, reports = super().wait(timeout_s)
        out = []
        for d in done:
            if d.result is not None and any("SimulatedDeath" in (r.error or "")
                                            for r in d.result.records):
                self.deaths += 1
                if self.kill_driver_at_death:
                    # The driver gets the reports made so far, then dies (next wait) with
                    # the trial still running.
                    self.queue.append(d.task)
                    continue
                d = Done(d.task, error="ActorDiedError: the worker died", crashed=True,
                         started=frozenset(i.trial_id for i in d.task.items))
                if self.lost_pushes:
                    del self.pushed[-self.lost_pushes:]
            out.append(d)
        reports, self.pushed = [*reports, *self.pushed], []
        return out, reports


def ckpt_doc(name, log_dir, *, xs=(0.1, 0.5), epochs=10, every=2, die_at=4, **extra):
    d = {"name": name, "objective": "tests.objectives:epochs_with_checkpoints",
         "metric": {"name": "loss"},
         "parameters": {"x": {"values": list(xs)}, "epochs": {"value": epochs},
                        "every": {"value": every}, "die_at": {"value": die_at},
                        "log_dir": {"value": str(log_dir)}},
         "stages": [{"plan": "grid"}]}
    d.update(extra)
    return d


def driver_for(doc, results, **pool_options):
    spec = load_spec(doc)
    writer = open_writer(spec, results)
    reader = ResultsReader(writer.folder, writer.codec)
    clock = FakeClock()
    obj = Objective("loss", target=epochs_with_checkpoints, sweep=spec.name,
                    checkpoints=checkpoints_of(spec, results), keep=spec.checkpoints.keep,
                    timeout_s=spec.timeout_s)
    pool = DyingPool(obj, clock=clock, **pool_options)
    drv = Driver(spec, writer, reader, pool, progress=Progress(quiet=True), clock=clock,
                 checkpoints=checkpoints_of(spec, results))
    return spec, reader, pool, drv


def epochs_run(log_dir) -> Counter:
    return Counter(r["x"] for r in read_jsonl(log_dir / "epochs.jsonl"))


def check_curves(reader, n_trials, epochs):
    curves = reader.read_curves()
    per_step = curves.groupby(["trial_id", "step"]).size()
    assert (per_step == 1).all(), per_step[per_step > 1]  # every step stored once
    assert sorted(curves.groupby("trial_id")["step"].apply(list).tolist()) == \
        [list(range(epochs))] * n_trials
    return curves


@pytest.mark.parametrize("hub", [False, True], ids=["reports-with-result", "report-hub"])
def test_a_retried_trial_resumes_from_its_last_checkpoint(results, tmp_path, hub):
    logs = tmp_path / "logs"
    logs.mkdir()
    _, reader, pool, drv = driver_for(
        ckpt_doc(f"retry-{hub}", logs, **({"early_terminate": {"type": "median",
                                                                "min_samples": 99}}
                                          if hub else {})), results, hub=hub)
    drv.run()
    df = reader.read()
    assert set(df["status"]) == {"ok"} and pool.deaths == 2
    assert (df["attempts"] == 2).all()
    assert (df["restored_from"] == 3).all()  # the checkpoint before epoch 4
    # Epochs run: 10 each, plus what the death lost (epoch 4: at most one interval).
    assert all(n <= 10 + 2 for n in epochs_run(logs).values())
    assert all(n == 11 for n in epochs_run(logs).values())
    check_curves(reader, 2, 10)
    assert (df["checkpoint_bytes"] > 0).all() and df["checkpoint_s"].notna().all()


def test_a_trial_timed_out_with_retry_timeouts_resumes(results, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    doc = ckpt_doc("timeouts", logs, xs=[0.2], epochs=12, every=1, die_at=None,
                   timeout_s=0.4, retry_timeouts=True, retries=6)
    doc["parameters"]["sleep"] = {"value": 0.06}
    _, reader, _, drv = driver_for(doc, results)
    drv.run()
    row = reader.read().iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["attempts"] >= 2 and row["restored_from"] >= 0
    check_curves(reader, 1, 12)
    # Without retry_timeouts the same trial times out once and stays so.
    doc = dict(doc, name="timeouts-off", retry_timeouts=False)
    _, reader, _, drv = driver_for(doc, results)
    drv.run()
    row = reader.read().iloc[0]
    assert row["status"] == "timeout" and row["attempts"] == 1


@pytest.mark.parametrize("hub", [False, True], ids=["reports-with-result", "report-hub"])
def test_a_killed_driver_rerun_resumes_running_trials_from_their_checkpoints(
        results, tmp_path, hub):
    logs = tmp_path / "logs"
    logs.mkdir()
    doc = ckpt_doc(f"rerun-{hub}", logs, xs=[0.1], **(
        {"early_terminate": {"type": "median", "min_samples": 99}} if hub else {}))
    _, reader, pool, drv = driver_for(doc, results, hub=hub, kill_driver_at_death=True)
    with pytest.raises(KeyboardInterrupt):
        drv.run()
    assert reader.read().empty
    before = reader.read_curves()
    assert sorted(before["step"]) == ([0, 1, 2, 3] if hub else [])  # up to the checkpoint

    _, reader, pool, drv = driver_for(doc, results, hub=hub)
    drv.run()
    assert pool.deaths == 0
    row = reader.read().iloc[0]
    assert row["status"] == "ok" and row["restored_from"] == 3 and row["attempts"] == 1
    assert epochs_run(logs)[0.1] == 10 + 1
    check_curves(reader, 1, 10)


def test_retention_keeps_the_final_checkpoint_of_the_stages_top_k(results, tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    doc = ckpt_doc("retain", logs, xs=[0.1, 0.3, 0.5, 0.9], epochs=4, every=1, die_at=None,
                   checkpoints={"keep": 2, "keep_top": 2})
    spec, reader, _, drv = driver_for(doc, results)
    drv.run()
    df = reader.read().sort_values("metrics.loss")
    store = checkpoints_of(spec, results)
    kept = {t: [c.step for c in store.list(t)] for t in df["trial_id"]}
    top2 = list(df["trial_id"][:2])
    assert {t: s for t, s in kept.items() if s} == {t: [3] for t in top2}
    assert store.usage().checkpoints == 2
    # `sweep status` says what they hold and what they cost.
    from sweep.cli import main

    drv.writer.folder.write_spec(spec.to_yaml())
    assert main(["status", str(tmp_path / "results" / "retain")]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("checkpoints"))
    assert line.startswith("checkpoints: 2 stored (") and "4 trial attempts saved" in line
    assert "0 restored" in line


def test_checkpoints_settings_are_validated():
    base = ckpt_doc("v", "/tmp", die_at=None)
    assert load_spec(base).checkpoints.keep_top == 5
    assert not load_spec(dict(base, checkpoints=False)).checkpoints.enabled
    for bad, message in [({"keep": 0}, "checkpoints.keep: got 0, expected an integer >= 1"),
                         ({"keep_top": -1}, "checkpoints.keep_top: got -1"),
                         ({"keepp": 1}, "keepp"), ("yes", "checkpoints: got 'yes'")]:
        with pytest.raises(sweep.SpecError, match=message.replace("(", r"\(")):
            load_spec(dict(base, checkpoints=bad))
    with pytest.raises(sweep.SpecError, match="retry_timeouts: got 'yes', expected true or"):
        load_spec(dict(base, retry_timeouts="yes"))


def test_old_part_files_without_the_checkpoint_columns_still_read(results, tmp_path):
    """A results folder written before checkpoints (no restored_from column) reads and
    resumes: its rows get nulls in the new columns."""
    import pyarrow.parquet as pq

    logs = tmp_path / "logs"
    logs.mkdir()
    doc = ckpt_doc("old", logs, epochs=2, die_at=None, checkpoints=False)
    doc["parameters"]["x"] = {"min": 0.0, "max": 1.0}
    doc["stages"] = [{"plan": "random", "trials": 2}]
    spec, reader, _, drv = driver_for(doc, results)
    drv.run()
    new = ["restored_from", "checkpoint_bytes", "checkpoint_s"]
    for path in (tmp_path / "results" / "old" / "trials").rglob("part-*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(new), path)
    df = open_reader(spec, results).read()
    assert len(df) == 2 and not set(new) & set(df.columns)
    assert [r.restored_from for r in reader.records([0])] == [None, None]
    # Resumed with a larger budget: the new rows and the old ones read together.
    doc["stages"] = [{"plan": "random", "trials": 4}]
    _, reader, _, drv = driver_for(doc, results)
    drv.run()
    whole = pd.read_parquet(tmp_path / "results" / "old" / "trials")
    assert len(whole) == 4 and whole["restored_from"].isna().all()


def test_the_mlp_job_checkpoints_and_continues_with_its_own_lr(tmp_path):
    """jobs/mlp.py with checkpoint: true: a trial started from another's checkpoint (a
    PBT segment) goes on from its epoch, with the model and optimizer state restored and
    its own learning rate."""
    from jobs.mlp import train

    store = CheckpointStore(str(tmp_path), "mlp")
    obj = Objective("val_error", target=train, sweep="mlp", checkpoints=store)
    first = {"lr": 0.003, "epochs": 3, "checkpoint": True}
    record, reports = run_trial(obj, "a", first, first)
    assert record.status == "ok" and [r.step for r in reports] == [1, 2, 3]
    assert all(r.checkpoint for r in reports)
    later = {"lr": 0.001, "epochs": 6, "checkpoint": True}
    record, reports = run_trial(obj, "b", later, later, resume=Resume(1, source="a"))
    assert record.restored_from == 3 and [r.step for r in reports] == [4, 5, 6]
    assert record.metrics["epochs"] == 6
    # Restored, not retrained: its first epoch is far better than a fresh model's first.
    fresh = train({"lr": 0.001, "epochs": 1})
    assert reports[0].metrics["val_error"] < fresh["val_error"] / 2, (reports[0], fresh)


def test_a_trial_past_its_backstop_deadline_runs_again_with_retry_timeouts(results, tmp_path):
    """The driver's own deadline (code that never returns to Python): with retry_timeouts
    the trial runs again at the next attempt, and the row says so."""
    logs = tmp_path / "logs"
    logs.mkdir()
    doc = ckpt_doc("backstop", logs, xs=[0.3], epochs=3, every=1, die_at=None, timeout_s=5,
                   retry_timeouts=True)
    _, reader, pool, drv = driver_for(doc, results)
    tid = None
    real_wait = pool.wait

    def wait(timeout_s):  # the first attempt hangs; the second runs
        nonlocal tid
        if tid is None and pool.queue:
            tid = pool.queue[0].items[0].trial_id
            pool.hangs = {tid}
        if any(t.attempt > 1 for t in pool.queue):
            pool.hangs = set()
        return real_wait(timeout_s)

    pool.wait = wait
    drv.run()
    row = reader.read().iloc[0]
    assert row["status"] == "ok" and row["attempts"] == 2
    check_curves(reader, 1, 3)


def test_the_progress_line_says_what_checkpoints_cost():
    from sweep.core.records import TrialRecord
    from sweep.engine.driver import CheckpointCost

    cost = CheckpointCost()
    assert cost.text() == ""
    cost.add([TrialRecord(checkpoint_bytes=3 * 2**20, checkpoint_s=0.25, restored_from=4),
              TrialRecord(checkpoint_bytes=2**20, checkpoint_s=0.25), TrialRecord()])
    assert cost.text() == "ckpt 4.0 MB in 0.5 s (2 trials, 1 restored)"
    progress = Progress(quiet=False, stream=__import__("io").StringIO(), interval=0)
    progress.start_stage(0, "grid", 2)
    progress.update(done=1, running=1, failed=0, best=None, best_params=None,
                    note=cost.text())
    assert "ckpt 4.0 MB in 0.5 s (2 trials, 1 restored)" in progress.stream.getvalue()


def test_reports_a_dying_worker_never_sent_come_back_from_its_checkpoint(results, tmp_path):
    """Live reports: the worker committed checkpoints 6 and 7 but died before their
    reports reached the driver; the retry restores 7, reports 8 and 9 live, and steps 6
    and 7 come back with its result, from the checkpoint: every step once, none lost."""
    logs = tmp_path / "logs"
    logs.mkdir()
    doc = ckpt_doc("lost-pushes", logs, xs=[0.2], epochs=10, every=1, die_at=7,
                   early_terminate={"type": "median", "min_samples": 99})
    _, reader, pool, drv = driver_for(doc, results, hub=True, lost_pushes=2)
    drv.run()
    row = reader.read().iloc[0]
    assert row["status"] == "ok" and row["restored_from"] == 7 and pool.deaths == 1
    check_curves(reader, 1, 10)


def test_a_trial_that_ran_again_without_a_checkpoint_shows_its_last_runs_curve(
        results, tmp_path):
    """Live reports of a run that died are stored as they came (the rule saw them); the
    retry starts over from epoch 0. The curve read back is the retry's, each step once;
    the arrivals the rules replay keep both runs."""
    logs = tmp_path / "logs"
    logs.mkdir()
    _, reader, pool, drv = driver_for(
        ckpt_doc("again-no-ckpt", logs, checkpoints=False,
                 early_terminate={"type": "median", "min_samples": 99}), results, hub=True)
    drv.run()
    df = reader.read()
    assert set(df["status"]) == {"ok"} and pool.deaths == 2
    assert df["restored_from"].isna().all()
    arrivals = reader.arrivals(0, "loss")
    assert len(arrivals) == 2 * (5 + 10)  # both runs of each trial: epochs 0-4, then 0-9
    curves = check_curves(reader, 2, 10)
    raw = reader.folder.curves.table().to_pandas()
    for tid in df["trial_id"]:
        every = sorted(raw[raw["trial_id"] == tid]["seq"])
        assert len(every) == 15
        assert sorted(curves[curves["trial_id"] == tid]["seq"]) == every[-10:]  # the retry's


def test_a_stopped_trials_reports_after_its_stop_are_stored(results, tmp_path):
    """A trial stopped at a decision runs on for a moment (pbt's bottom member, a rule's
    loser) and may commit a checkpoint that a segment restores: those reports are its
    curve too, stored whenever they arrive, never held for ever."""
    logs = tmp_path / "logs"
    logs.mkdir()
    _, reader, _pool, drv = driver_for(
        ckpt_doc("late", logs, early_terminate={"type": "median", "min_samples": 99}),
        results, hub=True)
    run = drv._begin(drv.spec.stages[0])
    assert run.gate is not None
    item = Item("t1", {"x": 0.1}, None, None)
    run.running["t1"] = (Task([item], attempt=1), item)
    drv._take_reports(run, [Report("t1", 0, {"loss": 1.0}, 1.0),
                            Report("t1", 1, {"loss": 0.9}, 2.0, checkpoint=True),
                            Report("t1", 2, {"loss": 0.8}, 3.0)])
    drv._record(run, [drv._stopped(run, Report("t1", 2, {"loss": 0.8}, 3.0))])
    drv._take_reports(run, [Report("t1", 3, {"loss": 0.7}, 4.0, checkpoint=True),
                            Report("t1", 4, {"loss": 0.6}, 5.0)])
    drv.writer.flush()
    assert sorted(reader.read_curves()["step"]) == [0, 1, 2, 3, 4]
