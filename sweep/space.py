"""Distributions and the search space: every parameter maps to [0, 1] and back.

The unit cube is the one idea every plan shares: a plan places points in
[0, 1]^d and the space turns them into configs. A log-scaled parameter is
uniform in log(x) in unit space, so narrowing a box in unit space narrows it
in decades.

Example:
    >>> from sweep.space import Space, LogUniform, Choice
    >>> space = Space({"lr": LogUniform(1e-4, 1.0), "opt": Choice(["sgd", "adam"])})
    >>> space.from_unit([0.5, 0.9])
    {'lr': 0.01, 'opt': 'adam'}
"""

from __future__ import annotations

import bisect
import json
import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError

_NORMAL = statistics.NormalDist()
# Keep normal draws off the infinite tails of the inverse CDF.
_EPS = 1e-12


def _clip01(u: float) -> float:
    return 0.0 if u < 0.0 else 1.0 if u > 1.0 else u


def _tidy(x: float) -> float:
    """Round a computed float to 12 significant digits (0.1 * 3 -> 0.3, 10**-2 -> 0.01)."""
    if x == 0.0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.12g}")


class Distribution:
    """A parameter's prior, with its map to and from the unit interval.

    Subclasses set ``kind`` ('float', 'int', 'bool', 'category', 'constant') and
    ``log`` (whether the axis is log-scaled), and implement ``to_unit``,
    ``from_unit`` and ``describe``. Discrete distributions also give
    ``cardinality`` and ``support`` so that grids and sampling without
    replacement can enumerate them.
    """

    kind: str = "float"
    log: bool = False
    is_dimension: bool = True

    def to_unit(self, value: Any) -> float:
        raise NotImplementedError

    def from_unit(self, u: float) -> Any:
        raise NotImplementedError

    @property
    def cardinality(self) -> int | None:
        """Number of distinct values, or None for a continuous distribution."""
        return None

    def support(self) -> list[Any]:
        """Every value, in unit-space order (discrete distributions only)."""
        raise TypeError(f"{self.describe()} is continuous")

    def probabilities(self) -> list[float]:
        """Prior probability of each value of ``support()``."""
        raise TypeError(f"{self.describe()} is continuous")

    def grid_values(self, points: int | None) -> list[Any]:
        """Values for a grid axis: every value of a discrete axis, else ``points``
        evenly spaced in unit space (so log axes get whole decades)."""
        card = self.cardinality
        if points is None:
            if card is not None and card <= 10_000:
                return self.support()
            raise ValueError("a grid needs `points` for a continuous or very large axis")
        if points < 1:
            raise ValueError("points must be >= 1")
        if points == 1:
            us = [0.5]
        else:
            us = [i / (points - 1) for i in range(points)]
        return _unique([self.from_unit(u) for u in us])

    def narrow(self, lo_u: float, hi_u: float) -> Distribution:
        """The same prior restricted to the unit box [lo_u, hi_u]."""
        lo_u, hi_u = _clip01(lo_u), _clip01(hi_u)
        if lo_u <= 0.0 and hi_u >= 1.0:
            return self
        return Narrowed(self, lo_u, hi_u)

    def describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.describe()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.describe()))


def _unique(values: Sequence[Any]) -> list[Any]:
    """Drop repeated values, keeping the first, telling 1 from True and 1.0."""
    seen: set[tuple[str, Any]] = set()
    out = []
    for v in values:
        try:
            key = (type(v).__name__, v)
            hash(key)
        except TypeError:  # list or mapping values (grid `values:`): compare by repr
            key = (type(v).__name__, repr(v))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


# ----------------------------------------------------------------- continuous


@dataclass(eq=False, repr=False)
class Uniform(Distribution):
    """Uniform real on [lo, hi].

    Example: ``Uniform(0.0, 0.5).from_unit(0.5) == 0.25``
    """

    lo: float
    hi: float
    kind = "float"

    def to_unit(self, value: Any) -> float:
        return _clip01((float(value) - self.lo) / (self.hi - self.lo))

    def from_unit(self, u: float) -> float:
        x = self.lo + _clip01(u) * (self.hi - self.lo)
        return min(max(_tidy(x), self.lo), self.hi)

    def describe(self) -> str:
        return f"uniform({self.lo:g}, {self.hi:g})"


