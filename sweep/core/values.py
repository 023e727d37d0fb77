"""Checks of user-given values, shared by distributions, sweep files and CLI flags.

Each raises ``SpecError`` naming the path of the field, the value and what was
expected; numeric strings such as ``'1e-5'`` (YAML 1.1 reads them as strings) are
accepted wherever a number is.

Example:
    >>> number("parameters.lr.min", "1e-5")
    1e-05
    >>> integer("stages[0].trials", 2.5)
    Traceback (most recent call last):
    ...
    sweep.core.errors.SpecError: stages[0].trials: got 2.5, expected an integer
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import SpecError
from .hints import did_you_mean


def number(path: str, x: Any) -> float | int:
    """A finite number (int or float); numeric strings are parsed."""
    if isinstance(x, str):
        try:
            x = float(x.strip())
        except ValueError:
            raise SpecError(path, x, "a number") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        if hasattr(x, "item") and not isinstance(x, (list, tuple, dict)):  # numpy scalars
            try:
                return number(path, x.item())
            except (TypeError, ValueError):
                pass
        raise SpecError(path, x, "a number")
    try:
        finite = math.isfinite(x)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise SpecError(path, x, "a finite number")
    return x


def integer(path: str, x: Any, minimum: int | None = None) -> int:
    """A whole number (2.0 is 2), optionally at least ``minimum``."""
    n = number(path, x)
    if not float(n).is_integer():
        raise SpecError(path, x, "an integer")
    if abs(n) > 2**62:
        raise SpecError(path, x, "an integer within +-2**62")
    n = int(n)
    if minimum is not None and n < minimum:
        raise SpecError(path, x, f"an integer >= {minimum}")
    return n


def positive(path: str, x: Any) -> float:
    """A finite number > 0."""
    f = number(path, x)
    if f <= 0:
        raise SpecError(path, x, "a number > 0")
    return float(f)


def fraction(path: str, x: Any, *, zero_ok: bool) -> float:
    """A number in [0, 1] (or (0, 1] when zero is not allowed)."""
    f = number(path, x)
    if f > 1 or f < 0 or (f == 0 and not zero_ok):
        raise SpecError(path, x, "a fraction in [0, 1]" if zero_ok else "a fraction in (0, 1]")
    return float(f)


def one_of(path: str, x: Any, options: Sequence[str]) -> str:
    """One of ``options`` (a did-you-mean hint for near misses)."""
    if not isinstance(x, str) or x not in options:
        raise SpecError(path, x, "one of " + ", ".join(options), did_you_mean(x, options))
    return x


def known_keys(path: str, mapping: Mapping[Any, Any], allowed: Sequence[str]) -> None:
    """Refuse keys outside ``allowed``, with a did-you-mean hint."""
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(where, expected="a known key",
                            hint=did_you_mean(key, allowed, fallback="allowed: "))


def json_value(path: str, value: Any) -> None:
    """A value JSON can write: scalars, lists and mappings of them, finite numbers."""
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise SpecError(path, value, "a JSON-like value (string, number, bool, null, "
                        "list or mapping)") from None
    text(path, encoded)


# The integers a results table's integer column (int64) holds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parameter_value(path: str, value: Any) -> None:
    """A value a parameter may take (a choice, a constant, a stage's fixed or grid value):
    JSON-like, and an integer within int64, which the results table stores it as.

    Example: ``parameter_value("parameters.seed.value", 2**64)`` raises a SpecError.
    """
    json_value(path, value)
    if isinstance(value, int) and not isinstance(value, bool) and not (
            INT64_MIN <= value <= INT64_MAX):
        raise SpecError(path, value, "an integer within int64 (+-2**63)",
                        "the results table stores integer parameters as int64")


def text(path: str, value: str) -> str:
    """A string that can be written as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SpecError(path, value, "text that can be written as UTF-8",
                        f"{exc.reason} at position {exc.start}") from None
    return value


__all__ = ["INT64_MAX", "INT64_MIN", "fraction", "integer", "json_value", "known_keys", "number",
           "one_of", "parameter_value", "positive", "text"]
