"""The search space: named distributions, and the unit cube every plan works in.

Every parameter maps to [0, 1] and back (``sweep.space.distributions``); a plan places points
in [0, 1]^d and the space turns them into configs. A log-scaled parameter is uniform in
log(x) in unit space, so narrowing a box in unit space narrows it in decades.

Example:
    >>> from sweep.space import Space, LogUniform, Choice
    >>> space = Space({"lr": LogUniform(1e-4, 1.0), "opt": Choice(["sgd", "adam"])})
    >>> space.from_unit([0.5, 0.9])
    {'lr': 0.01, 'opt': 'adam'}
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .distributions import Distribution, value_key

# --------------------------------------------------------------------- space


class Space(Mapping[str, Distribution]):
    """An ordered set of named distributions (names sorted; nested names use dots).

    ``dims`` are the names that are dimensions of the unit cube (constants are
    not). ``from_unit`` turns a point of [0, 1]^len(dims) into a flat config.

    Example:
        >>> s = Space({"b": Uniform(0, 1), "a": Constant(3)})
        >>> s.dims, s.from_unit([0.25])
        (['b'], {'a': 3, 'b': 0.25})
    """

    def __init__(self, params: Mapping[str, Distribution]):
        self._params = {name: params[name] for name in sorted(params)}
        self.dims = [n for n, d in self._params.items() if d.is_dimension]

    def __getitem__(self, name: str) -> Distribution:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def from_unit(self, point: Sequence[float]) -> dict[str, Any]:
        """A flat config from a point in the unit cube (one coordinate per dim)."""
        it = iter(point)
        return {
            name: (dist.from_unit(float(next(it))) if dist.is_dimension else dist.from_unit(0.5))
            for name, dist in self._params.items()
        }

    def to_unit(self, config: Mapping[str, Any]) -> list[float]:
        """The unit-cube point of a flat config (one coordinate per dim)."""
        return [self._params[name].to_unit(config[name]) for name in self.dims]

    def replace(self, **params: Distribution) -> Space:
        """A copy with some parameters replaced (names must exist or are added)."""
        merged = dict(self._params)
        merged.update(params)
        return Space(merged)

    @property
    def numeric_dims(self) -> list[str]:
        """Dimensions with an order (everything but categorical choices)."""
        return [n for n in self.dims if not self._params[n].categorical]

    @property
    def categorical_dims(self) -> list[str]:
        """Dimensions whose values are unordered categories (choices, flags)."""
        return [n for n in self.dims if self._params[n].categorical]

    @property
    def is_discrete(self) -> bool:
        """True when every dimension has finitely many values."""
        return all(self._params[n].cardinality is not None for n in self.dims)

    def key(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """A config's identity over this space's parameters (1, 1.0 and True apart): what
        a plan compares to never propose a config twice.

        Example: ``space.key({"x": 1}) != space.key({"x": 1.0})``
        """
        return tuple((name, value_key(params.get(name))) for name in self)

    def cardinality(self) -> int | None:
        """Number of distinct configs, or None when some axis is continuous."""
        if not self.is_discrete:
            return None
        return math.prod(self._params[n].cardinality for n in self.dims)  # type: ignore

    def possible_combinations(self) -> int | None:
        """Configs with a positive prior probability (a zero weight rules a value out);
        None when some axis is continuous."""
        if not self.is_discrete:
            return None
        return math.prod(self._params[n].possible for n in self.dims)  # type: ignore

    def combination_probabilities(self) -> np.ndarray:
        """The prior probability of every config of a discrete space, in grid order
        (names sorted, the last varying fastest); a ValueError for an axis too long to
        list (``sweep.space.distributions.LIST_LIMIT``)."""
        probs = np.ones(1)
        for name in self.dims:
            probs = np.outer(probs, np.asarray(self._params[name].probabilities())).ravel()
        return probs

    def grid_axis(self, name: str, points: int | None) -> list[Any]:
        """The values of ``name`` on a grid axis (see ``Distribution.grid_values``)."""
        return self._params[name].grid_values(points)

    def scales(self) -> dict[str, str]:
        """'linear' | 'log' | 'categorical' | 'constant' per parameter, for plots."""
        out = {}
        for name, dist in self._params.items():
            if not dist.is_dimension:
                out[name] = "constant"
            elif dist.categorical:
                out[name] = "categorical"
            else:
                out[name] = "log" if dist.log else "linear"
        return out

    def describe(self) -> dict[str, str]:
        return {name: dist.describe() for name, dist in self._params.items()}


__all__ = ["Space"]
