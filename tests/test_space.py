"""Unit and property tests for sweep.space.search_space: the unit-cube map of every distribution.

Checks: value -> to_unit -> from_unit gives the value back; from_unit stays inside the
prior's support for every u in [0, 1]; ends of integer and quantised axes are reachable;
sampled frequencies match the priors (chi-square on fixed seeds, so never flaky).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

import sweep
from sweep.core.errors import SpecError
from sweep.plans import RandomPlan
from sweep.space import (
    Bernoulli,
    Choice,
    Constant,
    LogNormal,
    LogRandInt,
    LogUniform,
    Narrowed,
    Normal,
    QLogUniform,
    QUniform,
    RandInt,
    Space,
    Uniform,
)

SETTINGS = settings(max_examples=75, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
UNIT = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
# Hypothesis does not always try the ends; every property below also runs on them.
ENDS = [0.0, 1e-300, 0.25, 0.5, 1 - 1e-16, 1.0]


# ------------------------------------------------------------ strategies


@st.composite
def bounds(draw, lo_min=-1e6, hi_max=1e6):
    lo = draw(st.floats(lo_min, hi_max, allow_nan=False, allow_infinity=False))
    width = draw(st.floats(1e-6, 1e6))
    hi = lo + width
    assume(hi > lo and math.isfinite(hi))
    return lo, hi


@st.composite
def log_bounds(draw):
    lo = 10 ** draw(st.floats(-12, 6))
    hi = lo * 10 ** draw(st.floats(0.01, 12))
    return lo, hi


@st.composite
def int_bounds(draw, lo_min=-10**6):
    lo = draw(st.integers(lo_min, 10**6))
    return lo, lo + draw(st.one_of(st.integers(0, 40), st.integers(0, 10**6)))


@st.composite
def weights(draw, n):
    ws = draw(st.lists(st.floats(0.0, 100.0), min_size=n, max_size=n))
    assume(sum(ws) > 0)
    return ws


@st.composite
def qloguniforms(draw):
    q = draw(st.sampled_from([1e-3, 0.01, 0.1, 1.0, 8.0, 10.0]))
    k = draw(st.integers(1, 10**4))
    lo = float(f"{k * q:.10g}")
    hi = float(f"{(k + draw(st.integers(1, 10**5))) * q:.10g}")
    if draw(st.booleans()):  # bounds off the lattice of multiples of q
        lo = float(f"{lo * draw(st.floats(0.5, 1.0)):.6g}")
        hi = float(f"{hi * draw(st.floats(1.0, 1.5)):.6g}")
    return QLogUniform(lo, hi, q)


@st.composite
def quniforms(draw):
    q = draw(st.sampled_from([0.1, 0.25, 1.0, 3.0, 8.0]))
    k0 = draw(st.integers(-100, 100))
    steps = draw(st.integers(1, 200))
    extra = draw(st.sampled_from([0.0, 0.5]))  # 0.5: hi is not on the lattice
    lo = round(k0 * q, 10)  # bounds as a user writes them: short decimals
    return QUniform(lo, round(lo + (steps + extra) * q, 10), q)


@st.composite
def continuous(draw):
    kind = draw(st.sampled_from(["uniform", "loguniform", "normal", "lognormal", "qlog"]))
    if kind == "uniform":
        return Uniform(*draw(bounds()))
    if kind == "loguniform":
        return LogUniform(*draw(log_bounds()))
    if kind == "normal":
        return Normal(draw(st.floats(-1e3, 1e3)), draw(st.floats(1e-3, 1e3)))
    if kind == "lognormal":
        return LogNormal(draw(st.floats(-10, 10)), draw(st.floats(1e-2, 3)))
    return draw(qloguniforms())


@st.composite
def discrete(draw):
    kind = draw(st.sampled_from(["randint", "lograndint", "quniform", "choice", "bernoulli",
                                 "constant"]))
    if kind == "randint":
        return RandInt(*draw(int_bounds()))
    if kind == "lograndint":
        return LogRandInt(*draw(int_bounds(lo_min=1)))
    if kind == "quniform":
        return draw(quniforms())
    if kind == "choice":
        values = draw(st.lists(st.one_of(st.text(max_size=5), st.integers(-5, 5),
                                         st.floats(-5, 5), st.booleans(), st.none()),
                               min_size=1, max_size=8, unique_by=lambda v: (type(v), v)))
        w = draw(st.one_of(st.none(), weights(len(values))))
        return Choice(values, w)
    if kind == "bernoulli":
        return Bernoulli(draw(st.floats(0.0, 1.0)))
    # Integer values within int64 (the results table's integer column; larger ones are refused)
    return Constant(draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=5))))


def narrowed(base):
    @st.composite
    def make(draw):
        dist = draw(base)
        a, b = sorted([draw(UNIT), draw(UNIT)])
        return dist.narrow(a, b)

    return make()


def same(a, b) -> bool:
    """Equal values of the same type (1 is not True, 1 is not 1.0)."""
    return type(a) is type(b) and a == b


def in_support(dist, value) -> bool:
    """Is ``value`` a value the prior can take (for the bounds checks)?"""
    if isinstance(dist, Narrowed):
        lo, hi = dist.bounds
        return in_support(dist.parent, value) and lo <= value <= hi
    if isinstance(dist, Choice):
        probs = dict(zip(map(repr, dist.values), dist.probabilities(), strict=True))
        return any(same(v, value) for v in dist.values) and probs[repr(value)] > 0
    if isinstance(dist, Constant):
        return same(value, dist.value)
    if isinstance(dist, (Normal, LogNormal)):
        return isinstance(value, float) and math.isfinite(value) and (
            value > 0 if isinstance(dist, LogNormal) else True)
    if isinstance(dist, (RandInt, LogRandInt)):
        return type(value) is int and dist.lo <= value <= dist.hi
    if isinstance(dist, (QUniform, QLogUniform)):
        if not dist.lo <= value <= dist.hi:
            return False
        if dist.kind == "int":
            return type(value) is int
        return isinstance(value, float)
    return isinstance(value, float) and dist.lo <= value <= dist.hi


# ------------------------------------------------------------ round trips


@SETTINGS
@given(discrete(), UNIT)
def test_discrete_round_trip_is_exact(dist, u):
    value = dist.from_unit(u)
    assert same(dist.from_unit(dist.to_unit(value)), value)


@SETTINGS
@given(discrete())
def test_every_discrete_value_round_trips(dist):
    n = dist.cardinality
    if n > 600 and hasattr(dist, "value_at"):  # both ends of a very long axis, unlisted
        values = [dist.value_at(i) for i in [*range(300), *range(max(300, n - 300), n)]]
    else:
        values = dist.support()
    if isinstance(dist, Choice):  # a zero-weight category owns no part of [0, 1]
        values = [v for v, p in zip(values, dist.probabilities(), strict=True) if p > 0]
    for value in values:
        u = dist.to_unit(value)
        assert 0.0 <= u <= 1.0
        assert same(dist.from_unit(u), value), (dist, value, u)


@SETTINGS
@given(continuous(), UNIT)
def test_continuous_round_trip(dist, u):
    # Normal tails: u so close to 1 that the CDF has no digits left to give back.
    if isinstance(dist, (Normal, LogNormal)):
        u = min(max(u, 1e-9), 1 - 1e-9)
    value = dist.from_unit(u)
    back = dist.from_unit(dist.to_unit(value))
    if isinstance(dist, QLogUniform):
        assert same(back, value)
    else:
        rel = 1e-6 if isinstance(dist, (Normal, LogNormal)) else 1e-9
        assert back == pytest.approx(value, rel=rel, abs=1e-12)


@pytest.mark.parametrize("dist", [
    Uniform(-3.0, 5.0), LogUniform(1e-4, 1.0), Normal(0.0, 1.0), LogNormal(-4.0, 1.5),
])
def test_to_unit_inverts_from_unit_on_continuous_axes(dist):
    for u in np.linspace(0.01, 0.99, 99):
        assert dist.to_unit(dist.from_unit(u)) == pytest.approx(u, abs=1e-9)


def test_known_points_of_the_map():
    assert Uniform(0.0, 0.5).from_unit(0.5) == 0.25
    assert LogUniform(1e-4, 1.0).from_unit(0.5) == 0.01
    assert [LogUniform(1e-4, 1.0).from_unit(u) for u in (0, 0.25, 0.5, 0.75, 1)] == [
        1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert LogUniform(1e-4, 1.0).to_unit(1e-3) == pytest.approx(0.25)
    assert Normal(2.0, 3.0).from_unit(0.5) == 2.0
    assert LogNormal(0.0, 1.0).from_unit(0.5) == 1.0
    assert RandInt(1, 3).support() == [1, 2, 3]
    assert Choice(["sgd", "adam"], weights=[3, 1]).from_unit(0.8) == "adam"
    assert Choice(["sgd", "adam"], weights=[3, 1]).from_unit(0.7) == "sgd"
    assert Bernoulli(0.5).support() == [False, True]


# ------------------------------------------------------------ bounds


@SETTINGS
@given(st.one_of(continuous(), discrete(), narrowed(continuous()), narrowed(discrete())), UNIT)
def test_from_unit_stays_in_bounds(dist, u):
    for x in [u, *ENDS]:
        assert in_support(dist, dist.from_unit(x)), (dist, x, dist.from_unit(x))


@SETTINGS
@given(st.one_of(continuous(), discrete()), st.floats(-10, 10))
def test_from_unit_clips_points_outside_the_cube(dist, u):
    assert in_support(dist, dist.from_unit(u))


@pytest.mark.parametrize("dist", [
    Uniform(-1.0, 1.0), LogUniform(1e-6, 1e2), RandInt(-3, 7), LogRandInt(1, 100),
    QUniform(0.0, 1.0, 0.1), QLogUniform(1.0, 1024.0, 1.0), QLogUniform(1e-3, 1.0, 1e-3),
    Normal(0.0, 1.0), LogNormal(0.0, 1.0), Choice(["a", 1, 2.5, None, True]),
    Choice(["x", "y", "z"], [0.0, 1.0, 0.0]), Bernoulli(0.0), Bernoulli(1.0), Constant(7),
    Narrowed(LogUniform(1e-4, 1.0), 0.25, 0.5), Narrowed(RandInt(0, 100), 0.5, 0.6),
])
def test_random_samples_in_bounds(dist):
    space = Space({"p": dist, "z": Uniform(0.0, 1.0)})  # z: keep sampling with replacement
    for config in RandomPlan(space, n=2000, seed=7):
        assert in_support(dist, config["p"]), (dist, config["p"])


def test_zero_weight_categories_are_never_drawn():
    # u = 1.0 used to fall on a trailing zero-weight category.
    assert Bernoulli(0.0).from_unit(1.0) is False
    assert Bernoulli(1.0).from_unit(0.0) is True
    dist = Choice(["a", "b", "c"], [0.0, 1.0, 0.0])
    assert {dist.from_unit(u) for u in np.linspace(0, 1, 1001)} == {"b"}


# ------------------------------------------------------------ integer and quantised axes


@pytest.mark.parametrize("dist", [RandInt(1, 3), RandInt(-5, 5), LogRandInt(1, 10),
                                  LogRandInt(8, 512), RandInt(4, 4), LogRandInt(7, 7)])
def test_int_axes_both_ends_inclusive_and_reachable(dist):
    assert dist.from_unit(0.0) == dist.lo
    assert dist.from_unit(1.0) == dist.hi
    assert dist.support()[0] == dist.lo and dist.support()[-1] == dist.hi
    assert dist.cardinality == dist.hi - dist.lo + 1
    assert sum(dist.probabilities()) == pytest.approx(1.0)
    assert all(p > 0 for p in dist.probabilities())


def test_randint_draws_every_integer_evenly():
    # sweep.randint(1, 3) includes 3 (Ray Tune's would not).
    space = Space({"k": sweep.randint(1, 3), "z": Uniform(0.0, 1.0)})
    counts = Counter(c["k"] for c in RandomPlan(space, n=3000, seed=1))
    assert sorted(counts) == [1, 2, 3]
    assert chisquare([counts[k] for k in (1, 2, 3)]).pvalue > 0.01


def test_lograndint_draws_follow_its_log_prior():
    dist = sweep.lograndint(1, 10)
    space = Space({"k": dist, "z": Uniform(0.0, 1.0)})
    counts = Counter(c["k"] for c in RandomPlan(space, n=10_000, seed=2))
    assert sorted(counts) == list(range(1, 11))  # both ends drawn
    expected = [p * 10_000 for p in dist.probabilities()]
    assert chisquare([counts[k] for k in range(1, 11)], expected).pvalue > 0.01
    # and it is a log prior: 1 is drawn far more often than 10
    assert counts[1] > 5 * counts[10]


def test_clipped_ends_stay_inside_after_tidying():
    # Bounds with more than 12 significant digits (W&B's q_log_uniform gives e^min..e^max):
    # the clipped end was rounded to 12 digits, a hair outside [lo, hi].
    for dist in (QLogUniform(math.exp(-2), math.exp(3), 0.01),
                 QLogUniform(1.023292992280754, 10.232929922807541, 0.001),
                 QUniform(-0.2, 0.04999999999999999, 0.1)):
        for u in (0.0, 1.0):
            assert dist.lo <= dist.from_unit(u) <= dist.hi, (dist, u)


@pytest.mark.parametrize("dist", [QUniform(0, 2.5, 1), QUniform(0.0, 0.15, 0.1),
                                  QUniform(0.0, 0.15000000000000002, 0.1)])
def test_quniform_clipped_end_round_trips(dist):
    # (hi - lo) / q ends in .5: rounding alone sent hi to its neighbour
    assert dist.support()[-1] == pytest.approx(dist.hi)
    for value in dist.support():
        assert same(dist.from_unit(dist.to_unit(value)), value), value


@pytest.mark.parametrize("dist,expected", [
    (QUniform(0.0, 1.0, 0.25), [0.0, 0.25, 0.5, 0.75, 1.0]),
    (QUniform(0.0, 1.0, 0.1), [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
    (QUniform(0, 10, 3), [0, 3, 6, 9, 10]),  # 10: the clipped end
    (QUniform(16, 256, 16), list(range(16, 257, 16))),
])
def test_quniform_support(dist, expected):
    assert dist.support() == expected
    assert all(type(v) is type(expected[0]) for v in dist.support())
    assert dist.from_unit(0.0) == expected[0] and dist.from_unit(1.0) == expected[-1]


def is_multiple(value, q) -> bool:
    k = value / q
    return abs(k - round(k)) < 1e-9 * max(1.0, abs(k))


@SETTINGS
@given(quniforms(), UNIT)
def test_quniform_values_are_multiples_of_q_inside_bounds(dist, u):
    # lo is a multiple of q in these draws; only a clipped hi may be off the lattice
    value = dist.from_unit(u)
    assert dist.lo <= value <= dist.hi
    assert is_multiple(value, dist.q) or value == dist.hi
    assert dist.from_unit(0.0) == dist.lo and dist.from_unit(1.0) == dist.hi


@SETTINGS
@given(qloguniforms(), UNIT)
def test_qloguniform_values_are_multiples_of_q_inside_bounds(dist, u):
    value = dist.from_unit(u)
    assert dist.lo <= value <= dist.hi
    assert is_multiple(value, dist.q) or value in (dist.lo, dist.hi)
    if is_multiple(dist.lo, dist.q) and is_multiple(dist.hi, dist.q):
        assert dist.from_unit(0.0) == dist.lo and dist.from_unit(1.0) == dist.hi


def test_qloguniform_draws_reach_both_ends():
    dist = sweep.qloguniform(1, 16, 1)
    assert dist.kind == "int"
    space = Space({"k": dist, "z": Uniform(0.0, 1.0)})
    seen = {c["k"] for c in RandomPlan(space, n=3000, seed=3)}
    assert seen == set(range(1, 17))
    assert all(type(v) is int for v in seen)
    dist = sweep.qloguniform(1e-3, 1.0, 1e-3)
    values = [c["k"] for c in RandomPlan(Space({"k": dist, "z": Uniform(0.0, 1.0)}), 5000, 4)]
    assert min(values) == 1e-3 and all(is_multiple(v, 1e-3) for v in values)
    assert dist.from_unit(1.0) == 1.0


def test_quniform_draws_reach_both_ends():
    space = Space({"k": sweep.quniform(0, 1, 0.25), "z": Uniform(0.0, 1.0)})
    counts = Counter(c["k"] for c in RandomPlan(space, n=2000, seed=5))
    assert sorted(counts) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert chisquare(list(counts.values())).pvalue > 0.01


# ------------------------------------------------------------ priors, by frequency


def decade_counts(values, lo_exp=-4, hi_exp=0):
    bins = Counter(min(max(math.floor(math.log10(v)), lo_exp), hi_exp - 1) for v in values)
    return [bins[e] for e in range(lo_exp, hi_exp)]


def test_loguniform_spreads_evenly_across_decades():
    space = Space({"lr": sweep.loguniform(1e-4, 1)})
    counts = decade_counts(c["lr"] for c in RandomPlan(space, n=10_000, seed=0))
    assert sum(counts) == 10_000
    assert chisquare(counts).pvalue > 0.01, counts
    # the same check fails for a plain uniform prior over the same range
    space = Space({"lr": sweep.uniform(1e-4, 1)})
    counts = decade_counts(c["lr"] for c in RandomPlan(space, n=10_000, seed=0))
    assert chisquare(counts).pvalue < 0.01, counts


@pytest.mark.parametrize("values,weights", [
    (["sgd", "adam", "rmsprop"], [5, 3, 2]),
    ([1, 2, 3, 4, 5], [0.1, 0.2, 0.1, 0.25, 0.35]),
    (["a", "b"], None),
])
def test_weighted_choice_frequencies(values, weights):
    space = Space({"c": sweep.choice(values, weights), "z": Uniform(0.0, 1.0)})
    n = 10_000
    counts = Counter(c["c"] for c in RandomPlan(space, n=n, seed=11))
    probs = np.asarray(weights or [1] * len(values), dtype=float)
    probs /= probs.sum()
    assert chisquare([counts[v] for v in values], probs * n).pvalue > 0.01
    # a check that can fail: the uniform hypothesis is rejected for uneven weights
    if weights is not None:
        assert chisquare([counts[v] for v in values]).pvalue < 0.01


def test_bernoulli_frequency():
    space = Space({"b": sweep.bernoulli(0.3), "z": Uniform(0.0, 1.0)})
    counts = Counter(c["b"] for c in RandomPlan(space, n=5000, seed=12))
    assert chisquare([counts[False], counts[True]], [3500, 1500]).pvalue > 0.01


def test_normal_priors_by_quantiles():
    n = 5000
    space = Space({"x": sweep.normal(2.0, 0.5), "y": sweep.lognormal(-3.0, 1.0)})
    rows = list(RandomPlan(space, n=n, seed=13))
    xs = np.array([r["x"] for r in rows])
    ys = np.log(np.array([r["y"] for r in rows]))
    for sample, mu, sigma in ((xs, 2.0, 0.5), (ys, -3.0, 1.0)):
        z = (sample - mu) / sigma
        counts = [np.sum(z < -1), np.sum((z >= -1) & (z < 0)), np.sum((z >= 0) & (z < 1)),
                  np.sum(z >= 1)]
        expected = np.array([0.158655, 0.341345, 0.341345, 0.158655]) * n
        assert chisquare(counts, expected).pvalue > 0.01


# ------------------------------------------------------------ grid axes


def test_grid_values_evenly_spaced_in_unit_space():
    assert sweep.loguniform(1e-4, 1).grid_values(5) == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert sweep.uniform(0, 1).grid_values(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert sweep.lograndint(8, 512).grid_values(3) == [8, 64, 512]
    assert sweep.uniform(0, 1).grid_values(1) == [0.5]
    assert sweep.randint(1, 4).grid_values(None) == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        sweep.uniform(0, 1).grid_values(None)
    with pytest.raises(ValueError):
        sweep.uniform(0, 1).grid_values(0)


def test_grid_values_drop_duplicates():
    # ten points on a three-integer axis give each integer once
    assert sweep.randint(1, 3).grid_values(10) == [1, 2, 3]
    assert sweep.qloguniform(1, 4, 1).grid_values(20) == [1, 2, 3, 4]


def test_grid_values_of_a_choice_are_every_category():
    # Categories have no order to space points along; a weighted choice used to drop
    # 'b' for points=3 (0.5 fell inside the heavy category 'a').
    assert sweep.choice(["a", "b", "c"], [0.8, 0.1, 0.1]).grid_values(3) == ["a", "b", "c"]
    assert sweep.choice(list("abcde")).grid_values(2) == list("abcde")
    assert sweep.bernoulli(0.2).grid_values(None) == [False, True]


# ------------------------------------------------------------ space


def test_space_round_trip_and_order():
    space = Space({
        "opt": sweep.choice(["sgd", "adam"]), "lr": sweep.loguniform(1e-4, 1),
        "epochs": sweep.constant(10), "layers": sweep.randint(1, 4),
    })
    assert list(space) == ["epochs", "layers", "lr", "opt"]
    assert space.dims == ["layers", "lr", "opt"]
    config = space.from_unit([0.99, 0.5, 0.9])
    assert config == {"epochs": 10, "layers": 4, "lr": 0.01, "opt": "adam"}
    assert space.from_unit(space.to_unit(config)) == config
    assert space.cardinality() is None
    assert Space({"a": sweep.randint(1, 3), "b": sweep.choice(["x", "y"])}).cardinality() == 6
    assert space.scales() == {"epochs": "constant", "layers": "linear", "lr": "log",
                              "opt": "categorical"}


def test_narrowed_keeps_the_prior_shape():
    dist = sweep.loguniform(1e-4, 1).narrow(0.25, 0.5)
    assert dist.bounds == (1e-3, 1e-2)
    assert dist.from_unit(0.5) == pytest.approx(10 ** -2.5)
    ints = sweep.randint(0, 9).narrow(0.5, 0.8)
    assert ints.support() == [5, 6, 7, 8]
    assert sweep.randint(0, 9).narrow(-1, 2) == sweep.randint(0, 9)


# ------------------------------------------------------------ shorthand validation


@pytest.mark.parametrize("make,path", [
    (lambda: sweep.loguniform(0, 1), "loguniform.min"),
    (lambda: sweep.loguniform(-1, 1), "loguniform.min"),
    (lambda: sweep.uniform(1, 1), "uniform.max"),
    (lambda: sweep.uniform(2, 1), "uniform.max"),
    (lambda: sweep.uniform(float("nan"), 1), "uniform.min"),
    (lambda: sweep.uniform(0, float("inf")), "uniform.max"),
    (lambda: sweep.randint(1.5, 3), "randint.min"),
    (lambda: sweep.randint(3, 1), "randint.max"),
    (lambda: sweep.lograndint(0, 8), "lograndint.min"),
    (lambda: sweep.quniform(0, 1, 0), "quniform.q"),
    (lambda: sweep.qloguniform(0, 1, 0.1), "qloguniform.min"),
    (lambda: sweep.choice([]), "choice.values"),
    (lambda: sweep.choice([1, 2], [1]), "choice.weights"),
    (lambda: sweep.choice([1, 2], [-1, 2]), "choice.weights"),
    (lambda: sweep.choice([{1, 2}, 2]), "choice.values[0]"),
    (lambda: sweep.space.Uniform(1, 0), "max"),  # the class checks its own arguments
    (lambda: sweep.bernoulli(1.5), "bernoulli.p"),
    (lambda: sweep.normal(0, 0), "normal.sigma"),
    (lambda: sweep.lognormal(0, -1), "lognormal.sigma"),
])
def test_shorthands_reject_bad_arguments(make, path):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.path == path
    assert str(info.value).startswith(path + ":")


def test_choice_with_repeated_values_weighs_them_and_grids_them_once():
    # W&B plans duplicate `values`: random draws from the list as given, a grid runs
    # each distinct value once (1, 1.0 and True are different values).
    dist = sweep.choice(["relu", "relu", "tanh"])
    assert dist.support() == ["relu", "tanh"]
    assert dist.probabilities() == pytest.approx([2 / 3, 1 / 3])
    assert sweep.choice([True, 1, 1, True]).grid_values(None) == [True, 1]


def test_choice_tells_one_from_true_and_one_point_zero():
    dist = sweep.choice([1, True, 1.0])
    assert [dist.from_unit(dist.to_unit(v)) for v in (1, True, 1.0)] == [1, True, 1.0]
    assert [type(dist.from_unit(dist.to_unit(v))) for v in (1, True, 1.0)] == [int, bool, float]


# ------------------------------------------- long integer axes (issue 25, 13 and 19)


def test_a_long_discrete_axis_is_counted_and_narrowed_without_being_listed():
    """Issue 25 item 13: an all-discrete space held 8 bytes per integer of a range
    (0..10**8 peaked at ~1 GB; a W&B ``seed: 0..2**31-1`` ran out of memory). Counting,
    narrowing and sampling such a space must cost the same whatever the range."""
    import tracemalloc

    seed = RandInt(0, 2**31 - 1)
    tracemalloc.start()
    try:
        space = Space({"seed": seed, "opt": Choice(["a", "b", "c"], [1, 1, 0]),
                       "width": LogRandInt(1, 2**40)})
        assert space.cardinality() == 2**31 * 3 * 2**40
        assert space.possible_combinations() == 2**31 * 2 * 2**40
        box = seed.narrow(0.25, 0.5)
        assert box.bounds == (2**29, 2**30) and box.cardinality == 2**29 + 1
        assert box.narrow(0.5, 1.0).cardinality == 2**28 + 1
        assert LogRandInt(1, 2**40).narrow(0.5, 0.75).cardinality > 2**19
        configs = [space.from_unit(u) for u in np.random.default_rng(0).random((100, 3))]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # a list of the seed axis alone would be 17 GB
    assert all(0 <= c["seed"] < 2**31 and c["opt"] != "c" for c in configs)
    # Listing such an axis is refused outright, never attempted.
    for listing in (seed.support, seed.probabilities, box.support):
        with pytest.raises(ValueError, match="sampled, never enumerated"):
            listing()


@st.composite
def short_discrete_numeric(draw):
    kind = draw(st.sampled_from(["randint", "lograndint", "quniform"]))
    if kind == "randint":
        return RandInt(*draw(int_bounds()))
    if kind == "lograndint":
        lo = draw(st.integers(1, 10**4))
        return LogRandInt(lo, lo + draw(st.integers(0, 3000)))
    return draw(quniforms())


@SETTINGS
@given(short_discrete_numeric(), UNIT, UNIT)
def test_a_narrowed_discrete_axis_is_the_run_of_its_parent_inside_the_box(dist, a, b):
    """Narrowed counts and lists a discrete box through its parent's positions (item 13):
    the same values and weights as filtering the parent's whole support."""
    assume(dist.cardinality <= 20_000)
    box = Narrowed(dist, min(a, b), max(a, b))
    lo, hi = box.bounds
    pairs = [(v, p) for v, p in zip(dist.support(), dist.probabilities(), strict=True)
             if lo <= v <= hi]
    assert box.cardinality == len(pairs)
    assert box.support() == [v for v, _ in pairs]
    total = sum(p for _, p in pairs)
    assert box.probabilities() == pytest.approx([p / total for _, p in pairs])


