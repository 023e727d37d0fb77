"""Distributions: each parameter's prior and its map to the unit interval and back.

Each class checks its own arguments, knows its sweep-file names (``names``, W&B's
included) and writes itself back (``to_dict``); ``REGISTRY`` maps every name to its
parser, so the sweep-file reader and the shorthands (``sweep.loguniform(...)``) share one
definition. ``Distinct`` is the one place where duplicate values are recognised.

Example:
    >>> LogUniform(1e-4, 1.0).from_unit(0.5)
    0.01
    >>> REGISTRY["log_uniform_values"]({"min": 1e-3, "max": 1.0}, "parameters.lr")
    loguniform(0.001, 1)
"""

from __future__ import annotations

import bisect
import math
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..core.errors import SpecError
from ..core.values import integer, json_value, number, parameter_value, positive

_NORMAL = statistics.NormalDist()
# Keep normal draws off the infinite tails of the inverse CDF.
_EPS = 1e-12
# The most values a discrete axis lists (``support``, ``probabilities``): a larger axis is
# only ever sampled through the unit interval and counted, never enumerated (a W&B-style
# ``seed: 0..2**31-1`` would otherwise hold gigabytes).
LIST_LIMIT = 1_000_000
# The most values a randint may have, and the largest magnitude of the other integer-valued
# axes' bounds. Plans place points in a unit cube of floats (53-bit mantissas): up to 2**50
# values, every integer of the range can be drawn and its unit coordinate (its cell's
# centre) maps back to it exactly, with rounding to spare; beyond 2**53 neighbouring
# integers share a coordinate and most of the range could never be drawn.
INT_AXIS_LIMIT = 2**50


def _clip01(u: float) -> float:
    return 0.0 if u < 0.0 else 1.0 if u > 1.0 else u


def _tidy(x: float) -> float:
    """Round a computed float to 12 significant digits (0.1 * 3 -> 0.3, 10**-2 -> 0.01)."""
    if x == 0.0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.12g}")


# ------------------------------------------------------------- distinct values


def value_key(value: Any) -> Any:
    """A hashable key that tells 1, 1.0 and True apart; lists and mappings by repr."""
    try:
        key = (type(value).__name__, value)
        hash(key)
    except TypeError:
        return (type(value).__name__, repr(value))
    return key


class Distinct:
    """Remembers values (or configs) and says whether each is new: the one place where
    duplicates are recognised (1, 1.0 and True are different values).

    Example:
        >>> seen = Distinct()
        >>> [seen.add(v) for v in (1, True, 1, {"a": 1}, {"a": 1})]
        [True, True, False, True, False]
    """

    def __init__(self) -> None:
        self._keys: set[Any] = set()

    def add(self, item: Any) -> bool:
        """Record ``item``; True when it was not seen before."""
        if isinstance(item, Mapping):
            key: Any = tuple((k, value_key(v)) for k, v in item.items())
        else:
            key = value_key(item)
        if key in self._keys:
            return False
        self._keys.add(key)
        return True

    def __len__(self) -> int:
        return len(self._keys)


def distinct(values: Sequence[Any]) -> list[Any]:
    """``values`` without repeats, first occurrence kept, 1 / 1.0 / True kept apart.

    Example: ``distinct([1, True, 1, 2]) == [1, True, 2]``
    """
    seen = Distinct()
    return [v for v in values if seen.add(v)]


def scalar_kind(value: Any) -> str:
    """'none', 'bool', 'int', 'float', 'str', or 'json' for lists and mappings."""
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
    return "json"


# ---------------------------------------------------------------- base class


