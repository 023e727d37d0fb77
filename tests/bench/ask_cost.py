"""What one proposal of a learning plan costs, as its history grows.

For ``bayes`` and the adaptive refine (Thompson sampling, the default), on a space of 8
axes (6 continuous, an integer and a categorical): the plan is told n random trials, then
asked for one trial and told its result, 20 times; the figure is the median wall time of
one ask + tell in milliseconds (one BLAS thread), its mean, and the hyperparameter
optimisations per ask. A plan's proposals are made in the driver while trials run, so
this is the time a freed slot waits for its next trial.

Run from the repository root::

    python tests/bench/ask_cost.py            # n = 16, 64, 256, 512
    python tests/bench/ask_cost.py --sizes 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import _threads  # noqa: F401  (one BLAS thread; before numpy)

from sweep.core.metric import Metric
from sweep.core.records import TrialRecord
from sweep.plans import RandomPlan
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


def measure(kind: str, n: int, asks: int) -> tuple[float, float, float]:
    if kind == "bayes":
        plan = Bayes(SPACE, n + asks + 1, 0, metric="loss", stage=1)
    else:
        rule = AnchorRule(Metric("loss"), 4, [0], 1)
        plan = AdaptiveRefine(SPACE, asks + 1, rule=rule, seed=0)
    plan.tell([record(p, 0, i) for i, p in enumerate(RandomPlan(SPACE, n, 7))])
    plan.start()
    before = plan.describe()["optimisations"]
    times = []
    for i in range(asks):
        started = time.perf_counter()
        (candidate,) = plan.ask(1)
        plan.tell([record(candidate.params, 1, i)])
        times.append(time.perf_counter() - started)
    fits = plan.describe()["optimisations"] - before
    return statistics.median(times) * 1000, statistics.mean(times) * 1000, fits / asks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="16,64,256,512",
                        help="comma-separated numbers of told trials")
    parser.add_argument("--asks", type=int, default=20, help="asks per measurement")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"{'plan':<22}" + "".join(f"{'n=' + str(n):>24}" for n in sizes))
    for kind in ("bayes", "adaptive refine"):
        cells = []
        for n in sizes:
            median, mean, refit = measure(kind, n, args.asks)
            cells.append(f"{median:6.1f} / {mean:5.1f} ms {refit:4.0%}")
        print(f"{kind:<22}" + "".join(f"{c:>24}" for c in cells))
    print("(median / mean ms per ask + tell; hyperparameter optimisations per ask)")


if __name__ == "__main__":
    main()
