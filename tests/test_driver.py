"""The driver's policy on a fake pool (no Ray): batching, retries, timeouts, stage order,
what plans are told and when, early stopping, resume."""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import warnings
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sweep
from sweep.engine import planning as planning_module
from sweep.engine.driver import Batcher, Driver
from sweep.engine.progress import Progress
from sweep.engine.runner import open_reader, open_writer
from sweep.plans import Candidate, Plan
from sweep.spec.sweep_file import load_spec
from sweep.store.reader import ResultsReader
from tests.fakepool import FakeClock, FakePool, objective_of


def quadratic(config):
    return {"loss": (config["x"] - 0.3) ** 2}


def slow(config):
    time.sleep(0.002)
    return {"loss": config["x"]}


def opened(spec, results):
    """A writer and a reader over one results folder, as ``execute`` makes them."""
    writer = open_writer(spec, results)
    return writer, ResultsReader(writer.folder, writer.codec)


def make(doc, results, fn=quadratic, **pool_options):
    """(spec, a reader of its results, the pool, the driver)."""
    spec = load_spec(doc)
    writer, reader = opened(spec, results)
    clock = pool_options.pop("clock", FakeClock())
    pool = FakePool(objective_of(fn), clock=clock, **pool_options)
    drv = Driver(spec, writer, reader, pool, progress=Progress(quiet=True), clock=clock)
    return spec, reader, pool, drv


def doc(name, stages, **extra):
    d = {"name": name, "objective": "tests.objectives:quadratic",
         "metric": {"name": "loss"}, "parameters": {"x": sweep.uniform(0, 1)},
         "stages": stages}
    d.update(extra)
    return d


def test_every_trial_runs_once_and_short_trials_are_batched(results):
    _, reader, pool, drv = make(doc("batch", [{"plan": "random", "trials": 300}]), results,
                               fn=slow)
    drv.run()
    df = reader.read()
    assert len(df) == 300 and df["trial_id"].is_unique
    sizes = [len(t.items) for t in pool.submitted]
    assert sizes[:2] == [1, 1]  # one probe per slot while trial times are unknown
    assert max(sizes) > 1  # then a task's worth of 2 ms trials
    assert sum(sizes) == 300
    assert pool.max_in_flight <= 2 * pool.slots()  # a queue of one task per slot at most
    # The last tasks are smaller than the largest: the slots finish together.
    assert sizes[-1] < max(sizes) and sizes[-3:] == sorted(sizes[-3:], reverse=True)


def test_trials_a_task_returns_without_running_go_again_uncharged(results):
    """A worker whose node's raylet died starts no more of its batch and may still return
    what it ran (its reply does not go through the raylet): the trials it left out run
    again at the same attempt, none is lost."""
    _, reader, pool, drv = make(doc("cut", [{"plan": "random", "trials": 300}]), results,
                               fn=slow)
    real_wait, cut = pool.wait, []

    def wait(timeout_s):
        done, reports = real_wait(timeout_s)
        for i, outcome in enumerate(done):
            if not cut and outcome.result is not None and len(outcome.result.records) > 2:
                kept = outcome.result.records[:1]
                cut.extend(r.trial_id for r in outcome.result.records[1:])
                done[i] = outcome._replace(result=outcome.result._replace(records=kept))
        return done, reports

    pool.wait = wait
    drv.run()
    df = reader.read()
    assert cut and len(df) == 300 and df["trial_id"].is_unique
    assert set(df["status"]) == {"ok"} and set(df["attempts"]) == {1}
    again = [t for t in pool.submitted if len(t.items) == 1 and t.items[0].trial_id in cut]
    assert len(again) == len(cut) and all(t.lost == 1 for t in again)


def test_batcher_rule():
    b = Batcher(None)
    assert b.size(100, 2) == 1
    b.observe([0.001] * 10)
    assert b.size(10_000, 2) == 200  # 200 ms of 1 ms trials
    assert b.size(400, 2) == 100  # at most a quarter of what is left: 2 slots, 2 deep
    assert b.size(60, 2) == 20  # but at least 20 ms of trials (a task costs a gap)
    assert b.size(7, 2) == 7  # never more than is left
    assert b.size(0, 2) == 1
    assert Batcher(7).size(3, 2) == 7


