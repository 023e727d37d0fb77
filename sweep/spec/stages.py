"""The ``stages:`` of a sweep file: each stage's plan, budget and options, validated.

Example:
    >>> from sweep.space import Space, Uniform
    >>> stages = parse_stages([{"plan": "random", "trials": 8},
    ...                        {"plan": "refine", "trials": 8}],
    ...                       Space({"x": Uniform(0, 1)}), seed=0, points={})
    >>> [s.plan for s in stages], stages[1].refine_top_k
    (['random', 'refine'], 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import SpecError
from ..core.hints import did_you_mean
from ..core.values import fraction, integer, known_keys, number, one_of, parameter_value
from ..plans import REGISTRY
from ..plans.pbt import PERTURBATION_FACTORS, POPULATION, QUANTILE, RESAMPLE_PROBABILITY
from ..plans.refine_options import (
    ADAPTIVE_SAMPLES,
    CATEGORICAL,
    DEFAULT_CATEGORICAL,
    DEFAULT_MARGIN,
    DEFAULT_MIN_WIDTH,
    DEFAULT_REGION,
    DEFAULT_SHRINK,
    REGIONS,
    SAMPLES,
    default_min_width,
    default_shrink,
    default_top_k,
    samples,
)
from ..space import distributions as sp
from ..space.search_space import Space

# Every plan a stage can name: the plans' registry (sweep.plans.REGISTRY) is the one list.
PLANS = tuple(REGISTRY)
FIRST_PLANS = tuple(name for name, cls in REGISTRY.items() if not cls.refines)
STAGE_KEYS = (
    "plan", "trials", "seed", "points", "values", "fixed", "top_k", "region", "margin",
    "min_width", "shrink", "categorical", "sample", "from", "name", "initial",
    "population", "interval", "quantile", "resample_probability", "perturbation_factors",
    "mutations",
)
REFINE_KEYS = ("top_k", "region", "margin", "min_width", "shrink", "categorical", "sample",
               "from")
BAYES_KEYS = ("initial",)
PBT_KEYS = ("population", "interval", "quantile", "resample_probability",
            "perturbation_factors", "mutations")
MUTATION_KEYS = ("resample_probability", "perturbation_factors")

@dataclass
class Stage:
    """One stage of a sweep: a plan and its budget."""

    index: int
    plan: str
    trials: int | None = None
    seed: int = 0
    points: int | dict[str, int] | None = None
    values: dict[str, list[Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    top_k: int | None = None
    region: str = DEFAULT_REGION
    margin: float = DEFAULT_MARGIN
    min_width: float = DEFAULT_MIN_WIDTH
    shrink: float = DEFAULT_SHRINK
    categorical: str = DEFAULT_CATEGORICAL
    sample: str = SAMPLES[0]
    source: str = "previous"
    truncate: bool = False
    axis_points: dict[str, int] = field(default_factory=dict)
    initial: int | None = None
    name: str = ""
    # pbt (sweep.plans.pbt holds the defaults)
    population: int = POPULATION
    interval: int = 0
    quantile: float = QUANTILE
    resample_probability: float = RESAMPLE_PROBABILITY
    perturbation_factors: tuple[float, ...] = PERTURBATION_FACTORS
    mutations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def space(self, base: Space) -> Space:
        """The search space of this stage: ``fixed`` values replace parameters."""
        if not self.fixed:
            return base
        return base.replace(**{k: sp.Constant(v) for k, v in self.fixed.items()})

    @property
    def refine_top_k(self) -> int:
        if self.top_k is not None:
            return self.top_k
        return default_top_k(self.trials, self.region)

    @property
    def sources(self) -> list[int]:
        """The stages a refine stage ranks: the previous one, or all before it."""
        return [self.index - 1] if self.source == "previous" else list(range(self.index))

    @property
    def learns(self) -> bool:
        """True for plans that need the sweep's metric (they rank or model results)."""
        return REGISTRY[self.plan].learns


def stage_seed(seed: int, index: int) -> int:
    """The default seed of stage ``index`` of a sweep seeded ``seed``."""
    return seed * 1000 + index


