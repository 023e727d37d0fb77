"""Population-based training (Jaderberg et al., 2017) as a stage plan plus a stopping
decision, on the same driver, pool and store as every other plan (``plan: pbt``).

The plan proposes a population of ``population`` random configs. Every ``interval``
steps of a member's reports, the member is ranked against the population (as Ray
Tune's asynchronous ``PopulationBasedTraining``, but at one step: see ``_ranked``): one
in the bottom
``quantile`` is stopped (the decision, ``should_stop``), and the plan proposes in its
place a new *segment*: a trial whose params are those of a member of the top quantile,
mutated (explore), which starts from that member's last checkpoint (exploit:
``Candidate.restore_from``; its row's ``parent_id`` is that member, its
``restored_from`` the step it started from). A member that reaches its last step ends
its lineage; the stage is over when every lineage has ended. The results table tells
the story: follow ``parent_id`` back from the best final segment for the schedule of
hyperparameters that made it (``sweep.views.figures.pbt_schedule``).

Explore, as Tune's defaults: each mutated parameter is resampled from its prior with
``resample_probability`` (0.25), else a number is multiplied by one of the
``perturbation_factors`` (1.2 or 0.8; rounded for integers, clipped to its range: Tune
does not clip) and a choice moves to a neighbouring value. ``mutations`` names the
parameters to mutate (default: every dimension of the space), each optionally with its
own ``resample_probability`` and ``perturbation_factors``.

A member exploits only a top member that has a committed checkpoint; with none, it
goes on. Trials must checkpoint (``sweep.report(step=..., checkpoint=dir)``) and
restore (``sweep.restore()``) for PBT to be more than a random search.

Example:
    >>> from sweep.space import Space, LogUniform
    >>> from sweep.core.metric import Metric
    >>> plan = PopulationBasedTraining(Space({"lr": LogUniform(1e-4, 1)}), Metric("loss"),
    ...                                population=4, interval=2, seed=0)
    >>> len(plan.ask(8)), plan.finished
    (4, False)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.metric import Metric
from ..core.records import Report, TrialRecord
from ..space.distributions import Distribution
from ..space.search_space import Space
from .base import Candidate, Plan, StageSettings, make_rng, needs_metric, register, seed_tuple

QUANTILE = 0.25
RESAMPLE_PROBABILITY = 0.25
PERTURBATION_FACTORS = (1.2, 0.8)
POPULATION = 8
_TOP_UNIT = 1.0 - 1e-12  # the highest unit coordinate mapped back (a normal's is +inf)


@dataclass(frozen=True)
class Mutation:
    """How one parameter is explored: resampled from its prior with
    ``resample_probability``, else perturbed by one of ``factors``."""

    resample_probability: float = RESAMPLE_PROBABILITY
    factors: tuple[float, ...] = PERTURBATION_FACTORS


def explore(params: Mapping[str, Any], space: Space, mutations: Mapping[str, Mutation],
            rng: np.random.Generator) -> dict[str, Any]:
    """``params`` with each parameter of ``mutations`` resampled or perturbed.

    Example: ``explore({"lr": 0.1}, space, {"lr": Mutation(0.0)}, rng)["lr"]`` is 0.12
    or 0.08 (within the prior's range).
    """
    out = dict(params)
    for name, how in mutations.items():
        dist = space[name]
        if not dist.is_dimension:
            continue
        if rng.random() < how.resample_probability:
            out[name] = _at(dist, float(rng.random()))
        elif dist.categorical or dist.kind in ("bool", "category"):
            out[name] = _shift(dist, out[name], rng)
        else:
            out[name] = _perturb(dist, out[name], float(rng.choice(how.factors)))
    return out


def _shift(dist: Distribution, value: Any, rng: np.random.Generator) -> Any:
    """A categorical value moved to a neighbouring one (Tune's perturbation of a list)."""
    support = dist.support()
    try:
        i = next(k for k, v in enumerate(support) if v == value and type(v) is type(value))
    except StopIteration:
        return dist.from_unit(float(rng.random()))
    j = min(max(i + int(rng.choice([-1, 1])), 0), len(support) - 1)
    return support[j]


def _at(dist: Distribution, u: float) -> Any:
    """The prior's value at unit coordinate ``u`` (a normal's ends moved inside)."""
    value = dist.from_unit(u)
    if isinstance(value, float) and not math.isfinite(value):
        value = dist.from_unit(min(max(u, 1.0 - _TOP_UNIT), _TOP_UNIT))
    return value


def _perturb(dist: Distribution, value: Any, factor: float) -> Any:
    """``value * factor``, rounded for integers, clipped to the prior's range."""
    lo, hi = sorted((float(_at(dist, 0.0)), float(_at(dist, 1.0))))
    new = min(max(float(value) * factor, lo), hi)
    if dist.kind == "int":
        new = round(new)
    try:  # the nearest value the prior holds (a quantized or integer one)
        return _at(dist, min(max(dist.to_unit(new), 0.0), 1.0))
    except (TypeError, ValueError):
        return value


@register
class PopulationBasedTraining(Plan):
    """``plan: pbt``: a population, exploit by checkpoint, explore by mutation.

    ``metric`` ranks members; ``population`` members run at once (give the sweep at
    least that many slots: a member that waits is compared with others' later steps);
    ``interval`` is the number of steps between two decisions of a member;
    ``max_trials`` caps the trials (members and segments) the stage may start.
    """

    name = "pbt"
    learns = True
    decides_on_reports = True

    def __init__(self, space: Space, metric: Metric, *, population: int = POPULATION,
                 interval: int, quantile: float = QUANTILE,
                 mutations: Mapping[str, Mutation] | None = None,
                 seed: int | Sequence[int] = 0, max_trials: int | None = None):
        super().__init__(space, total=population)
        if population < 2:
            raise ValueError(f"pbt needs a population of 2 or more, got {population}")
        if interval < 1:
            raise ValueError(f"pbt's interval must be 1 step or more, got {interval}")
        self.metric = metric
        self.population = population
        self.interval = interval
        self.quantile = quantile
        self.mutations = dict(mutations) if mutations is not None else {
            n: Mutation() for n in space.dims}
        self.max_trials = max_trials
        self._rng = make_rng((*seed_tuple(seed), 0x9B7))
        self._initial = [space.from_unit(self._rng.random(len(space.dims)))
                         for _ in range(population)]
        self._next_initial = 0
        self._pending: list[Candidate] = []  # segments decided, not yet asked for
        self._asked: dict[str, Candidate] = {}  # key -> candidate asked, not yet started
        self._alive: dict[str, str] = {}  # trial id -> key of the members running
        self._params: dict[str, dict[str, Any]] = {}  # trial id -> params
        # trial id -> (steps, losses) of its reports, by step (lower loss is better)
        self._scores: dict[str, tuple[list[int], list[float]]] = {}
        self._checkpoint: dict[str, int] = {}  # trial id -> last committed step
        self._last: dict[str, int] = {}  # trial id -> step of its last decision
        self._segments = 0
        self.decisions: list[dict[str, Any]] = []  # exploits, for describe()

    @classmethod
    def from_stage(cls, stage: StageSettings, space: Space, metric: Metric | None
                   ) -> PopulationBasedTraining:
        metric = needs_metric(metric, stage, cls.name or "pbt")
        raw = getattr(stage, "mutations", None) or {}
        default = Mutation(getattr(stage, "resample_probability", RESAMPLE_PROBABILITY),
                           tuple(getattr(stage, "perturbation_factors",
                                         PERTURBATION_FACTORS)))
        mutations = None
        if raw:
            mutations = {n: Mutation(o.get("resample_probability",
                                           default.resample_probability),
                                     tuple(o.get("perturbation_factors", default.factors)))
                         for n, o in raw.items()}
        elif default != Mutation():
            mutations = {n: default for n in space.dims}
        return cls(space, metric, population=getattr(stage, "population", POPULATION),
                   interval=stage.interval, quantile=getattr(stage, "quantile", QUANTILE),
                   mutations=mutations, seed=stage.seed, max_trials=stage.trials)

    # ------------------------------------------------------------------ ask

    def ask(self, n: int) -> list[Candidate]:
        self._asked.clear()  # what the driver did not start: dropped (stored already)
        out: list[Candidate] = []
        while len(out) < n and self._next_initial < self.population:
            key = f"m{self._next_initial}"
            out.append(Candidate(self._initial[self._next_initial], key=key))
            self._next_initial += 1
        while len(out) < n and self._pending:
            out.append(self._pending.pop(0))
        for cand in out:
            self._asked[str(cand.key)] = cand
        self._update_finished()
        return out

    def submitted(self, trial_id: str, candidate: Candidate) -> None:
        key = str(candidate.key)
        if self._asked.pop(key, None) is None:
            return
        self._alive[trial_id] = key
        self._params[trial_id] = dict(candidate.params)
        self._update_finished()

    def _update_finished(self) -> None:
        self.finished = (self._next_initial >= self.population and not self._pending
                         and not self._asked and not self._alive)

    # ----------------------------------------------------------------- tell

    def tell(self, records: Sequence[TrialRecord]) -> None:
        for r in records:
            if self._alive.pop(r.trial_id, None) is not None:
                self._scores.pop(r.trial_id, None)
        self._update_finished()

    def tell_report(self, report: Report) -> None:
        tid = report.trial_id
        if tid not in self._alive:
            return
        if report.checkpoint:
            self._checkpoint[tid] = max(report.step, self._checkpoint.get(tid, -1))
        value = report.metrics.get(self.metric.name)
        if value is not None:
            loss = float(value)
            loss = self.metric.loss(loss) if math.isfinite(loss) else math.inf
            steps, losses = self._scores.setdefault(tid, ([], []))
            at = bisect.bisect_right(steps, report.step)
            if at and steps[at - 1] == report.step:
                losses[at - 1] = loss  # a repeated step: its last value
            else:
                steps.insert(at, report.step)
                losses.insert(at, loss)
        # A segment's first report follows the step it restored: its clock starts there.
        self._last.setdefault(tid, report.step - 1)

    # ------------------------------------------------------------- decision

    def should_stop(self, trial_id: str, step: int, value: float | None) -> bool:
        """Exploit: True when ``trial_id`` is in the bottom quantile at one of its
        decision steps and a top member with a checkpoint can replace it."""
        if trial_id not in self._alive or value is None:
            return False
        if step - self._last.get(trial_id, step) < self.interval:
            return False
        self._last[trial_id] = step
        bottom, top = self._quantiles(step)
        if trial_id not in bottom:
            return False
        if self.max_trials is not None and \
                self.population + self._segments >= self.max_trials:
            return False
        donors = [t for t in top if t in self._checkpoint]
        if not donors:
            return False
        donor = donors[int(self._rng.integers(len(donors)))]
        params = explore(self._params[donor], self.space, self.mutations, self._rng)
        self._segments += 1
        self._pending.append(Candidate(params, parent=donor, restore_from=donor,
                                       key=f"s{self._segments}"))
        self.total = (self.total or 0) + 1
        self.decisions.append({"stopped": trial_id, "at_step": step, "parent": donor,
                               "parent_checkpoint": self._checkpoint[donor]})
        self._alive.pop(trial_id, None)
        self._scores.pop(trial_id, None)
        return True

    def _quantiles(self, step: int) -> tuple[list[str], list[str]]:
        """(bottom, top) of the running members with a score, ranked at one step
        (``_ranked``); Tune's sizes: each has ceil(n * quantile) members, at most half."""
        ranked = self._ranked(step)
        if len(ranked) <= 1:
            return [], []
        k = min(math.ceil(len(ranked) * self.quantile), len(ranked) // 2)
        return ranked[:k], ranked[-k:] if k else []

    def _ranked(self, step: int) -> list[str]:
        """The running members with a score, worst first, each by its score at one step:
        ``step`` (the decision's), or the latest step every member has reached if one is
        behind. Members run at their own pace, and a score grows with steps: ranked by
        their latest scores, members ahead would look better for being ahead (and be
        copied), those behind worse. A member with no score that early (a segment that
        started from a later checkpoint) counts with its first."""
        scored = [t for t in self._alive if t in self._scores]
        if not scored:
            return []
        at = min(step, *(self._scores[t][0][-1] for t in scored))

        def loss(t: str) -> float:
            steps, losses = self._scores[t]
            i = bisect.bisect_right(steps, at) - 1
            return losses[max(i, 0)]

        return sorted(scored, key=lambda t: (-loss(t), t))

    def stopping(self) -> ExploitRule:
        return ExploitRule(self)

    def describe(self) -> dict[str, Any]:
        return {"population": self.population, "interval": self.interval,
                "quantile": self.quantile, "exploits": len(self.decisions),
                "mutations": {n: {"resample_probability": m.resample_probability,
                                  "perturbation_factors": list(m.factors)}
                              for n, m in self.mutations.items()}}


class ExploitRule:
    """PBT's stopping decision as the driver asks a stopping rule (``should_stop``,
    ``finished``, ``rungs``, ``describe``): the plan decides, this carries it."""

    def __init__(self, plan: PopulationBasedTraining):
        self.plan = plan

    def should_stop(self, trial_id: str, step: int, value: float | None) -> bool:
        return self.plan.should_stop(trial_id, step, value)

    def finished(self, trial_id: str) -> None:
        """Bookkeeping of the rule interface: the plan learns it from ``tell``."""

    def rungs(self) -> list[dict[str, Any]]:
        return []

    def describe(self) -> str:
        p = self.plan
        return (f"pbt: population {p.population}, every {p.interval} steps the bottom "
                f"{p.quantile:g} exploit the top {p.quantile:g}")


__all__ = ["PERTURBATION_FACTORS", "POPULATION", "QUANTILE", "RESAMPLE_PROBABILITY",
           "ExploitRule", "Mutation", "PopulationBasedTraining", "explore"]
