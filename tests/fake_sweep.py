"""A results folder written the way the driver writes one (``ResultsWriter.add``,
``add_reports``, ``flush``, stage files), without Ray: for the importance command, the
dashboard and its browser test. ``FakeDriver`` adds trials one by one, as a running sweep does.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from sweep.core.records import Report, TrialRecord
from sweep.engine.runner import open_writer
from sweep.spec.sweep_file import loads_spec

SPEC = """\
name: {name}
objective: tests.objectives:quadratic
metric: {{name: loss, goal: minimize}}
parameters:
  lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 1.0}}
  opt: {{values: [adam, sgd, rmsprop]}}
  x2: {{distribution: uniform, min: 0, max: 1}}
  x3: {{distribution: uniform, min: 0, max: 1}}
  x4: {{distribution: uniform, min: 0, max: 1}}
  epochs: {{value: 3}}
stages:
  - {{plan: random, trials: {first}, seed: 0}}
  - {{plan: random, trials: {second}, seed: 1, fixed: {{epochs: 15}}}}
"""
OPT = {"adam": 0.0, "sgd": 0.6, "rmsprop": 0.2}


def loss(params: dict) -> float:
    """Depends on lr (in decades), opt and x2; x3 and x4 do nothing."""
    return (0.3 * (math.log10(params["lr"]) + 2.5) ** 2 + OPT[params["opt"]]
            + 0.3 * math.sin(6 * params["x2"]))


class FakeDriver:
    """Writes trials (and their curves) of the spec above into ``root``/``name``."""

    def __init__(self, root: str, name: str = "demo", first: int = 40, second: int = 10,
                 flush_every: int = 5000, seed: int = 0):
        self.text = SPEC.format(name=name, first=first, second=second)
        self.spec = loads_spec(self.text, source="fake")
        self.store = open_writer(self.spec, root, flush_every=flush_every,
                                 flush_seconds=1e9)
        self.folder = self.store.folder
        self.folder.write_text("spec.yaml", self.text)
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.t0 = 1.7e9

    def params(self, stage: int) -> dict:
        rng = self.rng
        return {"lr": float(10 ** rng.uniform(-5, 0)), "opt": str(rng.choice(list(OPT))),
                "x2": float(rng.random()), "x3": float(rng.random()),
                "x4": float(rng.random()), "epochs": 3 if stage == 0 else 15}

    def trial(self, stage: int = 0, *, steps: int = 5, status: str = "ok",
              error: str | None = None, parent: str | None = None,
              params: dict | None = None) -> TrialRecord:
        """Store one finished trial and its curve (one report per step)."""
        params = params or self.params(stage)
        final = loss(params)
        tid = f"s{stage}-t{self.count:04d}"
        self.count += 1
        now = self.t0 + 10.0 * self.count
        self.report(tid, stage, range(1, steps + 1), final)
        record = TrialRecord(
            sweep=self.spec.name, stage=stage, trial_id=tid, parent_id=parent, status=status,
            params=params, metrics={} if status == "failed" else {"loss": final},
            error=error, attempts=1, started_at=now - 5, finished_at=now, duration_s=5.0,
            node="10.0.0.1", gpu_ids="0", step=steps)
        self.store.add([record])
        return record

    def report(self, tid: str, stage: int, steps, final: float) -> None:
        self.store.add_reports(self.spec.name, stage, [
            Report(tid, s, {"loss": final + 1.0 / s}, self.t0 + s) for s in steps])

    def stage_file(self, stage: int, meta: dict) -> None:
        self.folder.write_text(f"stages/stage-{stage}.json", json.dumps(meta))

    def run(self, first: int = 40, second: int = 10) -> FakeDriver:
        """A whole sweep: ``first`` trials of stage 0 (two failed), then ``second``
        refined ones; a stage file with the refine box and a rung."""
        for i in range(first):
            if i < 2:
                self.trial(0, status="failed", error="RuntimeError: CUDA out of memory")
            else:
                self.trial(0)
        self.stage_file(1, {"boxes": [{"stage": 1, "anchor": "s0-t0002",
                                       "bounds": {"lr": [1e-3, 1e-2]}}],
                            "rungs": [{"bracket": 0, "step": 3, "cutoff": 1.0, "trials": 9}]})
        for _ in range(second):
            self.trial(1, parent="s0-t0002")
        self.store.flush()
        return self

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)