class Distribution:
    """A parameter's prior, with its map to and from the unit interval.

    Subclasses set ``kind`` ('float', 'int', 'bool', 'category', 'constant'),
    ``log`` (whether the axis is log-scaled) and ``categorical`` (unordered
    values), and implement ``to_unit``, ``from_unit`` and ``describe``. Discrete
    distributions also give ``cardinality``, ``support`` and ``probabilities``.

    ``names`` are the sweep-file names (canonical first) and ``fields`` maps each
    sweep-file key to a constructor argument; ``defaults`` holds the optional ones.
    """

    kind: str = "float"
    log: bool = False
    categorical: bool = False
    is_dimension: bool = True
    names: ClassVar[tuple[str, ...]] = ()
    fields: ClassVar[dict[str, str]] = {}
    defaults: ClassVar[dict[str, Any]] = {}

    def to_unit(self, value: Any) -> float:
        raise NotImplementedError

    def from_unit(self, u: float) -> Any:
        raise NotImplementedError

    @property
    def cardinality(self) -> int | None:
        """Number of distinct values, or None for a continuous distribution."""
        return None

    @property
    def possible(self) -> int | None:
        """Number of values with a positive prior probability (a zero weight rules a value
        out), counted without listing them; None for a continuous distribution."""
        return self.cardinality

    def _listable(self) -> int:
        """The number of values, which ``support`` and ``probabilities`` may list: a
        ValueError above ``LIST_LIMIT`` (such an axis is sampled, never enumerated)."""
        n = self.cardinality
        if n is None:
            raise TypeError(f"{self.describe()} is continuous")
        if n > LIST_LIMIT:
            raise ValueError(f"{self.describe()} has {n} values, more than the "
                             f"{LIST_LIMIT} a discrete axis lists: it is sampled, never "
                             f"enumerated")
        return n

    def support(self) -> list[Any]:
        """Every distinct value, in unit-space order (discrete distributions only)."""
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
        us = [0.5] if points == 1 else [i / (points - 1) for i in range(points)]
        return distinct([self.from_unit(u) for u in us])

    def narrow(self, lo_u: float, hi_u: float) -> Distribution:
        """The same prior restricted to the unit box [lo_u, hi_u]."""
        lo_u, hi_u = _clip01(lo_u), _clip01(hi_u)
        if lo_u <= 0.0 and hi_u >= 1.0:
            return self
        return Narrowed(self, lo_u, hi_u)

    def describe(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------- sweep-file form

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], path: str) -> Distribution:
        """Parse a sweep-file definition (``{distribution: .., min: .., max: ..}``)."""
        _allowed_keys(path, raw, cls.fields)
        kwargs = {}
        for key, attr in cls.fields.items():
            if key in raw:
                kwargs[attr] = raw[key]
            elif key in cls.defaults:
                kwargs[attr] = cls.defaults[key]
            else:
                raise SpecError(f"{path}.{key}", expected=f"a value (needed by {cls.names[0]})")
        try:
            return cls(**kwargs)
        except SpecError as exc:
            raise exc.under(path) from None

    def to_dict(self) -> dict[str, Any]:
        """The definition in sweep-file syntax (for the stored spec.yaml).

        Example: ``LogUniform(1e-4, 1).to_dict() == {'distribution': 'loguniform',
        'min': 0.0001, 'max': 1.0}``
        """
        out: dict[str, Any] = {"distribution": self.names[0]}
        out.update({key: getattr(self, attr) for key, attr in self.fields.items()})
        return out

    def __repr__(self) -> str:
        return self.describe()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()  # type: ignore

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.describe()))


def _allowed_keys(path: str, raw: Mapping[str, Any], fields: Mapping[str, str]) -> None:
    allowed = set(fields) | {"distribution", "points"}
    for key in raw:
        if key not in allowed:
            raise SpecError(f"{path}.{key}", raw[key], f"no {key!r} for this distribution",
                            "allowed: " + ", ".join(sorted(allowed)))


def _bounds(lo: Any, hi: Any) -> tuple[float, float]:
    lo, hi = float(number("min", lo)), float(number("max", hi))
    if lo >= hi:
        raise SpecError("max", hi, f"a number greater than min ({lo:g})")
    return lo, hi


def _log_bounds(lo: Any, hi: Any) -> tuple[float, float]:
    lo, hi = _bounds(lo, hi)
    if lo <= 0:
        raise SpecError("min", lo, "a number > 0 for a log axis")
    return lo, hi


def _int_bounds(lo: Any, hi: Any) -> tuple[int, int]:
    lo, hi = integer("min", lo), integer("max", hi)
    if lo > hi:
        raise SpecError("max", hi, f"an integer >= min ({lo})")
    return lo, hi


def _int_axis(lo: float, hi: float, what: str) -> None:
    """Refuse an integer-valued axis beyond ``INT_AXIS_LIMIT`` (see there)."""
    for key, bound in (("min", lo), ("max", hi)):
        if abs(bound) > INT_AXIS_LIMIT:
            raise SpecError(key, bound, f"a bound within +-2**50 ({INT_AXIS_LIMIT}) for {what}",
                            "plans draw integers through a unit coordinate, a float of 53 "
                            "bits: far beyond that neighbouring integers cannot be told apart")