def test_worker_deaths_are_retried_with_exact_attempts(results):
    spec, reader, pool, drv = make(doc("retry", [{"plan": "grid", "values": {"x": [0.1, 0.2]}}],
                                      retries=2), results)
    ids = {}
    for cand in __import__("sweep.engine.planning", fromlist=["make_plan"]).make_plan(
            spec, spec.stages[0]).candidates():
        ids[cand.params["x"]] = sweep.worker.trial_ids.trial_id("retry", 0, cand.params)
    pool.crashes = {ids[0.1]: 2, ids[0.2]: 3}
    drv.run()
    df = reader.read().set_index("params.x")
    assert df.loc[0.1, "status"] == "ok" and df.loc[0.1, "attempts"] == 3
    assert df.loc[0.2, "status"] == "failed" and df.loc[0.2, "attempts"] == 3
    assert "worker died on all 3 attempts" in df.loc[0.2, "error"]


def test_a_trial_past_its_backstop_deadline_is_a_timeout_and_frees_its_slot(results):
    _spec, reader, pool, drv = make(doc("hang", [{"plan": "grid", "values": {"x": [0.1, 0.2,
                                                                                0.3]}}],
                                      timeout_s=5), results)
    hung = sweep.worker.trial_ids.trial_id("hang", 0, {"x": 0.2})
    pool.hangs = {hung}
    drv.run()
    df = reader.read().set_index("trial_id")
    assert df.loc[hung, "status"] == "timeout"
    assert "timeout_s=5" in df.loc[hung, "error"]
    assert (df.drop(index=hung)["status"] == "ok").all()
    assert all(len(t.items) == 1 for t in pool.submitted)  # timed trials are not batched


class Recording(Plan):
    """Proposes x = 0.1, 0.2, ... one at a time and records what it is told."""

    learns = True
    log: ClassVar[list[tuple[str, object]]] = []

    def __init__(self, space, total):
        super().__init__(space, total)
        self.asked = 0

    def tell(self, records):
        Recording.log.append(("tell", [(r.stage, r.params["x"]) for r in records]))

    def start(self):
        Recording.log.append(("start", None))

    def ask(self, n):
        if self.asked >= self.total:
            self.finished = True
            return []
        self.asked += 1
        Recording.log.append(("ask", self.asked))
        return [Candidate({"x": round(0.1 * self.asked, 3)})]


def test_stage_order_and_what_a_learning_plan_is_told(results, monkeypatch):
    Recording.log = []
    real = planning_module.make_plan

    def make_plan(spec, stage):
        if stage.index == 1:
            return Recording(stage.space(spec.space), 3)
        return real(spec, stage)

    monkeypatch.setattr(planning_module, "make_plan", make_plan)
    _, _reader, pool, drv = make(doc("order", [{"plan": "grid", "values": {"x": [0.5, 0.6]}},
                                             {"plan": "random", "trials": 3}]), results)
    drv.run()
    log = Recording.log
    # The stored history of stage 0 (both trials, in finishing order) before the start...
    assert log[0] == ("tell", [(0, 0.5), (0, 0.6)])
    assert log[1] == ("start", None)
    # ... then asks and a tell of each result, its own stage only.
    tells = [entry for entry in log[2:] if entry[0] == "tell"]
    assert sorted(x for _, recs in tells for _, x in recs) == [0.1, 0.2, 0.3]
    assert all(stage == 1 for _, recs in tells for stage, _ in recs)
    # Stage 1's first task was submitted once nothing of stage 0 was in flight.
    first = next(i for i, t in enumerate(pool.submitted) if t.items[0].params["x"] == 0.1)
    assert first == 2 and pool.busy_at_submit[first] == 0


def test_resume_skips_what_is_stored(results):
    d = doc("resume", [{"plan": "random", "trials": 20, "seed": 3}])
    _, reader, _pool, drv = make(d, results)
    drv.run()
    first = reader.read()
    _, reader2, pool2, drv2 = make(d, results)
    result = drv2.run()[0]
    assert result.skipped == 20 and result.ran == 0 and not pool2.submitted
    assert len(reader2.read()) == 20
    assert set(reader2.read()["trial_id"]) == set(first["trial_id"])