@dataclass(eq=False, repr=False)
class LogUniform(Distribution):
    """Real whose logarithm is uniform on [log lo, log hi]; raw bounds, lo > 0.

    Example: ``LogUniform(1e-4, 1.0).from_unit(0.5) == 0.01``
    """

    lo: float
    hi: float
    kind = "float"
    log = True

    def to_unit(self, value: Any) -> float:
        v = float(value)
        if v <= 0:
            return 0.0
        return _clip01((math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo)))

    def from_unit(self, u: float) -> float:
        x = math.exp(math.log(self.lo) + _clip01(u) * (math.log(self.hi) - math.log(self.lo)))
        return min(max(_tidy(x), self.lo), self.hi)

    def describe(self) -> str:
        return f"loguniform({self.lo:g}, {self.hi:g})"


@dataclass(eq=False, repr=False)
class Normal(Distribution):
    """Normal(mu, sigma), mapped to the unit interval through its CDF (W&B's ``normal``)."""

    mu: float
    sigma: float
    kind = "float"

    def to_unit(self, value: Any) -> float:
        return _clip01(_NORMAL.cdf((float(value) - self.mu) / self.sigma))

    def from_unit(self, u: float) -> float:
        u = min(max(u, _EPS), 1 - _EPS)
        return _tidy(self.mu + self.sigma * _NORMAL.inv_cdf(u))

    def describe(self) -> str:
        return f"normal({self.mu:g}, {self.sigma:g})"


@dataclass(eq=False, repr=False)
class LogNormal(Distribution):
    """exp(Normal(mu, sigma)) (W&B's ``log_normal``): a log axis with a normal prior."""

    mu: float
    sigma: float
    kind = "float"
    log = True

    def to_unit(self, value: Any) -> float:
        v = float(value)
        if v <= 0:
            return 0.0
        return _clip01(_NORMAL.cdf((math.log(v) - self.mu) / self.sigma))

    def from_unit(self, u: float) -> float:
        u = min(max(u, _EPS), 1 - _EPS)
        return _tidy(math.exp(self.mu + self.sigma * _NORMAL.inv_cdf(u)))

    def describe(self) -> str:
        return f"lognormal({self.mu:g}, {self.sigma:g})"


@dataclass(eq=False, repr=False)
class QLogUniform(Distribution):
    """Log-uniform on [lo, hi], rounded to a multiple of q and kept inside [lo, hi].

    Both ends are reachable: u=0 gives lo and u=1 gives hi.
    """

    lo: float
    hi: float
    q: float
    kind = "float"
    log = True

    def __post_init__(self) -> None:
        if all(float(x).is_integer() for x in (self.lo, self.hi, self.q)):
            self.kind = "int"

    def _cast(self, x: float) -> Any:
        return int(round(x)) if self.kind == "int" else _tidy(x)

    def to_unit(self, value: Any) -> float:
        return LogUniform(self.lo, self.hi).to_unit(value)

    def from_unit(self, u: float) -> Any:
        x = LogUniform(self.lo, self.hi).from_unit(u)
        x = round(x / self.q) * self.q
        x = self._cast(min(max(x, self.lo), self.hi))
        return min(max(x, self.lo), self.hi)  # tidying a clipped end may step outside

    def describe(self) -> str:
        return f"qloguniform({self.lo:g}, {self.hi:g}, q={self.q:g})"


# ------------------------------------------------------------------- discrete


class _Indexed(Distribution):
    """A discrete distribution whose values are indexed 0..n-1 with equal-width
    unit intervals; subclasses give ``_value(i)`` and ``_index(value)``."""

    def _n(self) -> int:
        raise NotImplementedError

    def _value(self, i: int) -> Any:
        raise NotImplementedError

    def _index(self, value: Any) -> int:
        raise NotImplementedError

    @property
    def cardinality(self) -> int:
        return self._n()

    def to_unit(self, value: Any) -> float:
        return (self._index(value) + 0.5) / self._n()

    def from_unit(self, u: float) -> Any:
        n = self._n()
        return self._value(min(int(_clip01(u) * n), n - 1))

    def support(self) -> list[Any]:
        return [self._value(i) for i in range(self._n())]

    def probabilities(self) -> list[float]:
        n = self._n()
        return [1.0 / n] * n