# ----------------------------------------------------------------- continuous


class Uniform(Distribution):
    """Uniform real on [lo, hi].

    Example: ``Uniform(0.0, 0.5).from_unit(0.5) == 0.25``
    """

    names = ("uniform",)
    fields: ClassVar[dict[str, str]] = {"min": "lo", "max": "hi"}

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = _bounds(lo, hi)

    def to_unit(self, value: Any) -> float:
        return _clip01((float(value) - self.lo) / (self.hi - self.lo))

    def from_unit(self, u: float) -> float:
        x = self.lo + _clip01(u) * (self.hi - self.lo)
        return min(max(_tidy(x), self.lo), self.hi)

    def describe(self) -> str:
        return f"uniform({self.lo:g}, {self.hi:g})"


class LogUniform(Distribution):
    """Real whose logarithm is uniform on [log lo, log hi]; raw bounds, lo > 0.

    Example: ``LogUniform(1e-4, 1.0).from_unit(0.5) == 0.01``
    """

    names = ("loguniform", "log_uniform_values", "inv_log_uniform_values")
    fields: ClassVar[dict[str, str]] = {"min": "lo", "max": "hi"}
    log = True

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = _log_bounds(lo, hi)
        self._a, self._b = math.log(self.lo), math.log(self.hi)

    def to_unit(self, value: Any) -> float:
        v = float(value)
        if v <= 0:
            return 0.0
        return _clip01((math.log(v) - self._a) / (self._b - self._a))

    def from_unit(self, u: float) -> float:
        x = math.exp(self._a + _clip01(u) * (self._b - self._a))
        return min(max(_tidy(x), self.lo), self.hi)

    def describe(self) -> str:
        return f"loguniform({self.lo:g}, {self.hi:g})"


class Normal(Distribution):
    """Normal(mu, sigma), mapped to the unit interval through its CDF (W&B's ``normal``)."""

    names = ("normal",)
    fields: ClassVar[dict[str, str]] = {"mu": "mu", "sigma": "sigma"}
    defaults: ClassVar[dict[str, Any]] = {"mu": 0.0, "sigma": 1.0}

    def __init__(self, mu: float, sigma: float):
        self.mu, self.sigma = float(number("mu", mu)), positive("sigma", sigma)

    def to_unit(self, value: Any) -> float:
        return _clip01(_NORMAL.cdf((float(value) - self.mu) / self.sigma))

    def from_unit(self, u: float) -> float:
        u = min(max(u, _EPS), 1 - _EPS)
        return _tidy(self.mu + self.sigma * _NORMAL.inv_cdf(u))

    def describe(self) -> str:
        return f"normal({self.mu:g}, {self.sigma:g})"


class LogNormal(Normal):
    """exp(Normal(mu, sigma)) (W&B's ``log_normal``): a log axis with a normal prior."""

    names = ("lognormal", "log_normal")
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


class QLogUniform(Distribution):
    """Log-uniform on [lo, hi], rounded to a multiple of q and kept inside [lo, hi].

    Both ends are reachable: u=0 gives lo and u=1 gives hi.
    """

    names = ("qloguniform", "q_log_uniform_values")
    fields: ClassVar[dict[str, str]] = {"min": "lo", "max": "hi", "q": "q"}
    defaults: ClassVar[dict[str, Any]] = {"q": 1}
    log = True

    def __init__(self, lo: float, hi: float, q: float = 1):
        self.lo, self.hi = _log_bounds(lo, hi)
        self.q = positive("q", q)
        self._log = LogUniform(self.lo, self.hi)
        if all(float(x).is_integer() for x in (self.lo, self.hi, self.q)):
            _int_axis(self.lo, self.hi, "an integer-valued qloguniform")
            self.kind = "int"

    def _cast(self, x: float) -> Any:
        return int(round(x)) if self.kind == "int" else _tidy(x)

    def to_unit(self, value: Any) -> float:
        return self._log.to_unit(value)

    def from_unit(self, u: float) -> Any:
        x = round(self._log.from_unit(u) / self.q) * self.q
        x = self._cast(min(max(x, self.lo), self.hi))
        return min(max(x, self.lo), self.hi)  # tidying a clipped end may step outside

    def describe(self) -> str:
        return f"qloguniform({self.lo:g}, {self.hi:g}, q={self.q:g})"