def test_early_stopping_stops_bad_trials_and_frees_their_slots(results):
    d = doc("stop", [{"plan": "grid", "values": {"x": [0.1, 0.2, 0.3, 0.4]}}],
            early_terminate={"type": "median", "grace_period": 1, "min_samples": 2})
    _spec, reader, pool, drv = make(d, results, slots=4)
    ids = {x: sweep.worker.trial_ids.trial_id("stop", 0, {"x": x}) for x in (0.1, 0.2, 0.3, 0.4)}
    # Curves: lower is better; the trial at x=0.4 is worst at every step.
    pool.scripted_reports = {ids[x]: [(s, x * 10 / (s + 1)) for s in range(4)]
                             for x in (0.1, 0.2, 0.3, 0.4)}
    pool.lifo = False
    drv.run()
    df = reader.read().set_index("params.x")
    assert df.loc[0.4, "status"] == "stopped"
    assert ids[0.4] in pool.stopped
    assert not math.isnan(df.loc[0.4, "metrics.loss"]) and df.loc[0.4, "step"] >= 1
    assert df.loc[0.1, "status"] == "ok"
    curves = reader.read_curves()
    assert set(curves["trial_id"]) == set(ids.values())
    assert (curves.groupby("trial_id").size() >= 1).all()
    # The rule's rungs are in the stage's file, for the report.
    rungs = reader.folder.read_stage(0).rungs
    assert rungs and rungs[0]["trials"] >= 2


def test_a_trial_that_reports_nothing_is_never_stopped(results):
    d = doc("quiet", [{"plan": "grid", "values": {"x": [0.1, 0.9]}}],
            early_terminate={"type": "median", "grace_period": 0, "min_samples": 1})
    _, reader, pool, drv = make(d, results)
    drv.run()
    assert set(reader.read()["status"]) == {"ok"} and not pool.stopped


@pytest.mark.parametrize("lifo", [False, True])
def test_any_completion_order_gives_the_same_table(results, lifo):
    d = doc(f"order-{lifo}", [{"plan": "sobol", "trials": 16}, {"plan": "refine", "trials": 8}])
    _, reader, _, drv = make(d, results + str(lifo), lifo=lifo)
    drv.run()
    df = reader.read()
    assert df.groupby("stage").size().to_dict() == {0: 16, 1: 8}
    # Refine anchors come from the stored stage 0 (the same whatever the order).
    best = df[df.stage == 0].sort_values(["metrics.loss", "trial_id"]).trial_id.iloc[0]
    assert best in set(df[df.stage == 1].parent_id)


def test_a_refine_stage_stores_its_anchors_and_boxes_for_the_report(results):
    d = doc("boxes", [{"plan": "sobol", "trials": 16},
                      {"plan": "refine", "trials": 8, "region": "each", "top_k": 2}])
    _, reader, _, drv = make(d, results)
    fine = drv.run()[1]
    state = reader.folder.read_stage(1)
    assert state.plan == "refine" and len(state.described["anchors"]) == 2
    assert state.boxes == fine.boxes and len(fine.boxes) == 2
    assert {b["stage"] for b in state.boxes} == {1}
    assert reader.folder.read_stage(0) is None  # a fixed plan decides nothing to store


