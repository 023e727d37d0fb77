"""The plan interface: what every plan implements and what the driver may rely on.

A plan proposes candidates with ``ask(n)`` and is told every finished trial with
``tell(records)`` and every intermediate report with ``tell_report(report)``. No plan
knows about Ray, the store or trial ids: the driver turns candidates into trials,
skips what is stored, and tells the plan what came back. The contract (``Plan``):

* ``ask(n)`` returns up to n new candidates. ``[]`` means "nothing yet": the driver
  asks again once a result has been told. ``finished`` is the one way to say "done"
  (set it as soon as it is known, at the latest with the last ``[]``). A plan that
  answers ``[]`` while none of its trials is in flight can never be told more: its
  stage ends there (the driver logs it).
* The driver drops candidates that are stored or in flight already and asks again at
  once, so each answer must move the plan on.
* A learning plan is run by ``sweep.engine.proposals`` on a background thread once it
  has started: ``ask``, ``ask_many`` and ``tell`` are then called from that thread
  (never two at once), and ``ask_many(n)`` when many slots wait at once (default:
  ``ask(n)``; the learning plans make such a batch from one fit).

This module also holds what every plan shares: the seeded generators, the learning
base class (``ProposingPlan``), the settings a plan builds itself from
(``StageSettings``) and the registry of plans by the name a stage gives them.

Example (a plan of your own only needs ``ask``, and ``tell`` if it learns)::

    class Corners(Plan):
        '''Every corner of the unit cube, then nothing.'''
        def __init__(self, space):
            super().__init__(space, total=2 ** len(space.dims))
            self._corners = itertools.product([0.0, 1.0], repeat=len(space.dims))
        def ask(self, n):
            out = [Candidate(self.space.from_unit(u)) for u in itertools.islice(self._corners, n)]
            self.finished = len(out) < n
            return out
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

import numpy as np

from ..core.metric import Metric
from ..core.records import Report, TrialRecord
from ..space.search_space import Space

Config = dict[str, Any]
# Candidates a plan that needs no results is asked for at a time (dry runs, streams).
CHUNK = 1024


def make_rng(seed: int | Sequence[int]) -> np.random.Generator:
    """A Generator that depends only on ``seed`` (an int or a tuple such as (seed, stage)),
    the same in every process and on every machine.

    Example: ``make_rng((0, 1)).random()`` is the same number everywhere.
    """
    entropy = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def seed_tuple(seed: int | Sequence[int]) -> tuple[int, ...]:
    """A seed as a tuple of ints, to extend with more entropy (``(*seed_tuple(s), i)``)."""
    return (int(seed),) if isinstance(seed, (int, np.integer)) else tuple(int(s) for s in seed)


def as_metric(metric: Metric | str, goal: str | None = None) -> Metric:
    """``metric`` as a ``Metric``: a bare name is minimised unless ``goal`` says otherwise.

    Example: ``as_metric("acc", "maximize").loss(0.9) == -0.9``
    """
    if isinstance(metric, Metric):
        if goal is not None and goal != metric.goal:
            raise ValueError(f"goal {goal!r} contradicts the metric's goal {metric.goal!r}")
        return metric
    return Metric(metric) if goal is None else Metric(metric, goal)


class Candidate(NamedTuple):
    """A proposed trial: its flat config (the stage's fixed values included) and, for
    refined trials, the id of the trial it was derived from. ``restore_from`` names a
    trial whose last checkpoint the new trial starts from (a PBT segment continues its
    parent's model); ``key`` tells apart trials of equal params (two segments that
    mutated to the same values): it joins the params in the trial id."""

    params: Config
    parent: str | None = None
    restore_from: str | None = None
    key: str | None = None


class StageSettings(Protocol):
    """What a plan reads of a stage to build itself (``sweep.spec.stages.Stage`` is one):
    its number, budget and seed, the grid's points and values, bayes' initial design,
    refine's options (``sweep.plans.refine_options`` holds their defaults)."""

    index: int
    trials: int | None
    seed: int
    axis_points: dict[str, int]
    values: dict[str, list[Any]]
    truncate: bool
    initial: int | None
    region: str
    shrink: float
    margin: float
    min_width: float
    categorical: str
    sample: str

    @property
    def refine_top_k(self) -> int: ...

    @property
    def sources(self) -> list[int]: ...


class Plan:
    """The ask/tell interface every plan implements.

    ``ask(n)``: up to ``n`` new candidates; ``[]`` means "nothing yet, wait for results"
    unless ``finished`` is True: ``finished`` alone says the plan will propose nothing
    more (set it as soon as that is known). The driver drops candidates already stored
    or in flight and asks again at once, so each answer must move the plan on; a plan
    that waits while none of its trials is in flight has its stage ended.

    ``total`` is the number of trials the plan will propose (for progress bars and
    budgets; None when unknown). ``learns`` is True for plans that want ``tell``: the
    driver then tells them the stored trials of earlier stages before the first ask
    (and this stage's, on resume), and every result as it arrives. ``notes`` are lines
    for the user that the driver logs once ``start`` has run (such as "only 2 trials
    succeeded; refining around those").

    The plans a sweep-file stage names (``plan: <name>``) set ``name``, implement
    ``from_stage`` and are decorated with ``@register``.
    """

    learns = False
    name: ClassVar[str | None] = None
    # True for plans that work from earlier stages' results (never a first stage).
    refines: ClassVar[bool] = False
    # True for plans that decide on intermediate reports (pbt): the driver then gets
    # reports while trials run, asks ``stopping()`` instead of early_terminate, and asks
    # the plan on its own thread (never ahead, behind the background proposer): such a
    # plan's proposals are its decisions, each followed by ``submitted``.
    decides_on_reports: ClassVar[bool] = False
    # Modules slow to import (scipy's: 0.5-1 s) that the plan imports when it first
    # proposes: ``sweep run`` imports them on a thread while Ray starts, so a large
    # cluster's slots do not wait on an import when the stage begins.
    imports: ClassVar[tuple[str, ...]] = ()
    notes: list[str]

    def __init__(self, space: Space, total: int | None = None):
        self.space = space
        self.total = total
        self.finished = False
        self.notes = []

    @classmethod
    def from_stage(cls, stage: StageSettings, space: Space, metric: Metric | None) -> Plan:
        """The plan of a sweep-file stage over ``space`` (the stage's own, fixed values
        applied), ranking by ``metric`` (None when the sweep has none)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from a stage")

    @classmethod
    def extension_problem(cls, stage: StageSettings, space: Space) -> str | None:
        """Why raising the budget of a stage that has run (to ``stage.trials``) would not
        extend its design, or None when it does: the configs of the smaller budget, the
        ones stored, come first in the larger one. A resumed sweep refuses a raised budget
        that would mix two designs (``sweep.spec.sweep_file.resume_problem``).

        A learning plan counts the stage's stored trials against its budget and proposes
        only the rest: it extends. Example: ``LatinHypercubePlan.extension_problem(stage,
        space)`` says why an lhs cannot grow.
        """
        return None

    def restore(self, decided: Mapping[str, Any]) -> None:
        """What this stage's plan decided when the stage started in an earlier run (its
        stored ``describe()``), given before the history is told: a plan whose design
        depends on the history keeps it (a fixed refine its anchors), so that a resumed
        stage continues the design it started, whatever changed before it."""

    def ask(self, n: int) -> list[Candidate]:
        """Up to ``n`` new candidates; [] means none until more results are told (or,
        with ``finished`` set, none ever)."""
        raise NotImplementedError

    def ask_many(self, n: int) -> list[Candidate]:
        """Up to ``n`` new candidates made together, for a caller with many slots to
        fill at once (``sweep.engine.proposals`` calls it when a fit cannot keep up
        one proposal at a time): a learning plan may make them from one fit, cheaper
        per candidate than ``ask`` and spread by a batch rule. Default: ``ask(n)``."""
        return self.ask(n)

    def tell(self, records: Sequence[TrialRecord]) -> None:
        """Finished trials (of this stage, or of earlier ones before the first ask)."""

    def tell_report(self, report: Report) -> None:
        """An intermediate report of a running trial."""

    def submitted(self, trial_id: str, candidate: Candidate) -> None:
        """``candidate`` of the last ``ask`` starts as trial ``trial_id`` (the driver
        drops the others: stored or in flight already)."""

    def start(self) -> None:
        """Called once the stored history has been told, before the first ask (a plan
        that chooses from the history, such as refine, chooses here)."""

    def describe(self) -> dict[str, Any] | None:
        """What the plan decided that a user may want to see (anchors, boxes), JSON-friendly."""
        return None

    def stopping(self) -> Any:
        """The plan's own stopping decision (``should_stop(trial_id, step, value)``, as a
        ``sweep.stopping`` rule), used instead of the sweep's early_terminate on its
        stage; None for plans that decide nothing on reports."""
        return None

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError(f"{type(self).__name__} has no fixed length")
        return self.total

    def candidates(self) -> Iterator[Candidate]:
        """Every candidate of a plan that needs no results (dry runs, tests); a learning
        plan is asked a few at a time (each proposal may cost a model fit)."""
        while not self.finished:
            batch = self.ask(8 if self.learns else CHUNK)
            if not batch:
                return
            yield from batch

    def __iter__(self) -> Iterator[Config]:
        for candidate in self.candidates():
            yield candidate.params


class ProposingPlan(Plan):
    """The learning base class: a plan that learns from what it is told and proposes one
    candidate at a time. ``ask(n)`` calls ``_next()`` up to n times; None from it means
    nothing is left to propose (the plan is then exhausted and ``finished``). It keeps
    the budget: ``used`` counts this run's proposals and the stage's told trials it did
    not propose (a resumed stage). Subclasses implement ``_next`` (calling
    ``_proposing``) and call ``_told`` for what they are told.

    Example: ``class Walk(ProposingPlan): ...`` with ``_next`` returning a Candidate.
    """

    learns = True

    def __init__(self, space: Space, total: int | None):
        super().__init__(space, total)
        self._seen: set[Any] = set()  # config keys proposed or told
        self._mine: set[Any] = set()  # keys proposed in this run
        self._foreign: set[Any] = set()  # own-stage keys told but not proposed here
        self._proposed = 0
        self._exhausted = False

    @property
    def used(self) -> int:
        """Trials of the budget spent: proposed in this run, plus own-stage trials told
        that this run did not propose (a resumed stage)."""
        return self._proposed + len(self._foreign)

    def _update_finished(self) -> None:
        spent = self.total is not None and self.used >= self.total
        self.finished = bool(spent or self._exhausted)

    def _told(self, key: Any, own: bool) -> None:
        """A told trial's config: seen; one of this stage not proposed here counts
        against the budget."""
        if own and key not in self._mine:
            self._foreign.add(key)
        self._seen.add(key)

    def _proposing(self, key: Any) -> None:
        """A config about to be proposed."""
        self._seen.add(key)
        self._mine.add(key)
        self._proposed += 1
        self._update_finished()

    def ask(self, n: int) -> list[Candidate]:
        out: list[Candidate] = []
        while len(out) < n and not self.finished:
            candidate = self._next()
            if candidate is None:
                self._exhausted = True
                self._update_finished()
                break
            out.append(candidate)
        return out

    def ask_many(self, n: int) -> list[Candidate]:
        out: list[Candidate] = []
        if n > 1 and not self.finished:
            left = n if self.total is None else min(n, self.total - self.used)
            out = self._many(left)
        return out + self.ask(n - len(out))

    def _next(self) -> Candidate | None:
        raise NotImplementedError

    def _many(self, n: int) -> list[Candidate]:
        """Up to ``n`` candidates made together (each through ``_proposing``), or []
        where the plan has no batch rule right now (``ask_many`` then asks one at a
        time)."""
        return []


# ------------------------------------------------------------------- registry

# Every plan a stage can name (``plan: <name>``) -> its class, filled by ``@register``.
REGISTRY: dict[str, type[Plan]] = {}

P = TypeVar("P", bound=type[Plan])


def register(cls: P) -> P:
    """Class decorator: ``cls`` is the plan of the stages named ``cls.name``.

    Example: ``@register class Corners(Plan): name = "corners"; ...``
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name to be registered")
    REGISTRY[cls.name] = cls
    return cls


def plan_class(name: str) -> type[Plan]:
    """The plan a stage names ``name``.

    Example: ``plan_class("sobol") is SobolPlan``
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown plan {name!r}: expected one of "
                         f"{', '.join(REGISTRY)}") from None


def needs_metric(metric: Metric | None, stage: StageSettings, plan: str) -> Metric:
    """``metric``, which a plan that ranks or models results cannot go without."""
    if metric is None:
        raise ValueError(f"stage {stage.index} ({plan}) ranks results: the sweep needs a "
                         f"metric")
    return metric


__all__ = ["CHUNK", "REGISTRY", "Candidate", "Config", "Plan", "ProposingPlan",
           "StageSettings", "as_metric", "make_rng", "needs_metric", "plan_class", "register",
           "seed_tuple"]
