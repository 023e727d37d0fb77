"""The stopping rules by name (``type:`` of ``early_terminate:``), as the distributions
have their ``REGISTRY``; ``parse_rule`` reads a mapping into a fresh rule.

Example:
    >>> from sweep.core.metric import Metric
    >>> rule = parse_rule({"type": "median", "min_samples": 2}, Metric("loss"))
    >>> type(rule).__name__, rule.min_samples, REGISTRY["median"] is type(rule)
    ('MedianRule', 2, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import SpecError
from ..core.hints import did_you_mean
from ..core.metric import Metric
from .asha import AshaRule
from .base import StoppingRule
from .hyperband import HyperbandRule
from .median import MedianRule

# In the order error messages list them.
REGISTRY: dict[str, type[StoppingRule]] = {
    rule.kind: rule for rule in (HyperbandRule, AshaRule, MedianRule)
}


def parse_rule(raw: Mapping[str, Any] | None, metric: Metric,
               path: str = "early_terminate") -> StoppingRule | None:
    """The rule of a sweep file's ``early_terminate:`` mapping (None: no early stopping),
    judging values of ``metric``.

    Raises SpecError naming the field, the value and what was expected, e.g.
    ``early_terminate.eta: got 1, expected a number > 1``.
    """
    if raw is None:
        return None
    kinds = "one of " + ", ".join(REGISTRY)
    if not isinstance(raw, Mapping):
        raise SpecError(path, raw, "a mapping with type: " + ", ".join(REGISTRY))
    kind = raw.get("type")
    if kind is None:
        raise SpecError(f"{path}.type", expected=kinds)
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise SpecError(f"{path}.type", kind, kinds, did_you_mean(str(kind).lower(), REGISTRY))
    return REGISTRY[kind].from_dict(raw, metric, path)


__all__ = ["REGISTRY", "parse_rule"]