class KilledAfter(FakePool):
    """A pool whose driver is killed (Ctrl-C) once ``limit`` trials have finished."""

    def __init__(self, *args, limit, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit, self.finished = limit, 0

    def wait(self, timeout_s):
        if self.finished >= self.limit:
            raise KeyboardInterrupt("the driver is killed")
        done, reports = super().wait(timeout_s)
        self.finished += sum(len(d.task.items) for d in done)
        return done, reports


def bowl(config):
    return {"loss": (config["x"] - 0.3) ** 2 + (config["lr_exp"] + 2) ** 2}


@pytest.mark.parametrize("fine", [{"plan": "bayes", "trials": 16},
                                  {"plan": "refine", "trials": 16},
                                  {"plan": "refine", "trials": 16, "sample": "model"}])
def test_a_learning_stage_killed_mid_run_resumes_without_rerunning(results, fine):
    d = doc(f"kill-{fine['plan']}-{fine.get('sample')}", [{"plan": "random", "trials": 12}, fine],
            parameters={"x": sweep.uniform(0, 1), "lr_exp": sweep.uniform(-4, 0)})
    spec = load_spec(d)
    writer, reader = opened(spec, results)
    pool = KilledAfter(objective_of(bowl), clock=FakeClock(), slots=3, limit=20)
    with pytest.raises(KeyboardInterrupt):
        Driver(spec, writer, reader, pool, progress=Progress(quiet=True),
               clock=pool.clock).run()
    first = open_reader(spec, results).read()
    ran_before = set(first.trial_id)
    assert 12 < len(first) < 28  # killed inside the learning stage
    _, reader2, pool2, drv2 = make(d, results, fn=bowl, slots=3)
    result = drv2.run()[1]
    df = reader2.read()
    assert df.groupby("stage").size().to_dict() == {0: 12, 1: 16}
    assert df["trial_id"].is_unique
    rerun = {i.trial_id for t in pool2.submitted for i in t.items} & ran_before
    assert not rerun  # nothing stored ran again
    assert result.skipped == (first.stage == 1).sum()
    # The learning stage beat the coarse one (it learnt from both runs' results).
    best = df.groupby("stage")["metrics.loss"].min()
    assert best[1] < best[0]


def test_the_default_refine_is_adaptive_and_its_boxes_follow_new_results(results):
    d = doc("adaptive", [{"plan": "random", "trials": 16}, {"plan": "refine", "trials": 24}],
            parameters={"x": sweep.uniform(0, 1), "lr_exp": sweep.uniform(-4, 0)})
    spec = load_spec(d)
    assert spec.stages[1].region == "adaptive" and spec.stages[1].sample == "thompson"
    _, reader, _, drv = make(d, results, fn=bowl, slots=4)
    drv.run()
    df = reader.read()
    fine = df[df.stage == 1]
    # Some proposals were drawn around trials of the fine stage itself.
    assert fine.parent_id.isin(set(fine.trial_id)).any()
    assert fine["metrics.loss"].min() < df[df.stage == 0]["metrics.loss"].min()


@pytest.mark.parametrize("plan", [{"plan": "bayes", "trials": 8},
                                  {"plan": "random", "trials": 8}])
def test_retry_failed_reruns_the_failed_budget_of_any_plan(results, plan):
    def flaky(config):
        if config["x"] < 0.5:
            raise ValueError("not yet")
        return {"loss": config["x"]}

    d = doc(f"retry-{plan['plan']}", [plan])
    _, reader, _, drv = make(d, results, fn=flaky)
    first = drv.run()[0]
    failed = (reader.read().status == "failed").sum()
    assert first.ran == 8 and failed > 0
    spec = load_spec(d)
    writer2, reader2 = opened(spec, results)
    pool = FakePool(objective_of(quadratic), clock=FakeClock())
    again = Driver(spec, writer2, reader2, pool, progress=Progress(quiet=True),
                   clock=pool.clock, retry_failed=True).run()[0]
    assert again.ran == failed and again.ok == failed
    latest = reader2.read().drop_duplicates("trial_id", keep="last")
    assert (latest.status == "ok").sum() == 8


class Replaying(Plan):
    """A learning plan that proposes x = 0.001, 0.002, ... in order, one per ask, whatever
    it is told: on resume its stored trials come first (each answer all stored)."""

    learns = True

    def __init__(self, space, total):
        super().__init__(space, total)
        self.asked = 0

    def ask(self, n):
        self.asked += 1
        self.finished = self.asked >= self.total
        return [Candidate({"x": round(0.001 * self.asked, 6)})]


def test_answers_of_stored_trials_only_never_end_a_stage_early(results, monkeypatch):
    """The driver asks again after an answer that held nothing new, however many come in a
    row (no cap on 'empty' asks): the trials after them still run."""
    budget = {"total": 70}
    monkeypatch.setattr(planning_module, "make_plan",
                        lambda spec, stage: Replaying(stage.space(spec.space), budget["total"]))
    d = doc("replay", [{"plan": "random", "trials": 100}])
    _, _store, _, drv = make(d, results)
    assert drv.run()[0].ran == 70
    budget["total"] = 100  # the same stream, longer: 70 stored trials, then 30 new ones
    _, store2, pool2, drv2 = make(d, results)
    result = drv2.run()[0]
    assert result.ran == 30 and result.skipped == 70
    df = store2.read()
    assert len(df) == 100 and df["trial_id"].is_unique
    assert sorted(i.params["x"] for t in pool2.submitted for i in t.items) == [
        round(0.001 * i, 6) for i in range(71, 101)]


def test_a_resumed_fixed_refine_runs_its_whole_budget(results):
    """A region: each refine resumed with more stored trials than a driver once asked for
    in a row before giving up: its fixed stream proposes them again, then the rest."""
    d = doc("resume-each", [{"plan": "random", "trials": 10},
                            {"plan": "refine", "trials": 150, "region": "each"}],
            parameters={"x": sweep.uniform(0, 1), "lr_exp": sweep.uniform(-4, 0)})
    spec = load_spec(d)
    pool = KilledAfter(objective_of(bowl), clock=FakeClock(), slots=3, limit=110)
    with pytest.raises(KeyboardInterrupt):
        Driver(spec, *opened(spec, results), pool, progress=Progress(quiet=True),
               clock=pool.clock).run()
    assert 64 < (opened(spec, results)[1].read().stage == 1).sum() < 150
    _, store, _, drv = make(d, results, fn=bowl, slots=3)
    drv.run()
    df = store.read()
    assert df.groupby("stage").size().to_dict() == {0: 10, 1: 150}
    assert df["trial_id"].is_unique


class Stalled(Plan):
    """Proposes x = 0.5, then answers "nothing yet" for ever (never finished)."""

    def __init__(self, space):
        super().__init__(space, 2)
        self.asked = 0

    def ask(self, n):
        self.asked += 1
        return [Candidate({"x": 0.5})] if self.asked == 1 else []


def test_a_plan_waiting_with_nothing_in_flight_ends_its_stage_and_says_so(results, monkeypatch):
    monkeypatch.setattr(planning_module, "make_plan",
                        lambda spec, stage: Stalled(stage.space(spec.space)))
    _, store, _, drv = make(doc("stalled", [{"plan": "random", "trials": 2}]), results)
    lines = []
    monkeypatch.setattr(drv.progress, "log", lines.append)
    assert drv.run()[0].ran == 1 and len(store.read()) == 1
    ended = "stage 0: the plan proposes nothing more and no trial is running; the stage ends"
    assert lines.count(ended) == 1


class Sequential(Plan):
    """Proposes one trial at a time: "nothing yet" ([]) while it runs, the next once it is
    told; finished after ``total``."""

    learns = True

    def __init__(self, space, total):
        super().__init__(space, total)
        self.asked, self.told, self.waits = 0, 0, 0

    def tell(self, records):
        self.told += len(records)

    def ask(self, n):
        if self.asked > self.told:
            self.waits += 1
            return []
        self.asked += 1
        self.finished = self.asked >= self.total
        return [Candidate({"x": round(0.1 * self.asked, 3)})]


def test_nothing_yet_is_asked_again_once_a_result_is_told(results, monkeypatch):
    plans = []

    def make_plan(spec, stage):
        plans.append(Sequential(stage.space(spec.space), 5))
        return plans[-1]

    monkeypatch.setattr(planning_module, "make_plan", make_plan)
    _, store, pool, drv = make(doc("sequential", [{"plan": "random", "trials": 5}]), results,
                               slots=4)
    assert drv.run()[0].ran == 5
    assert sorted(store.read()["params.x"]) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert plans[0].waits >= 4 and pool.max_in_flight == 1  # it waited for each result


# ------------------------------------------------ reports: stored once, replayed as live

STOP_RULES = [
    {"type": "asha", "max_step": 6, "eta": 2},
    {"type": "asha", "max_step": 9, "eta": 2.5, "brackets": 2},
    {"type": "median", "min_samples": 1},
    {"type": "median", "grace_period": 2, "min_samples": 2},
    {"type": "hyperband", "min_iter": 1, "eta": 2},
    {"type": "hyperband", "max_iter": 8, "s": 2, "eta": 2, "strict": False},
]
report_values = st.one_of(st.floats(-3, 3, allow_nan=False, width=16),
                          st.sampled_from([math.nan, math.inf, -math.inf, None]))
# Steps in any order: repeated, missing, going back.
timelines = st.lists(st.tuples(st.integers(0, 8), report_values), max_size=8)


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def _rows_equal(xs, ys) -> bool:
    return len(xs) == len(ys) and all(
        len(x) == len(y) and all(map(_same, x, y)) for x, y in zip(xs, ys))


def _key(value):
    return "nan" if isinstance(value, float) and value != value else value


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rule=st.sampled_from(STOP_RULES), goal=st.sampled_from(["minimize", "maximize"]),
       curves=st.lists(timelines, min_size=2, max_size=6), rng=st.randoms(use_true_random=False),
       cut=st.one_of(st.none(), st.integers(1, 60)),
       probes=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 10), report_values),
                       max_size=8))