@dataclass(eq=False, repr=False)
class RandInt(_Indexed):
    """Integer uniform on [lo, hi], **both ends inclusive** (Ray Tune's ``randint``
    excludes hi; ``tune.randint(1, 10)`` is ``RandInt(1, 9)``).

    Example: ``RandInt(1, 3).support() == [1, 2, 3]``
    """

    lo: int
    hi: int
    kind = "int"

    def _n(self) -> int:
        return self.hi - self.lo + 1

    def _value(self, i: int) -> int:
        return self.lo + i

    def _index(self, value: Any) -> int:
        return min(max(int(round(float(value))) - self.lo, 0), self.hi - self.lo)

    def describe(self) -> str:
        return f"randint({self.lo}, {self.hi})"


@dataclass(eq=False, repr=False)
class QUniform(_Indexed):
    """Uniform on the grid lo, lo+q, lo+2q, ... inside [lo, hi]; hi is always reachable
    (the last step is shortened when hi - lo is not a multiple of q)."""

    lo: float
    hi: float
    q: float
    kind = "float"

    def __post_init__(self) -> None:
        if all(float(x).is_integer() for x in (self.lo, self.hi, self.q)):
            self.kind = "int"

    def _n(self) -> int:
        steps = (self.hi - self.lo) / self.q
        return int(math.ceil(steps - 1e-9)) + 1

    def _value(self, i: int) -> Any:
        x = min(self.lo + i * self.q, self.hi)
        return int(round(x)) if self.kind == "int" else min(max(_tidy(x), self.lo), self.hi)

    def _index(self, value: Any) -> int:
        v = float(value)
        i = min(max(int(round((v - self.lo) / self.q)), 0), self._n() - 1)
        # A clipped hi sits less than q above its neighbour: take the nearest value.
        near = [j for j in (i - 1, i, i + 1) if 0 <= j < self._n()]
        return min(near, key=lambda j: abs(self._value(j) - v))

    def describe(self) -> str:
        return f"quniform({self.lo:g}, {self.hi:g}, q={self.q:g})"


@dataclass(eq=False, repr=False)
class LogRandInt(Distribution):
    """Integer on [lo, hi] (both inclusive, lo >= 1), uniform in log space: each
    integer v owns the log interval [v - 0.5, v + 0.5] clipped to the range.

    Example: ``LogRandInt(8, 512).grid_values(3) == [8, 64, 512]``
    """

    lo: int
    hi: int
    kind = "int"
    log = True

    def _edges(self) -> tuple[float, float]:
        return math.log(max(self.lo - 0.5, 0.5 * self.lo)), math.log(self.hi + 0.5)

    def to_unit(self, value: Any) -> float:
        a, b = self._edges()
        v = min(max(int(round(float(value))), self.lo), self.hi)
        return _clip01((math.log(v) - a) / (b - a))

    def from_unit(self, u: float) -> int:
        a, b = self._edges()
        return min(max(int(round(math.exp(a + _clip01(u) * (b - a)))), self.lo), self.hi)

    @property
    def cardinality(self) -> int:
        return self.hi - self.lo + 1

    def support(self) -> list[int]:
        return list(range(self.lo, self.hi + 1))

    def probabilities(self) -> list[float]:
        a, b = self._edges()
        cuts = [a] + [math.log(v + 0.5) for v in range(self.lo, self.hi)] + [b]
        return [(cuts[i + 1] - cuts[i]) / (b - a) for i in range(len(cuts) - 1)]

    def grid_values(self, points: int | None) -> list[Any]:
        if points is None or points < 2:
            return super().grid_values(points)
        # Exact log spacing between the ends, so 8..512 with 3 points is 8, 64, 512.
        a, b = math.log(self.lo), math.log(self.hi)
        steps = points - 1
        return _unique([int(round(math.exp(a + i * (b - a) / steps))) for i in range(points)])

    def describe(self) -> str:
        return f"lograndint({self.lo}, {self.hi})"


