"""Proposals of a learning plan made off the driver's critical path.

A learning plan's ``ask`` fits a model, and its cost grows with what it was told; made
in the driver, between a result and the next submission, it keeps a freed slot
waiting. ``Proposer`` owns a learning plan once it has started and runs it on a
background thread: the thread applies the results and reports the driver queued (in
their order), then asks the plan for proposals and puts them in a small buffer, the
plan's model as it stood (trials in flight and buffered proposals counted as pending,
as the plan does for what it proposed). The driver takes from the buffer without
waiting (``ask``) and queues what comes back (``tell``, ``tell_report``): it never
holds the plan's lock, so it never waits on a fit.

How much is made ahead (``target``): the driver says how many trials it could submit
now (``want``) and how fast trials end (``pace``: slots and the mean trial time). The
thread makes what is wanted, plus a buffer of about twice the trials that end while
one proposal is made, so that a slot that frees finds one ready. When a proposal costs
under ``ON_DEMAND_SHARE`` of a trial, nothing is made ahead: each proposal is made
when a slot frees, knowing every result told so far (as a synchronous plan would), and
the slot waits that fraction of a trial; a sequential sweep of long trials proposes
exactly what the plan proposes when asked in the driver. When several are wanted at
once (``MANY``), they are asked together (``Plan.ask_many``: the learning plans make
them from one fit with a batch rule, several times cheaper each); and once proposals
keep the thread half busy (``BUSY``: a large cluster, short trials), at least
``BATCH_AHEAD`` are kept made ahead (twice what slots use while one batch is made) and
refilled in batches once half are taken, until it is under a tenth busy (``IDLE``).

Exact budgets and resume: the plan counts every proposal it made, buffered or not, so
its budget is exact; a stage that ends normally has taken the whole buffer (the
proposer is ``finished`` when the plan is and the buffer is empty). A stage that is
interrupted loses its buffer (never submitted, never stored): the resumed plan is told
the stored trials and proposes the rest of its budget, none of them again.

Failures: an exception in the plan (tell, ask) is logged once as a warning and the
rest of the stage's budget is proposed at random from the plan's space (seeded),
never a hang; the driver's loop goes on.

Fixed plans (grid, random, Sobol, fixed refines) stay in the driver: they are cheap,
and their order is their seed's.

Thread, not a process or a Ray actor (``tests/bench/proposer_kind.py`` measures the
three): numpy and scipy release the GIL in the BLAS/LAPACK calls that dominate a fit,
so the driver's loop keeps its pace; a thread shares the plan (``describe`` and notes
need no copy, a user's plan needs not pickle) and hands a proposal over in
microseconds, where a process or an actor costs a serialisation of every result and
a round trip per proposal.

Example:
    >>> proposer = Proposer(plan, log=print)            # doctest: +SKIP
    >>> proposer.want(4); proposer.ask(4)               # doctest: +SKIP
    []                                                  # being made; ask again soon
    >>> proposer.close()                                # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..core.records import Report, TrialRecord
from ..plans.base import Candidate, Plan
from ..plans.fixed import RandomPlan

# A proposal made when a slot frees costs the slot this share of a trial at most;
# costlier ones are made ahead.
ON_DEMAND_SHARE = 0.005
# Proposals made ahead: about this many times those that slots use while one is made.
AHEAD = 2.0
# When proposals keep the thread at least BUSY busy (one at a time), at least
# BATCH_AHEAD are kept made ahead, so that they are asked in batches (cheaper each),
# until the thread is less than IDLE busy (batches are several times cheaper: the
# thresholds differ so that it does not switch back and forth).
BATCH_AHEAD = 16
BUSY = 0.5
IDLE = 0.1
# From this many proposals wanted at once, they are asked together (``Plan.ask_many``:
# one fit, a batch rule), at most MAX_MANY a turn; fewer are asked one at a time.
MANY = 2
MAX_MANY = 64
# How long the driver waits for the pool before it looks at the buffer again, while it
# has free slots and a proposal is being made.
POLL_S = 0.002
# How long ``close`` waits for the thread to let go of the plan.
CLOSE_S = 5.0


class Proposer(Plan):
    """A started learning plan, run on a background thread (``threaded``) behind a
    buffer of proposals. It is a ``Plan`` to the driver: ``ask`` takes from the buffer
    and never waits ([] with ``busy`` True: one is being made, ask again soon; [] with
    ``busy`` False: the plan has nothing until more results are told), ``tell`` and
    ``tell_report`` queue, ``finished`` is the plan's once the buffer is empty.

    Parameters:
        plan: the learning plan, told its history and started.
        log: where the warnings go (one line each).
        seed: the seed of the random proposals made if the plan fails.
        timer: how a proposal's compute is timed (a simulation may pass CPU time).
        threaded: False for a simulation, which calls ``step`` and ``publish`` itself.

    Example: ``Proposer(plan).ask(1)``
    """

    learns = True

    def __init__(self, plan: Plan, *, log: Callable[[str], None] = print,
                 seed: Any = 0, timer: Callable[[], float] = time.perf_counter,
                 threaded: bool = True):
        if plan.decides_on_reports:
            raise ValueError(f"{type(plan).__name__} decides on reports: its proposals "
                             f"follow its decisions and are asked on the driver's thread")
        super().__init__(plan.space, plan.total)
        self.plan = plan
        self.notes = plan.notes
        self.log = log
        self.seed = seed
        self.timer = timer
        self._lock = threading.Lock()  # the buffer, the queue and the counters
        self._plan_lock = threading.Lock()  # the plan: held while it works
        self._wake = threading.Condition(self._lock)
        self._ready = threading.Condition(self._lock)
        self._buffer: deque[Candidate] = deque()
        self._queue: deque[tuple[str, Any]] = deque()
        self._want = 0
        self._slots = 1
        self._trial_s: float | None = None
        self._cost: float | None = None  # seconds of compute per proposal (moving mean)
        self._batching = False  # made ahead in batches (see BATCH_AHEAD)
        self._turn_s: float | None = None  # seconds of one turn that made some (moving mean)
        self._working = False
        self._starved = False  # the plan answered [] with every result applied
        self._done = plan.finished  # the plan will propose nothing more
        self._closed = False
        self._fallback: RandomPlan | None = None
        self.made = 0  # proposals made (by the plan or the fallback)
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="sweep-proposer",
                                            daemon=True)
            self._thread.start()

    # ------------------------------------------------------------- the driver

    @property
    def total(self) -> int | None:  # type: ignore[override]
        return self.plan.total

    @total.setter
    def total(self, value: int | None) -> None:
        pass  # the plan's own (set by Plan.__init__)

    @property
    def finished(self) -> bool:  # type: ignore[override]
        return self._done and not self._buffer

    @finished.setter
    def finished(self, value: bool) -> None:
        pass  # Plan.__init__ sets it; the plan's own counts

    @property
    def busy(self) -> bool:
        """Whether a proposal is being made or will be without more results: [] from
        ``ask`` then means "soon", not "nothing until results come"."""
        with self._lock:
            return self._working or self._has_work()

    def ask(self, n: int) -> list[Candidate]:
        """Up to ``n`` buffered proposals, at once (never waits on the plan)."""
        with self._lock:
            out = [self._buffer.popleft() for _ in range(min(n, len(self._buffer)))]
            self._want = max(0, self._want - len(out))
            if self._has_work():
                self._wake.notify()
            return out

    def want(self, n: int) -> None:
        """The driver could submit ``n`` trials now (free slots times trials per task)."""
        with self._lock:
            self._want = max(0, int(n))
            if self._has_work():
                self._wake.notify()

    def pace(self, slots: int, trial_s: float | None) -> None:
        """Slots in the pool and the mean trial time (None until one is known)."""
        with self._lock:
            self._slots, self._trial_s = max(1, int(slots)), trial_s

    def tell(self, records: Sequence[TrialRecord]) -> None:
        if records:
            self._enqueue("tell", list(records))

    def tell_report(self, report: Report) -> None:
        self._enqueue("report", report)

    def wait(self, timeout_s: float) -> None:
        """Until a proposal is buffered, nothing is being made, or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not self._buffer and (self._working or self._has_work()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._ready.wait(left)

    def describe(self) -> dict[str, Any] | None:
        if not self._plan_lock.acquire(timeout=CLOSE_S):
            return None  # the plan is stuck in a fit: nothing to show
        try:
            return self.plan.describe()
        finally:
            self._plan_lock.release()

    def close(self) -> None:
        """Stop the thread (the buffer is dropped) and wait a moment for it."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            self._ready.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_S)

    def _ending(self) -> float | None:
        """Trials that end while one proposal is made (the thread's busy share)."""
        if self._cost is None or not self._trial_s:
            return None
        return self._slots / self._trial_s * self._cost

    @property
    def target(self) -> int:
        """Proposals to keep made ahead (see the module's text)."""
        ending = self._ending()
        if ending is None:
            return 0
        if self._batching:  # enough ahead to last while the next batch is made
            assert self._trial_s and self._turn_s is not None
            during = self._slots / self._trial_s * self._turn_s
            return min(max(BATCH_AHEAD, self._slots),
                       max(BATCH_AHEAD, math.ceil(AHEAD * during)))
        if self._cost is not None and self._trial_s and (
                self._cost < ON_DEMAND_SHARE * self._trial_s):
            return 0
        return min(max(BATCH_AHEAD, self._slots), max(1, math.ceil(AHEAD * ending)))

    # ------------------------------------------------------------- the thread

    def _enqueue(self, kind: str, item: Any) -> None:
        with self._lock:
            self._queue.append((kind, item))
            self._starved = False
            self._wake.notify()

    def _has_work(self) -> bool:
        """(Lock held.) Results to apply, or proposals to make."""
        if self._closed:
            return False
        if self._queue:
            return True
        return not self._done and not self._starved and self._need() > 0

    def _need(self) -> int:
        """(Lock held.) Proposals to make now: those wanted and the target ahead; in
        batch mode, only once the buffer is down to half its target, then all of it."""
        target, in_hand = self.target, self._in_hand()
        if target >= BATCH_AHEAD and not self._want and in_hand > target // 2:
            return 0
        return max(0, self._want + target - in_hand)

    def _in_hand(self) -> int:
        """(Lock held.) Proposals made and not taken yet."""
        return len(self._buffer)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._has_work() and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
            self.step()

    def step(self, emit: Callable[[Candidate, float], None] | None = None) -> int:
        """One turn of the background work: apply the queued results, then make the
        proposals the driver wants and the buffer's target, each handed to ``emit``
        with the seconds of compute the turn had spent when it was made (default:
        ``publish`` it at once; a simulation publishes it when its background worker
        would have finished it). Returns the number made. Never raises."""
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            need = self._need()
            self._working = True
        started = self.timer()
        made, waiting = 0, False
        with self._plan_lock:
            try:
                self._apply(queued)
                while made < need and not self._closed and not self._plan_done():
                    batch = self._propose(need - made)
                    if not batch:
                        waiting = True
                        break
                    for candidate in batch:
                        elapsed = self.timer() - started
                        if emit is None:
                            self.publish([candidate])
                        else:
                            emit(candidate, elapsed)
                    made += len(batch)
            except BaseException as exc:  # a plan's failure must never hang the stage
                self._fail(exc)
            done = self._plan_done()
        if made:
            turn = self.timer() - started
            per = turn / made
            self._cost = per if self._cost is None else 0.8 * self._cost + 0.2 * per
            self._turn_s = turn if self._turn_s is None else 0.8 * self._turn_s + 0.2 * turn
        with self._lock:
            ending = self._ending()
            if ending is not None:
                self._batching = ending >= (IDLE if self._batching else BUSY)
            self._done = done
            # [] with every result applied: nothing until more results are told.
            self._starved = waiting and not done and not self._queue
            self._working = False
            self._ready.notify_all()
        return made

    def publish(self, made: Sequence[Candidate]) -> None:
        """Put proposals in the buffer (``step`` does, or a simulation, later)."""
        with self._lock:
            self._buffer.extend(made)
            self.made += len(made)
            self._ready.notify_all()

    def _apply(self, queued: Sequence[tuple[str, Any]]) -> None:
        if self._fallback is not None:
            return
        for kind, item in queued:
            if kind == "tell":
                self.plan.tell(item)
            else:
                self.plan.tell_report(item)

    def _propose(self, wanted: int) -> list[Candidate]:
        """One proposal, or a batch of them when many are wanted at once."""
        if self._fallback is not None:
            return self._fallback.ask(wanted)
        if wanted >= MANY:
            return self.plan.ask_many(min(wanted, MAX_MANY))
        return self.plan.ask(1)

    def _plan_done(self) -> bool:
        if self._fallback is not None:
            return self._fallback.finished
        return self.plan.finished

    def _fail(self, exc: BaseException) -> None:
        """The plan raised: the rest of its budget is proposed at random."""
        if self._fallback is not None:  # the fallback itself failed: nothing more
            self.log(f"warning: random proposals failed too ({exc!r}); the stage "
                     f"proposes nothing more")
            self._fallback = RandomPlan(self.space, 0, self.seed)
            return
        used = getattr(self.plan, "used", self.made)
        left = None if self.plan.total is None else max(0, self.plan.total - used)
        self._fallback = RandomPlan(self.space, 10**9 if left is None else left, self.seed)
        name = type(self.plan).__name__
        self.log(f"warning: the plan ({name}) failed in the background: {exc!r}; the "
                 f"stage's remaining {'' if left is None else f'{left} '}trials are random "
                 f"configs of its space")


__all__ = ["AHEAD", "ON_DEMAND_SHARE", "POLL_S", "Proposer"]