def test_every_report_is_stored_once_and_a_rule_rebuilt_from_storage_decides_as_the_live_one(
        rule, goal, curves, rng, cut, probes):
    """Issue 25, items 1 and 2: reports arrive in any order, after their trial's result,
    at the end of the stage only, NaN among them; the driver may die at any wait. Every
    report made and delivered is stored once, the live rule saw exactly the stored
    sequence, and a rule rebuilt from storage is in the live rule's state."""
    from sweep.stopping import replay
    from tests.fakepool import Cut, ScriptedPool

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec({"name": "prop", "objective": "tests.objectives:quadratic",
                          "metric": {"name": "loss", "goal": goal},
                          "parameters": {"i": {"values": list(range(len(curves)))}},
                          "stages": [{"plan": "grid"}], "early_terminate": rule})
        writer, reader = opened(spec, tmp)
        pool = ScriptedPool(dict(enumerate(curves)), rng, cut_at=cut)
        seen: list[tuple] = []

        class Watched(Driver):
            def _rule(self, stage):
                live = super()._rule(stage)
                decide = live.should_stop

                def watched(trial, step, value):
                    seen.append((trial, step, value))
                    return decide(trial, step, value)

                live.should_stop = watched
                self.live = live
                return live

        drv = Watched(spec, writer, reader, pool, progress=Progress(quiet=True),
                      clock=lambda: pool.clock)
        with contextlib.suppress(Cut):
            drv.run()
        stored = reader.arrivals(0, "loss")
        # The live rule saw the stored sequence, in its order, NaN and all.
        assert _rows_equal(seen, stored)
        # Each report made is stored once; all of them unless the driver died.
        table = reader.folder.curves.table()
        rows = [] if table is None else sorted(
            (t, s, int(m), _key(v)) for t, s, m, v in zip(
                table.column("trial_id").to_pylist(), table.column("step").to_pylist(),
                table.column("time").cast("int64").to_pylist(),
                table.column("metrics.loss").to_pylist()
                if "metrics.loss" in table.column_names else [None] * table.num_rows))
        made = sorted((r.trial_id, r.step, int(r.time * 1_000_000), _key(r.metrics.get("loss")))
                      for r in pool.made)
        assert len(set(rows)) == len(rows)
        if cut is None or pool.waits < cut:
            assert rows == made
        else:
            assert set(rows) <= set(made)
        # A rule rebuilt from storage is the live one: the same stops, rungs, decisions.
        rebuilt = spec.stopping_rule()
        replay(rebuilt, stored)
        live = drv.live
        assert rebuilt.stopped() == live.stopped()
        assert rebuilt.rungs() == live.rungs()
        ids = [*sorted({r.trial_id for r in pool.made}), "new-a", "new-b"]
        for k, step, value in probes:
            trial = ids[k % len(ids)]
            assert rebuilt.should_stop(trial, step, value) == live.should_stop(trial, step,
                                                                               value)
        # A trial is stored once, and stopped only if the driver stopped it.
        df = reader.read(latest=False)
        assert df["trial_id"].is_unique
        assert set(df.loc[df["status"] == "stopped", "trial_id"]) <= set(pool.stopped)
        if cut is None or pool.waits < cut:
            assert len(df) == len(curves)