class Choice(Distribution):
    """One of ``values`` (multinoulli), optionally weighted. Category i owns a unit
    interval whose width is its probability, so uniform points sample the weights.

    Example: ``Choice(["sgd", "adam"], weights=[3, 1]).from_unit(0.8) == "adam"``
    """

    kind = "category"

    def __init__(self, values: Sequence[Any], weights: Sequence[float] | None = None):
        self.values = list(values)
        self.weights = None if weights is None else [float(w) for w in weights]
        total = sum(self.weights) if self.weights else len(self.values)
        probs = self.weights or [1.0] * len(self.values)
        cuts = [0.0]
        for w in probs:
            cuts.append(cuts[-1] + w / total)
        cuts[-1] = 1.0
        self._cuts = cuts
        kinds = {_scalar_kind(v) for v in self.values}
        self.value_kind = kinds.pop() if len(kinds) == 1 else "mixed"

    def _index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if type(v) is type(value) and v == value:
                return i
        for i, v in enumerate(self.values):
            if v == value:
                return i
        raise ValueError(f"{value!r} is not one of {self.values!r}")

    def to_unit(self, value: Any) -> float:
        i = self._index(value)
        return (self._cuts[i] + self._cuts[i + 1]) / 2

    def from_unit(self, u: float) -> Any:
        u = _clip01(u)
        # u == 1 belongs to the last category of positive width (a zero weight is never drawn).
        find = bisect.bisect_left if u >= 1.0 else bisect.bisect_right
        i = find(self._cuts, u) - 1
        return self.values[min(max(i, 0), len(self.values) - 1)]

    @property
    def cardinality(self) -> int:
        return len(self.values)

    def support(self) -> list[Any]:
        return list(self.values)

    def probabilities(self) -> list[float]:
        return [self._cuts[i + 1] - self._cuts[i] for i in range(len(self.values))]

    def subset(self, values: Sequence[Any]) -> Distribution:
        """The same choice restricted to ``values`` (weights kept, renormalised)."""
        keep = sorted({self._index(v) for v in values})
        if len(keep) == 1:
            return Constant(self.values[keep[0]])
        weights = None if self.weights is None else [self.weights[i] for i in keep]
        return Choice([self.values[i] for i in keep], weights)

    def grid_values(self, points: int | None) -> list[Any]:
        # Categories are unordered: a grid axis holds every one, whatever `points` says.
        return self.support()

    def narrow(self, lo_u: float, hi_u: float) -> Distribution:
        return self

    def describe(self) -> str:
        if self.weights is None:
            return f"choice({self.values!r})"
        return f"choice({self.values!r}, weights={self.weights!r})"


class Bernoulli(Choice):
    """True with probability p, else False.

    Example: ``Bernoulli(0.5).support() == [False, True]``
    """

    kind = "bool"

    def __init__(self, p: float = 0.5):
        self.p = float(p)
        super().__init__([False, True], [1.0 - self.p, self.p])

    def describe(self) -> str:
        return f"bernoulli({self.p:g})"


class Constant(Distribution):
    """A fixed value: part of every config, not a dimension of the cube."""

    kind = "constant"
    is_dimension = False

    def __init__(self, value: Any):
        self.value = value

    def to_unit(self, value: Any) -> float:
        return 0.5

    def from_unit(self, u: float) -> Any:
        return self.value

    @property
    def cardinality(self) -> int:
        return 1

    def support(self) -> list[Any]:
        return [self.value]

    def probabilities(self) -> list[float]:
        return [1.0]

    def narrow(self, lo_u: float, hi_u: float) -> Distribution:
        return self

    def describe(self) -> str:
        return f"constant({self.value!r})"


