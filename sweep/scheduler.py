"""The driver loop: plans -> Ray tasks -> results in the store, stage after stage.

One Ray task runs one trial, or a batch of short trials when trial times are
measured to be short (so per-task overhead stays small), with the spec's
resources. Submission streams from the lazy plan with a bounded number of
tasks in flight; results go to the store as they arrive. When a stage has
nothing left pending or in flight, the next stage is built from the store
(refine stages read their seeds there) and submitted at once.

Retries are counted by the driver: a task whose worker or node died is
resubmitted (each trial of a batch on its own) until ``retries`` is spent, so
``attempts`` in the table is exact.

Example:
    >>> import sweep
    >>> df = sweep.run("jobs/mlp.yaml", results="results")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import yaml

from .errors import SweepError
from .plans import Plan, Refine, Seed, sampler
from .progress import Progress
from .ranking import rank
from .spec import Spec, Stage, fingerprint, load_spec
from .store import Store, column_type
from .trial import Objective, run_batch, trial_id

log = logging.getLogger("sweep")

POLL_S = 0.5
TARGET_TASK_S = 0.05
MAX_BATCH = 1000
SLOTS_REFRESH_S = 30.0


class Terminated(BaseException):
    """Raised in the driver when it receives SIGTERM."""


@dataclass
class _Task:
    items: list[tuple[str, dict[str, Any], dict[str, Any], str | None]]
    attempt: int
    submitted: float
    deadline: float | None


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
    boxes: list[dict[str, Any]] = field(default_factory=list)


class _Batcher:
    """How many trials go in one Ray task: 1 until trial times are known, then enough
    that a task lasts about TARGET_TASK_S, without starving any slot at the end."""

    def __init__(self, fixed: int | None):
        self.fixed = fixed
        self.mean: float | None = None

    def observe(self, durations: list[float]) -> None:
        if not durations:
            return
        batch_mean = sum(durations) / len(durations)
        self.mean = batch_mean if self.mean is None else 0.7 * self.mean + 0.3 * batch_mean

    def size(self, remaining: int, slots: int) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.mean is None:
            return 1
        by_time = int(TARGET_TASK_S / max(self.mean, 1e-7))
        fair = max(1, math.ceil(remaining / max(slots, 1)))
        return max(1, min(by_time, MAX_BATCH, fair))


def param_types(spec: Spec) -> dict[str, pa.DataType]:
    """The Arrow type of each parameter column (from the priors and every stage's fixed
    values, so no column changes type between files)."""
    from .space import Choice, Constant, _scalar_kind

    kinds: dict[str, set[str]] = {}
    for name, dist in spec.space.items():
        if isinstance(dist, Choice):
            kinds[name] = {_scalar_kind(v) for v in dist.values}
        elif isinstance(dist, Constant):
            kinds[name] = {_kind_of(dist.value)}
        else:
            kinds[name] = {"int" if dist.kind == "int" else "float"}
        for stage in spec.stages:
            if name in stage.fixed:
                kinds[name].add(_kind_of(stage.fixed[name]))
            if name in stage.values:
                kinds[name].update(_kind_of(v) for v in stage.values[name])
    return {name: column_type(k) for name, k in kinds.items()}


def _kind_of(value: Any) -> str:
    from .space import _scalar_kind

    kind = _scalar_kind(value)
    return "json" if kind == "other" else kind


def decode_params(row: Mapping[str, Any], spec: Spec, types: Mapping[str, pa.DataType]
                  ) -> dict[str, Any]:
    """A flat config back from a stored row (values of string columns decoded to the
    choice values they stand for)."""
    from .space import Choice
    from .store import _cell

    out = {}
    for name, dist in spec.space.items():
        value = row.get(f"params.{name}")
        if isinstance(value, float) and math.isnan(value):
            value = None
        if isinstance(dist, Choice):
            lookup = {_cell(v, types[name]): v for v in dist.values}
            value = lookup.get(value, value)
        elif hasattr(value, "item"):
            value = value.item()
        if dist.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        out[name] = value
    return out


def build_plan(spec: Spec, stage: Stage, store: Store, progress: Progress
               ) -> tuple[Plan, list[dict[str, Any]]]:
    """A stage's plan and, for a refine stage, its boxes (seeds read from ``store``).

    Example: ``plan, boxes = build_plan(spec, spec.stages[1], store, Progress(quiet=True))``
    """
    space = stage.space(spec.space)
    if stage.plan == "grid":
        from .plans import Grid

        grid = Grid(space, points=stage.axis_points, values=stage.values)
        if stage.truncate and stage.trials is not None:
            return _Truncated(grid, stage.trials), []
        return grid, []
    if stage.plan != "refine":
        return sampler(space, stage.plan, stage.trials or 0, stage.seed), []
    seeds = seeds_from_store(spec, store, stage, progress, store.param_types)
    plan = Refine(
        space, seeds, trials=stage.trials, region=stage.region, shrink=stage.shrink,
        margin=stage.margin, min_width=stage.min_width, categorical=stage.categorical,
        sample=stage.sample, points=stage.axis_points, seed=stage.seed,
    )
    return plan, [dict(b.describe(), stage=stage.index) for b in plan.boxes]


def seeds_from_store(spec: Spec, store: Store, stage: Stage, progress: Progress,
                     types: Mapping[str, pa.DataType]) -> list[Seed]:
    """The seeds of a refine stage: the top-k stored trials of the stage(s) it refines."""
    sources = [stage.index - 1] if stage.source == "previous" else list(range(stage.index))
    store.flush()
    df = store.read(stages=sources)
    ranked = rank(df, spec.metric.name, spec.metric.goal)
    k = stage.refine_top_k
    where = f"stage {sources[0]}" if len(sources) == 1 else f"stages 0-{sources[-1]}"
    if ranked.empty:
        raise SweepError(
            f"stage {stage.index} (refine) has nothing to refine: no trial of {where} "
            f"finished ok with a finite {spec.metric.name!r}; see the error column "
            f"of {where} (sweep status / sweep top)"
        )
    if len(ranked) < k:
        progress.log(f"stage {stage.index}: only {len(ranked)} trials of {where} "
                     f"succeeded; refining around those (top_k={k})")
    top = ranked.head(k)
    return [Seed(str(row["trial_id"]), decode_params(row, spec, types))
            for row in top.to_dict("records")]


# --------------------------------------------------------------------- Ray


def connect(address: str | None = None, *, verbose: bool = False) -> bool:
    """Use the Ray that is already initialised, else ``ray.init`` (``address``, else
    RAY_ADDRESS, else a new local instance). Returns True when this call started it.

    Example: ``started = connect()`` then ``ray.shutdown()`` only if ``started``.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "logging_level": logging.ERROR if not verbose else logging.INFO,
        "log_to_driver": verbose,
        "configure_logging": True,
    }
    if address is None:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or "a new local instance"
        raise SweepError(f"could not connect to Ray at {where}: {exc}") from None
    return True