# ------------------------------------------------------------------- discrete


class _Indexed(Distribution):
    """A discrete distribution whose values are indexed 0..n-1 with equal-width
    unit intervals; subclasses give ``_n()``, ``_value(i)`` and ``_index(value)``."""

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

    def rank(self, value: Any) -> int:
        """The position of ``value`` (one of the support) in ``support()``."""
        return self._index(value)

    def value_at(self, i: int) -> Any:
        """``support()[i]``, without listing the support."""
        return self._value(i)

    def probability_at(self, i: int) -> float:
        """``probabilities()[i]``, without listing them."""
        return 1.0 / self._n()

    def support(self) -> list[Any]:
        return [self._value(i) for i in range(self._listable())]

    def probabilities(self) -> list[float]:
        n = self._listable()
        return [1.0 / n] * n


class RandInt(_Indexed):
    """Integer uniform on [lo, hi], **both ends inclusive** (Ray Tune's ``randint``
    excludes hi; ``tune.randint(1, 10)`` is ``RandInt(1, 9)``); at most 2**50 values
    (``INT_AXIS_LIMIT``), bounds within +-2**62.

    Example: ``RandInt(1, 3).support() == [1, 2, 3]``
    """

    names = ("randint", "int_uniform")
    fields: ClassVar[dict[str, str]] = {"min": "lo", "max": "hi"}
    kind = "int"

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = _int_bounds(lo, hi)
        if self.hi - self.lo >= INT_AXIS_LIMIT:
            raise SpecError("max", hi, f"an integer less than min + 2**50 ({INT_AXIS_LIMIT}): "
                            f"at most 2**50 values",
                            "plans draw integers through a unit coordinate, a float of 53 "
                            "bits: far beyond 2**50 values most integers of the range could "
                            "never be drawn")

    def _n(self) -> int:
        return self.hi - self.lo + 1

    def _value(self, i: int) -> int:
        return self.lo + i

    def _index(self, value: Any) -> int:
        # Integers exactly (a float of a bound near 2**62 is off by hundreds).
        v = value if isinstance(value, int) else int(round(float(value)))
        return min(max(v - self.lo, 0), self.hi - self.lo)

    def describe(self) -> str:
        return f"randint({self.lo}, {self.hi})"


class QUniform(_Indexed):
    """Uniform on the grid lo, lo+q, lo+2q, ... inside [lo, hi]; hi is always reachable
    (the last step is shortened when hi - lo is not a multiple of q)."""

    names = ("quniform", "q_uniform")
    fields: ClassVar[dict[str, str]] = {"min": "lo", "max": "hi", "q": "q"}
    defaults: ClassVar[dict[str, Any]] = {"q": 1}

    def __init__(self, lo: float, hi: float, q: float = 1):
        self.lo, self.hi = _bounds(lo, hi)
        self.q = positive("q", q)
        if (self.hi - self.lo) / self.q > 1e9:
            raise SpecError("q", q, f"a step giving at most 10^9 values over "
                            f"[{self.lo:g}, {self.hi:g}]")
        if all(float(x).is_integer() for x in (self.lo, self.hi, self.q)):
            _int_axis(self.lo, self.hi, "an integer-valued quniform")
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


class LogRandInt(Distribution):
    """Integer on [lo, hi] (both inclusive, lo >= 1), uniform in log space: each
    integer v owns the log interval [v - 0.5, v + 0.5] clipped to the range.

    Example: ``LogRandInt(8, 512).grid_values(3) == [8, 64, 512]``
    """

    names = ("lograndint", "log_int_uniform")
    fields: ClassVar[dict[str, str]] = {"min": "lo", "max": "hi"}
    kind = "int"
    log = True

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = _int_bounds(lo, hi)
        if self.lo < 1:
            raise SpecError("min", lo, "an integer >= 1 for a log axis")
        _int_axis(self.lo, self.hi, "lograndint")

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

    def rank(self, value: Any) -> int:
        """The position of ``value`` in ``support()``."""
        v = value if isinstance(value, int) else int(round(float(value)))
        return min(max(v, self.lo), self.hi) - self.lo

    def value_at(self, i: int) -> int:
        """``support()[i]``, without listing the support."""
        return self.lo + i

    def probability_at(self, i: int) -> float:
        """``probabilities()[i]``: the share of the log interval value i owns."""
        a, b = self._edges()
        v = self.lo + i
        lo = a if v == self.lo else math.log(v - 0.5)
        hi = b if v == self.hi else math.log(v + 0.5)
        return (hi - lo) / (b - a)

    def support(self) -> list[int]:
        return list(range(self.lo, self.lo + self._listable()))

    def probabilities(self) -> list[float]:
        self._listable()
        a, b = self._edges()
        cuts = [a] + [math.log(v + 0.5) for v in range(self.lo, self.hi)] + [b]
        return [(cuts[i + 1] - cuts[i]) / (b - a) for i in range(len(cuts) - 1)]

    def grid_values(self, points: int | None) -> list[Any]:
        if points is None or points < 2:
            return super().grid_values(points)
        # Exact log spacing between the ends, so 8..512 with 3 points is 8, 64, 512.
        a, b = math.log(self.lo), math.log(self.hi)
        steps = points - 1
        return distinct([min(max(int(round(math.exp(a + i * (b - a) / steps))), self.lo),
                             self.hi) for i in range(points)])

    def describe(self) -> str:
        return f"lograndint({self.lo}, {self.hi})"


