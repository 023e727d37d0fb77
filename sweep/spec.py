"""Sweep files: YAML (``yaml.safe_load``) or a Python dict into a validated ``Spec``.

The format is a superset of W&B's sweep file: a W&B ``method: grid|random``
file runs as it is; ``stages:`` adds coarse-to-fine. Every invalid input raises
``SpecError`` naming the path of the field, the value and what was expected.

Example:
    >>> spec = load_spec({
    ...     "name": "demo", "objective": "jobs.mlp:train",
    ...     "metric": {"name": "val_error", "goal": "minimize"},
    ...     "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1}},
    ...     "stages": [{"plan": "random", "trials": 8}],
    ... })
    >>> spec.space["lr"]
    loguniform(0.0001, 1)
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import space as sp
from .errors import SpecError
from .space import Distribution, Space

PLANS = ("grid", "random", "sobol", "lhs", "refine")
REGIONS = ("each", "hull")
SAMPLES = ("random", "grid", "sobol")
GOALS = ("minimize", "maximize")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
OBJECTIVE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

TOP_KEYS = (
    "name", "description", "objective", "command", "program", "metric", "parameters",
    "stages", "method", "run_cap", "seed", "resources", "retries", "timeout_s",
    "max_concurrent", "batch", "early_terminate", "project", "entity",
)
STAGE_KEYS = (
    "plan", "trials", "seed", "points", "values", "fixed", "top_k", "region", "margin",
    "min_width", "shrink", "categorical", "sample", "from", "name",
)
PARAM_KEYS = (
    "distribution", "value", "values", "probabilities", "weights", "min", "max", "q", "mu",
    "sigma", "p", "parameters", "points",
)
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory", "custom")

# Distribution names, W&B's and the short ones, to one canonical name each.
DISTRIBUTIONS = {
    "constant": "constant",
    "categorical": "choice", "choice": "choice", "categorical_w_probabilities": "choice",
    "uniform": "uniform",
    "int_uniform": "randint", "randint": "randint",
    "lograndint": "lograndint", "log_int_uniform": "lograndint",
    "q_uniform": "quniform", "quniform": "quniform",
    "log_uniform_values": "loguniform", "loguniform": "loguniform",
    "inv_log_uniform_values": "loguniform",
    "q_log_uniform_values": "qloguniform", "qloguniform": "qloguniform",
    "log_uniform": "log_uniform_exponents",
    "q_log_uniform": "q_log_uniform_exponents",
    "inv_log_uniform": "inv_log_uniform_exponents",
    "normal": "normal", "log_normal": "lognormal", "lognormal": "lognormal",
    "bernoulli": "bernoulli",
}
UNSUPPORTED = {
    "q_normal": "a quantised normal", "q_log_normal": "a quantised log-normal",
    "beta": "a beta prior", "q_beta": "a quantised beta prior",
}

# Refine defaults, chosen from tests/bench/quality.py (see README, "Coarse-to-fine").
DEFAULT_REGION = "each"
DEFAULT_SHRINK = 0.25
DEFAULT_MARGIN = 0.1
DEFAULT_MIN_WIDTH = 0.1
DEFAULT_W_AND_B_TRIALS = 20


def default_top_k(trials: int, region: str = "each") -> int:
    """Seeds for a refine stage of ``trials`` trials: about one per 8 trials, 1..4 for
    ``each``, 2..8 for ``hull`` (a hull of one seed is only a min_width box).

    Example: ``default_top_k(32) == 4``
    """
    if region == "hull":
        return max(2, min(8, trials // 8))
    return max(1, min(4, trials // 8))


@dataclass
class Metric:
    """The objective's metric and whether lower or higher is better."""

    name: str
    goal: str = "minimize"

    @property
    def column(self) -> str:
        return f"metrics.{self.name}"


