"""Running a sweep end to end: the spec, its results folder, Ray, the pool and the driver.

``execute`` prepares the results folder (resume check, lock, the journal of a
driver that died), connects to Ray (or starts a local one), and runs the driver
(``sweep.engine.driver``) on a pool of Ray tasks (``sweep.engine.ray_pool``). ``run`` returns the
table. Stages run in order; a refine or bayes stage is told the stored results
of the stages before it, so a killed driver resumes where it stopped.

Example:
    >>> import sweep
    >>> df = sweep.run("jobs/mlp.yaml", results="results")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import SpecError, SweepError
from ..spec.safe_yaml import load_yaml
from ..spec.sweep_file import Spec, load_spec, resume_problem
from ..store.checkpoints import CheckpointStore
from ..store.codec import Codec
from ..store.folder import ResultsFolder
from ..store.reader import ResultsReader
from ..store.writer import ResultsWriter
from ..worker.wrapper import Objective
from .driver import TERMINATING, Driver, StageResult, Terminated
from .memory import release_memory, steady_allocator
from .planning import warm_imports
from .progress import Progress

log = logging.getLogger("sweep")

__all__ = ["RunResult", "Terminated", "checkpoints_of", "codec_of", "connect", "execute",
           "open_reader", "open_writer", "prepare_writer", "run"]


def codec_of(spec: Spec) -> Codec:
    """The parameter columns' codec of a sweep: from the priors and every value a stage
    may give a parameter (fixed and grid values), so no column changes type."""
    extra: dict[str, list[Any]] = {}
    for stage in spec.stages:
        for name, value in stage.fixed.items():
            extra.setdefault(name, []).append(value)
        for name, values in stage.values.items():
            extra.setdefault(name, []).extend(values)
    return Codec.of(spec.space, extra)


def open_reader(spec: Spec, results: str, folder: str | None = None) -> ResultsReader:
    """The reader of ``spec``'s results under ``results`` (in ``folder``, default the
    spec's own); no side effects.

    Example: ``open_reader(spec, "results").counts()``
    """
    return ResultsReader(ResultsFolder(results, folder or spec.folder), codec_of(spec))


def open_writer(spec: Spec, results: str, **options: Any) -> ResultsWriter:
    """The writer of ``spec``'s results under ``results`` (``options``: the writer's);
    no side effects (``prepare_writer`` also checks, locks and recovers)."""
    return ResultsWriter(ResultsFolder(results, spec.folder), codec_of(spec), **options)


def prepare_writer(spec: Spec, results: str, *, fresh: bool) -> ResultsWriter:
    """Check the results root, refuse a changed spec under the same folder (unless
    ``fresh``, which moves the old results aside), take the lock, store the spec and
    fold journals left by a driver that died."""
    writer = open_writer(spec, results)
    folder = writer.folder
    writer.check_writable()
    stored = folder.read_spec()
    if stored is not None:
        problem = _resume_problem(stored, spec)
        owner = _stored_name(stored)
        if problem and not fresh:
            raise SweepError(
                f"the results in {folder.dir} are of a different sweep: {problem}. Rerun "
                f"with --fresh to move them aside and start over (nothing is deleted), or "
                f"give this sweep another name")
        if fresh:
            if folder.lock.holder() and folder.lock.alive() is not False:
                folder.lock.acquire()  # raises, naming the running driver
            moved = folder.move_aside()
            if moved and owner not in (None, spec.name):
                # Another sweep whose name has the same folder (a hash collision).
                log.warning("moved the results of sweep %r (another sweep in the folder %r "
                            "that %r uses) to %s", owner, spec.folder, spec.name, moved)
            elif moved:
                log.warning("moved the earlier results of %r to %s", spec.name, moved)
    elif fresh:
        folder.move_aside()
    folder.lock.acquire()
    try:
        folder.write_spec(spec.to_yaml())
        recovered = writer.recover()
        if recovered:
            log.warning("recovered %d results from the journal of an interrupted run",
                        recovered)
    except BaseException:
        folder.lock.release()
        raise
    return writer


def _stored_name(stored: str) -> str | None:
    """The name in a stored spec's text (None when it cannot be read)."""
    try:
        old = load_yaml(stored, "spec.yaml")
    except SpecError:
        return None
    name = old.get("name") if isinstance(old, dict) else None
    return name if isinstance(name, str) else None


def _resume_problem(stored: str, spec: Spec) -> str | None:
    try:
        old = load_yaml(stored, "spec.yaml")
    except SpecError as exc:
        return f"its stored spec.yaml cannot be read ({exc})"
    if not isinstance(old, dict):
        return "its stored spec.yaml is not a sweep"
    return resume_problem(old, spec)


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


def checkpoints_of(spec: Spec, results: str) -> CheckpointStore | None:
    """The sweep's checkpoint store under the results root (None: checkpoints off)."""
    if not spec.checkpoints.enabled:
        return None
    return CheckpointStore(results, spec.folder)