class Choice(Distribution):
    """One of ``values`` (multinoulli), optionally weighted. Entry i owns a unit
    interval whose width is its probability, so uniform points sample the weights.
    A value listed twice is drawn twice as often (W&B's ``values`` do the same);
    a grid takes each distinct value once (1, 1.0 and True are different values).

    Example: ``Choice(["sgd", "adam"], weights=[3, 1]).from_unit(0.8) == "adam"``
    """

    names = ("choice", "categorical", "categorical_w_probabilities")
    kind = "category"
    categorical = True

    def __init__(self, values: Sequence[Any], weights: Sequence[float] | None = None):
        if not isinstance(values, (list, tuple)) or not values:
            raise SpecError("values", values, "a non-empty list of values")
        for i, v in enumerate(values):
            if isinstance(v, float) and not math.isfinite(v):
                raise SpecError(f"values[{i}]", v, "a finite number")
            if scalar_kind(v) == "json" and not isinstance(v, (list, dict)):
                raise SpecError(f"values[{i}]", v, "a scalar (string, number, bool or null) "
                                "or a list/mapping of them")
            try:
                json_value(f"values[{i}]", v)
            except SpecError as exc:
                raise SpecError(f"values[{i}]", v, exc.expected) from None
            parameter_value(f"values[{i}]", v)
        self.values = list(values)
        self.weights = None if weights is None else self._checked_weights(weights)
        probs = self.weights or [1.0] * len(self.values)
        total = sum(probs)
        cuts = [0.0]
        for w in probs:
            cuts.append(cuts[-1] + w / total)
        cuts[-1] = 1.0
        self._cuts = cuts
        self._support = distinct(self.values)

    def _checked_weights(self, weights: Any) -> list[float]:
        if not isinstance(weights, (list, tuple)) or len(weights) != len(self.values):
            raise SpecError("weights", weights, f"a list of {len(self.values)} numbers")
        ws = [float(number(f"weights[{i}]", w)) for i, w in enumerate(weights)]
        if any(w < 0 for w in ws) or sum(ws) <= 0:
            raise SpecError("weights", weights, "non-negative numbers with a positive sum")
        return ws

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
        # u == 1 belongs to the last entry of positive width (a zero weight is never drawn).
        find = bisect.bisect_left if u >= 1.0 else bisect.bisect_right
        i = find(self._cuts, u) - 1
        return self.values[min(max(i, 0), len(self.values) - 1)]

    @property
    def cardinality(self) -> int:
        return len(self._support)

    @property
    def possible(self) -> int:
        return sum(p > 0 for p in self.probabilities())

    def support(self) -> list[Any]:
        return list(self._support)

    def probabilities(self) -> list[float]:
        mass = [0.0] * len(self._support)
        position = {value_key(v): j for j, v in enumerate(self._support)}
        for i, v in enumerate(self.values):
            mass[position[value_key(v)]] += self._cuts[i + 1] - self._cuts[i]
        return mass

    def subset(self, values: Sequence[Any]) -> Distribution:
        """The same choice restricted to ``values`` (weights kept, renormalised)."""
        wanted = {value_key(v) for v in values}
        keep = [i for i, v in enumerate(self.values) if value_key(v) in wanted]
        if len(distinct([self.values[i] for i in keep])) == 1:
            return Constant(self.values[keep[0]])
        weights = None if self.weights is None else [self.weights[i] for i in keep]
        return Choice([self.values[i] for i in keep], weights)

    def grid_values(self, points: int | None) -> list[Any]:
        # Categories are unordered: a grid axis holds every one, whatever `points` says.
        return self.support()

    def narrow(self, lo_u: float, hi_u: float) -> Distribution:
        return self

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], path: str) -> Distribution:
        _allowed_keys(path, raw, {"values": "values", "probabilities": "weights",
                                  "weights": "weights"})
        if "values" not in raw:
            raise SpecError(f"{path}.values", expected="a value (needed by choice)")
        if "probabilities" in raw and "weights" in raw:
            raise SpecError(f"{path}.weights", expected="either probabilities or weights")
        key = "probabilities" if "probabilities" in raw else "weights"
        try:
            return cls(raw["values"], raw.get(key))
        except SpecError as exc:
            if exc.path.startswith("weights"):
                exc = SpecError(key + exc.path[len("weights"):], exc.value, exc.expected)
            raise exc.under(path) from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"values": list(self.values)}
        if self.weights is not None:
            out["weights"] = list(self.weights)
        return out

    def describe(self) -> str:
        if self.weights is None:
            return f"choice({self.values!r})"
        return f"choice({self.values!r}, weights={self.weights!r})"


