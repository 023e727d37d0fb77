"""Rebuilding a rule's state from stored reports: a rule is a deterministic function of
the reports it has seen, so a driver rerun after a crash decides exactly as before.

Example:
    >>> from sweep.core.metric import Metric
    >>> from sweep.stopping import parse_rule
    >>> rule = parse_rule({"type": "hyperband", "min_iter": 1, "eta": 2}, Metric("loss"))
    >>> replay(rule, [("a", 1, 0.5), ("b", 1, 0.4), ("c", 1, 0.9)])
    {'c'}
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import StoppingRule


def replay(rule: StoppingRule, reports: Iterable[tuple[str, int, float]]) -> set[str]:
    """Feed stored reports (in the order they arrived) into a fresh rule; the ids it stops.

    A rule is a deterministic function of its reports, so this gives the decisions the
    live rule made (a driver rerun after a crash rebuilds its rule this way).
    """
    if not rule.fresh:
        raise ValueError("replay needs a fresh rule (this one has already seen reports)")
    stopped: set[str] = set()
    for trial_id, step, value in reports:
        if rule.should_stop(trial_id, step, value):
            stopped.add(trial_id)
    return stopped


__all__ = ["replay"]
