"""What an objective returned, checked: (status, metrics, error). Never raises.

A number is the metric; a mapping must hold the metric as a number (nested
mappings are flattened with dots); its other numeric entries are kept as extra
metrics, up to ``MAX_EXTRA_METRICS``. Bools count as numbers (1.0 / 0.0), bare or
inside a mapping. NaN and inf are stored as they are (they rank last).

Example:
    >>> check_result({"loss": 0.5, "acc": 0.9}, "loss")
    ('ok', {'loss': 0.5, 'acc': 0.9}, None)
    >>> check_result(10**400, "loss")[0]
    'failed'
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

ERROR_LIMIT = 4000
MAX_EXTRA_METRICS = 200
# Deeper result mappings are not searched for metrics (and never recursed into).
MAX_DEPTH = 20


def truncate(text: str, limit: int = ERROR_LIMIT) -> str:
    """The last ``limit`` characters of ``text`` (a traceback's end is its useful part)."""
    if len(text) <= limit:
        return text
    return f"...[{len(text) - limit} characters cut]...\n" + text[-limit:]


def short(value: Any, limit: int = 200) -> str:
    """A short repr that never raises."""
    try:
        text = repr(value)
    except BaseException:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def as_number(value: Any) -> float | None:
    """A real number as float (bools, numpy scalars and one-element arrays or tensors
    included, through ``.item()``), else None; None too for ints too large for a float."""
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except (OverflowError, ValueError, TypeError):
            return None
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes, Mapping)):
        try:
            inner = item()  # raises for arrays of more than one element
        except BaseException:
            return None
        if isinstance(inner, numbers.Real):
            return as_number(inner)
    return None


def flatten(mapping: Mapping[Any, Any], prefix: str = "", depth: int = 0
            ) -> list[tuple[str, Any]]:
    """(dotted name, value) of every leaf of a nested mapping, to ``MAX_DEPTH`` levels."""
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth < MAX_DEPTH:
            out.extend(flatten(value, name + ".", depth + 1))
        else:
            out.append((name, value))
    return out


def numeric_metrics(mapping: Mapping[Any, Any], metric: str | None = None,
                    limit: int = MAX_EXTRA_METRICS) -> tuple[dict[str, float], int]:
    """(metrics, dropped): the numeric leaves of ``mapping``, ``metric`` first, at most
    ``limit`` extra ones; ``dropped`` counts the extras left out."""
    metrics: dict[str, float] = {}
    leaves = flatten(mapping)
    if metric is not None:
        for name, value in leaves:
            if name == metric:
                number = as_number(value)
                if number is not None:
                    metrics[name] = number
    dropped = 0
    for name, value in leaves:
        if name == metric:
            continue
        number = as_number(value)
        if number is None:
            continue
        if len(metrics) - (metric in metrics) < limit:
            metrics[name] = number
        else:
            dropped += 1
    return metrics, dropped


def with_warnings(error: str | None, notes: list[str]) -> str | None:
    """``error`` with a ``warning:`` line per note after it (the ``error`` column of an
    ``ok`` trial holds only such lines).

    Example: ``with_warnings(None, ["3 values dropped"]) == "warning: 3 values dropped"``
    """
    if not notes:
        return error
    lines = "\n".join(f"warning: {note}" for note in notes)
    return lines if not error else f"{error}\n{lines}"


# A checked result: (status, metrics, error).
Checked = tuple[str, dict[str, float], str | None]


def check_result(result: Any, metric: str | None) -> Checked:
    """(status, metrics, error) from what an objective returned; never raises.

    ``metric`` None means the sweep ranks nothing: every numeric value is kept and a
    bare number is stored as ``value``. An ``ok`` result whose extra metrics were cut
    carries a ``warning:`` line in ``error``.
    """
    try:
        return _check(result, metric)
    except BaseException as exc:  # a hostile __eq__, __iter__ or __repr__
        return "failed", {}, truncate(f"could not read the objective's result: "
                                      f"{type(exc).__name__}: {short(exc)}")


def _check(result: Any, metric: str | None) -> tuple[str, dict[str, float], str | None]:
    name = metric or "value"
    kind = type(result)
    if kind is float:  # the common case, checked first: it is the hot path
        return "ok", {name: result}, None
    if isinstance(result, Mapping):
        metrics, dropped = numeric_metrics(result, metric)
        warning = with_warnings(None, [f"{dropped} more numeric entries were dropped (at most "
                                       f"{MAX_EXTRA_METRICS} extra metrics are kept)"]
                                ) if dropped else None
        if metric is None:
            return "ok", metrics, warning
        if metric not in metrics:
            leaves = dict(flatten(result))
            if metric not in leaves:
                keys = ", ".join(sorted(str(k) for k in result)[:20]) or "none"
                return "failed", metrics, f"objective result has no metric {metric!r} " \
                                          f"(keys: {keys})"
            value = leaves[metric]
            return "failed", {}, (f"metric {metric!r} is {short(value)} "
                                  f"({type(value).__name__}); expected a number")
        return "ok", metrics, warning
    number = as_number(result)
    if number is not None:
        return "ok", {name: number}, None
    if isinstance(result, numbers.Real):
        return "failed", {}, (f"objective returned {short(result, 60)} ({type(result).__name__}),"
                              f" a number too large for a 64-bit float")
    return "failed", {}, (
        f"objective returned {short(result)} ({type(result).__name__}); expected a number "
        f"or a dict holding {metric!r}" if metric else
        f"objective returned {short(result)} ({type(result).__name__}); expected a number "
        f"or a dict of numbers")


__all__ = [
    "ERROR_LIMIT",
    "MAX_EXTRA_METRICS",
    "Checked",
    "as_number",
    "check_result",
    "flatten",
    "numeric_metrics",
    "short",
    "truncate",
    "with_warnings",
]