class Bernoulli(Choice):
    """True with probability p, else False.

    Example: ``Bernoulli(0.5).support() == [False, True]``
    """

    names = ("bernoulli",)
    fields: ClassVar[dict[str, str]] = {"p": "p"}
    defaults: ClassVar[dict[str, Any]] = {"p": 0.5}
    kind = "bool"

    def __init__(self, p: float = 0.5):
        self.p = float(number("p", p))
        if not 0.0 <= self.p <= 1.0:
            raise SpecError("p", p, "a probability in [0, 1]")
        super().__init__([False, True], [1.0 - self.p, self.p])

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], path: str) -> Distribution:
        return Distribution.from_dict.__func__(cls, raw, path)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": "bernoulli", "p": self.p}

    def describe(self) -> str:
        return f"bernoulli({self.p:g})"


class Constant(Distribution):
    """A fixed value: part of every config, not a dimension of the cube."""

    names = ("constant",)
    fields: ClassVar[dict[str, str]] = {"value": "value"}
    kind = "constant"
    is_dimension = False

    def __init__(self, value: Any):
        parameter_value("value", value)
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

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value}

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
        self.categorical = parent.categorical

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

    def _ranks(self) -> range:
        """The positions in the parent's support of the values inside the box (a
        discrete parent's values are in unit order: the box holds a run of them)."""
        lo, hi = self.bounds
        rank = self.parent.rank  # type: ignore[attr-defined]
        return range(rank(lo), rank(hi) + 1)

    @property
    def cardinality(self) -> int | None:
        if self.parent.cardinality is None:
            return None
        return len(self._ranks())

    def support(self) -> list[Any]:
        self._listable()
        at = self.parent.value_at  # type: ignore[attr-defined]
        return [at(i) for i in self._ranks()]

    def probabilities(self) -> list[float]:
        self._listable()
        at = self.parent.probability_at  # type: ignore[attr-defined]
        probs = [at(i) for i in self._ranks()]
        total = sum(probs)
        return [p / total for p in probs]

    def to_dict(self) -> dict[str, Any]:
        return {**self.parent.to_dict(), "unit_box": [self.lo_u, self.hi_u]}

    def describe(self) -> str:
        lo, hi = self.bounds
        return f"{self.parent.describe()}[{lo!r}..{hi!r}]"


# ------------------------------------------------------------------ registry


def _exponent_parser(kind: str) -> Callable[[Mapping[str, Any], str], Distribution]:
    """W&B's deprecated log_uniform, inv_log_uniform and q_log_uniform: their bounds
    are natural-log exponents (like hyperopt's loguniform)."""

    def parse(raw: Mapping[str, Any], path: str) -> Distribution:
        fields = {"min": "lo", "max": "hi", **({"q": "q"} if kind == "q_log_uniform" else {})}
        _allowed_keys(path, raw, fields)
        try:
            lo, hi = _bounds(raw.get("min"), raw.get("max"))
            if max(abs(lo), abs(hi)) > 700:
                raise SpecError("max", hi, "natural-log exponents within +-700")
        except SpecError as exc:
            raise exc.under(path) from None
        warnings.warn(
            f"{path}: W&B's {kind} takes natural-log exponents as bounds "
            f"(values e^{lo:g}..e^{hi:g}); prefer log_uniform_values with raw bounds",
            stacklevel=2,
        )
        try:
            if kind == "inv_log_uniform":
                return LogUniform(math.exp(-hi), math.exp(-lo))
            if kind == "q_log_uniform":
                return QLogUniform(math.exp(lo), math.exp(hi), raw.get("q", 1))
            return LogUniform(math.exp(lo), math.exp(hi))
        except SpecError as exc:
            raise exc.under(path) from None

    return parse


