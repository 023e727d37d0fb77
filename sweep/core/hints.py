""""Did you mean ...?": the one hint for a name that is not one of the known ones.

Example:
    >>> did_you_mean("lerning_rate", ["learning_rate", "momentum"])
    "did you mean 'learning_rate'?"
    >>> did_you_mean("zzz", ["a", "b"], fallback="allowed: ")
    'allowed: a, b'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: object, known: Iterable[str], fallback: str | None = None) -> str:
    """The closest known name as a hint, else ``fallback`` followed by every known name
    (an empty string when ``fallback`` is None)."""
    options = [str(k) for k in known]
    close = difflib.get_close_matches(str(name), options, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "" if fallback is None else fallback + ", ".join(options)


__all__ = ["did_you_mean"]
