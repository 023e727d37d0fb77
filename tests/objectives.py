"""Objectives used by the tests (importable by Ray workers as tests.objectives:NAME)."""

from __future__ import annotations

import math
import os
import time
from typing import Any


def quadratic(config: dict[str, Any]) -> dict[str, float]:
    """A smooth bowl with its minimum at lr=1e-2, x=0.3; extra metric 'twice'."""
    lr = config["lr"]
    loss = (math.log10(lr) + 2.0) ** 2 + (config.get("x", 0.3) - 0.3) ** 2
    return {"loss": loss, "twice": 2 * loss}


def trivial(config: dict[str, Any]) -> float:
    return 0.0


def boom(config: dict[str, Any]) -> float:
    raise ValueError(f"boom at x={config.get('x')}")


def missing_metric(config: dict[str, Any]) -> dict[str, float]:
    return {"other": 1.0}


def nan_metric(config: dict[str, Any]) -> float:
    return float("nan") if config["x"] > 0.5 else config["x"]


def sleepy(config: dict[str, Any]) -> float:
    time.sleep(config["sleep"])
    return config["sleep"]


def die_once(config: dict[str, Any]) -> float:
    """Kills its worker process on the first attempt of each config."""
    marker = os.path.join(config["marker_dir"], f"{config['x']}.seen")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("1")
        os._exit(1)
    return float(config["x"])


def bad_results(config: dict[str, Any]) -> Any:
    """Returns one of many malformed results, chosen by config['kind']."""
    kind = config["kind"]
    return {
        "none": None,
        "string": "0.5",
        "list": [0.5],
        "no_metric": {"accuracy": 0.9},
        "nan": float("nan"),
        "inf": float("inf"),
        "huge": 1e308,
        "object": {"loss": object()},
        "extras": {"loss": 0.25, "note": "text", "obj": object(), "nested": {"a": 1.0}},
        "huge_string": "x" * 1_000_000,
        "bool": True,
        "ok": 0.125,
    }[kind]


def gpu_probe(config: dict[str, Any]) -> dict[str, float]:
    """Holds its (logical) GPU for a moment and reports what it saw."""
    time.sleep(config.get("sleep", 0.5))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return {"loss": float(config["x"]), "visible_count": float(len(visible.split(",")))}


def sigkill_once(config: dict[str, Any]) -> float:
    """SIGKILLs its own worker process on the first attempt of each config."""
    import signal

    marker = os.path.join(config["marker_dir"], f"{config['x']}.seen")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("1")
        os.kill(os.getpid(), signal.SIGKILL)
    return float(config["x"])


