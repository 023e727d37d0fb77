"""The driver's policy: stages in order, plans asked and told, batches, retries,
timeouts, early stopping, progress. No Ray: it drives any pool with the verbs of
``sweep.engine.ray_pool.RayPool`` (the tests drive a fake one).

One stage is a short loop::

    tell the plan the stored history; start it (a learning plan then proposes on a
    background thread: sweep.engine.proposals)
    while the plan has more, or tasks are in flight:
        fill free slots: ask the plan (never waiting on a fit), skip stored ids, batch,
        submit
        wait for finished tasks and reports
        reports -> curves table, plan, stopping rule (a stop frees the slot at once)
        finished trials (retries for dead workers, timeouts) -> store, then plan.tell
    the pool's last reports (``collect``) -> curves table, plan, stopping rule

Every report is stored once and given to its stage's stopping rule in the order it is
stored (the curves table's ``seq``), so that a rule rebuilt from the stored curves after a
restart (``_rule``) decides as the live one did. A report that arrives after its trial's
result counts for the others but stops nothing (the trial has finished); one that arrives
after its stage ended (a stopped trial's task reporting before its cancellation lands) is
stored under its stage and judged by no rule (no trial of that stage is left to stop).

Example:
    >>> driver = Driver(spec, writer, reader, pool, progress=Progress(quiet=True))  # doctest: +SKIP
    >>> results = driver.run()
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import SweepError
from ..core.records import Report, TrialRecord
from ..plans.base import Plan
from ..spec.stages import Stage
from ..spec.sweep_file import Spec
from ..store.checkpoints import CheckpointStore
from ..store.folder import StageState
from ..store.reader import ResultsReader
from ..store.writer import ResultsWriter
from ..worker.returned import truncate
from ..worker.trial_ids import trial_id
from .curve_gate import CurveGate
from .memory import release_memory
from .planning import prepare_plan
from .progress import Progress
from .proposals import POLL_S as PROPOSAL_POLL_S
from .proposals import Proposer
from .tasks import Done, Item, Pool, Task

POLL_S = 0.5
# Ray spends 1.5-3 ms between two tasks on a worker: a task of short trials lasts
# about this long, so that the gaps cost about 1%.
TARGET_TASK_S = 0.2
# The queue holds one task per slot, so a task takes at most 1/(2 * slots) of the trials
# left to hand out.
TAIL_SHARE = 2
# ... but never less than this long: each task costs a gap.
MIN_TASK_S = 0.02
MAX_BATCH = 1000
SLOTS_REFRESH_S = 30.0
# A learning plan is asked in at least this many rounds per slot, so that most of its
# proposals are made knowing earlier results (batching would otherwise ask the whole
# budget of a stage of short trials at once).
LEARNING_ROUNDS = 4
# A task lost before any of its trials started (its node died first) is resubmitted
# without charging an attempt, at most this many times.
MAX_LOST = 20
# Trials between two hand-backs of freed memory to the OS (see sweep.engine.memory).
RELEASE_EVERY = 20_000


class Terminated(BaseException):
    """Raised in the driver when it receives SIGTERM."""


TERMINATING = threading.Event()


@dataclass
class StageResult:
    """What a stage did in this run."""

    stage: int
    planned: int
    skipped: int = 0
    ran: int = 0
    ok: int = 0
    failed: int = 0
    timeout: int = 0
    stopped: int = 0
    boxes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, status: str, n: int = 1) -> None:
        """Count ``n`` finished trials of ``status``."""
        self.ran += n
        if status in ("ok", "failed", "timeout", "stopped"):
            setattr(self, status, getattr(self, status) + n)


class Batcher:
    """How many trials go in one Ray task: 1 until trial times are known, then enough
    that a task lasts about TARGET_TASK_S, and fewer as the stage nears its end so that
    every slot finishes at about the same time (guided self-scheduling: a task takes at
    most 1/(TAIL_SHARE * slots) of the trials not yet handed out).

    Example: ``b = Batcher(None); b.observe([0.001]); b.size(10_000, 2) == 200``
    """

    def __init__(self, fixed: int | None):
        self.fixed = fixed
        self.mean: float | None = None

    def observe(self, durations: Sequence[float]) -> None:
        if not durations:
            return
        batch_mean = sum(durations) / len(durations)
        self.mean = batch_mean if self.mean is None else 0.7 * self.mean + 0.3 * batch_mean

    def size(self, unassigned: int, slots: int) -> int:
        """Trials for the next task, ``unassigned`` trials of the stage not yet handed
        out to any task."""
        if self.fixed is not None:
            return self.fixed
        if self.mean is None:
            return 1
        mean = max(self.mean, 1e-7)
        by_time = int(TARGET_TASK_S / mean + 1e-9)
        tail = max(int(MIN_TASK_S / mean + 1e-9),
                   math.ceil(unassigned / (TAIL_SHARE * max(slots, 1))))
        return max(1, min(by_time, MAX_BATCH, tail, unassigned))


@dataclass
class StageRun:
    """The state of one stage while it runs."""

    stage: Stage
    plan: Plan
    result: StageResult
    stored: set[str]
    seen: set[str] | None
    rule: Any = None
    proposer: Proposer | None = None  # the plan, when it proposes in the background
    retry: deque[Task] = field(default_factory=deque)
    running: dict[str, tuple[Task, Item]] = field(default_factory=dict)
    last_report: dict[str, Report] = field(default_factory=dict)
    # Checkpoints: the trials that had some when the stage began (they may restore), and
    # the gate that stores each step of a restored trial's curve once (live reports).
    known: set[str] = field(default_factory=set)
    gate: CurveGate | None = None
    done: int = 0
    best: float | None = None
    best_params: dict[str, Any] | None = None


class Driver:
    """Runs one sweep on a pool: stage after stage, writing results with ``writer`` and
    resuming what ``reader`` (over the same folder) finds stored."""

    def __init__(self, spec: Spec, writer: ResultsWriter, reader: ResultsReader, pool: Pool,
                 *, progress: Progress, max_concurrent: int | None = None,
                 retry_failed: bool = False, clock: Callable[[], float] = time.time,
                 background: bool = True, checkpoints: CheckpointStore | None = None):
        self.spec = spec
        self.writer = writer
        self.reader = reader
        self.pool = pool
        self.progress = progress
        self.max_concurrent = max_concurrent or spec.max_concurrent
        self.retry_failed = retry_failed
        # Learning plans propose on a background thread (False: in the loop, waiting).
        self.background = background
        # Rerun failed trials add a second row of a stored trial: the files say so.
        writer.repeats = writer.repeats or retry_failed
        self.clock = clock
        self.timeout = spec.timeout_s
        # The worker times each trial from its own start; this deadline, counted from
        # submission, is only the backstop for code that never returns to Python.
        self.backstop = None if spec.timeout_s is None else spec.timeout_s + max(
            10.0, spec.timeout_s)
        fixed = None if spec.batch == "auto" else int(spec.batch)
        # Trials whose reports are judged as they come (a stopping rule, pbt).
        self.live = spec.live_reports
        if spec.timeout_s is not None or self.live:
            fixed = 1  # each such trial is timed or stopped on its own
        self.batcher = Batcher(fixed)
        self.slots = pool.slots()
        self._slots_at = time.monotonic()
        self.nested = any(len(p) > 1 for p in spec.paths.values())
        self.results: list[StageResult] = []
        # With live reports (a stopping rule, a pbt stage), reports travel on their own and
        # may arrive after their trial's result, or after its stage: each trial's stage, to
        # store them under.
        self._stage_of: dict[str, int] | None = {} if self.live else None
        self.ckpts = checkpoints if spec.checkpoints.enabled else None
        self.ckpt_cost = CheckpointCost()

    # ------------------------------------------------------------------ stages

    def run(self) -> list[StageResult]:
        # What exists now (Ray, pandas, the spec) lives as long as the driver: keep it out
        # of the garbage collector's full passes, which otherwise cost tens of milliseconds
        # each, many times a second with short trials.
        gc.freeze()
        for stage in self.spec.stages:
            self.results.append(self.run_stage(stage))
        self.pool.settle()
        # What the tasks of stopped trials reported before their cancellation landed.
        self._on_reports(None, self.pool.collect())
        self.writer.flush()
        return self.results

    def run_stage(self, stage: Stage) -> StageResult:
        run = self._begin(stage)
        try:
            while self._step(run):
                pass
            # Every trial of the stage has its result: its reports are in the hub or
            # already here, and the stage ends only with them stored and judged.
            self._record(run, self._on_reports(run, self.pool.collect()))
        except BaseException:
            # Flush before cancelling: a cancel can race inside Ray and abort the process.
            self.writer.flush()
            self.pool.cancel_all()
            raise
        finally:
            if run.proposer is not None:
                run.proposer.close()
        self.writer.flush()
        self._describe(run, log=False)
        self._retain(run)
        for line in _shortfall(run, self.spec):
            self.progress.log(line)
        self.progress.finish_stage()
        return run.result

    def _begin(self, stage: Stage) -> StageRun:
        done = ("ok", "stopped") if self.retry_failed else ("ok", "failed", "timeout",
                                                             "stopped")
        stored = self.reader.trial_ids(stage.index, done)
        state = self.writer.folder.read_stage(stage.index)
        plan = prepare_plan(self.spec, stage,
                            lambda: self.reader.records(range(stage.index + 1)),
                            retry_failed=self.retry_failed,
                            decided=state.described if state and state.plan == stage.plan
                            else None)
        for note in plan.notes:
            self.progress.log(note)
        proposer = None
        if plan.learns and self.background and not plan.decides_on_reports:
            plan = proposer = Proposer(plan, log=self.progress.log, seed=(stage.seed, 7919))
        space = stage.space(self.spec.space)
        seen = set() if (space.is_discrete or plan.learns) else None
        total = plan.total if plan.total is not None else 0
        own = plan.stopping()
        if own is not None and self.spec.early_terminate is not None:
            self.progress.log(f"stage {stage.index} ({stage.plan}): the plan decides which "
                              f"trials stop; early_terminate does not apply to it")
        run = StageRun(stage, plan, StageResult(stage.index, total), stored, seen,
                       rule=own or self._rule(stage), proposer=proposer)
        run.done = len(stored)
        self._begin_checkpoints(run)
        if plan.learns:  # told the stored trials: it proposes none of them again
            run.result.skipped = len(stored)
        self._describe(run, log=True)
        self.progress.start_stage(stage.index, stage.plan, total, skipped=len(stored))
        return run

    def _begin_checkpoints(self, run: StageRun) -> None:
        """The trials that have checkpoints (one listing): those not stored were running
        when a driver died, and restore. With live reports, the curve gate learns what
        of their curves is stored (one filtered read of the stage's curves)."""
        if self.ckpts is None:
            return
        try:
            run.known = self.ckpts.trial_ids() - run.stored
        except SweepError as exc:
            self.progress.log(f"checkpoints: cannot list them ({exc}); trials start fresh")
        if self.live:
            run.gate = CurveGate()
            if run.known:
                run.gate.seed(self.reader.curve_steps(run.stage.index, run.known).items())

    def _retain(self, run: StageRun) -> None:
        """The end-of-stage retention rule: the final checkpoint of the stage's best
        ``keep_top`` trials stays, every other trial of the stage loses its own."""
        if self.ckpts is None:
            return
        try:
            have = self.ckpts.trial_ids()
            if not have:
                return
            ids = self.reader.trial_ids(run.stage.index) & have
            keep_top = self.spec.checkpoints.keep_top
            top: set[str] = set()
            if keep_top and ids:
                best = self.reader.best(self.spec.metric, keep_top, stages=[run.stage.index])
                top = {str(t) for t in best["trial_id"]}
            dropped = self.ckpts.prune_stage(top, sorted(ids), keep=1)
        except SweepError as exc:
            self.progress.log(f"stage {run.stage.index}: checkpoints not pruned ({exc})")
            return
        if dropped:
            self.progress.log(f"stage {run.stage.index}: checkpoints of {dropped} trials "
                              f"removed; the final ones of the top {len(top)} kept")

    def _rule(self, stage: Stage) -> Any:
        """The stage's stopping rule, rebuilt from the stored curves: fed every stored
        report of the stage in the order the live rule saw them (NaN included)."""
        if self.spec.early_terminate is None or self.spec.metric is None:
            return None
        from ..stopping import replay

        rule = self.spec.stopping_rule()
        replay(rule, self.reader.arrivals(stage.index, self.spec.metric.name))
        return rule

    def _describe(self, run: StageRun, *, log: bool) -> None:
        """Store what the stage's plan decided and its stopping rule's rungs (the
        folder's stage file, which the report draws)."""
        meta = run.plan.describe() or {}
        rungs = run.rule.rungs() if run.rule is not None else []
        if not meta and not rungs:
            return
        state = StageState.of(run.stage.index, run.stage.plan, meta, rungs)
        run.result.boxes = state.boxes
        self.writer.folder.write_stage(state)
        if log and run.result.boxes:
            self.progress.log(_boxes_text(run.stage, meta))

    # -------------------------------------------------------------------- loop

    def _step(self, run: StageRun) -> bool:
        """One turn of the loop; False when the stage is over."""
        if time.monotonic() - self._slots_at > SLOTS_REFRESH_S:
            self.slots, self._slots_at = self.pool.slots(), time.monotonic()
        self._fill(run)
        if not len(self.pool):
            if run.proposer is None or not run.proposer.busy:
                return False
            run.proposer.wait(POLL_S)  # nothing in flight: wait for the next proposal
            if TERMINATING.is_set():
                raise Terminated()
            return True
        done, reports = self.pool.wait(self._wait_s(run))
        if TERMINATING.is_set():
            raise Terminated()
        # Trials whose result is in hand have finished: their reports stop nothing.
        finishing = {i.trial_id for outcome in done for i in outcome.task.items}
        records = self._on_reports(run, reports, finishing)
        for outcome in done:
            records.extend(self._on_done(run, outcome))
        for task in self.pool.expire(self.clock()):
            task = self._retry_timeouts(run, task)
            records.extend(self._failed(run, task, "timeout",
                                        f"trial ran past timeout_s={self.timeout:g}"))
        self._record(run, records)
        return True

    def _wait_s(self, run: StageRun) -> float:
        poll = POLL_S
        if (run.proposer is not None and len(self.pool) < self._cap(run)
                and run.proposer.busy):
            poll = PROPOSAL_POLL_S  # a free slot: look at the buffer again soon
        deadline = self.pool.next_deadline()
        if deadline is None:
            return poll
        return max(0.0, min(poll, deadline - self.clock()))

    def _cap(self, run: StageRun) -> int:
        if self.max_concurrent:
            return self.max_concurrent
        # Timed or stoppable trials start the moment they are submitted: no queue; nor
        # for a learning plan (a queued trial is proposed without the running ones'
        # results), nor while trial times are unknown (a queue of one-trial probes costs
        # a task's overhead each, and the first result sizes the batches).
        timed = self.timeout is not None or self.live
        probing = self.batcher.mean is None and self.batcher.fixed is None
        return self.slots if timed or probing or run.plan.learns else 2 * self.slots

    def _fill(self, run: StageRun) -> None:
        """Submit what the plan proposes until the slots are full. The plan's contract
        (``sweep.plans.base.Plan``): ``finished`` says it is done; ``[]`` says "nothing
        yet", so the driver waits for a result and asks again; an answer whose trials
        are all stored or in flight already moved the plan on, so it is asked again."""
        while len(self.pool) < self._cap(run):
            if run.retry:
                self._submit(run, run.retry.popleft())
                continue
            if run.plan.finished:
                return
            left = max((run.plan.total or 0) - run.done, 1)
            size = self.batcher.size(max(left - len(run.running), 1), self.slots)
            if run.plan.learns:
                size = min(size, max(1, left // (LEARNING_ROUNDS * max(self.slots, 1))))
            if run.proposer is not None:
                run.proposer.pace(self.slots, self.batcher.mean)
                run.proposer.want(size * (self._cap(run) - len(self.pool)))
            candidates = run.plan.ask(size)
            if not candidates:
                if run.proposer is not None and run.proposer.busy:
                    return  # being made: the loop looks again within PROPOSAL_POLL_S
                if not len(self.pool) and not run.plan.finished:
                    # Nothing in flight: no result will come to tell it, so the stage ends.
                    self.progress.log(f"stage {run.stage.index}: the plan proposes nothing "
                                      f"more and no trial is running; the stage ends")
                return
            items = self._new_items(run, candidates)
            if items:
                self._submit(run, Task(items, attempt=1))

    def _new_items(self, run: StageRun, candidates: Iterable[Any]) -> list[Item]:
        items = []
        name, index = self.spec.name, run.stage.index
        for cand in candidates:
            tid = trial_id(name, index, cand.params, cand.key)
            if run.seen is not None:
                if tid in run.seen:
                    continue
                run.seen.add(tid)
            if tid in run.stored:
                if not run.plan.learns:
                    run.result.skipped += 1
                continue
            nested = self.spec.nest(cand.params) if self.nested else None
            items.append(Item(tid, cand.params, nested, cand.parent, cand.restore_from,
                              tid in run.known))
            if run.plan.decides_on_reports:
                run.plan.submitted(tid, cand)
        return items

    def _submit(self, run: StageRun, task: Task) -> None:
        self.pool.submit(task, self.backstop)
        for item in task.items:
            run.running[item.trial_id] = (task, item)
        if self._stage_of is not None:
            for item in task.items:
                self._stage_of[item.trial_id] = run.stage.index

    # ----------------------------------------------------------------- results

    def _on_done(self, run: StageRun, outcome: Done) -> list[TrialRecord]:
        task = outcome.task
        if outcome.crashed:
            return self._crashed(run, outcome)
        if outcome.result is None:
            return self._failed(run, task, "failed", outcome.error or "the task failed")
        items = {i.trial_id: i for i in task.items}
        records = []
        name, index, attempt = self.spec.name, run.stage.index, task.attempt
        running = run.running
        again: set[str] = set()
        for rec in outcome.result.records:
            item = items.pop(rec.trial_id, None)
            if item is None or running.pop(rec.trial_id, None) is None:
                continue  # stopped by the rule meanwhile: its row is written already
            if rec.status == "timeout" and self._retries_timeout(task):
                again.add(rec.trial_id)
                self._again(run, item, task.attempt + 1)
                continue
            # Positional, in TrialRecord's field order (the hot path of short trials).
            records.append(TrialRecord(
                name, index, rec.trial_id, item.parent, rec.status, item.params, rec.metrics,
                rec.error, attempt, rec.started_at, rec.finished_at, rec.duration_s,
                rec.node, rec.gpu_ids, rec.step, rec.restored_from, rec.checkpoint_bytes,
                rec.checkpoint_s))
        reports = outcome.result.reports
        if again:  # the next attempt reports them again (from its checkpoint, if any)
            reports = [r for r in reports if r.trial_id not in again]
        self._take_reports(run, reports, finishing={i.trial_id for i in task.items})
        unrun = [i for i in items.values() if i.trial_id in running]
        if unrun:
            # The worker saw its node's raylet die and started no more of its batch: those
            # trials are a crash's batch-mates that never started (no attempt charged).
            rest = Task(unrun, task.attempt, task.submitted, lost=task.lost)
            records.extend(self._crashed(run, Done(
                rest, error="its node died before they started", crashed=True,
                started=frozenset())))
        return records

    def _crashed(self, run: StageRun, outcome: Done) -> list[TrialRecord]:
        """A task whose worker or node died: each trial that had started is charged the
        attempt and retried while ``retries`` allow; one that had not (a batch-mate, a
        task lost before it ran) goes again at the same attempt (at most MAX_LOST times)."""
        task, failed = outcome.task, []
        for item in task.items:
            started = outcome.started is None or item.trial_id in outcome.started
            if not started and task.lost < MAX_LOST:
                again = Task([item], attempt=task.attempt, lost=task.lost + 1)
            elif task.attempt <= self.spec.retries:
                again = Task([item], attempt=task.attempt + 1)
            else:
                failed.append(item)
                continue
            run.retry.append(again)
            run.running.pop(item.trial_id, None)
            if run.gate is not None:
                run.gate.drop(item.trial_id)
        if not failed:
            return []
        return self._failed(run, Task(failed, task.attempt, task.submitted), "failed",
                            f"worker died on all {task.attempt} attempts: {outcome.error}")

    def _retries_timeout(self, task: Task) -> bool:
        """True when a timed-out trial of ``task`` runs again (``retry_timeouts``)."""
        return self.spec.retry_timeouts and task.attempt <= self.spec.retries

    def _again(self, run: StageRun, item: Item, attempt: int) -> None:
        """Run ``item`` again at ``attempt`` (from its last checkpoint, if it has one)."""
        run.retry.append(Task([item], attempt=attempt))
        run.running.pop(item.trial_id, None)
        if run.gate is not None:
            run.gate.drop(item.trial_id)

    def _retry_timeouts(self, run: StageRun, task: Task) -> Task:
        """A task past its backstop deadline: with ``retry_timeouts`` its trials run
        again while retries allow; returns what is left to record as timed out."""
        if not self._retries_timeout(task):
            return task
        for item in task.items:
            if item.trial_id in run.running:
                self._again(run, item, task.attempt + 1)
        return Task([], task.attempt, task.submitted)

    def _failed(self, run: StageRun, task: Task, status: str, error: str
                ) -> list[TrialRecord]:
        now = self.clock()
        out = []
        for item in task.items:
            if run.running.pop(item.trial_id, None) is None:
                continue
            last = run.last_report.get(item.trial_id)
            out.append(TrialRecord(
                sweep=self.spec.name, stage=run.stage.index, trial_id=item.trial_id,
                parent_id=item.parent, status=status, params=item.params, metrics={},
                error=truncate(error), attempts=task.attempt, started_at=task.submitted,
                finished_at=now, duration_s=now - task.submitted,
                step=None if last is None else last.step,
                restored_from=None if last is None else last.restored_from))
        return out

    def _on_reports(self, run: StageRun | None, reports: Sequence[Report],
                    finishing: Collection[str] = ()) -> list[TrialRecord]:
        """Store reports under their trials' stages; those of ``run``'s stage also go to
        its plan and rule. Returns the rows of the trials the rule stopped."""
        if not reports:
            return []
        # The hub may hand over a trial's reports out of order (an async actor runs its
        # calls concurrently): the worker's clock puts each batch back in order.
        reports = sorted(reports, key=lambda r: (r.time, r.step))
        current = None if run is None else run.stage.index
        stage_of = self._stage_of
        if stage_of is None:
            return [] if run is None else self._take_reports(run, reports, finishing)
        here: list[Report] = []
        elsewhere: dict[int, list[Report]] = {}
        for report in reports:
            stage = stage_of.get(report.trial_id)
            if stage is None:
                continue  # no trial of this driver's (nothing else pushes to its hub)
            if stage == current:
                here.append(report)
            else:
                elsewhere.setdefault(stage, []).append(report)
        for stage, late in sorted(elsewhere.items()):
            # Its stage has ended: stored, and judged by no rule (no trial is left to stop).
            self.writer.add_reports(self.spec.name, stage, late)
        if run is None or not here:
            return []
        return self._take_reports(run, here, finishing)

    def _take_reports(self, run: StageRun, reports: Sequence[Report],
                      finishing: Collection[str] = ()) -> list[TrialRecord]:
        """Store a stage's reports (numbered in this order), tell the plan, and give every
        one to the rule in the same order; a trial still running whose report the rule
        stops is stopped (its row returned). The rule sees a finished trial's reports too:
        they count for the others and stop nothing."""
        if not reports:
            return []
        if run.gate is not None:  # a restored trial's steps are stored once
            # A trial whose row is written (stopped, say, and running on for a step before
            # its stop lands) will not run again: its last reports are stored as they come.
            live: list[Report] = []
            ended: list[Report] = []
            for r in reports:
                (live if r.trial_id in run.running or r.trial_id in finishing
                 else ended).append(r)
            reports, ready = run.gate.admit(live)
            reports += ended
            self.writer.add_reports(self.spec.name, run.stage.index, ready + ended)
        else:
            self.writer.add_reports(self.spec.name, run.stage.index, reports)
        running = run.running
        for report in reports:
            if report.trial_id in running:
                run.last_report[report.trial_id] = report
            run.plan.tell_report(report)
        rule = run.rule
        metric = self.spec.metric.name if self.spec.metric else None
        if rule is None or metric is None:
            return []
        stopped: list[TrialRecord] = []
        for report in reports:
            decided = rule.should_stop(report.trial_id, report.step, report.metrics.get(metric))
            if decided and report.trial_id in running and report.trial_id not in finishing:
                stopped.append(self._stopped(run, report))
        if stopped:
            self.pool.stop([r.trial_id for r in stopped])
        return stopped

    def _stopped(self, run: StageRun, report: Report) -> TrialRecord:
        task, item = run.running.pop(report.trial_id)
        now = self.clock()
        return TrialRecord(
            sweep=self.spec.name, stage=run.stage.index, trial_id=item.trial_id,
            parent_id=item.parent, status="stopped", params=item.params,
            metrics=dict(report.metrics), error=None, attempts=task.attempt,
            started_at=task.submitted, finished_at=now, duration_s=now - task.submitted,
            step=report.step, restored_from=report.restored_from)

    def _record(self, run: StageRun, records: list[TrialRecord]) -> None:
        if records:
            if run.gate is not None:
                for r in records:  # a stopped trial's reports past its stop are real too
                    last = None if r.status == "stopped" else r.step
                    self.writer.add_reports(self.spec.name, run.stage.index,
                                            run.gate.end(r.trial_id, last))
            self.ckpt_cost.add(records)
            self.writer.add(records)
            self.batcher.observe([r.duration_s or 0.0 for r in records if r.status == "ok"])
            run.plan.tell(records)
            for status, n in Counter(r.status for r in records).items():
                run.result.add(status, n)
            if run.last_report or run.rule is not None:
                for r in records:
                    run.last_report.pop(r.trial_id, None)
                    if run.rule is not None:
                        run.rule.finished(r.trial_id)
            self._track_best(run, records)
            run.done += len(records)
            if run.done // RELEASE_EVERY != (run.done - len(records)) // RELEASE_EVERY:
                release_memory()
        failed = run.result.failed + run.result.timeout
        self.progress.update(done=run.done, running=min(len(self.pool), self.slots),
                             failed=failed, best=run.best, best_params=run.best_params,
                             note=self.ckpt_cost.text())

    def _track_best(self, run: StageRun, records: Sequence[TrialRecord]) -> None:
        metric = self.spec.metric
        if metric is None:
            return
        name = metric.name
        for r in records:
            value = r.metrics.get(name)
            if value is None or r.status != "ok" or not math.isfinite(value):
                continue
            if run.best is None or metric.better(value, run.best):
                run.best, run.best_params = value, dict(r.params)


class CheckpointCost:
    """What the finished attempts' checkpoints cost: bytes saved, seconds spent saving
    and restoring, trials that checkpointed, restores (for the progress line).

    Example: ``CheckpointCost(bytes=3 * 2**20, seconds=0.5, trials=2).text()`` ->
    ``"ckpt 3.0 MB in 0.5 s (2 trials)"``
    """

    def __init__(self, bytes: int = 0, seconds: float = 0.0, trials: int = 0,
                 restores: int = 0):
        self.bytes, self.seconds, self.trials, self.restores = bytes, seconds, trials, restores

    def add(self, records: Iterable[TrialRecord]) -> None:
        for r in records:
            if r.checkpoint_s is not None:
                self.trials += 1
                self.bytes += r.checkpoint_bytes or 0
                self.seconds += r.checkpoint_s
                self.restores += r.restored_from is not None

    def text(self) -> str:
        if not self.trials:
            return ""
        restored = f", {self.restores} restored" if self.restores else ""
        return (f"ckpt {self.bytes / 2**20:.1f} MB in {self.seconds:.1f} s "
                f"({self.trials} trials{restored})")


def _shortfall(run: StageRun, spec: Spec) -> list[str]:
    """Lines for a stage that ended holding fewer trials than its budget, or stored
    trials its plan's design does not hold: never without a word."""
    stage, lines = run.stage, []
    where = f"stage {stage.index} ({stage.plan})"
    outside = 0 if run.plan.learns else len(run.stored) - run.result.skipped
    if outside > 0:
        lines.append(f"{where}: {outside} stored trials are not in the stage's design (it "
                     f"changed since they ran): the stage holds trials of two designs")
    # A grid's size is its own (its `trials` is a cap it must fit in, or W&B's run_cap).
    budget = None if stage.plan == "grid" else stage.trials
    if budget is None or run.done >= budget:
        return lines
    space = stage.space(spec.space)
    possible = space.possible_combinations() if space.dims else 1
    if possible is not None and possible < budget:
        why = f"the space has only {possible} config{'' if possible == 1 else 's'}"
        if run.done < possible and run.plan.learns and stage.index > 0:
            why += " (a learning plan runs none again that an earlier stage ran)"
    elif run.plan.learns:
        why = "its plan found no more new configs to propose"
    else:
        why = "its design holds fewer distinct configs (each config runs once)"
    lines.append(f"{where}: {run.done} of its {budget} trials: {why}")
    return lines


def _boxes_text(stage: Stage, meta: dict[str, Any]) -> str:
    anchors = ", ".join(s["trial_id"] for s in meta.get("anchors", []))
    lines = [f"stage {stage.index} ({stage.plan}, region={meta.get('region')}): "
             f"anchors {anchors}"]
    for box in meta.get("boxes", []):
        ranges = ", ".join(f"{k}=[{_fmt(lo)}, {_fmt(hi)}]" for k, (lo, hi) in
                           box.get("bounds", {}).items())
        cats = ", ".join(f"{k}={v}" for k, v in box.get("categories", {}).items())
        lines.append(f"  box around {box['anchor']}: {ranges}{'; ' + cats if cats else ''}"
                     f" ({box['trials']} trials)")
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


__all__ = ["TERMINATING", "Batcher", "Driver", "StageResult", "Terminated"]
