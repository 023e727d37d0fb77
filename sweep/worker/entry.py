"""The worker's entry point and its only contact with Ray: ``run_batch`` is the body of
every trial task (Ray pickles it by this module's path), ``where`` reads the node and GPU
ids from Ray's runtime context, ``mark_started`` records a trial's start in Ray's
key-value store. Everything else a worker does is in ``wrapper`` (no Ray).

Example:
    >>> run_batch(Objective("loss", target=lambda c: c["x"] ** 2),
    ...           [("t1", {"x": 2}, None)]).records[0].metrics
    {'loss': 4}
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from ..core.records import Report, TrialRecord
from .checkpointing import Resume
from .returned import short, truncate
from .wrapper import BatchResult, Objective, ProcessState, run_trial


def where() -> tuple[str, str]:
    """(node, gpu_ids) of this worker, from Ray's runtime context when there is one."""
    try:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("not in a Ray worker")
        ctx = ray.get_runtime_context()
        # The address the node was started with (ray start --node-ip-address), which
        # ray.util.get_node_ip_address() does not give inside a worker.
        worker = ray._private.worker.global_worker
        ip = getattr(worker, "node_ip_address", None) or ray.util.get_node_ip_address()
        node = f"{ip}/{ctx.get_node_id()[:8]}"
        gpus = ctx.get_accelerator_ids().get("GPU", [])
        return node, ",".join(str(g) for g in gpus)
    except Exception:
        return socket.gethostname(), os.environ.get("CUDA_VISIBLE_DEVICES", "")


def mark_started(key: str) -> None:
    """Record in Ray's key-value store that a trial has started (a GCS round trip, about
    0.2 ms): if the worker then dies, the driver charges an attempt only to trials that
    started, not to batch-mates lost with it, nor to a task lost before it ran."""
    from ray.experimental import internal_kv

    with contextlib.suppress(Exception):
        internal_kv._internal_kv_put(key, b"1", namespace=MARKS)


MARKS = "sweep-started"


def run_batch(objective: Objective,
              trials: Sequence[Sequence[Any]],
              marks: str | None = None) -> BatchResult:
    """Run several trials one after another in this worker (the Ray task body). Each
    trial is [id, flat params, nested params or None when they are the same] and, when
    it may restore a checkpoint, [attempt, own, source] (``checkpointing.Resume``). With
    ``marks``, trial i's start (just before its objective runs) is recorded as
    ``<marks>:<i>`` (``mark_started``).

    Example: ``run_batch(objective, [("t1", {"x": 1}, None)]).records[0].status``
    """
    node, gpu_ids = where()
    state = ProcessState()
    records: list[TrialRecord] = []
    reports: list[Report] = []
    parent = os.getppid()
    for index, (tid, flat, nested, *more) in enumerate(trials):
        if index and marks is not None and os.getppid() != parent:
            # The node's raylet (this worker's parent) died: the driver retries this task
            # anyway. Starting the next trial would record a start that, if this process
            # is killed before the objective runs, charges an attempt that never ran.
            break
        on_start = None if marks is None else functools.partial(mark_started,
                                                                 f"{marks}:{index}")
        try:
            record, pending = run_trial(objective, tid, flat,
                                        flat if nested is None else nested, node, gpu_ids,
                                        on_start, Resume.of(more[0]) if more else None)
        except BaseException as exc:  # even the record could not be built
            now = time.time()
            record = TrialRecord(trial_id=tid, status="failed", error=truncate(
                f"sweep's trial wrapper failed: {type(exc).__name__}: {short(exc)}"),
                started_at=now, finished_at=now, duration_s=0.0, node=node, gpu_ids=gpu_ids)
            pending = []
        finally:
            state.restore()
        records.append(record)
        reports.extend(pending)
    return BatchResult(records, reports)


__all__ = ["MARKS", "mark_started", "run_batch", "where"]
