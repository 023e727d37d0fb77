"""The ``parameters:`` of a sweep file (W&B's syntax and sweep's short names) as
distributions, through the registry of ``sweep.space.search_space``.

Nested ``parameters:`` are flattened with dots (``optimizer.lr``) and reach the
objective as nested dicts, as in W&B. ``min``/``max`` without a ``distribution``
give ``int_uniform`` when both are integers and ``uniform`` otherwise (W&B's rule).

Example:
    >>> params, paths, points = parse_parameters({"lr": {"min": 1e-4, "max": 0.1},
    ...                                           "opt": {"parameters": {"m": {"value": 0.9}}}})
    >>> params["lr"], paths["opt.m"]
    (uniform(0.0001, 0.1), ('opt', 'm'))
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.errors import SpecError
from ..core.hints import did_you_mean
from ..core.values import integer, number
from ..space.distributions import REGISTRY, UNSUPPORTED, Distribution

PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
PARAM_KEYS = (
    "distribution", "value", "values", "probabilities", "weights", "min", "max", "q", "mu",
    "sigma", "p", "parameters", "points",
)


def parse_parameters(raw: Any, where: str = "parameters"
                     ) -> tuple[dict[str, Distribution], dict[str, tuple[str, ...]],
                                dict[str, int]]:
    """(distributions by flat name, each name's nesting path, per-parameter grid points)."""
    if not isinstance(raw, dict) or not raw:
        raise SpecError(where, raw, "a mapping of parameter names to definitions")
    params: dict[str, Distribution] = {}
    paths: dict[str, tuple[str, ...]] = {}
    points: dict[str, int] = {}
    _collect(where, (), raw, params, paths, points)
    return params, paths, points


def _collect(where: str, prefix: tuple[str, ...], raw: Mapping[str, Any],
             params: dict[str, Distribution], paths: dict[str, tuple[str, ...]],
             points: dict[str, int]) -> None:
    for key, definition in raw.items():
        path = f"{where}.{key}"
        if not isinstance(key, str) or not PARAM_RE.match(key):
            raise SpecError(path, key, "a parameter name of letters, digits, '_', '.' and '-' "
                            "(starting with a letter or '_')")
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
            points[flat] = integer(f"{path}.points", definition["points"], minimum=1)


def _implied(path: str, raw: Mapping[str, Any]) -> str:
    """The distribution a definition without ``distribution:`` stands for."""
    if "value" in raw:
        return "constant"
    if "values" in raw:
        return "choice"
    if "min" in raw and "max" in raw:
        lo, hi = (number(f"{path}.{k}", raw[k]) for k in ("min", "max"))
        both_int = all(isinstance(raw[k], int) and not isinstance(raw[k], bool)
                       for k in ("min", "max"))
        return "randint" if both_int and isinstance(lo, int) and isinstance(hi, int) else (
            "uniform")
    raise SpecError(path, raw, "one of value, values, min/max, or a distribution")


def parse_parameter(path: str, raw: Any) -> Distribution:
    """One parameter definition (W&B or short names) as a ``Distribution``.

    Example: ``parse_parameter("parameters.lr", {"min": 1e-4, "max": 1e-1})`` is a uniform.
    """
    if isinstance(raw, Distribution):
        return raw
    if not isinstance(raw, dict):
        raise SpecError(path, raw, "a mapping such as {values: [...]} or {min: .., max: ..}")
    for key in raw:
        if key not in PARAM_KEYS:
            raise SpecError(f"{path}.{key}", expected="a known key",
                            hint=did_you_mean(key, PARAM_KEYS, fallback="allowed: "))
    if "parameters" in raw:
        raise SpecError(f"{path}.parameters", expected="nested parameters alone, without "
                        "other keys beside them")
    name = raw.get("distribution")
    if name is None:
        name = _implied(path, raw)
    if not isinstance(name, str):
        raise SpecError(f"{path}.distribution", name, "a distribution name")
    if name in UNSUPPORTED:
        raise SpecError(f"{path}.distribution", name, "a supported distribution",
                        f"{UNSUPPORTED[name]} is not supported; use normal/log_normal or q_uniform")
    if name not in REGISTRY:
        raise SpecError(f"{path}.distribution", name, "a known distribution",
                        did_you_mean(name, sorted(REGISTRY), fallback="known: "))
    if "points" in raw:
        integer(f"{path}.points", raw["points"], minimum=1)
    body = {k: v for k, v in raw.items() if k != "points"}
    return REGISTRY[name](body, path)


__all__ = ["PARAM_KEYS", "parse_parameter", "parse_parameters"]