def _slots(resources: Any) -> int:
    """How many trials the cluster can run at once with these resources."""
    import ray

    total = ray.cluster_resources()
    need = {"CPU": resources.num_cpus, "GPU": resources.num_gpus,
            "memory": resources.memory or 0, **resources.custom}
    n = math.inf
    for key, amount in need.items():
        if amount:
            n = min(n, math.floor(total.get(key, 0.0) / amount + 1e-9))
    if n == math.inf:
        n = 1
    if n < 1:
        wanted = {k: v for k, v in need.items() if v}
        log.warning("no node has %s right now; trials wait until one joins", wanted)
        n = 1
    return int(n)


# ------------------------------------------------------------------- driver


class Driver:
    """Runs one sweep: stage after stage, resuming what the store already holds."""

    def __init__(
        self,
        spec: Spec,
        store: Store,
        *,
        progress: Progress,
        max_concurrent: int | None = None,
        retry_failed: bool = False,
    ):
        import ray

        self.ray = ray
        self.spec = spec
        self.store = store
        self.progress = progress
        self.max_concurrent = max_concurrent or spec.max_concurrent
        self.retry_failed = retry_failed
        objective = Objective(
            metric=spec.metric.name,
            target=spec.objective,
            command=spec.command,
            program=spec.program,
            sweep=spec.name,
            code_dirs=[os.getcwd(), str(Path(spec.base_dir).resolve())],
            timeout_s=spec.timeout_s,
            cwd=os.getcwd(),
        )
        self.objective_ref = ray.put(objective)
        options = dict(spec.resources.ray_options(), max_retries=0)
        self.remote = ray.remote(run_batch).options(**options)
        if spec.batch != "auto":
            fixed: int | None = int(spec.batch)
        elif spec.timeout_s is not None:
            fixed = 1
        else:
            fixed = None
        self.batcher = _Batcher(fixed)
        self.results: list[StageResult] = []
        self._warned: set[str] = set()

    # ------------------------------------------------------------ planning

    def plan_for(self, stage: Stage) -> tuple[Plan, list[dict[str, Any]]]:
        """The stage's plan (refine stages from stored results) and its boxes."""
        return build_plan(self.spec, stage, self.store, self.progress)

    # ------------------------------------------------------------- running

    def run(self) -> list[StageResult]:
        for stage in self.spec.stages:
            self.results.append(self.run_stage(stage))
        self.store.flush()
        return self.results

    def run_stage(self, stage: Stage) -> StageResult:
        plan, boxes = self.plan_for(stage)
        if boxes:
            self._describe_refine(stage, plan, boxes)
        stored_statuses = ("ok",) if self.retry_failed else ("ok", "failed", "timeout")
        done_ids = self.store.trial_ids(stage.index, stored_statuses)
        result = StageResult(stage.index, len(plan), boxes=boxes)
        self.progress.start_stage(stage.index, stage.plan, len(plan), skipped=len(done_ids))
        self._stage_loop(stage, plan, done_ids, result)
        self.store.flush()
        self.progress.finish_stage()
        return result

    def _describe_refine(self, stage: Stage, plan: Plan, boxes: list[dict[str, Any]]) -> None:
        assert isinstance(plan, Refine)
        lines = [f"stage {stage.index} (refine, region={stage.region}): seeds "
                 + ", ".join(s.trial_id for s in plan.seeds)]
        for box in boxes:
            ranges = ", ".join(f"{k}=[{_fmt(lo)}, {_fmt(hi)}]"
                               for k, (lo, hi) in box["bounds"].items())
            cats = ", ".join(f"{k}={v}" for k, v in box["categories"].items())
            lines.append(f"  box around {box['seed']}: {ranges}{'; ' + cats if cats else ''}"
                         f" ({box['trials']} trials)")
        self.progress.log("\n".join(lines))
        meta = {
            "stage": stage.index, "plan": "refine", "region": stage.region,
            "seeds": [{"trial_id": s.trial_id, "params": s.params} for s in plan.seeds],
            "boxes": boxes,
        }
        self.store.write_text(f"stages/stage-{stage.index}.json",
                              json.dumps(meta, indent=2, default=str))

    def _candidates(
        self, stage: Stage, plan: Plan, done_ids: set[str], result: StageResult
    ) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], str | None]]:
        # Only a discrete space can yield the same config twice (Sobol or LHS points
        # rounding to one grid cell); a continuous one needs no set of every id.
        seen: set[str] | None = set() if stage.space(self.spec.space).is_discrete else None
        name, index = self.spec.name, stage.index
        nested = any(len(path) > 1 for path in self.spec.paths.values())
        nest = self.spec.nest if nested else _no_nesting
        for params, parent in plan.candidates():
            tid = trial_id(name, index, params)
            if seen is not None:
                if tid in seen:
                    continue
                seen.add(tid)
            if tid in done_ids:
                result.skipped += 1
                continue
            yield tid, params, nest(params), parent

    def _stage_loop(
        self, stage: Stage, plan: Plan, done_ids: set[str], result: StageResult
    ) -> None:
        ray = self.ray
        candidates = self._candidates(stage, plan, done_ids, result)
        retry: deque[tuple[list[Any], int]] = deque()
        inflight: dict[Any, _Task] = {}
        exhausted = False
        slots = _slots(self.spec.resources)
        slots_at = time.monotonic()
        timeout = self.spec.timeout_s
        if timeout is not None:
            # The worker times each trial from its start; this deadline, counted from
            # submission, is only the backstop for code that never returns to Python.
            timeout += max(10.0, timeout)
        best: float | None = None
        best_params: dict[str, Any] | None = None
        done = len(done_ids)
        failed = 0
        submitted = 0
        goal_sign = 1.0 if self.spec.metric.goal == "minimize" else -1.0
        metric = self.spec.metric.name

        def cap() -> int:
            if self.max_concurrent:
                return self.max_concurrent
            # Trials with a timeout start the moment they are submitted, so no queue.
            return slots if timeout is not None else 2 * slots

        def submit(items: list[Any], attempt: int) -> None:
            payload = [(tid, flat, nested) for tid, flat, nested, _ in items]
            ref = self.remote.remote(self.objective_ref, payload)
            now = time.time()
            inflight[ref] = _Task(items, attempt, now, None if timeout is None else now + timeout)

        try:
            while True:
                if time.monotonic() - slots_at > SLOTS_REFRESH_S:
                    slots, slots_at = _slots(self.spec.resources), time.monotonic()
                while len(inflight) < cap() and (retry or not exhausted):
                    if retry:
                        items, attempt = retry.popleft()
                        submit(items, attempt)
                        continue
                    left = len(plan) - result.skipped - submitted
                    size = self.batcher.size(max(left, 1), slots)
                    batch = []
                    for item in candidates:
                        batch.append(item)
                        if len(batch) >= size:
                            break
                    if not batch:
                        exhausted = True
                        break
                    submitted += len(batch)
                    submit(batch, 1)
                if not inflight:
                    break
                wait_s = POLL_S
                if timeout is not None:
                    next_deadline = min(t.deadline for t in inflight.values())  # type: ignore
                    wait_s = max(0.0, min(wait_s, next_deadline - time.time()))
                refs = list(inflight)
                ready, rest = ray.wait(refs, num_returns=1, timeout=wait_s)
                if _TERMINATING.is_set():
                    raise Terminated()
                if ready and rest:
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
                rows: list[dict[str, Any]] = []
                for ref in ready:
                    task = inflight.pop(ref)
                    rows.extend(self._collect(ref, task, stage, retry))
                if timeout is not None:
                    rows.extend(self._expire(inflight, stage))
                if rows:
                    self.store.add(rows)
                    self.batcher.observe([r["duration_s"] for r in rows if r["status"] == "ok"])
                    for r in rows:
                        done += 1
                        status = r["status"]
                        if status == "ok":
                            result.ok += 1
                            value = r["metrics"].get(metric)
                            if value is not None and math.isfinite(value) and (
                                best is None or goal_sign * value < goal_sign * best
                            ):
                                best, best_params = value, r["params"]
                        elif status == "timeout":
                            result.timeout += 1
                            failed += 1
                        else:
                            result.failed += 1
                            failed += 1
                    result.ran += len(rows)
                running = min(len(inflight), slots)
                self.progress.update(done=done, running=running, failed=failed, best=best,
                                     best_params=best_params)
        except BaseException:
            # Flush before cancelling: a cancel can race inside Ray and abort the process.
            self.store.flush()
            for ref in inflight:
                ray.cancel(ref, force=True)
            raise
        finally:
            self.store.flush()

    def _collect(self, ref: Any, task: _Task, stage: Stage,
                 retry: deque[tuple[list[Any], int]]) -> list[dict[str, Any]]:
        ray = self.ray
        try:
            records = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return []
        except ray.exceptions.RayTaskError as exc:
            return [self._row(stage, item, task, "failed", error=f"task error: {exc}"[:4000])
                    for item in task.items]
        except ray.exceptions.RayError as exc:
            if task.attempt <= self.spec.retries:
                for item in task.items:
                    retry.append(([item], task.attempt + 1))
                return []
            return [self._row(stage, item, task, "failed",
                              error=f"worker died on all {task.attempt} attempts: "
                              f"{type(exc).__name__}: {str(exc)[:2000]}")
                    for item in task.items]
        parents = {item[0]: item for item in task.items}
        rows = []
        for rec in records:
            item = parents[rec["trial_id"]]
            row = {
                "sweep": self.spec.name, "stage": stage.index, "trial_id": rec["trial_id"],
                "parent_id": item[3], "status": rec["status"], "params": item[1],
                "metrics": rec["metrics"], "error": rec["error"], "attempts": task.attempt,
                "started_at": rec["started_at"], "finished_at": rec["finished_at"],
                "duration_s": rec["duration_s"], "node": rec["node"], "gpu_ids": rec["gpu_ids"],
            }
            rows.append(row)
        return rows

    def _expire(self, inflight: dict[Any, _Task], stage: Stage) -> list[dict[str, Any]]:
        now = time.time()
        rows = []
        for ref, task in list(inflight.items()):
            if task.deadline is not None and now >= task.deadline:
                self.ray.cancel(ref, force=True)
                del inflight[ref]
                rows.extend(
                    self._row(stage, item, task, "timeout",
                              error=f"trial ran past timeout_s={self.spec.timeout_s:g}")
                    for item in task.items
                )
        return rows

    def _row(self, stage: Stage, item: Any, task: _Task, status: str, error: str
             ) -> dict[str, Any]:
        now = time.time()
        return {
            "sweep": self.spec.name, "stage": stage.index, "trial_id": item[0],
            "parent_id": item[3], "status": status, "params": item[1], "metrics": {},
            "error": error, "attempts": task.attempt, "started_at": task.submitted,
            "finished_at": now, "duration_s": now - task.submitted, "node": "", "gpu_ids": "",
        }