def parse_stages(raw_stages: Any, space: Space, *, seed: int, points: dict[str, int]
                 ) -> list[Stage]:
    """Validated stages from the sweep file's ``stages:`` list."""
    if not isinstance(raw_stages, list) or not raw_stages:
        raise SpecError("stages", raw_stages, "a non-empty list of stages")
    return [_stage(i, raw, space, seed, points) for i, raw in enumerate(raw_stages)]


def _stage(index: int, raw: Any, space: Space, seed: int, param_points: dict[str, int]
           ) -> Stage:
    where = f"stages[{index}]"
    if not isinstance(raw, dict):
        raise SpecError(where, raw, "a mapping such as {plan: random, trials: 32}")
    known_keys(where, raw, STAGE_KEYS)
    if "plan" not in raw:
        raise SpecError(f"{where}.plan", expected="one of " + ", ".join(PLANS))
    plan = one_of(f"{where}.plan", raw["plan"], PLANS)
    if index == 0 and plan not in FIRST_PLANS:
        raise SpecError(f"{where}.plan", plan, f"{', '.join(FIRST_PLANS[:-1])} or "
                        f"{FIRST_PLANS[-1]} for the first stage",
                        f"a {plan} stage needs an earlier stage to refine")
    stage = Stage(index=index, plan=plan, seed=stage_seed(seed, index))
    if "name" in raw:
        if not isinstance(raw["name"], str):
            raise SpecError(f"{where}.name", raw["name"], "a string")
        stage.name = raw["name"]
    if "seed" in raw:
        stage.seed = integer(f"{where}.seed", raw["seed"], minimum=0)
    if raw.get("trials") is not None:
        stage.trials = integer(f"{where}.trials", raw["trials"], minimum=1)
    sample_grid = plan == "refine" and raw.get("sample") == "grid"
    if stage.trials is None and plan not in ("grid", "pbt") and not sample_grid:
        raise SpecError(f"{where}.trials", expected=f"the number of trials of this {plan} stage")
    if "points" in raw:
        stage.points = _points(f"{where}.points", raw["points"], space)
    stage.axis_points = merge_points(param_points, stage.points, space)
    if "values" in raw:
        stage.values = _grid_values(f"{where}.values", raw["values"], space)
        if plan != "grid":
            raise SpecError(f"{where}.values", expected="values only on a grid stage")
    if "fixed" in raw:
        stage.fixed = _fixed(f"{where}.fixed", raw["fixed"], space)
    _options(stage, raw, where)
    if stage.plan == "pbt":
        _pbt_options(stage, raw, where, stage.space(space).dims)
    if stage.plan == "refine" and stage.sample == "grid":
        _grid_size(stage.space(space), stage.axis_points, f"{where}.points")
    check_grid(stage, space, where)
    return stage