@dataclass
class Resources:
    """What one trial holds while it runs (Ray task options)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    custom: dict[str, float] = field(default_factory=dict)

    def ray_options(self) -> dict[str, Any]:
        """Keyword arguments for ``remote_fn.options(...)``."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            opts["memory"] = int(self.memory)
        if self.custom:
            opts["resources"] = dict(self.custom)
        return opts


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
    categorical: str = "keep"
    sample: str = "random"
    source: str = "previous"
    truncate: bool = False
    axis_points: dict[str, int] = field(default_factory=dict)

    def space(self, base: Space) -> Space:
        """The search space of this stage: ``fixed`` values replace parameters."""
        if not self.fixed:
            return base
        return base.replace(**{k: sp.Constant(v) for k, v in self.fixed.items()})

    @property
    def refine_top_k(self) -> int:
        if self.top_k is not None:
            return self.top_k
        return default_top_k(self.trials or 8, self.region)


@dataclass
class Spec:
    """A validated sweep: what to run, over which space, in which stages."""

    name: str
    metric: Metric
    space: Space
    stages: list[Stage]
    objective: str | Callable[..., Any] | None = None
    command: list[str] | None = None
    program: str | None = None
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seed: int = 0
    resources: Resources = field(default_factory=Resources)
    retries: int = 2
    timeout_s: float | None = None
    max_concurrent: int | None = None
    batch: int | str = "auto"
    description: str = ""
    document: dict[str, Any] = field(default_factory=dict)
    base_dir: str = "."

    def nest(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """A flat config as the objective receives it: nested parameters as dicts.

        Example: ``{"opt.lr": 0.1}`` -> ``{"opt": {"lr": 0.1}}``
        """
        out: dict[str, Any] = {}
        for name, value in flat.items():
            path = self.paths.get(name, (name,))
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
        return out

    def fingerprint(self) -> str:
        """A hash of what defines the trials: a rerun with the same fingerprint resumes."""
        return fingerprint(self.document)

    def to_yaml(self) -> str:
        """The spec as run, as YAML (callables are written by name)."""
        return yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True)


def fingerprint(document: Mapping[str, Any]) -> str:
    """A hash of the parts of a sweep document that define its trials (name, objective,
    metric, parameters, stages, seed); resources, retries and timeouts may change
    between runs of the same sweep.

    Example: ``fingerprint(yaml.safe_load(open("results/demo/spec.yaml")))``
    """
    keys = ("name", "objective", "command", "program", "metric", "parameters", "stages",
            "method", "run_cap", "seed")
    doc = {k: document.get(k) for k in keys}
    text = json.dumps(doc, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -------------------------------------------------------------------- loading


def load_spec(source: str | Path | Mapping[str, Any] | Spec) -> Spec:
    """A validated ``Spec`` from a path to a YAML file, a dict, or a ``Spec``.

    Example: ``load_spec("jobs/mlp.yaml").stages[0].plan == "random"``
    """
    if isinstance(source, Spec):
        return source
    if isinstance(source, Mapping):
        return _from_dict(dict(source), base_dir=".")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), expected="an existing sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), expected=f"a readable UTF-8 file ({exc})") from None
    return loads_spec(text, base_dir=str(path.parent), source=str(path),
                      default_name=re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem) or None)


