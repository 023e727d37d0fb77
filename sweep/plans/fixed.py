"""Fixed plans: grid, random, Sobol and Latin hypercube, decided in advance. Ray-free.

A fixed plan is a lazy stream of candidates that ignores what it is told (the plan
interface is ``sweep.plans.base``); ``sampler`` builds one by name. The learning plans
are ``sweep.plans.refine``, ``sweep.plans.adaptive_refine`` and ``sweep.plans.bayes``.

Example:
    >>> from sweep.space import Space, LogUniform, Choice
    >>> space = Space({"lr": LogUniform(1e-4, 1.0), "opt": Choice(["sgd", "adam"])})
    >>> grid = Grid(space, points=3)
    >>> len(grid), grid[0]
    (6, {'lr': 0.0001, 'opt': 'sgd'})
    >>> [c.params["lr"] for c in grid.ask(3)]
    [0.0001, 0.0001, 0.01]
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.metric import Metric
from ..space.distributions import Distinct, distinct
from ..space.search_space import Space
from .base import (
    CHUNK,
    REGISTRY,
    Candidate,
    Config,
    Plan,
    StageSettings,
    make_rng,
    register,
)

# Above this many combinations, sampling without replacement rejects duplicates
# instead of drawing indices from the enumerated product.
_ENUMERATE_LIMIT = 1_000_000


class FixedPlan(Plan):
    """A plan decided in advance: a lazy stream of candidates that ignores ``tell``.
    Subclasses implement ``_stream()``; a named one builds itself from a budget
    (``of_size``, what ``sampler`` calls) and from a stage (``from_stage``)."""

    def __init__(self, space: Space, total: int | None):
        super().__init__(space, total)
        self._it: Iterator[Candidate] | None = None

    @classmethod
    def of_size(cls, space: Space, n: int, seed: int | Sequence[int],
                points: int | Mapping[str, int] | None = None) -> FixedPlan:
        """``n`` trials of this plan over ``space`` (``points``: a grid's, per axis)."""
        raise NotImplementedError(f"{cls.__name__} has no size of its own")

    @classmethod
    def from_stage(cls, stage: StageSettings, space: Space, metric: Metric | None
                   ) -> FixedPlan:
        return cls.of_size(space, stage.trials or 0, stage.seed)

    @classmethod
    def extension_problem(cls, stage: StageSettings, space: Space) -> str | None:
        """A fixed plan extends only when its design of n is the head of its design of
        any larger n (the plans that do say so); by default it does not."""
        return (f"a {cls.name or cls.__name__} design is drawn for its size, so a larger "
                f"one would not start with the trials stored")

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


@register
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

    name = "grid"

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
        self._set_axes(space, self.axes)

    def _set_axes(self, space: Space, axes: list[tuple[str, list[Any]]]) -> None:
        self.axes = axes
        on_axes = {name for name, _ in axes}
        self._constants = {n: space[n].from_unit(0.5) for n in space if n not in on_axes}
        FixedPlan.__init__(self, space, math.prod(len(axis) for _, axis in axes))

    @classmethod
    def every_config(cls, space: Space) -> Grid:
        """Every config of a discrete space, in grid order: each axis its whole support,
        however long (up to ``LIST_LIMIT`` values; a user's grid asks for ``points``
        above 10,000).

        Example: ``len(Grid.every_config(Space({"n": RandInt(0, 49_999)}))) == 50_000``
        """
        grid = cls.__new__(cls)
        grid._set_axes(space, [(name, space[name].support()) for name in space.dims])
        return grid

    @classmethod
    def of_size(cls, space: Space, n: int, seed: int | Sequence[int],
                points: int | Mapping[str, int] | None = None) -> Grid:
        """The grid of ``points`` per axis (a grid's size is its own: ``n`` is unused)."""
        return cls(space, points=points)

    @classmethod
    def from_stage(cls, stage: StageSettings, space: Space, metric: Metric | None
                   ) -> FixedPlan:
        """The stage's grid, cut to its first ``trials`` points when it is truncated
        (W&B's ``run_cap``)."""
        grid = cls(space, points=stage.axis_points, values=stage.values)
        if stage.truncate and stage.trials is not None:
            return Truncated(grid, stage.trials)
        return grid

    @classmethod
    def extension_problem(cls, stage: StageSettings, space: Space) -> str | None:
        """A grid's order is fixed: a larger cut of it starts with the smaller one."""
        return None

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

    @classmethod
    def of_size(cls, space: Space, n: int, seed: int | Sequence[int],
                points: int | Mapping[str, int] | None = None) -> FixedPlan:
        return cls(space, n, seed)

    def _points(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _stream(self) -> Iterator[Candidate]:
        if not self.space.dims:
            yield Candidate(self.space.from_unit([]))
            return
        for chunk in self._points():
            for row in chunk.tolist():
                yield Candidate(self.space.from_unit(row))


@register
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

    name = "random"

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

    @classmethod
    def extension_problem(cls, stage: StageSettings, space: Space) -> str | None:
        """Draws from one seeded stream extend, except in a small all-discrete space:
        there a budget's configs are drawn together, without replacement."""
        possible = space.possible_combinations()
        if not _draws_together(space) or (possible is not None
                                          and (stage.trials or 0) >= possible):
            return None  # every config of the space is drawn, the stored ones included
        return (f"a random stage over an all-discrete space of {space.cardinality()} "
                f"configs draws its budget together, without replacement, so a larger "
                f"one would not start with the trials stored")

    def _points(self) -> Iterator[np.ndarray]:
        rng = make_rng(self.seed)
        left = self.total
        while left > 0:
            size = min(CHUNK, left)
            yield rng.random((size, len(self.space.dims)))
            left -= size

    def _stream(self) -> Iterator[Candidate]:
        if self._combinations is None or not self.space.dims:
            yield from super()._stream()
        elif _draws_together(self.space):
            yield from self._enumerated()
        else:
            yield from self._rejecting()

    def _enumerated(self) -> Iterator[Candidate]:
        """Without replacement over the enumerated product, weighted by the priors."""
        full = Grid.every_config(self.space)
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
            for row in rng.random((CHUNK, len(self.space.dims))).tolist():
                config = self.space.from_unit(row)
                if seen.add(config):
                    yield Candidate(config)
                    if len(seen) >= self.total:
                        return


def _draws_together(space: Space) -> bool:
    """Whether a random plan over ``space`` draws its configs from the enumerated product
    (a small all-discrete space), rather than one at a time from the priors."""
    total = space.cardinality() if space.dims else None
    return total is not None and total <= _ENUMERATE_LIMIT


@register
class SobolPlan(_UnitPlan):
    """n points of a scrambled Sobol sequence (scipy.stats.qmc): low discrepancy,
    so n points cover the cube more evenly than n random ones.

    Example: ``SobolPlan(space, n=64, seed=0)``; powers of two keep the balance.
    """

    name = "sobol"
    imports = ("scipy.stats",)

    @classmethod
    def extension_problem(cls, stage: StageSettings, space: Space) -> str | None:
        """A Sobol sequence extends: its first n points are those of any longer run."""
        return None

    def _points(self) -> Iterator[np.ndarray]:
        from scipy.stats import qmc

        sampler = qmc.Sobol(len(self.space.dims), scramble=True, seed=make_rng(self.seed))
        left = self.total
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*balance properties.*")
            while left > 0:
                size = min(CHUNK, left)
                yield sampler.random(size)
                left -= size


@register
class LatinHypercubePlan(_UnitPlan):
    """n points of a Latin hypercube (scipy.stats.qmc): each axis cut into n equal
    slices, one point per slice. Drawn in one piece (n x d floats).

    Example: ``LatinHypercubePlan(space, n=32, seed=0)``
    """

    name = "lhs"
    imports = ("scipy.stats",)

    @classmethod
    def extension_problem(cls, stage: StageSettings, space: Space) -> str | None:
        return ("a Latin hypercube cuts each axis into as many slices as it has trials, "
                "so one of a larger budget would be a different design, not the one "
                "stored and more")

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
    cls = REGISTRY.get(kind)
    if cls is None or not issubclass(cls, FixedPlan):
        names = [name for name, c in REGISTRY.items() if issubclass(c, FixedPlan)]
        raise ValueError(f"unknown plan {kind!r}: expected {', '.join(names[:-1])} or "
                         f"{names[-1]}")
    return cls.of_size(space, n, seed, points)


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


__all__ = ["FixedPlan", "Grid", "LatinHypercubePlan", "RandomPlan", "SobolPlan", "Truncated",
           "distinct_sample", "sampler"]
