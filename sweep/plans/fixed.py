"""Plans: ask/tell objects that place points in a stage's search space. Ray-free.

A plan proposes candidates with ``ask(n)`` (up to n; an empty answer means "nothing
until you tell me more") and is told every finished trial with ``tell(records)`` and
every intermediate report with ``tell_report(report)``. ``finished`` says when it
will propose nothing more. The fixed plans here (grid, random, Sobol, Latin
hypercube) ignore what they are told; ``sweep.plans.refine`` and ``sweep.plans.bayes`` learn
from it. No plan knows about Ray, the store or trial ids: the driver turns
candidates into trials, skips what is stored, and tells the plan what came back.

Example:
    >>> from sweep.space import Space, LogUniform, Choice
    >>> space = Space({"lr": LogUniform(1e-4, 1.0), "opt": Choice(["sgd", "adam"])})
    >>> grid = Grid(space, points=3)
    >>> len(grid), grid[0]
    (6, {'lr': 0.0001, 'opt': 'sgd'})
    >>> [c.params["lr"] for c in grid.ask(3)]
    [0.0001, 0.0001, 0.01]

A plan of your own only needs ``ask`` (and ``tell`` if it learns)::

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

import itertools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..core.records import Report, TrialRecord
from ..space.distributions import Distinct, distinct
from ..space.search_space import Space

Config = dict[str, Any]
# Above this many combinations, sampling without replacement rejects duplicates
# instead of drawing indices from the enumerated product.
_ENUMERATE_LIMIT = 1_000_000
_CHUNK = 1024


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


class Candidate(NamedTuple):
    """A proposed trial: its flat config (the stage's fixed values included) and, for
    refined trials, the id of the trial it was derived from."""

    params: Config
    parent: str | None = None


class Plan:
    """The ask/tell interface every plan implements.

    ``total`` is the number of trials the plan will propose (for progress bars and
    budgets; None when unknown). ``learns`` is True for plans that want ``tell``: the
    driver then tells them the stored trials of earlier stages before the first ask
    (and this stage's, on resume), and every result as it arrives.
    """

    learns = False

    def __init__(self, space: Space, total: int | None = None):
        self.space = space
        self.total = total
        self.finished = False

    def ask(self, n: int) -> list[Candidate]:
        """Up to ``n`` new candidates; [] means none until more results are told."""
        raise NotImplementedError

    def tell(self, records: Sequence[TrialRecord]) -> None:
        """Finished trials (of this stage, or of earlier ones before the first ask)."""

    def tell_report(self, report: Report) -> None:
        """An intermediate report of a running trial."""

    def start(self) -> None:
        """Called once the stored history has been told, before the first ask (a plan
        that chooses from the history, such as refine, chooses here)."""

    def describe(self) -> dict[str, Any] | None:
        """What the plan decided that a user may want to see (anchors, boxes), JSON-friendly."""
        return None

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError(f"{type(self).__name__} has no fixed length")
        return self.total

    def candidates(self) -> Iterator[Candidate]:
        """Every candidate of a plan that needs no results (dry runs, tests); a learning
        plan is asked a few at a time (each proposal may cost a model fit)."""
        while not self.finished:
            batch = self.ask(8 if self.learns else _CHUNK)
            if not batch:
                return
            yield from batch

    def __iter__(self) -> Iterator[Config]:
        for candidate in self.candidates():
            yield candidate.params


class ProposingPlan(Plan):
    """A learning plan that proposes one candidate at a time: ``ask(n)`` calls
    ``_next()`` up to n times; None from it means nothing is left to propose (the plan
    is then exhausted). It keeps the budget: ``used`` counts this run's proposals and
    the stage's told trials it did not propose (a resumed stage). Subclasses implement
    ``_next`` (calling ``_proposing``) and call ``_told`` for what they are told.

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

    def _next(self) -> Candidate | None:
        raise NotImplementedError


class FixedPlan(Plan):
    """A plan decided in advance: a lazy stream of candidates that ignores ``tell``.
    Subclasses implement ``_stream()``."""

    def __init__(self, space: Space, total: int | None):
        super().__init__(space, total)
        self._it: Iterator[Candidate] | None = None

    def _stream(self) -> Iterator[Candidate]:
        raise NotImplementedError

    def ask(self, n: int) -> list[Candidate]:
        if self.finished:
            return []
        if self._it is None:
            self._it = self._stream()
        out = list(itertools.islice(self._it, n))
        if len(out) < n:
            self.finished = True
        return out

    def candidates(self) -> Iterator[Candidate]:
        # A fresh pass, independent of any asks made before.
        return self._stream()


# ----------------------------------------------------------------------- grid


class Grid(FixedPlan):
    """The Cartesian product of per-axis values, indexed without materialising it.

    Axis values: explicit ``values[name]``, else every value of a discrete axis,
    else ``points`` evenly spaced in unit space. Names are sorted and the last
    name varies fastest (scikit-learn's ``ParameterGrid`` order).

    Example:
        >>> from sweep.space import Space, RandInt
        >>> g = Grid(Space({"a": RandInt(1, 2), "b": RandInt(1, 3)}))
        >>> [g[i]["b"] for i in range(4)]
        [1, 2, 3, 1]
    """

    def __init__(
        self,
        space: Space,
        points: int | Mapping[str, int] | None = None,
        values: Mapping[str, Sequence[Any]] | None = None,
    ):
        values = dict(values or {})
        self.axes: list[tuple[str, list[Any]]] = []
        # Explicit values make an axis of any parameter, a constant included.
        names = sorted(set(space.dims) | {n for n in values if n in space})
        for name in names:
            if name in values:
                axis = distinct(list(values[name]))
            else:
                pts = points.get(name) if isinstance(points, Mapping) else points
                try:
                    axis = space.grid_axis(name, pts)
                except ValueError as exc:
                    raise ValueError(f"parameters.{name}: {exc}") from None
            self.axes.append((name, axis))
        on_axes = {name for name, _ in self.axes}
        self._constants = {n: space[n].from_unit(0.5) for n in space if n not in on_axes}
        super().__init__(space, math.prod(len(axis) for _, axis in self.axes))

    def __getitem__(self, index: int) -> Config:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"grid indices must be integers, not {type(index).__name__}")
        size = len(self)
        i = int(index)
        if i < 0:
            i += size
        if not 0 <= i < size:
            raise IndexError(f"grid index {index} out of range for a grid of {size}")
        picked: dict[str, Any] = {}
        for name, axis in reversed(self.axes):
            i, j = divmod(i, len(axis))
            picked[name] = axis[j]
        config = dict(self._constants)
        config.update(picked)
        return {name: config[name] for name in self.space}

    def _stream(self) -> Iterator[Candidate]:
        for i in range(len(self)):
            yield Candidate(self[i])


class Truncated(FixedPlan):
    """The first n candidates of a fixed plan (W&B's ``run_cap`` on a grid).

    Example: ``Truncated(Grid(space, points=5), 10)``
    """

    def __init__(self, plan: FixedPlan, n: int):
        super().__init__(plan.space, min(n, len(plan)))
        self.plan = plan

    def _stream(self) -> Iterator[Candidate]:
        return itertools.islice(self.plan.candidates(), len(self))


# --------------------------------------------------------------------- random


class _UnitPlan(FixedPlan):
    """A plan that draws n points in [0, 1]^d and maps them through the space."""

    def __init__(self, space: Space, n: int, seed: int | Sequence[int]):
        super().__init__(space, int(n))
        self.seed = seed

    def _points(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _stream(self) -> Iterator[Candidate]:
        if not self.space.dims:
            yield Candidate(self.space.from_unit([]))
            return
        for chunk in self._points():
            for row in chunk.tolist():
                yield Candidate(self.space.from_unit(row))


class RandomPlan(_UnitPlan):
    """n independent draws from the priors.

    When every axis is discrete and n is at most the number of combinations,
    configs are drawn without replacement (scikit-learn's ``ParameterSampler``);
    when n exceeds it, every combination runs once, with a warning.

    Example:
        >>> from sweep.space import Space, Uniform
        >>> plan = RandomPlan(Space({"x": Uniform(0, 1)}), n=2, seed=0)
        >>> list(plan) == list(RandomPlan(Space({"x": Uniform(0, 1)}), n=2, seed=0))
        True
    """

    def __init__(self, space: Space, n: int, seed: int | Sequence[int]):
        super().__init__(space, n, seed)
        possible = space.possible_combinations()
        if possible is not None and self.total > possible:
            warnings.warn(
                f"{self.total} random trials asked of a space with only {possible} "
                f"combinations: running each combination once",
                stacklevel=2,
            )
            self.total = possible
        self._combinations = space.cardinality()

    def _points(self) -> Iterator[np.ndarray]:
        rng = make_rng(self.seed)
        left = self.total
        while left > 0:
            size = min(_CHUNK, left)
            yield rng.random((size, len(self.space.dims)))
            left -= size

    def _stream(self) -> Iterator[Candidate]:
        if self._combinations is None or not self.space.dims:
            yield from super()._stream()
        elif self._combinations <= _ENUMERATE_LIMIT:
            yield from self._enumerated()
        else:
            yield from self._rejecting()

    def _enumerated(self) -> Iterator[Candidate]:
        """Without replacement over the enumerated product, weighted by the priors."""
        full = Grid(self.space)
        probs = self.space.combination_probabilities()
        rng = make_rng(self.seed)
        uniform = np.allclose(probs, probs[0])
        picks = rng.choice(len(full), size=self.total, replace=False,
                           p=None if uniform else probs / probs.sum())
        for i in picks.tolist():
            yield Candidate(full[i])

    def _rejecting(self) -> Iterator[Candidate]:
        seen = Distinct()
        rng = make_rng(self.seed)
        while len(seen) < self.total:
            for row in rng.random((_CHUNK, len(self.space.dims))).tolist():
                config = self.space.from_unit(row)
                if seen.add(config):
                    yield Candidate(config)
                    if len(seen) >= self.total:
                        return


class SobolPlan(_UnitPlan):
    """n points of a scrambled Sobol sequence (scipy.stats.qmc): low discrepancy,
    so n points cover the cube more evenly than n random ones.

    Example: ``SobolPlan(space, n=64, seed=0)``; powers of two keep the balance.
    """

    def _points(self) -> Iterator[np.ndarray]:
        from scipy.stats import qmc

        sampler = qmc.Sobol(len(self.space.dims), scramble=True, seed=make_rng(self.seed))
        left = self.total
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*balance properties.*")
            while left > 0:
                size = min(_CHUNK, left)
                yield sampler.random(size)
                left -= size


class LatinHypercubePlan(_UnitPlan):
    """n points of a Latin hypercube (scipy.stats.qmc): each axis cut into n equal
    slices, one point per slice. Drawn in one piece (n x d floats).

    Example: ``LatinHypercubePlan(space, n=32, seed=0)``
    """

    def _points(self) -> Iterator[np.ndarray]:
        from scipy.stats import qmc

        yield qmc.LatinHypercube(len(self.space.dims), seed=make_rng(self.seed)).random(
            self.total)


def sampler(
    space: Space,
    kind: str,
    n: int,
    seed: int | Sequence[int],
    points: int | Mapping[str, int] | None = None,
) -> FixedPlan:
    """The fixed plan named ``kind`` ('grid', 'random', 'sobol', 'lhs') over ``space``.

    Example: ``sampler(space, "sobol", 64, seed=(0, 0))``
    """
    if kind == "grid":
        return Grid(space, points=points)
    if kind == "random":
        return RandomPlan(space, n, seed)
    if kind == "sobol":
        return SobolPlan(space, n, seed)
    if kind == "lhs":
        return LatinHypercubePlan(space, n, seed)
    raise ValueError(f"unknown plan {kind!r}: expected grid, random, sobol or lhs")


def distinct_sample(space: Space, kind: str, n: int, seed: int | Sequence[int]
                    ) -> Iterator[Config]:
    """Up to n distinct configs drawn by ``kind`` from ``space`` (a narrow integer box
    may hold fewer than n).

    Example: ``list(distinct_sample(space, "sobol", 8, (0, 1)))``
    """
    total = space.cardinality()
    if total is None:
        yield from sampler(space, kind, n, seed)
        return
    if kind == "random":
        yield from RandomPlan(space, min(n, total), seed)
        return
    seen = Distinct()
    for config in sampler(space, kind, 4 * n, seed):
        if seen.add(config):
            yield config
            if len(seen) >= min(n, total):
                return


__all__ = [
    "Candidate",
    "Config",
    "FixedPlan",
    "Grid",
    "LatinHypercubePlan",
    "Plan",
    "ProposingPlan",
    "RandomPlan",
    "SobolPlan",
    "Truncated",
    "distinct_sample",
    "make_rng",
    "sampler",
    "seed_tuple",
]