class Narrowed(Distribution):
    """A distribution restricted to the unit box [lo_u, hi_u] of its parent; the
    prior's shape is kept inside the box (log stays log, integers stay integers)."""

    def __init__(self, parent: Distribution, lo_u: float, hi_u: float):
        if isinstance(parent, Narrowed):
            width = parent.hi_u - parent.lo_u
            lo_u, hi_u = parent.lo_u + lo_u * width, parent.lo_u + hi_u * width
            parent = parent.parent
        self.parent = parent
        self.lo_u = lo_u
        self.hi_u = max(hi_u, lo_u)
        self.kind = parent.kind
        self.log = parent.log

    def to_unit(self, value: Any) -> float:
        width = self.hi_u - self.lo_u
        if width <= 0:
            return 0.5
        return _clip01((self.parent.to_unit(value) - self.lo_u) / width)

    def from_unit(self, u: float) -> Any:
        return self.parent.from_unit(self.lo_u + _clip01(u) * (self.hi_u - self.lo_u))

    @property
    def bounds(self) -> tuple[Any, Any]:
        """The box's ends in raw values."""
        return self.parent.from_unit(self.lo_u), self.parent.from_unit(self.hi_u)

    @property
    def cardinality(self) -> int | None:
        if self.parent.cardinality is None:
            return None
        return len(self.support())

    def support(self) -> list[Any]:
        lo, hi = self.bounds
        return [v for v in self.parent.support() if lo <= v <= hi]

    def probabilities(self) -> list[float]:
        lo, hi = self.bounds
        pairs = zip(self.parent.support(), self.parent.probabilities(), strict=True)
        probs = [p for v, p in pairs if lo <= v <= hi]
        total = sum(probs)
        return [p / total for p in probs]

    def describe(self) -> str:
        lo, hi = self.bounds
        return f"{self.parent.describe()}[{lo!r}..{hi!r}]"


def _scalar_kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "other"


def _json_like(value: Any) -> bool:
    """True for lists and mappings that JSON can write (W&B allows list-valued choices)."""
    if not isinstance(value, (list, dict)):
        return False
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- shorthands


def uniform(lo: float, hi: float) -> Uniform:
    """Uniform real on [lo, hi]. Example: ``sweep.uniform(0.0, 0.5)``."""
    return Uniform(*_bounds("uniform", lo, hi))


def loguniform(lo: float, hi: float) -> LogUniform:
    """Log-uniform real on [lo, hi], raw bounds. Example: ``sweep.loguniform(1e-4, 1)``."""
    lo, hi = _bounds("loguniform", lo, hi)
    if lo <= 0:
        raise SpecError("loguniform", lo, "a lower bound > 0")
    return LogUniform(lo, hi)


def quniform(lo: float, hi: float, q: float) -> QUniform:
    """lo, lo+q, ... up to hi (both ends reachable). Example: ``sweep.quniform(0, 1, 0.25)``."""
    lo, hi = _bounds("quniform", lo, hi)
    return QUniform(lo, hi, _positive("quniform.q", q))


def qloguniform(lo: float, hi: float, q: float) -> QLogUniform:
    """Log-uniform rounded to multiples of q. Example: ``sweep.qloguniform(1, 1024, 1)``."""
    lo, hi = _bounds("qloguniform", lo, hi)
    if lo <= 0:
        raise SpecError("qloguniform", lo, "a lower bound > 0")
    return QLogUniform(lo, hi, _positive("qloguniform.q", q))


def randint(lo: int, hi: int) -> RandInt:
    """Integer on [lo, hi], both ends inclusive. Example: ``sweep.randint(1, 8)``."""
    return RandInt(*_int_bounds("randint", lo, hi))


def lograndint(lo: int, hi: int) -> LogRandInt:
    """Integer on [lo, hi] (inclusive), log-uniform. Example: ``sweep.lograndint(16, 512)``."""
    lo, hi = _int_bounds("lograndint", lo, hi)
    if lo < 1:
        raise SpecError("lograndint", lo, "a lower bound >= 1")
    return LogRandInt(lo, hi)


def choice(values: Sequence[Any], weights: Sequence[float] | None = None) -> Choice:
    """One of ``values``, optionally weighted. Example: ``sweep.choice(["sgd", "adam"])``."""
    return _checked_choice("choice", values, weights)