def _no_nesting(params: dict[str, Any]) -> None:
    """Flat params are the objective's config as they are (sent once, not twice)."""
    return None


class _Truncated(Plan):
    """The first n configs of a plan (W&B's run_cap on a grid)."""

    def __init__(self, plan: Plan, n: int):
        self.plan, self.n = plan, min(n, len(plan))

    def __len__(self) -> int:
        return self.n

    def candidates(self) -> Iterator[tuple[dict[str, Any], str | None]]:
        for i, item in enumerate(self.plan.candidates()):
            if i >= self.n:
                return
            yield item


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


# ----------------------------------------------------------------- entry


@dataclass
class Outcome:
    """What ``execute`` returns: the table, the per-stage results and where they live."""

    spec: Spec
    store: Store
    stages: list[StageResult]
    table: pd.DataFrame


def open_store(spec: Spec, results: str) -> Store:
    """The store of ``spec`` under ``results`` (no side effects)."""
    return Store(results, spec.name, param_types=param_types(spec))


def prepare_store(spec: Spec, results: str, *, fresh: bool) -> Store:
    """Check the results root, refuse a different spec under the same name (unless
    ``fresh``, which moves the old results aside), take the lock, store the spec and
    fold journals left by a driver that died."""
    store = open_store(spec, results)
    store.check_writable()
    stored = store.read_text("spec.yaml")
    if stored is not None:
        try:
            old = yaml.safe_load(stored) or {}
        except yaml.YAMLError:
            old = {}
        same = isinstance(old, dict) and fingerprint(old) == spec.fingerprint()
        if not same and not fresh:
            raise SweepError(
                f"results for a different sweep named {spec.name!r} are in "
                f"{store.dir}; rerun with --fresh to move them aside and start over "
                f"(nothing is deleted), or give this sweep another name"
            )
        if fresh:
            holder = store.lock_holder()
            if holder and store.driver_alive() is not False:
                store.acquire_lock()  # raises, naming the running driver
            moved = store.move_aside()
            if moved:
                log.warning("moved the earlier results of %r to %s", spec.name, moved)
    elif fresh:
        store.move_aside()
    store.acquire_lock()
    try:
        store.write_text("spec.yaml", spec.to_yaml())
        recovered = store.recover()
        if recovered:
            log.warning("recovered %d results from the journal of an interrupted run",
                        recovered)
    except BaseException:
        store.release_lock()
        raise
    return store


