"""Reading a rule's settings from its ``early_terminate:`` mapping: whole numbers, ``eta``,
known keys (with hints for the names other tools use) and pairs of synonyms.

Each raises ``SpecError`` naming the field, the value and what was expected.

Example:
    >>> setting_int("early_terminate.min_iter", "3", 1)
    3
    >>> try:
    ...     check_keys("early_terminate", {"max_t": 9}, "asha", ("type", "max_step"))
    ... except SpecError as exc:
    ...     print(exc)
    early_terminate.max_t: expected a key of type: asha (did you mean 'max_step'?)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import SpecError
from ..core.hints import did_you_mean
from ..core.values import number
from .base import STEP_CAP

MAX_S = 100  # more bands/brackets than anyone can reach; bounds W&B's band loop
# Names other tools use for the same settings: hints for a key we do not know.
ALIASES = {
    "max_t": "max_step", "reduction_factor": "eta", "rf": "eta", "min_t": "min_step",
    "min_samples_required": "min_samples", "n_warmup_steps": "grace_period",
    "n_startup_trials": "min_samples", "n_min_trials": "min_samples",
}


def setting_int(path: str, x: Any, minimum: int, maximum: int | None = None) -> int:
    """A whole number in [minimum, maximum] (2.0 and '2' are 2)."""
    expected = (f"an integer in [{minimum}, {maximum}]" if maximum is not None
                else f"an integer >= {minimum}")
    try:
        n = number(path, x)
    except SpecError:
        raise SpecError(path, x, expected) from None
    if not float(n).is_integer() or abs(n) > STEP_CAP:
        raise SpecError(path, x, expected)
    n = int(n)
    if n < minimum or (maximum is not None and n > maximum):
        raise SpecError(path, x, expected)
    return n


def setting_eta(path: str, raw: Mapping[str, Any]) -> float:
    """``eta`` (default 3): a number > 1, kept an int when whole."""
    if "eta" not in raw:
        return 3
    try:
        eta = number(f"{path}.eta", raw["eta"])
    except SpecError:
        raise SpecError(f"{path}.eta", raw["eta"], "a number > 1") from None
    if eta <= 1:
        raise SpecError(f"{path}.eta", raw["eta"], "a number > 1")
    return int(eta) if float(eta).is_integer() else float(eta)


def check_keys(path: str, raw: Mapping[str, Any], kind: str, allowed: tuple[str, ...]) -> None:
    """Refuse a key the rule does not read; the hint names our name for another tool's."""
    for key in raw:
        if key in allowed:
            continue
        hint = did_you_mean(key, allowed, fallback="allowed: ", aliases=ALIASES)
        raise SpecError(f"{path}.{key}", expected=f"a key of type: {kind}", hint=hint)


def synonym(path: str, raw: Mapping[str, Any], names: tuple[str, str]) -> str | None:
    """Which of two names for one setting is given (None: neither; both: refused)."""
    present = [n for n in names if n in raw]
    if len(present) == 2:
        raise SpecError(f"{path}.{names[1]}", raw[names[1]],
                        f"no {names[1]} next to {names[0]} (the same setting)")
    return present[0] if present else None


__all__ = ["ALIASES", "MAX_S", "check_keys", "setting_eta", "setting_int", "synonym"]
