"""``early_terminate:`` of a sweep file: the one place that turns the mapping into a
stopping rule, for the sweep file's checks, the driver and ``sweep validate`` alike.

The mapping itself stays in ``Spec.early_terminate`` (it is part of the stored spec);
each stage gets a fresh rule from it.

Example:
    >>> from sweep.core.metric import Metric
    >>> stopping_rule({"type": "asha", "max_step": 27}, Metric("loss")).brackets
    [[1, 3, 9]]
    >>> stopping_rule(None, Metric("loss")) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import SpecError
from ..core.metric import Metric
from ..stopping import StoppingRule, parse_rule


def stopping_rule(raw: Mapping[str, Any] | None, metric: Metric | None,
                  path: str = "early_terminate") -> StoppingRule | None:
    """A fresh rule of an ``early_terminate:`` mapping (None: no early stopping).

    Raises SpecError naming the field and what was expected; a rule needs the metric it
    judges."""
    if raw is None:
        return None
    if metric is None:
        raise SpecError("metric", expected="{name: <metric>, goal: minimize|maximize}",
                        hint="early_terminate ranks trials by it")
    return parse_rule(raw, metric, path)


__all__ = ["stopping_rule"]