DISTRIBUTIONS: tuple[type[Distribution], ...] = (
    Constant, Choice, Bernoulli, Uniform, LogUniform, QUniform, QLogUniform, RandInt,
    LogRandInt, Normal, LogNormal,
)
# Every sweep-file distribution name (sweep's and W&B's) -> its parser.
REGISTRY: dict[str, Callable[[Mapping[str, Any], str], Distribution]] = {
    name: cls.from_dict for cls in DISTRIBUTIONS for name in cls.names
}
REGISTRY.update({name: _exponent_parser(name)
                 for name in ("log_uniform", "inv_log_uniform", "q_log_uniform")})
# W&B names sweep does not support, with what they are.
UNSUPPORTED = {
    "q_normal": "a quantised normal", "q_log_normal": "a quantised log-normal",
    "beta": "a beta prior", "q_beta": "a quantised beta prior",
}


# ---------------------------------------------------------------- shorthands


def _shorthand(name: str, make: Callable[[], Distribution]) -> Any:
    try:
        return make()
    except SpecError as exc:
        raise exc.under(name) from None


def uniform(lo: float, hi: float) -> Uniform:
    """Uniform real on [lo, hi]. Example: ``sweep.uniform(0.0, 0.5)``."""
    return _shorthand("uniform", lambda: Uniform(lo, hi))


def loguniform(lo: float, hi: float) -> LogUniform:
    """Log-uniform real on [lo, hi], raw bounds. Example: ``sweep.loguniform(1e-4, 1)``."""
    return _shorthand("loguniform", lambda: LogUniform(lo, hi))


def quniform(lo: float, hi: float, q: float) -> QUniform:
    """lo, lo+q, ... up to hi (both ends reachable). Example: ``sweep.quniform(0, 1, 0.25)``."""
    return _shorthand("quniform", lambda: QUniform(lo, hi, q))


def qloguniform(lo: float, hi: float, q: float) -> QLogUniform:
    """Log-uniform rounded to multiples of q. Example: ``sweep.qloguniform(1, 1024, 1)``."""
    return _shorthand("qloguniform", lambda: QLogUniform(lo, hi, q))


def randint(lo: int, hi: int) -> RandInt:
    """Integer on [lo, hi], both ends inclusive. Example: ``sweep.randint(1, 8)``."""
    return _shorthand("randint", lambda: RandInt(lo, hi))


def lograndint(lo: int, hi: int) -> LogRandInt:
    """Integer on [lo, hi] (inclusive), log-uniform. Example: ``sweep.lograndint(16, 512)``."""
    return _shorthand("lograndint", lambda: LogRandInt(lo, hi))


def choice(values: Sequence[Any], weights: Sequence[float] | None = None) -> Choice:
    """One of ``values``, optionally weighted. Example: ``sweep.choice(["sgd", "adam"])``."""
    return _shorthand("choice", lambda: Choice(values, weights))


def bernoulli(p: float = 0.5) -> Bernoulli:
    """True with probability p. Example: ``sweep.bernoulli(0.3)``."""
    return _shorthand("bernoulli", lambda: Bernoulli(p))


def normal(mu: float, sigma: float) -> Normal:
    """Normal prior. Example: ``sweep.normal(0.0, 1.0)``."""
    return _shorthand("normal", lambda: Normal(mu, sigma))


def lognormal(mu: float, sigma: float) -> LogNormal:
    """exp(Normal(mu, sigma)). Example: ``sweep.lognormal(-4.6, 1.0)``."""
    return _shorthand("lognormal", lambda: LogNormal(mu, sigma))


def constant(value: Any) -> Constant:
    """A fixed value. Example: ``sweep.constant(10)``."""
    return _shorthand("constant", lambda: Constant(value))