def loads_spec(
    text: str, *, base_dir: str = ".", source: str = "<string>", default_name: str | None = None
) -> Spec:
    """A validated ``Spec`` from YAML text.

    Example: ``loads_spec("name: x\\nobjective: m:f\\n...")``
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(source, expected=f"valid YAML{where}: {problem}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise SpecError(source, expected=f"valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise SpecError(source, doc if not isinstance(doc, str) else doc[:40],
                        "a mapping with name, objective, metric, parameters and stages")
    if "name" not in doc and default_name:
        # W&B sweep files may leave the name out: the file's name stands in for it.
        doc = {"name": default_name, **doc}
    return _from_dict(doc, base_dir=base_dir)


def _from_dict(doc: dict[str, Any], *, base_dir: str) -> Spec:
    for key in doc:
        if not isinstance(key, str):
            raise SpecError(repr(key), expected="string keys at the top level")
    _check_keys("", doc, TOP_KEYS)
    document = _storable(doc)

    name = doc.get("name")
    if name is None:
        raise SpecError("name", expected="a sweep name (letters, digits, _ . -); it names "
                        "the results folder")
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 128:
        raise SpecError("name", name, "a sweep name of letters, digits, '_', '.' and '-'")

    objective, command, program = _objective(doc)
    metric = _metric(doc.get("metric"))
    params, paths, points = _parameters(doc.get("parameters"))
    space = Space(params)
    seed = _int("seed", doc.get("seed", 0), minimum=0)
    stages = _stages(doc, space, seed, points)

    if "early_terminate" in doc:
        warnings.warn("early_terminate is ignored: every trial runs to the end", stacklevel=2)
    desc = doc.get("description", "")
    if not isinstance(desc, str):
        raise SpecError("description", desc, "a string")
    batch = doc.get("batch", "auto")
    if batch != "auto":
        batch = _int("batch", batch, minimum=1)
    timeout = doc.get("timeout_s")
    if timeout is not None:
        timeout = _number("timeout_s", timeout)
        if timeout <= 0:
            raise SpecError("timeout_s", timeout, "a number of seconds > 0, or null")
    max_conc = doc.get("max_concurrent")
    if max_conc is not None:
        max_conc = _int("max_concurrent", max_conc, minimum=1)

    return Spec(
        name=name,
        metric=metric,
        space=space,
        stages=stages,
        objective=objective,
        command=command,
        program=program,
        paths=paths,
        seed=seed,
        resources=_resources(doc.get("resources")),
        retries=_int("retries", doc.get("retries", 2), minimum=0),
        timeout_s=timeout,
        max_concurrent=max_conc,
        batch=batch,
        description=desc,
        document=document,
        base_dir=base_dir,
    )


def _storable(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of the document that YAML can write: callables and distribution
    objects by name."""

    def convert(x: Any) -> Any:
        if isinstance(x, Distribution):
            return distribution_to_dict(x)
        if callable(x):
            return f"python:{getattr(x, '__module__', '?')}.{getattr(x, '__qualname__', '?')}"
        if isinstance(x, Mapping):
            return {str(k): convert(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [convert(v) for v in x]
        return copy.deepcopy(x)

    return convert(doc)


def _check_keys(path: str, mapping: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
            raise SpecError(where, expected="a known key", hint=hint)


def _number(path: str, x: Any) -> float:
    """A finite number; numeric strings such as '1e-5' (YAML 1.1) are accepted."""
    if isinstance(x, str):
        try:
            x = float(x.strip())
        except ValueError:
            raise SpecError(path, x, "a number") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise SpecError(path, x, "a number")
    try:
        finite = math.isfinite(x)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise SpecError(path, x, "a finite number")
    return x


def _int(path: str, x: Any, minimum: int | None = None) -> int:
    n = _number(path, x)
    if not float(n).is_integer() or abs(n) > 2**62:
        raise SpecError(path, x, "an integer")
    n = int(n)
    if minimum is not None and n < minimum:
        raise SpecError(path, x, f"an integer >= {minimum}")
    return n


def _fraction(path: str, x: Any, *, zero_ok: bool) -> float:
    f = _number(path, x)
    if f > 1 or f < 0 or (f == 0 and not zero_ok):
        raise SpecError(path, x, "a fraction in [0, 1]" if zero_ok else "a fraction in (0, 1]")
    return float(f)


def _choice_of(path: str, x: Any, options: tuple[str, ...]) -> str:
    if not isinstance(x, str) or x not in options:
        close = difflib.get_close_matches(str(x), options, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        raise SpecError(path, x, "one of " + ", ".join(options), hint)
    return x


# ------------------------------------------------------------------ objective


def _objective(doc: Mapping[str, Any]) -> tuple[Any, list[str] | None, str | None]:
    objective = doc.get("objective")
    command = doc.get("command")
    program = doc.get("program")
    if objective is not None and (command is not None or program is not None):
        raise SpecError("objective", objective, "either objective or command/program, not both")
    if objective is not None:
        if callable(objective):
            return objective, None, None
        if not isinstance(objective, str) or not OBJECTIVE_RE.match(objective):
            raise SpecError("objective", objective, "'module:function', e.g. jobs.mlp:train")
        return objective, None, None
    if program is not None and (not isinstance(program, str) or not program.strip()):
        raise SpecError("program", program, "a path to the training script")
    if command is None:
        if program is None:
            raise SpecError("objective", expected="objective: module:function, or program: "
                            "/ command: for a command-line job")
        command = ["${env}", "${interpreter}", "${program}", "${args}"]
    if not isinstance(command, list) or not command:
        raise SpecError("command", command, "a non-empty list of arguments")
    for i, arg in enumerate(command):
        if not isinstance(arg, (str, int, float)) or isinstance(arg, bool):
            raise SpecError(f"command[{i}]", arg, "a string")
    command = [str(a) for a in command]
    if any("${program}" in a for a in command) and program is None:
        raise SpecError("program", expected="a script path, since command uses ${program}")
    return None, command, program


def _metric(raw: Any) -> Metric:
    if raw is None:
        raise SpecError("metric", expected="{name: <metric>, goal: minimize|maximize}")
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise SpecError("metric", raw, "{name: <metric>, goal: minimize|maximize}")
    _check_keys("metric", raw, ("name", "goal", "target"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("metric.name", name, "the name of the metric the objective returns")
    goal = _choice_of("metric.goal", raw.get("goal", "minimize"), GOALS)
    return Metric(name, goal)


# ----------------------------------------------------------------- parameters


def _parameters(
    raw: Any,
) -> tuple[dict[str, Distribution], dict[str, tuple[str, ...]], dict[str, int]]:
    if not isinstance(raw, dict) or not raw:
        raise SpecError("parameters", raw, "a mapping of parameter names to definitions")
    params: dict[str, Distribution] = {}
    paths: dict[str, tuple[str, ...]] = {}
    points: dict[str, int] = {}
    _collect("parameters", (), raw, params, paths, points)
    return params, paths, points


def _collect(
    where: str,
    prefix: tuple[str, ...],
    raw: Mapping[str, Any],
    params: dict[str, Distribution],
    paths: dict[str, tuple[str, ...]],
    points: dict[str, int],
) -> None:
    for key, definition in raw.items():
        path = f"{where}.{key}"
        if not isinstance(key, str) or not PARAM_RE.match(key):
            raise SpecError(path, key, "a parameter name of letters, digits, '_', '.' and '-'")
        if isinstance(definition, dict) and set(definition) == {"parameters"}:
            inner = definition["parameters"]
            if not isinstance(inner, dict) or not inner:
                raise SpecError(f"{path}.parameters", inner, "a mapping of nested parameters")
            _collect(f"{path}.parameters", (*prefix, key), inner, params, paths, points)
            continue
        flat = ".".join((*prefix, key))
        if flat in params:
            raise SpecError(path, flat, "a unique name (another parameter flattens to it)")
        params[flat] = parse_parameter(path, definition)
        paths[flat] = (*prefix, key)
        if isinstance(definition, dict) and "points" in definition:
            points[flat] = _int(f"{path}.points", definition["points"], minimum=1)


def parse_parameter(path: str, raw: Any) -> Distribution:
    """One parameter definition (W&B or short names) as a ``Distribution``.

    Example: ``parse_parameter("parameters.lr", {"min": 1e-4, "max": 1e-1})`` is a uniform.
    """
    if isinstance(raw, Distribution):
        return raw
    if not isinstance(raw, dict):
        raise SpecError(path, raw, "a mapping such as {values: [...]} or {min: .., max: ..}")
    _check_keys(path, raw, PARAM_KEYS)
    if "parameters" in raw:
        raise SpecError(f"{path}.parameters", expected="nested parameters alone, without "
                        "other keys beside them")
    name = raw.get("distribution")
    if name is None:
        if "value" in raw:
            name = "constant"
        elif "values" in raw:
            name = "choice"
        elif "min" in raw and "max" in raw:
            lo, hi = (_number(f"{path}.{k}", raw[k]) for k in ("min", "max"))
            both_int = all(isinstance(raw[k], int) for k in ("min", "max"))
            name = "randint" if both_int and isinstance(lo, int) and isinstance(hi, int) else (
                "uniform")
        else:
            raise SpecError(path, raw, "one of value, values, min/max, or a distribution")
    if not isinstance(name, str):
        raise SpecError(f"{path}.distribution", name, "a distribution name")
    if name in UNSUPPORTED:
        raise SpecError(f"{path}.distribution", name, "a supported distribution",
                        f"{UNSUPPORTED[name]} is not supported; use normal/log_normal or q_uniform")
    if name not in DISTRIBUTIONS:
        close = difflib.get_close_matches(name, DISTRIBUTIONS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(
            sorted(set(DISTRIBUTIONS)))
        raise SpecError(f"{path}.distribution", name, "a known distribution", hint)
    return _build(path, DISTRIBUTIONS[name], raw)


_NEEDS = {
    "constant": ("value",), "choice": ("values",), "bernoulli": (),
    "uniform": ("min", "max"), "randint": ("min", "max"), "lograndint": ("min", "max"),
    "quniform": ("min", "max"), "loguniform": ("min", "max"), "qloguniform": ("min", "max"),
    "log_uniform_exponents": ("min", "max"), "q_log_uniform_exponents": ("min", "max"),
    "inv_log_uniform_exponents": ("min", "max"), "normal": (), "lognormal": (),
}
_ALLOWED = {
    "constant": {"value"}, "choice": {"values", "probabilities", "weights"}, "bernoulli": {"p"},
    "normal": {"mu", "sigma"}, "lognormal": {"mu", "sigma"},
    "quniform": {"min", "max", "q"}, "qloguniform": {"min", "max", "q"},
    "q_log_uniform_exponents": {"min", "max", "q"},
}


def _build(path: str, kind: str, raw: dict[str, Any]) -> Distribution:
    allowed = _ALLOWED.get(kind, {"min", "max"}) | {"distribution", "points"}
    for key in raw:
        if key not in allowed:
            raise SpecError(f"{path}.{key}", raw[key], f"no {key!r} for this distribution",
                            "allowed: " + ", ".join(sorted(allowed)))
    for key in _NEEDS[kind]:
        if key not in raw:
            raise SpecError(f"{path}.{key}", expected=f"a value (needed by {kind})")
    if "points" in raw:
        _int(f"{path}.points", raw["points"], minimum=1)

    def num(key: str, default: float | None = None) -> float:
        return _number(f"{path}.{key}", raw.get(key, default))

    def bounds() -> tuple[float, float]:
        lo, hi = num("min"), num("max")
        if lo >= hi:
            raise SpecError(f"{path}.max", raw["max"], f"a number greater than min ({raw['min']})")
        return lo, hi

    if kind == "constant":
        value = raw["value"]
        _check_value(f"{path}.value", value)
        return sp.Constant(value)
    if kind == "choice":
        weights = raw.get("probabilities", raw.get("weights"))
        if "probabilities" in raw and "weights" in raw:
            raise SpecError(f"{path}.weights", expected="either probabilities or weights")
        if isinstance(weights, list):
            weights = [_number(f"{path}.probabilities[{i}]", w) for i, w in enumerate(weights)]
        try:
            return sp._checked_choice(f"{path}.values", raw["values"], weights)
        except SpecError as exc:
            raise SpecError(exc.path.replace(".values.weights", ".probabilities"),
                            exc.value, exc.expected) from None
    if kind == "bernoulli":
        p = num("p", 0.5)
        if not 0 <= p <= 1:
            raise SpecError(f"{path}.p", raw.get("p"), "a probability in [0, 1]")
        return sp.Bernoulli(p)
    if kind in ("normal", "lognormal"):
        mu, sigma = num("mu", 0.0), num("sigma", 1.0)
        if sigma <= 0:
            raise SpecError(f"{path}.sigma", raw.get("sigma"), "a number > 0")
        return sp.Normal(mu, sigma) if kind == "normal" else sp.LogNormal(mu, sigma)
    if kind in ("randint", "lograndint"):
        lo, hi = num("min"), num("max")
        for key, x in (("min", lo), ("max", hi)):
            if not float(x).is_integer():
                raise SpecError(f"{path}.{key}", raw[key], "an integer")
        lo, hi = int(lo), int(hi)
        if lo > hi:
            raise SpecError(f"{path}.max", raw["max"], f"an integer >= min ({lo})")
        if kind == "lograndint":
            if lo < 1:
                raise SpecError(f"{path}.min", raw["min"], "an integer >= 1 for a log axis")
            return sp.LogRandInt(lo, hi)
        return sp.RandInt(lo, hi)
    if kind in ("log_uniform_exponents", "inv_log_uniform_exponents", "q_log_uniform_exponents"):
        lo, hi = bounds()
        if max(abs(lo), abs(hi)) > 700:
            raise SpecError(f"{path}.max", hi, "natural-log exponents within +-700")
        warnings.warn(
            f"{path}: W&B's {raw.get('distribution')} takes natural-log exponents as bounds "
            f"(values e^{lo:g}..e^{hi:g}); prefer log_uniform_values with raw bounds",
            stacklevel=2,
        )
        if kind == "inv_log_uniform_exponents":
            return sp.LogUniform(math.exp(-hi), math.exp(-lo))
        if kind == "q_log_uniform_exponents":
            return sp.QLogUniform(math.exp(lo), math.exp(hi), _positive(path, raw))
        return sp.LogUniform(math.exp(lo), math.exp(hi))
    lo, hi = bounds()
    if kind == "uniform":
        return sp.Uniform(lo, hi)
    if kind == "quniform":
        return sp.QUniform(lo, hi, _positive(path, raw))
    if lo <= 0:
        raise SpecError(f"{path}.min", raw["min"], "a number > 0 for a log axis")
    if kind == "loguniform":
        return sp.LogUniform(lo, hi)
    return sp.QLogUniform(lo, hi, _positive(path, raw))


def _positive(path: str, raw: Mapping[str, Any]) -> float:
    q = _number(f"{path}.q", raw.get("q", 1))
    if q <= 0:
        raise SpecError(f"{path}.q", raw.get("q"), "a step > 0")
    return q


def _check_value(path: str, value: Any) -> None:
    """Constants may be any JSON value made of scalars, lists and mappings."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError(path, value, "a JSON-like value (string, number, bool, null, "
                        "list or mapping)") from None


def distribution_to_dict(dist: Distribution) -> dict[str, Any]:
    """A distribution written in sweep-file syntax (for the stored spec.yaml).

    Example: ``distribution_to_dict(LogUniform(1e-4, 1))`` ->
    ``{'distribution': 'loguniform', 'min': 0.0001, 'max': 1.0}``
    """
    if isinstance(dist, sp.Bernoulli):
        return {"distribution": "bernoulli", "p": dist.p}
    if isinstance(dist, sp.Choice):
        out: dict[str, Any] = {"values": list(dist.values)}
        if dist.weights is not None:
            out["weights"] = list(dist.weights)
        return out
    if isinstance(dist, sp.Constant):
        return {"value": dist.value}
    names = {
        sp.Uniform: "uniform", sp.LogUniform: "loguniform", sp.RandInt: "randint",
        sp.LogRandInt: "lograndint", sp.QUniform: "quniform", sp.QLogUniform: "qloguniform",
        sp.Normal: "normal", sp.LogNormal: "lognormal",
    }
    out = {"distribution": names[type(dist)]}
    for key, attr in (("min", "lo"), ("max", "hi"), ("q", "q"), ("mu", "mu"), ("sigma", "sigma")):
        if hasattr(dist, attr):
            out[key] = getattr(dist, attr)
    return out


# --------------------------------------------------------------------- stages


def _stages(
    doc: Mapping[str, Any], space: Space, seed: int, points: dict[str, int]
) -> list[Stage]:
    raw_stages = doc.get("stages")
    method = doc.get("method")
    if raw_stages is not None and method is not None:
        raise SpecError("method", method, "either W&B's method or stages, not both")
    if raw_stages is None:
        return [_wandb_stage(doc, space, seed, points)]
    if "run_cap" in doc:
        raise SpecError("run_cap", doc["run_cap"], "no run_cap beside stages (give each "
                        "stage its trials)")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise SpecError("stages", raw_stages, "a non-empty list of stages")
    return [_stage(i, raw, space, seed, points) for i, raw in enumerate(raw_stages)]


def _wandb_stage(doc: Mapping[str, Any], space: Space, seed: int, points: dict[str, int]) -> Stage:
    method = doc.get("method")
    if method is None:
        raise SpecError("stages", expected="a list of stages (or W&B's method: grid|random)")
    if method == "bayes":
        raise SpecError("method", method, "grid or random",
                        "Bayesian search is not built in; use stages with a `plan: refine` stage "
                        "after a random one for coarse-to-fine search")
    method = _choice_of("method", method, ("grid", "random"))
    run_cap = doc.get("run_cap")
    if run_cap is not None:
        run_cap = _int("run_cap", run_cap, minimum=1)
    if method == "random" and run_cap is None:
        warnings.warn(f"method: random without run_cap: running {DEFAULT_W_AND_B_TRIALS} trials "
                      "(W&B would run until stopped); set run_cap to choose", stacklevel=2)
        run_cap = DEFAULT_W_AND_B_TRIALS
    stage = Stage(index=0, plan=method, trials=run_cap, seed=_stage_seed(seed, 0),
                  truncate=method == "grid", axis_points=_merge_points(points, None, space))
    _check_plan(stage, space, "method")
    return stage


def _stage_seed(seed: int, index: int) -> int:
    return seed * 1000 + index


def _stage(index: int, raw: Any, space: Space, seed: int, param_points: dict[str, int]) -> Stage:
    where = f"stages[{index}]"
    if not isinstance(raw, dict):
        raise SpecError(where, raw, "a mapping such as {plan: random, trials: 32}")
    _check_keys(where, raw, STAGE_KEYS)
    if "plan" not in raw:
        raise SpecError(f"{where}.plan", expected="one of " + ", ".join(PLANS))
    plan = _choice_of(f"{where}.plan", raw["plan"], PLANS)
    if index == 0 and plan == "refine":
        raise SpecError(f"{where}.plan", plan, "grid, random, sobol or lhs for the first stage",
                        "a refine stage needs an earlier stage to refine")
    stage = Stage(index=index, plan=plan, seed=_stage_seed(seed, index))
    if "seed" in raw:
        stage.seed = _int(f"{where}.seed", raw["seed"], minimum=0)
    if "trials" in raw and raw["trials"] is not None:
        stage.trials = _int(f"{where}.trials", raw["trials"], minimum=1)
    sample_grid = plan == "refine" and raw.get("sample") == "grid"
    if stage.trials is None and plan not in ("grid",) and not sample_grid:
        raise SpecError(f"{where}.trials", expected=f"the number of trials of this {plan} stage")
    if "points" in raw:
        stage.points = _points(f"{where}.points", raw["points"], space)
    stage.axis_points = _merge_points(param_points, stage.points, space)
    if "values" in raw:
        stage.values = _grid_values(f"{where}.values", raw["values"], space)
        if plan != "grid":
            raise SpecError(f"{where}.values", expected="values only on a grid stage")
    if "fixed" in raw:
        stage.fixed = _fixed(f"{where}.fixed", raw["fixed"], space)
    refine_keys = ("top_k", "region", "margin", "min_width", "shrink", "categorical", "sample",
                   "from")
    if plan != "refine":
        for key in refine_keys:
            if key in raw:
                raise SpecError(f"{where}.{key}", raw[key], "no refine option on a "
                                f"{plan} stage (only on plan: refine)")
    else:
        if "top_k" in raw:
            stage.top_k = _int(f"{where}.top_k", raw["top_k"], minimum=1)
        stage.region = _choice_of(f"{where}.region", raw.get("region", DEFAULT_REGION), REGIONS)
        stage.margin = _number(f"{where}.margin", raw.get("margin", DEFAULT_MARGIN))
        if stage.margin < 0:
            raise SpecError(f"{where}.margin", raw.get("margin"), "a fraction >= 0")
        stage.min_width = _fraction(f"{where}.min_width", raw.get("min_width", DEFAULT_MIN_WIDTH),
                                    zero_ok=True)
        stage.shrink = _fraction(f"{where}.shrink", raw.get("shrink", DEFAULT_SHRINK),
                                 zero_ok=False)
        stage.categorical = _choice_of(f"{where}.categorical", raw.get("categorical", "keep"),
                                       ("keep", "narrow"))
        stage.sample = _choice_of(f"{where}.sample", raw.get("sample", "random"), SAMPLES)
        stage.source = _choice_of(f"{where}.from", raw.get("from", "previous"),
                                  ("previous", "all"))
        if stage.sample == "grid":
            _grid_of(stage.space(space), stage.axis_points, f"{where}.points")
    _check_plan(stage, space, where)
    return stage


def _points(path: str, raw: Any, space: Space) -> int | dict[str, int]:
    if isinstance(raw, dict):
        out = {}
        for name, n in raw.items():
            if name not in space:
                raise SpecError(f"{path}.{name}", expected="a parameter name",
                                hint=_close(name, space))
            out[name] = _int(f"{path}.{name}", n, minimum=1)
        return out
    return _int(path, raw, minimum=1)


def _merge_points(
    param_points: dict[str, int], stage_points: int | dict[str, int] | None, space: Space
) -> dict[str, int]:
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
            raise SpecError(f"{path}.{name}", expected="a parameter name", hint=_close(name, space))
        if not isinstance(values, list) or not values:
            raise SpecError(f"{path}.{name}", values, "a non-empty list of values")
        for i, v in enumerate(values):
            _check_value(f"{path}.{name}[{i}]", v)
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
                                hint=_close(str(name), space))
            _check_value(f"{path}.{name}", value)
            out[name] = value

    walk("", raw)
    return out


def _close(name: str, space: Space) -> str:
    close = difflib.get_close_matches(str(name), list(space), n=1)
    return f"did you mean {close[0]!r}?" if close else "parameters: " + ", ".join(space)


def _grid_of(space: Space, points: Any, where: str) -> int:
    from .plans import Grid

    try:
        return len(Grid(space, points=points))
    except ValueError as exc:
        raise SpecError(where, expected="points for every continuous axis of a grid",
                        hint=str(exc)) from None


def _check_plan(stage: Stage, space: Space, where: str) -> None:
    if stage.plan != "grid":
        return
    from .plans import Grid

    stage_space = stage.space(space)
    try:
        size = len(Grid(stage_space, points=stage.axis_points, values=stage.values))
    except ValueError as exc:
        raise SpecError(f"{where}.points" if where != "method" else "parameters",
                        expected="points for every continuous axis of a grid (stage-level "
                        "`points: n`, or per parameter)", hint=str(exc)) from None
    if stage.trials is not None and size > stage.trials:
        if stage.truncate:
            warnings.warn(f"run_cap {stage.trials} < grid of {size}: running the first "
                          f"{stage.trials} grid points", stacklevel=2)
            return
        raise SpecError(f"{where}.trials", stage.trials, f"at least the grid's {size} points",
                        "raise trials, lower points, or use a random stage")


def _resources(raw: Any) -> Resources:
    if raw is None:
        return Resources()
    if not isinstance(raw, dict):
        raise SpecError("resources", raw, "{num_cpus: .., num_gpus: .., memory: .., custom: {..}}")
    _check_keys("resources", raw, RESOURCE_KEYS)
    res = Resources()
    for key in ("num_cpus", "num_gpus"):
        if key in raw:
            value = _number(f"resources.{key}", raw[key])
            if value < 0:
                raise SpecError(f"resources.{key}", raw[key], "a number >= 0")
            if key == "num_gpus" and value > 1 and not float(value).is_integer():
                raise SpecError("resources.num_gpus", raw[key],
                                "a fraction <= 1 or a whole number of GPUs (Ray's rule)")
            setattr(res, key, float(value))
    if raw.get("memory") is not None:
        res.memory = _int("resources.memory", raw["memory"], minimum=0)
    custom = raw.get("custom", {})
    if not isinstance(custom, dict):
        raise SpecError("resources.custom", custom, "a mapping of resource name to amount")
    for name, amount in custom.items():
        value = _number(f"resources.custom.{name}", amount)
        if value < 0:
            raise SpecError(f"resources.custom.{name}", amount, "an amount >= 0")
        res.custom[str(name)] = float(value)
    if res.num_cpus == 0 and res.num_gpus == 0 and not res.custom:
        raise SpecError("resources", raw, "a trial that holds some resource (num_cpus > 0, "
                        "num_gpus > 0 or a custom resource)",
                        "with nothing held, Ray would start unbounded trials at once")
    return res