# ------------------------------------------------ raised budgets (issue 25, 17)


def resumed(d, results, fn=bowl, lines=None):
    """Run ``d`` as ``execute`` resumes it: the resume check (``prepare_writer``, which
    raises for a spec that cannot resume), then the driver; the stored table."""
    from sweep.engine.runner import prepare_writer

    spec = load_spec(d)
    prepare_writer(spec, results, fresh=False).folder.lock.release()
    _, store, _, drv = make(d, results, fn=fn)
    if lines is not None:
        drv.progress.log = lines.append
    drv.run()
    return store.read()


def test_a_raised_budget_extends_its_stage_or_is_refused_naming_why(results):
    """Issue 25 item 17: resumed after ``trials`` was raised, an lhs stage 8 -> 12 held 20
    trials of two designs and an all-discrete random stage 8 -> 12 held 18, both exiting
    0. A raise that extends the stage (random over a continuous axis, sobol) runs only
    the new trials after the stored ones; one that cannot is refused before anything
    runs, naming the stage and why."""
    from sweep.core.errors import SweepError

    continuous = {"x": sweep.uniform(0, 1), "lr_exp": sweep.uniform(-4, 0)}
    discrete = {"x": sweep.randint(0, 9), "lr_exp": sweep.randint(-4, 0)}
    for plan, params, why in (("lhs", continuous, "a Latin hypercube cuts each axis"),
                              ("random", discrete, "a random stage over an all-discrete")):
        name = f"raise-{plan}"
        first = resumed(doc(name, [{"plan": plan, "trials": 8}], parameters=params), results)
        with pytest.raises(SweepError, match=rf"stages\[0\]\.trials: was 8, now 12, but {why}"):
            resumed(doc(name, [{"plan": plan, "trials": 12}], parameters=params), results)
        kept = opened(load_spec(doc(name, [{"plan": plan, "trials": 8}],
                                    parameters=params)), results)[1].read()
        assert sorted(kept["trial_id"]) == sorted(first["trial_id"])  # nothing ran
    for plan in ("random", "sobol"):
        name = f"extend-{plan}"
        first = resumed(doc(name, [{"plan": plan, "trials": 8}], parameters=continuous),
                        results)
        more = resumed(doc(name, [{"plan": plan, "trials": 12}], parameters=continuous),
                       results)
        fresh = resumed(doc(name, [{"plan": plan, "trials": 12}], parameters=continuous),
                        results + "-fresh")
        assert len(more) == 12 and set(first["trial_id"]) < set(more["trial_id"])
        assert set(more["trial_id"]) == set(fresh["trial_id"])  # the 12-design itself