def _options(stage: Stage, raw: Mapping[str, Any], where: str) -> None:
    """The plan-specific keys (refine's boxes, bayes' initial design)."""
    for key in REFINE_KEYS if stage.plan != "refine" else ():
        if key in raw:
            raise SpecError(f"{where}.{key}", raw[key], f"no refine option on a {stage.plan} "
                            "stage (only on plan: refine)")
    for key in BAYES_KEYS if stage.plan != "bayes" else ():
        if key in raw:
            raise SpecError(f"{where}.{key}", raw[key], f"no bayes option on a {stage.plan} "
                            "stage (only on plan: bayes)")
    for key in PBT_KEYS if stage.plan != "pbt" else ():
        if key in raw:
            raise SpecError(f"{where}.{key}", raw[key], f"no pbt option on a {stage.plan} "
                            "stage (only on plan: pbt)")
    if stage.plan == "bayes" and "initial" in raw:
        stage.initial = integer(f"{where}.initial", raw["initial"], minimum=1)
    if stage.plan != "refine":
        return
    if "top_k" in raw:
        stage.top_k = integer(f"{where}.top_k", raw["top_k"], minimum=1)
    stage.region = one_of(f"{where}.region", raw.get("region", DEFAULT_REGION), REGIONS)
    adaptive = stage.region == "adaptive"
    if adaptive and "margin" in raw:
        raise SpecError(f"{where}.margin", raw["margin"], "no margin with region: adaptive",
                        "margin widens the single box of region: hull")
    stage.margin = float(number(f"{where}.margin", raw.get("margin", DEFAULT_MARGIN)))
    if stage.margin < 0:
        raise SpecError(f"{where}.margin", raw.get("margin"), "a fraction >= 0")
    stage.shrink = fraction(f"{where}.shrink", raw.get("shrink", default_shrink(stage.region)),
                            zero_ok=False)
    stage.min_width = fraction(f"{where}.min_width", raw.get(
        "min_width", default_min_width(stage.region, stage.shrink)), zero_ok=True)
    if adaptive and stage.min_width > stage.shrink:
        raise SpecError(f"{where}.min_width", raw.get("min_width"),
                        f"at most shrink ({stage.shrink}) with region: adaptive",
                        "the boxes narrow from shrink down to min_width")
    stage.categorical = one_of(f"{where}.categorical",
                               raw.get("categorical", DEFAULT_CATEGORICAL), CATEGORICAL)
    allowed = samples(stage.region)
    if adaptive and raw.get("sample") in ("grid", "sobol"):
        raise SpecError(f"{where}.sample", raw["sample"], "thompson, model or random with "
                        "region: adaptive (the default)",
                        f"sample: {raw['sample']} fills fixed boxes: add region: each or hull")
    stage.sample = one_of(f"{where}.sample", raw.get("sample", allowed[0]), allowed)
    stage.source = one_of(f"{where}.from", raw.get("from", "previous"), ("previous", "all"))


def _pbt_options(stage: Stage, raw: Mapping[str, Any], where: str, dims: list[str]
                 ) -> None:
    """population, interval (steps, required), quantile, the default mutation and the
    parameters to mutate (``mutations``: a list of names, or names to their own
    resample_probability / perturbation_factors)."""
    stage.population = integer(f"{where}.population", raw.get("population", POPULATION),
                               minimum=2)
    if "interval" not in raw:
        raise SpecError(f"{where}.interval", expected="the steps between two exploit "
                        "decisions of a member (an integer >= 1)")
    stage.interval = integer(f"{where}.interval", raw["interval"], minimum=1)
    stage.quantile = fraction(f"{where}.quantile", raw.get("quantile", QUANTILE),
                              zero_ok=False)
    if stage.quantile > 0.5:
        raise SpecError(f"{where}.quantile", raw.get("quantile"), "a fraction <= 0.5 (the "
                        "bottom and top quantiles may not overlap)")
    stage.resample_probability, stage.perturbation_factors = _mutation(
        where, raw, RESAMPLE_PROBABILITY, PERTURBATION_FACTORS)
    mutations = raw.get("mutations")
    if mutations is None:
        return
    if isinstance(mutations, list):
        mutations = {name: {} for name in mutations}
    if not isinstance(mutations, dict) or not mutations:
        raise SpecError(f"{where}.mutations", mutations, "a list of parameter names, or a "
                        "mapping of names to {resample_probability, perturbation_factors}")
    for name, options in mutations.items():
        path = f"{where}.mutations.{name}"
        if name not in dims:
            raise SpecError(path, expected="a parameter of the stage's space that varies",
                            hint=did_you_mean(name, dims, fallback="parameters: "))
        options = options or {}
        if not isinstance(options, dict):
            raise SpecError(path, options, "{resample_probability: p, "
                            "perturbation_factors: [1.2, 0.8]}")
        known_keys(path, options, MUTATION_KEYS)
        p, factors = _mutation(path, options, stage.resample_probability,
                               stage.perturbation_factors)
        stage.mutations[name] = {"resample_probability": p, "perturbation_factors": factors}


