"""What one proposal of a learning plan costs, as its history grows.

For ``bayes`` and the adaptive refine (Thompson sampling, the default), on a space of 8
axes (6 continuous, an integer and a categorical): the plan is told n random trials,
then asked for one trial and told its result, ``--asks`` times (the first ask, which
fits the hyperparameters, included); the figures are the median, mean and worst wall
time of one ask + tell in milliseconds (one BLAS thread), and the hyperparameter
optimisations per ask. Then, on a plan told the same n trials, ``--batches`` batches of
64: ``ask_many(64)`` (the batch the background proposer asks when many slots wait) and
the 64 results told, timed as a whole (median and worst per batch, and the median per
trial).

Up to the model's cap (``sweep.plans.surrogate.CAP``, 256 observations) the model holds
every observation; beyond it, a bounded subset, so the cost flattens out. Proposals are
made on a background thread (``sweep.engine.proposals``), not between a result and the
next submission, but this is still the compute a proposal takes.

Run from the repository root::

    python tests/bench/ask_cost.py                       # n = 16, 256, 1000, 5000, 10000
    python tests/bench/ask_cost.py --sizes 1000 --batches 0
"""

from __future__ import annotations

import argparse
import statistics
import time

import _threads  # noqa: F401  (one BLAS thread; before numpy)

from sweep.core.metric import Metric
from sweep.core.records import TrialRecord
from sweep.plans import Plan, RandomPlan
from sweep.plans.adaptive_refine import AdaptiveRefine
from sweep.plans.anchors import AnchorRule
from sweep.plans.bayes import Bayes
from sweep.space import Choice, RandInt, Space, Uniform

SPACE = Space({**{f"x{i}": Uniform(0.0, 1.0) for i in range(6)},
               "n": RandInt(1, 64), "c": Choice(["a", "b", "c", "d"])})


def loss(p: dict) -> float:
    return (sum((p[f"x{i}"] - 0.3) ** 2 for i in range(6)) + ((p["n"] - 20) / 64) ** 2
            + (0.0 if p["c"] == "b" else 0.3))


def record(params: dict, stage: int, i: int) -> TrialRecord:
    return TrialRecord(trial_id=f"s{stage}-{i}", stage=stage, params=params,
                       metrics={"loss": loss(params)}, status="ok")


def told(kind: str, n: int, budget: int) -> Plan:
    """A plan told n random trials of an earlier stage, started."""
    if kind == "bayes":
        plan: Plan = Bayes(SPACE, budget, 0, metric="loss", stage=1)
    else:
        rule = AnchorRule(Metric("loss"), 4, [0], 1)
        plan = AdaptiveRefine(SPACE, budget, rule=rule, seed=0)
    plan.tell([record(p, 0, i) for i, p in enumerate(RandomPlan(SPACE, n, 7))])
    plan.start()
    return plan


def measure(kind: str, n: int, asks: int) -> tuple[float, float, float, float]:
    """(median, mean, worst) ms per ask + tell, and optimisations per ask."""
    plan = told(kind, n, asks + 1)
    before = plan.describe()["optimisations"]
    times = []
    for i in range(asks):
        started = time.perf_counter()
        (candidate,) = plan.ask(1)
        plan.tell([record(candidate.params, 1, i)])
        times.append(time.perf_counter() - started)
    fits = plan.describe()["optimisations"] - before
    ms = [t * 1000 for t in times]
    return statistics.median(ms), statistics.mean(ms), max(ms), fits / asks


def measure_batches(kind: str, n: int, batches: int) -> tuple[float, float]:
    """(median, worst) ms per batch of 64 (ask_many(64) + 64 results told); the first
    batch, which fits the hyperparameters, included."""
    plan = told(kind, n, 64 * batches)
    times = []
    for b in range(batches):
        started = time.perf_counter()
        batch = plan.ask_many(64)
        plan.tell([record(c.params, 1, 64 * b + i) for i, c in enumerate(batch)])
        times.append(time.perf_counter() - started)
    ms = [t * 1000 for t in times]
    return statistics.median(ms), max(ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="16,256,1000,5000,10000",
                        help="comma-separated numbers of told trials")
    parser.add_argument("--asks", type=int, default=20, help="asks per measurement")
    parser.add_argument("--batches", type=int, default=4, help="batches of 64 (0: none)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print("ms per ask + tell: median / mean / worst (hyperparameter optimisations per ask)")
    print(f"{'plan':<16}" + "".join(f"{'n=' + str(n):>28}" for n in sizes))
    for kind in ("bayes", "adaptive refine"):
        cells = []
        for n in sizes:
            median, mean, worst, refit = measure(kind, n, args.asks)
            cells.append(f"{median:.1f} / {mean:.1f} / {worst:.0f} ({refit:.0%})")
        print(f"{kind:<16}" + "".join(f"{c:>28}" for c in cells), flush=True)
    if args.batches:
        print("\nms per batch of 64 (ask_many + 64 told): median / worst; median per trial")
        for kind in ("bayes", "adaptive refine"):
            cells = []
            for n in sizes:
                median, worst = measure_batches(kind, n, args.batches)
                cells.append(f"{median:.0f} / {worst:.0f}; {median / 64:.1f}")
            print(f"{kind:<16}" + "".join(f"{c:>28}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