def test_a_fixed_refine_keeps_its_anchors_when_the_stage_it_refines_grows(results):
    """Issue 25 item 17: a ``region: each`` refine of 6, resumed after its stage 0 was
    raised, chose new anchors and held 12 trials of two sets of boxes. A fixed refine's
    boxes are decided when it starts: resumed, it keeps its anchors (and says that the
    history ranks others first now), and a raise of its own budget extends its boxes."""
    params = {"x": sweep.uniform(0, 1), "lr_exp": sweep.uniform(-4, 0)}

    def stages(coarse, fine):
        return [{"plan": "random", "trials": coarse},
                {"plan": "refine", "trials": fine, "region": "each", "top_k": 2}]

    from sweep.engine.planning import make_plan

    spec = load_spec(doc("keep", stages(12, 6), parameters=params))
    design = [c.params for c in make_plan(spec, spec.stages[0]).candidates()]
    target = design[10]  # a trial of the raised budget only: the new best

    def near_target(config):
        return {"loss": (config["x"] - target["x"]) ** 2
                + (config["lr_exp"] - target["lr_exp"]) ** 2}

    first = resumed(doc("keep", stages(8, 6), parameters=params), results, fn=near_target)
    anchors = set(first.loc[first["stage"] == 1, "parent_id"])
    lines = []
    raised = resumed(doc("keep", stages(12, 6), parameters=params), results,
                     fn=near_target, lines=lines)
    assert raised.groupby("stage").size().to_dict() == {0: 12, 1: 6}
    fine = raised[raised["stage"] == 1]
    assert set(fine["trial_id"]) == set(first.loc[first["stage"] == 1, "trial_id"])
    assert set(fine["parent_id"]) == anchors
    assert any(line.startswith("stage 1: keeps the anchors it started with") for line in lines)
    state = opened(spec, results)[1].folder.read_stage(1)
    assert {a["trial_id"] for a in state.described["anchors"]} == anchors
    # Its own budget raised: the same boxes, the six stored first, then four more.
    more = resumed(doc("keep", stages(12, 10), parameters=params), results, fn=near_target)
    fine = more[more["stage"] == 1]
    assert len(fine) == 10 and set(fine["parent_id"]) == anchors
    assert set(first.loc[first["stage"] == 1, "trial_id"]) < set(fine["trial_id"])


