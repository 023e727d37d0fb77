"""Learning plans proposing in the background (sweep.engine.proposals) on the real driver
and a fake pool (no Ray): the driver never waits on a fit, budgets stay exact, a resumed
stage proposes nothing twice, a failing plan falls back to random configs without a
hang, and proposals made when a slot frees are the synchronous plan's."""

from __future__ import annotations

import io
import threading
import time

import pytest

import sweep
from sweep.core.records import TrialRecord
from sweep.engine import driver as driver_module
from sweep.engine import planning as planning_module
from sweep.engine import proposals as proposals_module
from sweep.engine.driver import Driver
from sweep.engine.progress import Progress
from sweep.engine.proposals import Proposer
from sweep.plans import Candidate, Plan
from sweep.space import Space, Uniform
from sweep.spec.sweep_file import load_spec
from tests.fakepool import FakeClock, FakePool, objective_of
from tests.test_driver import doc, make, opened, quadratic

SPACE = Space({"x": Uniform(0.0, 1.0)})


def napping(config):
    time.sleep(0.02)
    return {"loss": (config["x"] - 0.3) ** 2}


class Steps(Plan):
    """A learning plan that proposes x = 0.01, 0.02, ... (5 ms of compute each) and whose
    tell of its ``block_at``-th result is a fit that waits for ``release`` (10 s at most,
    so that a failing test does not hang)."""

    learns = True

    def __init__(self, space, total, block_at=0):
        super().__init__(space, total)
        self.asked = self.told = 0
        self.block_at = block_at
        self.fitting = threading.Event()
        self.release = threading.Event()

    def ask(self, n):
        out = []
        while len(out) < n and self.asked < self.total:
            time.sleep(0.005)
            self.asked += 1
            out.append(Candidate({"x": round(0.01 * self.asked, 6)}))
        self.finished = self.asked >= self.total
        return out

    def tell(self, records):
        for _ in records:
            self.told += 1
            if self.told == self.block_at:
                self.fitting.set()
                self.release.wait(10)
                self.fitting.clear()


class Broken(Steps):
    """Steps whose ask (or tell) raises once it has made ``after`` proposals."""

    def __init__(self, space, total, after, where):
        super().__init__(space, total)
        self.after, self.where = after, where

    def ask(self, n):
        if self.where == "ask":
            if self.asked >= self.after:
                raise RuntimeError("the fit diverged")
            n = min(n, self.after - self.asked)
        return super().ask(n)

    def tell(self, records):
        if self.where == "tell" and self.asked >= self.after:
            raise RuntimeError("the fit diverged")


def driver(d, results, fn=quadratic, pool_class=FakePool, log=None, **options):
    spec = load_spec(d)
    writer, reader = opened(spec, results)
    clock = FakeClock()
    pool = pool_class(objective_of(fn), clock=clock, slots=options.pop("slots", 2))
    progress = Progress(stream=log, quiet=log is None)
    return reader, pool, Driver(spec, writer, reader, pool, progress=progress, clock=clock,
                                **options)


def use_plan(monkeypatch, make):
    monkeypatch.setattr(planning_module, "make_plan",
                        lambda spec, stage: make(stage.space(spec.space)))


def made_ahead(monkeypatch, n):
    """Proposers keep ``n`` proposals made ahead whatever the pace."""
    monkeypatch.setattr(Proposer, "target", property(lambda self: n))


