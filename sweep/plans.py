"""Plans: ways of placing points in the unit cube. Lazy, seeded, Ray-free.

Every plan yields flat configs (``dict`` name -> value) one at a time; a plan
never materialises its whole list. ``Grid`` is indexed like scikit-learn's
``ParameterGrid``; ``RandomPlan``, ``SobolPlan`` and ``LatinHypercubePlan``
draw points from a numpy Generator derived from a seed; ``Refine`` narrows the
space into boxes around the best trials of earlier stages and samples inside
them with any of the others.

Example:
    >>> from sweep.space import Space, LogUniform, Choice
    >>> space = Space({"lr": LogUniform(1e-4, 1.0), "opt": Choice(["sgd", "adam"])})
    >>> grid = Grid(space, points=3)
    >>> len(grid), grid[0]
    (6, {'lr': 0.0001, 'opt': 'sgd'})
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .space import Choice, Distribution, Space, _unique

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


class Plan:
    """A lazy sequence of configs. ``candidates()`` also gives each config's parent
    trial id (refined trials only)."""

    def __iter__(self) -> Iterator[Config]:
        for params, _parent in self.candidates():
            yield params

    def candidates(self) -> Iterator[tuple[Config, str | None]]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


# ----------------------------------------------------------------------- grid


class Grid(Plan):
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
        self.space = space
        values = dict(values or {})
        self.axes: list[tuple[str, list[Any]]] = []
        # Explicit values make an axis of any parameter, a constant included.
        names = sorted(set(space.dims) | {n for n in values if n in space})
        for name in names:
            if name in values:
                axis = _unique(list(values[name]))
            else:
                pts = points.get(name) if isinstance(points, Mapping) else points
                try:
                    axis = space[name].grid_values(pts)
                except ValueError as exc:
                    raise ValueError(f"parameters.{name}: {exc}") from None
            self.axes.append((name, axis))
        on_axes = {name for name, _ in self.axes}
        self._constants = {n: space[n].from_unit(0.5) for n in space if n not in on_axes}
        self._len = math.prod(len(axis) for _, axis in self.axes)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Config:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"grid indices must be integers, not {type(index).__name__}")
        i = int(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"grid index {index} out of range for a grid of {self._len}")
        picked: dict[str, Any] = {}
        for name, axis in reversed(self.axes):
            i, j = divmod(i, len(axis))
            picked[name] = axis[j]
        config = dict(self._constants)
        config.update(picked)
        return {name: config[name] for name in self.space}

    def candidates(self) -> Iterator[tuple[Config, str | None]]:
        for i in range(self._len):
            yield self[i], None


# --------------------------------------------------------------------- random


class _UnitPlan(Plan):
    """A plan that draws n points in [0, 1]^d and maps them through the space."""

    def __init__(self, space: Space, n: int, seed: int | Sequence[int]):
        self.space = space
        self.n = int(n)
        self.seed = seed

    def __len__(self) -> int:
        return self.n

    def _points(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def candidates(self) -> Iterator[tuple[Config, str | None]]:
        if not self.space.dims:
            yield self.space.from_unit([]), None
            return
        for chunk in self._points():
            for row in chunk.tolist():
                yield self.space.from_unit(row), None


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
        total = space.cardinality()
        possible = total
        if total is not None and space.dims:
            # A zero weight rules its value out: such combinations are never drawn.
            possible = math.prod(
                sum(p > 0 for p in space[name].probabilities()) for name in space.dims
            )
        if possible is not None and self.n > possible:
            warnings.warn(
                f"{self.n} random trials asked of a space with only {possible} combinations: "
                f"running each combination once",
                stacklevel=2,
            )
            self.n = possible
        self._total = total

    def _points(self) -> Iterator[np.ndarray]:
        rng = make_rng(self.seed)
        left = self.n
        while left > 0:
            size = min(_CHUNK, left)
            yield rng.random((size, len(self.space.dims)))
            left -= size

    def candidates(self) -> Iterator[tuple[Config, str | None]]:
        if self._total is None or not self.space.dims:
            yield from super().candidates()
        elif self._total <= _ENUMERATE_LIMIT:
            yield from self._enumerated()
        else:
            yield from self._rejecting()

    def _enumerated(self) -> Iterator[tuple[Config, str | None]]:
        """Without replacement over the enumerated product, weighted by the priors."""
        full = Grid(self.space)
        probs = np.ones(1)
        for name in self.space.dims:
            probs = np.outer(probs, np.asarray(self.space[name].probabilities())).ravel()
        rng = make_rng(self.seed)
        uniform = np.allclose(probs, probs[0])
        picks = rng.choice(
            len(full), size=self.n, replace=False, p=None if uniform else probs / probs.sum()
        )
        for i in picks.tolist():
            yield full[i], None

    def _rejecting(self) -> Iterator[tuple[Config, str | None]]:
        seen: set[tuple[Any, ...]] = set()
        rng = make_rng(self.seed)
        while len(seen) < self.n:
            for row in rng.random((_CHUNK, len(self.space.dims))).tolist():
                config = self.space.from_unit(row)
                key = tuple((type(v).__name__, v) for v in config.values())
                if key in seen:
                    continue
                seen.add(key)
                yield config, None
                if len(seen) >= self.n:
                    return


class SobolPlan(_UnitPlan):
    """n points of a scrambled Sobol sequence (scipy.stats.qmc): low discrepancy,
    so n points cover the cube more evenly than n random ones.

    Example: ``SobolPlan(space, n=64, seed=0)``; powers of two keep the balance.
    """

    def _points(self) -> Iterator[np.ndarray]:
        from scipy.stats import qmc

        sampler = qmc.Sobol(len(self.space.dims), scramble=True, seed=make_rng(self.seed))
        left = self.n
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

        yield qmc.LatinHypercube(len(self.space.dims), seed=make_rng(self.seed)).random(self.n)


def sampler(
    space: Space,
    kind: str,
    n: int,
    seed: int | Sequence[int],
    points: int | Mapping[str, int] | None = None,
) -> Plan:
    """The plan named ``kind`` ('grid', 'random', 'sobol', 'lhs') over ``space``.

    Example: ``sampler(space, "sobol", 64, seed=(0, 0))``
    """
    if kind == "grid":
        return Grid(space, points=points)
    if kind == "random":
        return RandomPlan(space, n, seed)
    if kind == "sobol":
        return SobolPlan(space, n, seed)
    if kind in ("lhs", "latin_hypercube"):
        return LatinHypercubePlan(space, n, seed)
    raise ValueError(f"unknown plan {kind!r}: expected grid, random, sobol or lhs")


# --------------------------------------------------------------------- refine


@dataclass
class Seed:
    """A trial that a refine stage narrows the space around (best first)."""

    trial_id: str
    params: Config


@dataclass
class Box:
    """One region of a refine stage: a narrowed space and its share of the budget."""

    seed: str
    space: Space
    trials: int
    bounds: dict[str, list[Any]] = field(default_factory=dict)
    categories: dict[str, list[Any]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly form (for logs, the report and stored stage metadata)."""
        return {
            "seed": self.seed,
            "trials": self.trials,
            "bounds": self.bounds,
            "categories": self.categories,
        }


