"""Report latency: how long after a trial reports a step the driver has journaled it.

One trial per kind reports 10 steps, 0.1 s apart, writing the time of each report to a
file; a watcher polls the driver's curve journal every 2 ms and notes when each step first
appears there. Kinds: a Python objective (``sweep.report``), a command printing JSON
lines, and a command logging with ``wandb.log`` (W&B's offline run file). The sweep has a
stopping rule that never stops (so reports travel through the report hub, live).

    PYTHONPATH=$PWD python tests/bench/report_latency.py            # all kinds
    PYTHONPATH=$PWD python tests/bench/report_latency.py --kinds command
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

STEPS = 10
PAUSE_S = 0.1


def train(config: dict) -> dict:
    """The Python objective (pickled by value: this module runs as __main__)."""
    import sweep

    for step in range(STEPS):
        time.sleep(PAUSE_S)
        sweep.report(step=step, loss=1.0 / (step + 1))
        with open(os.path.join(config["marker_dir"], "reports.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, "t": time.time()}) + "\n")
    return {"loss": 0.1}


COMMAND_JOB = """
import json, os, sys, time
markers = sys.argv[1].split("=", 1)[1]
for step in range({steps}):
    time.sleep({pause})
    print(json.dumps({{"step": step, "loss": 1.0 / (step + 1)}}), flush=True)
    with open(os.path.join(markers, "reports.jsonl"), "a") as f:
        f.write(json.dumps({{"step": step, "t": time.time()}}) + "\\n")
print(json.dumps({{"loss": 0.1}}))
"""

WANDB_JOB = """
import json, os, sys, time
import wandb
markers = sys.argv[1].split("=", 1)[1]
run = wandb.init()
for step in range({steps}):
    time.sleep({pause})
    wandb.log({{"loss": 1.0 / (step + 1)}})
    with open(os.path.join(markers, "reports.jsonl"), "a") as f:
        f.write(json.dumps({{"step": step, "t": time.time()}}) + "\\n")
run.finish()
"""


def journal_times(folder: Path, seen: dict[int, float], stop: threading.Event) -> None:
    while not stop.is_set():
        for path in (folder / ".journal").glob("curves-*.jsonl"):
            try:
                text = path.read_text()
            except OSError:
                continue
            now = time.time()
            for line in text.splitlines():
                try:
                    step = json.loads(line)["step"]
                except (ValueError, KeyError):
                    continue
                seen.setdefault(step, now)
        time.sleep(0.002)


def measure(kind: str, work: Path) -> list[float]:
    import sweep

    markers = work / f"markers-{kind}"
    markers.mkdir()
    if kind == "python":
        job: dict = {"objective": train}
    else:
        code = {"command": COMMAND_JOB, "wandb": WANDB_JOB}[kind]
        (work / f"job_{kind}.py").write_text(textwrap.dedent(code.format(steps=STEPS,
                                                                         pause=PAUSE_S)))
        job = {"command": [sys.executable, str(work / f"job_{kind}.py"), "${args}"]}
    name = f"latency-{kind}"
    doc = {"name": name, **job, "metric": {"name": "loss"},
           "parameters": {"marker_dir": {"value": str(markers)}}, "method": "grid",
           "early_terminate": {"type": "median", "min_samples": 100}}
    results = work / "results"
    seen: dict[int, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=journal_times, args=(results / name, seen, stop))
    watcher.start()
    try:
        sweep.run(doc, results=str(results))
    finally:
        stop.set()
        watcher.join()
    made = {json.loads(line)["step"]: json.loads(line)["t"]
            for line in (markers / "reports.jsonl").read_text().splitlines()}
    return [seen[step] - t for step, t in sorted(made.items()) if step in seen]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default="python,command,wandb")
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            lat = measure(kind, Path(tmp))
            print(f"{kind:8s} {len(lat)}/{STEPS} reports journaled; latency median "
                  f"{statistics.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms",
                  flush=True)
    ray.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    main()
