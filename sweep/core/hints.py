""""Did you mean ...?": the one hint for a name that is not one of the known ones.

Example:
    >>> did_you_mean("lerning_rate", ["learning_rate", "momentum"])
    "did you mean 'learning_rate'?"
    >>> did_you_mean("zzz", ["a", "b"], fallback="allowed: ")
    'allowed: a, b'
    >>> did_you_mean("max_t", ["max_step", "eta"], aliases={"max_t": "max_step"})
    "did you mean 'max_step'?"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


def did_you_mean(name: object, known: Iterable[str], fallback: str | None = None,
                 aliases: Mapping[str, str] | None = None) -> str:
    """The closest known name as a hint, else ``fallback`` followed by every known name
    (an empty string when ``fallback`` is None).

    ``aliases`` maps names other tools use to ours: a known alias is suggested before
    any spelling match."""
    options = [str(k) for k in known]
    alias = (aliases or {}).get(str(name))
    if alias in options:
        return f"did you mean {alias!r}?"
    close = difflib.get_close_matches(str(name), options, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "" if fallback is None else fallback + ", ".join(options)


__all__ = ["did_you_mean"]