def objective_of(spec: Spec, checkpoints: CheckpointStore | None = None) -> Objective:
    """What the workers run for ``spec`` (saving checkpoints in ``checkpoints``)."""
    return Objective(
        metric=spec.metric.name if spec.metric else None,
        target=spec.objective, command=spec.command, program=spec.program, sweep=spec.name,
        code_dirs=[os.getcwd(), str(Path(spec.base_dir).resolve())],
        timeout_s=spec.timeout_s, cwd=os.getcwd(),
        checkpoints=checkpoints, keep=spec.checkpoints.keep,
    )


@dataclass
class RunResult:
    """What ``execute`` returns: the table, the per-stage results, and a reader of the
    results folder (``reader.folder.location()`` says where it is)."""

    spec: Spec
    reader: ResultsReader
    stages: list[StageResult]
    table: pd.DataFrame | None


def _runnable(spec: str | Path | Mapping[str, Any] | Spec,
              objective: str | Callable[..., Any] | None) -> Spec:
    spec = load_spec(spec)
    if objective is not None:
        spec = spec.with_objective(objective)
    if not spec.runnable:
        raise SpecError("objective", expected="something to run: objective: module:function, "
                        "or program: / command: for a command-line job",
                        hint="or pass one: sweep run FILE --objective module:function, "
                        "sweep.run(file, objective=train)")
    return spec


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
    objective: str | Callable[..., Any] | None = None,
    read_table: bool = True,
) -> RunResult:
    """Run a sweep end to end and return its outcome (see ``run`` for the table only);
    ``read_table=False`` leaves the table unread (a million rows need not be in memory to
    print a summary: ``sweep.views.tables`` reads what it shows)."""
    from .ray_pool import RayPool

    spec = _runnable(spec, objective)
    warm_imports(spec)  # scipy for the learning plans, while Ray starts
    _steady_memory()
    progress = progress or Progress(quiet=True, metric=spec.metric.name if spec.metric else "")
    writer = prepare_writer(spec, results, fresh=fresh)
    reader = ResultsReader(writer.folder, writer.codec)
    started = False
    previous = None
    try:
        started = connect(address, verbose=verbose)
        previous = _install_sigterm()  # after ray.init, which installs its own handler
        checkpoints = checkpoints_of(spec, writer.folder.root)
        pool = RayPool(objective_of(spec, checkpoints), spec.resources,
                       with_hub=spec.live_reports)
        driver = Driver(spec, writer, reader, pool, progress=progress,
                        max_concurrent=max_concurrent, retry_failed=retry_failed,
                        checkpoints=checkpoints)
        stages = driver.run()
        table = reader.read() if read_table else None
    finally:
        try:
            writer.flush()
        finally:
            writer.folder.lock.release()
            _restore_sigterm(previous)
            if started:
                import ray

                ray.shutdown()
            release_memory()
    return RunResult(spec, reader, stages, table)


def run(
    spec: str | Path | Mapping[str, Any] | Spec,
    *,
    results: str = "results",
    address: str | None = None,
    fresh: bool = False,
    retry_failed: bool = False,
    max_concurrent: int | None = None,
    objective: str | Callable[..., Any] | None = None,
) -> pd.DataFrame:
    """Run a sweep on Ray and return all its trials (one row per trial).

    ``spec`` is a path to a sweep file, a dict (whose ``objective`` may be a Python
    callable) or a ``Spec``; ``objective`` supplies one to a file that has none (W&B's
    function agents). An already initialised Ray is used as it is; otherwise
    ``ray.init(address)`` (no address: RAY_ADDRESS, else a new local instance), shut
    down at the end. Rerunning resumes: stored trials are not run again.

    Example:
        >>> df = sweep.run({"name": "quad", "objective": lambda c: (c["x"] - 1) ** 2,
        ...                 "metric": {"name": "loss"},
        ...                 "parameters": {"x": sweep.uniform(-5, 5)},
        ...                 "stages": [{"plan": "random", "trials": 16}]})  # doctest: +SKIP
    """
    return execute(spec, results=results, address=address, fresh=fresh,
                   retry_failed=retry_failed, max_concurrent=max_concurrent,
                   objective=objective).table


def _steady_memory() -> None:
    """Let the driver's memory stay flat over a long sweep: Arrow's default allocators
    (mimalloc, jemalloc) keep the pages of every Parquet flush and compaction (the
    driver's RSS grew by ~0.5 KB per trial over 200,000 trials); the system allocator
    gives them back."""
    import pyarrow as pa

    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
    steady_allocator()


def _install_sigterm() -> Any:
    """On SIGTERM, stop at the driver loop's next turn (raising inside ``ray.wait``
    would be swallowed by Ray)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    TERMINATING.clear()

    def handler(signum: int, frame: Any) -> None:
        TERMINATING.set()

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
    TERMINATING.clear()