def test_a_stage_holding_trials_outside_its_design_says_so(results):
    """The driver's own check behind the resume rule: stored trials that the stage's fixed
    design does not hold (a design redrawn under them) are never mixed in silently."""
    params = {"x": sweep.uniform(0, 1), "lr_exp": sweep.uniform(-4, 0)}
    make(doc("outside", [{"plan": "lhs", "trials": 8}], parameters=params), results)[3].run()
    _, store, _, drv = make(doc("outside", [{"plan": "lhs", "trials": 12}],
                                parameters=params), results)
    lines = []
    drv.progress.log = lines.append
    drv.run()
    assert len(store.read()) == 20
    assert ("stage 0 (lhs): 8 stored trials are not in the stage's design (it changed since "
            "they ran): the stage holds trials of two designs") in lines


def test_a_stage_that_runs_fewer_trials_than_its_budget_says_why(results):
    """Issue 25 (weak): a one-point space ran 1 of 8 bayes trials and 0 refine trials
    without a word. Every stage that ends short of its budget says how short, and why."""
    params = {"opt": sweep.choice(["sgd"]), "depth": sweep.constant(3)}

    def flat(config):
        return {"loss": 1.0}

    expected = {
        "bayes": ["stage 0 (bayes): 1 of its 8 trials: the space has only 1 config"],
        "random-refine": [
            "stage 0 (random): 1 of its 2 trials: the space has only 1 config",
            "stage 1 (refine): 0 of its 8 trials: the space has only 1 config (a learning "
            "plan runs none again that an earlier stage ran)"],
        "sobol": ["stage 0 (sobol): 1 of its 8 trials: the space has only 1 config"],
        "grid": [],  # a grid's trials is a cap it fits in: its size is its own
    }
    stages = {"bayes": [{"plan": "bayes", "trials": 8}],
              "random-refine": [{"plan": "random", "trials": 2},
                                {"plan": "refine", "trials": 8}],
              "sobol": [{"plan": "sobol", "trials": 8}],
              "grid": [{"plan": "grid", "trials": 8}]}
    for name, want in expected.items():
        _, _, _, drv = make(doc(f"short-{name}", stages[name], parameters=params),
                            results, fn=flat)
        lines = []
        drv.progress.log = lines.append
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random's own warning of a small space
            drv.run()
        assert [line for line in lines if " of its " in line] == want
    # Sobol's 6 points fall on 5 of the 9 configs of this space: each runs once.
    _, _, _, drv = make(doc("short-repeats", [{"plan": "sobol", "trials": 6}],
                            parameters={"a": sweep.randint(0, 2), "b": sweep.randint(0, 2)}),
                        results, fn=flat)
    lines = []
    drv.progress.log = lines.append
    assert drv.run()[0].ran == 5
    assert [line for line in lines if " of its " in line] == [
        "stage 0 (sobol): 5 of its 6 trials: its design holds fewer distinct configs (each "
        "config runs once)"]


# ------------------------------------------------ huge integer bounds (issue 25, 19)


@pytest.mark.parametrize("plan", ["random", "bayes", "sobol"])
def test_the_widest_integer_axis_that_validates_runs_exactly(results, plan):
    """Issue 25 item 19: ``int_uniform`` from -2**62 to 2**62 passed validation and ended
    ``run`` with random or bayes in an OverflowError. The widest range that validates
    (2**50 values) runs with every plan, and stores the integers drawn exactly."""
    lo, hi = -2**49, 2**49 - 1

    def objective(config):
        return {"loss": abs(config["seed"]) / 2**49, "seed": config["seed"]}

    _, store, _, drv = make(doc(f"wide-{plan}", [{"plan": plan, "trials": 8}],
                                parameters={"seed": sweep.randint(lo, hi),
                                            "far": sweep.randint(2**62 - 3, 2**62)}),
                            results, fn=objective)
    drv.run()
    df = store.read()
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    seeds = [int(v) for v in df["params.seed"]]
    assert all(lo <= s <= hi for s in seeds) and len(set(seeds)) == 8
    assert seeds == [int(v) for v in df["metrics.seed"]]  # stored as drawn, to the unit
    assert all(2**62 - 3 <= int(v) <= 2**62 for v in df["params.far"])