def test_integer_axes_past_float_precision_are_refused_naming_the_field_and_limit():
    """Issue 25 item 19: ``int_uniform`` from -2**62 to 2**62 passed validate and ended
    ``run`` in an OverflowError. An integer axis is refused beyond what a unit
    coordinate (a float) draws exactly; an integer value beyond the results table's
    int64 is refused wherever a parameter takes it."""
    from sweep.spec.sweep_file import load_spec

    def spec(params, stages=None):
        return load_spec({"name": "huge", "objective": "m:f", "metric": "loss",
                          "parameters": params,
                          "stages": stages or [{"plan": "random", "trials": 4}]})

    refused = [
        ({"seed": {"distribution": "int_uniform", "min": -2**62, "max": 2**62}},
         r"parameters\.seed\.max: got 4611686018427387904, expected an integer less than "
         r"min \+ 2\*\*50"),
        ({"seed": {"distribution": "int_uniform", "min": 0, "max": 2**63}},
         r"parameters\.seed\.max: .*within \+-2\*\*62"),
        ({"n": {"distribution": "log_int_uniform", "min": 1, "max": 2**52}},
         r"parameters\.n\.max: .*within \+-2\*\*50"),
        ({"n": {"distribution": "q_uniform", "min": 0, "max": 1e20, "q": 1e12}},
         r"parameters\.n\.max: .*within \+-2\*\*50 .* integer-valued quniform"),
        ({"n": {"distribution": "q_log_uniform_values", "min": 1, "max": 1e20}},
         r"parameters\.n\.max: .*within \+-2\*\*50"),
        ({"n": {"value": 2**63}}, r"parameters\.n\.value: .*within int64"),
        ({"n": {"values": [1, 2**64]}}, r"parameters\.n\.values\[1\]: .*within int64"),
    ]
    for params, message in refused:
        with pytest.raises(SpecError, match=message):
            spec(params)
    with pytest.raises(SpecError, match=r"stages\[0\]\.fixed\.x: .*within int64"):
        spec({"x": sweep.randint(0, 3)}, [{"plan": "random", "trials": 2,
                                           "fixed": {"x": -2**63 - 1}}])
    # The largest that validates draws every value exactly, far from zero too.
    widest = RandInt(-2**49, 2**49 - 1)
    far = RandInt(2**62 - 10, 2**62)
    for dist, values in ((widest, [-2**49, -1, 0, 2**48 + 12345, 2**49 - 2, 2**49 - 1]),
                         (far, far.support())):
        for v in values:
            assert dist.from_unit(dist.to_unit(v)) == v
    assert widest.from_unit(0.0) == -2**49 and widest.from_unit(1.0) == 2**49 - 1
    log = LogRandInt(1, 2**50)
    assert all(1 <= v <= 2**50 for v in log.grid_values(7))
    assert log.grid_values(2) == [1, 2**50]