class Refine(Plan):
    """Boxes around the best trials of earlier stages, sampled densely.

    ``region='hull'``: one box, the bounding box of the seeds in unit space,
    widened by ``margin`` (a fraction of its width per side) and never narrower
    than ``min_width``; categorical axes keep the values seen among the seeds.
    ``region='each'``: one box per seed, ``shrink`` wide per axis, the budget split
    evenly (remainder to the best); categorical axes keep the seed's value
    (``categorical='keep'``) or the values among the seeds (``'narrow'``).
    Boxes are clipped to the space; log axes narrow in decades.

    Example:
        >>> from sweep.space import Space, LogUniform
        >>> space = Space({"lr": LogUniform(1e-4, 1.0)})
        >>> plan = Refine(space, [Seed("t1", {"lr": 0.01})], trials=4, region="each",
        ...               shrink=0.25, seed=0)
        >>> plan.boxes[0].bounds["lr"]
        [0.00316227766017, 0.0316227766017]
    """

    def __init__(
        self,
        space: Space,
        seeds: Sequence[Seed],
        *,
        trials: int | None,
        region: str = "each",
        shrink: float = 0.25,
        margin: float = 0.1,
        min_width: float = 0.05,
        categorical: str = "keep",
        sample: str = "random",
        points: int | Mapping[str, int] | None = None,
        seed: int | Sequence[int] = 0,
    ):
        if not seeds:
            raise ValueError("a refine stage needs at least one seed trial")
        self.space = space
        self.seeds = list(seeds)
        self.region = region
        self.sample = sample
        self.points = points
        self.seed = seed
        self._seed_units = {s.trial_id: self._unit(s.params) for s in self.seeds}
        n = trials if trials is not None else 0
        if region == "hull":
            self.boxes = [self._hull_box(n, margin, min_width)]
        elif region == "each":
            self.boxes = self._each_boxes(n, shrink, categorical)
        else:
            raise ValueError(f"unknown region {region!r}: expected hull or each")
        if trials is None or sample == "grid":
            for box in self.boxes:
                size = len(Grid(box.space, points=points))
                box.trials = size if trials is None else min(box.trials, size)
        self._len = sum(b.trials for b in self.boxes)

    def __len__(self) -> int:
        return self._len

    def _unit(self, params: Config) -> dict[str, float]:
        return {
            n: self.space[n].to_unit(params[n])
            for n in self.space.dims
            if n in params and not isinstance(self.space[n], Choice)
        }

    def _numeric_dims(self) -> list[str]:
        return [n for n in self.space.dims if not isinstance(self.space[n], Choice)]

    def _categorical_dims(self) -> list[str]:
        return [n for n in self.space.dims if isinstance(self.space[n], Choice)]

    def _narrowed(self, name: str, lo: float, hi: float) -> tuple[Distribution, list[Any]]:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
        dist = self.space[name].narrow(lo, hi)
        parent = self.space[name]
        return dist, [parent.from_unit(lo), parent.from_unit(hi)]

    def _seen_values(self, name: str) -> list[Any]:
        return [s.params[name] for s in self.seeds if name in s.params]

    def _hull_box(self, trials: int, margin: float, min_width: float) -> Box:
        replaced: dict[str, Distribution] = {}
        bounds: dict[str, list[Any]] = {}
        categories: dict[str, list[Any]] = {}
        for name in self._numeric_dims():
            us = [u[name] for u in self._seed_units.values() if name in u]
            lo, hi = min(us), max(us)
            pad = margin * (hi - lo)
            lo, hi = lo - pad, hi + pad
            if hi - lo < min_width:
                mid = (lo + hi) / 2
                lo, hi = mid - min_width / 2, mid + min_width / 2
            replaced[name], bounds[name] = self._narrowed(name, lo, hi)
        for name in self._categorical_dims():
            dist = self.space[name]
            assert isinstance(dist, Choice)
            replaced[name] = dist.subset(self._seen_values(name))
            categories[name] = replaced[name].support()
        return Box(self.seeds[0].trial_id, self.space.replace(**replaced), trials, bounds,
                   categories)

    def _each_boxes(self, trials: int, shrink: float, categorical: str) -> list[Box]:
        k = len(self.seeds)
        share, extra = divmod(trials, k)
        boxes = []
        for i, s in enumerate(self.seeds):
            replaced: dict[str, Distribution] = {}
            bounds: dict[str, list[Any]] = {}
            categories: dict[str, list[Any]] = {}
            units = self._seed_units[s.trial_id]
            for name in self._numeric_dims():
                u = units[name]
                replaced[name], bounds[name] = self._narrowed(name, u - shrink / 2, u + shrink / 2)
            for name in self._categorical_dims():
                dist = self.space[name]
                assert isinstance(dist, Choice)
                values = [s.params[name]] if categorical == "keep" else self._seen_values(name)
                replaced[name] = dist.subset(values)
                categories[name] = replaced[name].support()
            n = share + (extra if i == 0 else 0)
            boxes.append(Box(s.trial_id, self.space.replace(**replaced), n, bounds, categories))
        return boxes

    def _parent_of(self, box: Box, params: Config) -> str:
        if self.region == "each":
            return box.seed
        point = self._unit(params)
        cats = self._categorical_dims()

        def distance(seed: Seed) -> float:
            su = self._seed_units[seed.trial_id]
            d = sum((point[n] - su[n]) ** 2 for n in point if n in su)
            return d + sum(params.get(n) != seed.params.get(n) for n in cats)

        return min(self.seeds, key=distance).trial_id

    def candidates(self) -> Iterator[tuple[Config, str | None]]:
        for index, box in enumerate(self.boxes):
            if box.trials <= 0:
                continue
            entropy = (*_as_tuple(self.seed), index)
            if self.sample == "grid":
                inner: Iterator[Config] = itertools.islice(
                    iter(Grid(box.space, points=self.points)), box.trials
                )
            else:
                inner = _distinct(box.space, self.sample, box.trials, entropy)
            for params in inner:
                yield params, self._parent_of(box, params)


def _as_tuple(seed: int | Sequence[int]) -> tuple[int, ...]:
    return (int(seed),) if isinstance(seed, (int, np.integer)) else tuple(int(s) for s in seed)


def _distinct(space: Space, kind: str, n: int, entropy: tuple[int, ...]) -> Iterator[Config]:
    """Up to n distinct configs from ``space`` (a narrow integer box may hold fewer)."""
    total = space.cardinality()
    if total is not None:
        yield from RandomPlan(space, min(n, total), entropy) if kind == "random" else (
            itertools.islice(_dedup(sampler(space, kind, 4 * n, entropy)), min(n, total))
        )
        return
    yield from sampler(space, kind, n, entropy)


def _dedup(plan: Plan) -> Iterator[Config]:
    seen: set[tuple[Any, ...]] = set()
    for config in plan:
        key = tuple((type(v).__name__, v) for v in config.values())
        if key not in seen:
            seen.add(key)
            yield config


__all__ = [
    "Box",
    "Config",
    "Grid",
    "LatinHypercubePlan",
    "Plan",
    "RandomPlan",
    "Refine",
    "Seed",
    "SobolPlan",
    "make_rng",
    "sampler",
]