def proposers(monkeypatch):
    """The proposers the driver makes, in order."""
    made = []

    class Recorded(Proposer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(driver_module, "Proposer", Recorded)
    return made


def test_the_driver_submits_trials_while_a_fit_runs(results, monkeypatch):
    plan = Steps(SPACE, 12, block_at=4)
    use_plan(monkeypatch, lambda space: plan)

    class Watching(FakePool):
        during_fit = 0
        ended = 0

        def wait(self, timeout_s):
            done, reports = super().wait(timeout_s)
            Watching.ended += len(done)
            return done, reports

        def submit(self, task, timeout_s=None):
            if Watching.ended >= plan.block_at and not plan.release.is_set():
                # The 4th result is out: a submission now comes while its fit runs (the
                # fit starts on the proposer's thread; give it a moment on a busy machine).
                if plan.fitting.wait(5):
                    Watching.during_fit += 1
                plan.release.set()  # the fit ends once the driver has shown it goes on
            super().submit(task, timeout_s)

    # 20 ms trials, 5 ms proposals: the proposer keeps one made ahead (its own pace).
    reader, _, drv = driver(doc("fit", [{"plan": "random", "trials": 12}]), results,
                            fn=napping, pool_class=Watching)
    result = drv.run()[0]
    assert Watching.during_fit >= 1
    assert result.ran == 12 and len(reader.read()) == 12


def test_ask_never_waits_on_the_plan():
    plan = Steps(SPACE, 3, block_at=1)
    proposer = Proposer(plan)
    try:
        proposer.want(1)
        proposer.wait(5)
        assert [c.params["x"] for c in proposer.ask(1)] == [0.01]
        proposer.tell([TrialRecord(trial_id="a", params={"x": 0.01}, metrics={"loss": 1.0})])
        assert plan.fitting.wait(5)  # the fit is running, and blocks
        proposer.want(1)
        assert proposer.ask(1) == [] and proposer.busy  # at once: "soon", not "never"
        plan.release.set()
        proposer.wait(5)
        assert [c.params["x"] for c in proposer.ask(1)] == [0.02]
    finally:
        plan.release.set()
        proposer.close()


@pytest.mark.parametrize("ahead", [0, 3, 50])
def test_budgets_are_exact_with_proposals_made_ahead(results, monkeypatch, ahead):
    made = proposers(monkeypatch)
    made_ahead(monkeypatch, ahead)
    reader, _, drv = driver(doc(f"budget{ahead}", [{"plan": "random", "trials": 6},
                                                   {"plan": "bayes", "trials": 10}]),
                            results, slots=3)
    results_ = drv.run()
    df = reader.read()
    assert results_[1].ran == 10 and (df.stage == 1).sum() == 10
    assert made[0].made == 10 and made[0].plan.used == 10 and made[0].finished


def test_a_resumed_stage_with_a_buffer_proposes_nothing_twice(results, monkeypatch):
    made = proposers(monkeypatch)
    made_ahead(monkeypatch, 4)
    d = doc("resume", [{"plan": "bayes", "trials": 24}])

    class Interrupted(FakePool):
        lost = None

        def wait(self, timeout_s):
            out = super().wait(timeout_s)
            if len(self.submitted) >= 5 and made and len(made[-1]._buffer):
                Interrupted.lost = len(made[-1]._buffer)
                raise KeyboardInterrupt
            return out

    reader, _, drv = driver(d, results, pool_class=Interrupted, slots=3)
    with pytest.raises(KeyboardInterrupt):
        drv.run()
    assert Interrupted.lost  # proposals were buffered when the run stopped
    stored = len(reader.read())
    assert 0 < stored < 24
    calls: dict[float, int] = {}

    def counting(config):
        calls[config["x"]] = calls.get(config["x"], 0) + 1
        return quadratic(config)

    reader2, _, drv2 = driver(d, results, fn=counting, slots=3)
    result = drv2.run()[0]
    df = reader2.read()
    assert len(df) == 24 and df.trial_id.is_unique and df["params.x"].is_unique
    assert result.skipped == stored and result.ran == 24 - stored
    assert set(calls.values()) == {1}
    assert made[-1].plan.used == 24


@pytest.mark.parametrize("where", ["ask", "tell"])
def test_a_failing_plan_falls_back_to_random_with_a_warning(results, monkeypatch, where):
    use_plan(monkeypatch, lambda space: Broken(space, 15, after=5, where=where))
    log = io.StringIO()
    reader, _, drv = driver(doc(f"broken-{where}", [{"plan": "random", "trials": 15}]),
                            results, log=log)
    result = drv.run()[0]  # returns: no hang
    df = reader.read()
    assert result.ran == 15 and len(df) == 15 and df.trial_id.is_unique
    assert "warning: the plan (Broken) failed in the background" in log.getvalue()
    assert "the fit diverged" in log.getvalue()
    # The plan's own proposals came first, then random configs of the space.
    xs = list(df.sort_values("started_at")["params.x"])
    assert xs[:5] == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert all(0.0 <= x <= 1.0 for x in xs)


def test_proposals_made_when_a_slot_frees_are_the_synchronous_plans(results, monkeypatch):
    """With nothing made ahead (a proposal cheap next to a trial), each proposal knows
    every result told before it: a sequential run proposes what the plan proposes when
    asked in the driver."""
    monkeypatch.setattr(proposals_module, "ON_DEMAND_SHARE", float("inf"))
    monkeypatch.setattr(proposals_module, "BUSY", float("inf"))  # never in batches
    runs = []
    for background in (True, False):
        d = doc(f"same-{background}", [{"plan": "random", "trials": 5},
                                        {"plan": "bayes", "trials": 12}],
                parameters={"x": sweep.uniform(0, 1), "y": sweep.uniform(0, 1)}, batch=1)
        _, pool, drv = driver(d, results, slots=1, background=background)
        drv.run()
        runs.append([dict(i.params) for t in pool.submitted for i in t.items])
    assert runs[0] == runs[1] and len(runs[0]) == 17


def test_a_plan_that_decides_on_reports_is_never_asked_ahead(results):
    """pbt's proposals are its exploit decisions, each followed by ``submitted``: asked
    ahead behind the proposer they were dropped and its members never judged."""
    from sweep.core.metric import Metric
    from sweep.plans.pbt import PopulationBasedTraining

    space = Space({"lr": Uniform(0.0, 1.0)})
    pbt = PopulationBasedTraining(space, Metric("loss", "minimize"), population=4, interval=2)
    with pytest.raises(ValueError, match="decides on reports"):
        Proposer(pbt, threaded=False)
    _, _reader, _pool, drv = make(doc("pbt", [{"plan": "pbt", "population": 4,
                                              "interval": 2}]), results)
    run = drv._begin(drv.spec.stages[0])
    assert run.proposer is None and run.plan.decides_on_reports
    assert run.rule is not None and run.rule.plan is run.plan


def test_the_plans_slow_imports_are_warmed_on_a_thread(monkeypatch):
    """``sweep run`` imports what the sweep's plans import when they first propose while
    Ray starts (scipy: 0.5-1 s that a large cluster's free slots would wait for)."""
    import sys

    from sweep.engine.planning import warm_imports
    from sweep.plans import REGISTRY, plan_class
    from sweep.plans.fixed import RandomPlan

    class Heavy(RandomPlan):
        imports = ("xml.dom.minidom", "no_such_module_of_sweep")  # the second fails quietly

    monkeypatch.setitem(REGISTRY, "random", Heavy)
    monkeypatch.delitem(sys.modules, "xml.dom.minidom", raising=False)
    spec = load_spec(doc("warm", [{"plan": "random", "trials": 2}]))
    thread = warm_imports(spec)
    assert thread is not None and thread.daemon
    thread.join(10)
    assert "xml.dom.minidom" in sys.modules
    assert warm_imports(spec) is not None  # the failed one is tried again, never raised
    assert plan_class("bayes").imports and plan_class("refine").imports