def _mutation(path: str, raw: Mapping[str, Any], p: float, factors: tuple[float, ...]
              ) -> tuple[float, tuple[float, ...]]:
    if "resample_probability" in raw:
        p = fraction(f"{path}.resample_probability", raw["resample_probability"],
                     zero_ok=True)
    if "perturbation_factors" in raw:
        values = raw["perturbation_factors"]
        if not isinstance(values, list) or not values:
            raise SpecError(f"{path}.perturbation_factors", values,
                            "a non-empty list of factors > 0, such as [1.2, 0.8]")
        factors = tuple(float(number(f"{path}.perturbation_factors[{i}]", v))
                        for i, v in enumerate(values))
        if min(factors) <= 0:
            raise SpecError(f"{path}.perturbation_factors", values, "factors > 0")
    return p, factors


def _points(path: str, raw: Any, space: Space) -> int | dict[str, int]:
    if isinstance(raw, dict):
        out = {}
        for name, n in raw.items():
            if name not in space:
                raise SpecError(f"{path}.{name}", expected="a parameter name",
                                hint=close_name(name, space))
            out[name] = integer(f"{path}.{name}", n, minimum=1)
        return out
    return integer(path, raw, minimum=1)


def merge_points(param_points: dict[str, int], stage_points: int | dict[str, int] | None,
                 space: Space) -> dict[str, int]:
    """Grid points per axis: the stage's per-axis value, else the parameter's own
    ``points``, else the stage's single ``points``."""
    out = {}
    for name in space.dims:
        if isinstance(stage_points, dict) and name in stage_points:
            out[name] = stage_points[name]
        elif name in param_points:
            out[name] = param_points[name]
        elif isinstance(stage_points, int):
            out[name] = stage_points
    return out


def _grid_values(path: str, raw: Any, space: Space) -> dict[str, list[Any]]:
    if not isinstance(raw, dict):
        raise SpecError(path, raw, "a mapping of parameter name to a list of values")
    out = {}
    for name, values in raw.items():
        if name not in space:
            raise SpecError(f"{path}.{name}", expected="a parameter name",
                            hint=close_name(name, space))
        if not isinstance(values, list) or not values:
            raise SpecError(f"{path}.{name}", values, "a non-empty list of values")
        for i, v in enumerate(values):
            parameter_value(f"{path}.{name}[{i}]", v)
        out[name] = values
    return out


def _fixed(path: str, raw: Any, space: Space) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SpecError(path, raw, "a mapping of parameter name to value")
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and name not in space:
                walk(name + ".", value)
                continue
            if name not in space:
                raise SpecError(f"{path}.{name}", expected="a parameter of the sweep",
                                hint=close_name(str(name), space))
            parameter_value(f"{path}.{name}", value)
            out[name] = value

    walk("", raw)
    return out


def close_name(name: Any, space: Space) -> str:
    """A did-you-mean hint for a parameter name."""
    return did_you_mean(name, space, fallback="parameters: ")


def _grid_size(space: Space, points: Any, where: str, values: Any = None) -> int:
    from ..plans.fixed import Grid

    try:
        return len(Grid(space, points=points, values=values))
    except ValueError as exc:
        raise SpecError(where, expected="points for every continuous axis of a grid (stage-"
                        "level `points: n`, or per parameter)", hint=str(exc)) from None


def check_grid(stage: Stage, space: Space, where: str) -> None:
    """A grid stage's grid must be buildable and, unless truncated, fit its trials."""
    if stage.plan != "grid":
        return
    path = f"{where}.points" if where != "method" else "parameters"
    size = _grid_size(stage.space(space), stage.axis_points, path, stage.values)
    if stage.trials is not None and size > stage.trials:
        if stage.truncate:
            import warnings

            warnings.warn(f"run_cap {stage.trials} < grid of {size}: running the first "
                          f"{stage.trials} grid points", stacklevel=2)
            return
        raise SpecError(f"{where}.trials", stage.trials, f"at least the grid's {size} points",
                        "raise trials, lower points, or use a random stage")


__all__ = ["ADAPTIVE_SAMPLES", "PLANS", "REGIONS", "SAMPLES", "STAGE_KEYS", "Stage", "check_grid",
           "default_top_k", "merge_points", "parse_stages", "stage_seed"]