def _log_line(path: str, record: dict[str, Any]) -> None:
    import json

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def _node_id() -> str:
    """The Ray node this runs on ("" outside Ray)."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:
        pass
    return ""


def marked_sleep(config: dict[str, Any]) -> dict[str, float]:
    """Logs its start (x, pid, node, time) to <marker_dir>/starts.jsonl, sleeps
    config['sleep'] seconds, logs its end to done.jsonl; loss = (x - 0.3) ** 2."""
    node = _node_id()
    x = config["x"]
    record = {"x": x, "pid": os.getpid(), "node": node}
    _log_line(os.path.join(config["marker_dir"], "starts.jsonl"), dict(record, t=time.time()))
    time.sleep(config["sleep"])
    _log_line(os.path.join(config["marker_dir"], "done.jsonl"), dict(record, t=time.time()))
    return {"loss": (x - 0.3) ** 2}


def gpu_device(config: dict[str, Any]) -> dict[str, float]:
    """Like gpu_probe, and reports the device it was given: 'device' is
    CUDA_VISIBLE_DEVICES as a number (-1 when unset, empty or several ids)."""
    time.sleep(config.get("sleep", 0.5))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v for v in visible.split(",") if v.strip()]
    device = float(ids[0]) if len(ids) == 1 and ids[0].strip().isdigit() else -1.0
    return {"loss": float(config["x"]), "visible_count": float(len(ids)), "device": device}


def interrupts(config: dict[str, Any]) -> float:
    """x = 7 raises KeyboardInterrupt, x = 41 calls sys.exit(2); the rest return x."""
    if config["x"] == 7:
        raise KeyboardInterrupt
    if config["x"] == 41:
        raise SystemExit(2)
    return float(config["x"])


def curve(config: dict[str, Any]) -> dict[str, float]:
    """Reports loss = x / (step + 1) for steps 0..steps-1, sleeping config['pause']
    seconds between reports; writes <marker_dir>/<x>.done if it runs to the end."""
    import sweep

    x, pause = float(config["x"]), float(config.get("pause", 0.0))
    loss = x
    for step in range(int(config["steps"])):
        loss = x / (step + 1)
        sweep.report(step=step, loss=loss)
        time.sleep(pause)
    if config.get("marker_dir"):
        _log_line(os.path.join(config["marker_dir"], "done.jsonl"), {"x": x})
    return {"loss": loss}


def report_then_wait(config: dict[str, Any]) -> dict[str, float]:
    """Reports steps 0..2 (writing the time of each report to <marker_dir>/reports.jsonl),
    then waits for <marker_dir>/release before it returns."""
    import sweep

    for step in range(3):
        sweep.report(step=step, loss=1.0 / (step + 1))
        _log_line(os.path.join(config["marker_dir"], "reports.jsonl"),
                  {"step": step, "t": time.time()})
    release = os.path.join(config["marker_dir"], "release")
    deadline = time.time() + 120
    while not os.path.exists(release) and time.time() < deadline:
        time.sleep(0.02)
    return {"loss": 0.25}


def _child_reports(n: int) -> int:
    import sweep

    for i in range(n):
        sweep.report(step=10 + i, loss=0.5)
        time.sleep(0.02)
    return n


def report_from_forked_children(config: dict[str, Any]) -> dict[str, float]:
    """Reports step 0, then two forked multiprocessing workers call sweep.report 5 times
    each (issue 25, item 14: with a stopping rule that hung the sweep, their Ray calls
    even crashing the node's raylet); 'children' counts the calls they made."""
    import multiprocessing

    import sweep

    sweep.report(step=0, loss=1.0)
    # close + join, not the context manager's terminate: a Ray worker's forked children
    # may outlive a SIGTERM while one of them waits on the pool's queue lock, and
    # terminate then joins them for ever (seen once in the full suite).
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        done = pool.map(_child_reports, [5, 5])
    finally:
        pool.close()
        pool.join()
    return {"loss": 0.5, "children": float(sum(done))}


class SimulatedDeath(BaseException):
    """Raised by ``epochs_with_checkpoints`` to stand for its worker dying (the tests'
    fake pool turns a trial that raised it into a crashed task)."""


def epochs_with_checkpoints(config: dict[str, Any]) -> dict[str, float]:
    """A training loop of config['epochs'] epochs that restores its last checkpoint
    (``sweep.restore``) and saves one every config.get('every', 1) epochs with its report
    (``sweep.report(checkpoint=...)``). Each epoch run is logged (x, epoch, pid, node,
    restored) to <log_dir>/epochs.jsonl; an epoch sleeps config.get('sleep', 0) s. With
    ``die_at``, the first run of each x dies after reporting that epoch: ``die: raise``
    raises SimulatedDeath, ``die: sigkill`` kills the worker process. loss at epoch e is
    (x - 0.3)^2 + 1/(e + 1)."""
    import json
    import shutil
    import signal
    import tempfile

    import sweep

    x, epochs, every = config["x"], int(config["epochs"]), int(config.get("every", 1))
    log_dir = config["log_dir"]
    node = _node_id()
    start, restored = 0, None
    path = sweep.restore()
    if path is not None:
        with open(os.path.join(path, "state.json")) as f:
            restored = json.load(f)["epoch"]
        start = restored + 1
    work = tempfile.mkdtemp(prefix="epochs-")
    died = os.path.join(log_dir, f"died-{x}")
    try:
        loss = math.inf
        for epoch in range(start, epochs):
            time.sleep(float(config.get("sleep", 0.0)))
            loss = (x - 0.3) ** 2 + 1.0 / (epoch + 1)
            _log_line(os.path.join(log_dir, "epochs.jsonl"),
                      {"x": x, "epoch": epoch, "pid": os.getpid(), "node": node,
                       "restored": restored, "t": time.time()})
            if (epoch + 1) % every == 0:
                with open(os.path.join(work, "state.json"), "w") as f:
                    json.dump({"epoch": epoch}, f)
                with open(os.path.join(work, "weights.bin"), "wb") as f:
                    f.write(os.urandom(int(config.get("bytes", 1024))))
                sweep.report(step=epoch, checkpoint=work, loss=loss)
            else:
                sweep.report(step=epoch, loss=loss)
            if config.get("die_at") == epoch and not os.path.exists(died):
                with open(died, "w") as f:
                    f.write("1")
                if config.get("die") == "sigkill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise SimulatedDeath(f"x={x} died at epoch {epoch}")
        return {"loss": loss}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def toy_pbt(config: dict[str, Any]) -> dict[str, float]:
    """PBT's toy problem (jobs/pbt_toy.py), checkpointing every step."""
    from jobs.pbt_toy import train

    return train(config)