def bernoulli(p: float = 0.5) -> Bernoulli:
    """True with probability p. Example: ``sweep.bernoulli(0.3)``."""
    p = _finite("bernoulli.p", p)
    if not 0.0 <= p <= 1.0:
        raise SpecError("bernoulli.p", p, "a probability in [0, 1]")
    return Bernoulli(p)


def normal(mu: float, sigma: float) -> Normal:
    """Normal prior. Example: ``sweep.normal(0.0, 1.0)``."""
    return Normal(_finite("normal.mu", mu), _positive("normal.sigma", sigma))


def lognormal(mu: float, sigma: float) -> LogNormal:
    """exp(Normal(mu, sigma)). Example: ``sweep.lognormal(-4.6, 1.0)``."""
    return LogNormal(_finite("lognormal.mu", mu), _positive("lognormal.sigma", sigma))


def constant(value: Any) -> Constant:
    """A fixed value. Example: ``sweep.constant(10)``."""
    return Constant(value)


def _finite(path: str, x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise SpecError(path, x, "a number")
    x = float(x)
    if not math.isfinite(x):
        raise SpecError(path, x, "a finite number")
    return x


def _positive(path: str, x: Any) -> float:
    x = _finite(path, x)
    if x <= 0:
        raise SpecError(path, x, "a number > 0")
    return x


def _bounds(path: str, lo: Any, hi: Any) -> tuple[float, float]:
    lo, hi = _finite(f"{path}.min", lo), _finite(f"{path}.max", hi)
    if lo >= hi:
        raise SpecError(f"{path}.max", hi, f"a number greater than min ({lo:g})")
    return lo, hi


def _int_bounds(path: str, lo: Any, hi: Any) -> tuple[int, int]:
    for name, x in (("min", lo), ("max", hi)):
        f = _finite(f"{path}.{name}", x)
        if not f.is_integer():
            raise SpecError(f"{path}.{name}", x, "an integer")
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise SpecError(f"{path}.max", hi, f"an integer >= min ({lo})")
    return lo, hi


def _checked_choice(path: str, values: Any, weights: Any) -> Choice:
    if not isinstance(values, (list, tuple)) or not values:
        raise SpecError(path, values, "a non-empty list of values")
    for i, v in enumerate(values):
        if _scalar_kind(v) == "other" and not _json_like(v):
            raise SpecError(f"{path}[{i}]", v, "a scalar (string, number, bool or null) or a "
                            "list/mapping of them")
        if isinstance(v, float) and not math.isfinite(v):
            raise SpecError(f"{path}[{i}]", v, "a finite number")
    if len(_unique(values)) != len(values):
        raise SpecError(path, values, "distinct values (found duplicates)")
    if weights is not None:
        if not isinstance(weights, (list, tuple)) or len(weights) != len(values):
            raise SpecError(f"{path}.weights", weights, f"a list of {len(values)} numbers")
        ws = [_finite(f"{path}.weights[{i}]", w) for i, w in enumerate(weights)]
        if any(w < 0 for w in ws) or sum(ws) <= 0:
            raise SpecError(f"{path}.weights", weights, "non-negative numbers with a positive sum")
        weights = ws
    return Choice(values, weights)


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
    def is_discrete(self) -> bool:
        """True when every dimension has finitely many values."""
        return all(self._params[n].cardinality is not None for n in self.dims)

    def cardinality(self) -> int | None:
        """Number of distinct configs, or None when some axis is continuous."""
        if not self.is_discrete:
            return None
        total = 1
        for n in self.dims:
            total *= self._params[n].cardinality  # type: ignore[operator]
        return total

    def scales(self) -> dict[str, str]:
        """'linear' | 'log' | 'categorical' | 'constant' per parameter, for plots."""
        out = {}
        for name, dist in self._params.items():
            base = dist.parent if isinstance(dist, Narrowed) else dist
            if not base.is_dimension:
                out[name] = "constant"
            elif isinstance(base, Choice):
                out[name] = "categorical"
            else:
                out[name] = "log" if base.log else "linear"
        return out

    def describe(self) -> dict[str, str]:
        return {name: dist.describe() for name, dist in self._params.items()}