def execute(
    spec: str | Path | Mapping[str, Any] | Spec,
    *,
    results: str = "results",
    address: str | None = None,
    fresh: bool = False,
    retry_failed: bool = False,
    max_concurrent: int | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
) -> Outcome:
    """Run a sweep end to end and return its outcome (see ``run`` for the table only)."""
    spec = load_spec(spec)
    progress = progress or Progress(quiet=True, metric=spec.metric.name)
    store = prepare_store(spec, results, fresh=fresh)
    started = False
    previous = None
    try:
        started = connect(address, verbose=verbose)
        previous = _install_sigterm()  # after ray.init, which installs its own handler
        driver = Driver(spec, store, progress=progress, max_concurrent=max_concurrent,
                        retry_failed=retry_failed)
        stages = driver.run()
        table = store.read()
    finally:
        try:
            store.close()
        finally:
            store.release_lock()
            _restore_sigterm(previous)
            if started:
                import ray

                ray.shutdown()
    return Outcome(spec, store, stages, table)


def run(
    spec: str | Path | Mapping[str, Any] | Spec,
    *,
    results: str = "results",
    address: str | None = None,
    fresh: bool = False,
    retry_failed: bool = False,
    max_concurrent: int | None = None,
) -> pd.DataFrame:
    """Run a sweep on Ray and return all its trials (one row per trial).

    ``spec`` is a path to a sweep file, a dict (whose ``objective`` may be a Python
    callable) or a ``Spec``. An already initialised Ray is used as it is; otherwise
    ``ray.init(address)`` (no address: RAY_ADDRESS, else a new local instance),
    shut down at the end. Rerunning resumes: stored trials are not run again.

    Example:
        >>> df = sweep.run({"name": "quad", "objective": lambda c: (c["x"] - 1) ** 2,
        ...                 "metric": {"name": "loss"},
        ...                 "parameters": {"x": sweep.uniform(-5, 5)},
        ...                 "stages": [{"plan": "random", "trials": 16}]})  # doctest: +SKIP
    """
    return execute(spec, results=results, address=address, fresh=fresh,
                   retry_failed=retry_failed, max_concurrent=max_concurrent).table


_TERMINATING = threading.Event()


def _install_sigterm() -> Any:
    """On SIGTERM, stop at the driver loop's next turn (raising inside ``ray.wait``
    would be swallowed by Ray)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    _TERMINATING.clear()

    def handler(signum: int, frame: Any) -> None:
        _TERMINATING.set()

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
    _TERMINATING.clear()
