"""Anchors: the best told trials a refine stage narrows the space around, chosen by one rule
for both refines (``sweep.plans.refine`` and ``sweep.plans.adaptive_refine``), and the
boxes drawn around them.

The anchors are the top k of the told trials, ranked by the one rule of
``sweep.core.ranking`` (status ok, a finite metric, ties by trial id). A stage with no
such trial has nothing to refine: ``AnchorRule.choose`` says so with a ``SweepError``
that points at the error column.

Example:
    >>> from sweep.core.metric import Metric
    >>> from sweep.core.records import TrialRecord
    >>> rule = AnchorRule(Metric("loss"), k=1, sources=[0], stage=1)
    >>> told = [TrialRecord(trial_id="a", params={"x": 1}, metrics={"loss": 0.2}),
    ...         TrialRecord(trial_id="b", params={"x": 2}, metrics={"loss": 0.1})]
    >>> rule.choose(told)
    [Anchor(trial_id='b', params={'x': 2})]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..core.errors import SweepError
from ..core.metric import Metric
from ..core.ranking import rank_records
from ..core.records import TrialRecord
from ..space.search_space import Space
from .base import Config


class Anchor(NamedTuple):
    """A trial that a refine stage narrows the space around (best first)."""

    trial_id: str
    params: Config


@dataclass
class Box:
    """One region of a refine stage: a narrowed space and its share of the budget."""

    anchor: str
    space: Space
    trials: int
    bounds: dict[str, list[Any]] = field(default_factory=dict)
    categories: dict[str, list[Any]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly form (for logs, the report and stored stage metadata)."""
        return {"anchor": self.anchor, "trials": self.trials, "bounds": self.bounds,
                "categories": self.categories}


@dataclass
class AnchorRule:
    """Where a refine stage (number ``stage``) takes its anchors: the top ``k`` of the
    told trials of ``sources`` (stage numbers), ranked by ``metric``."""

    metric: Metric
    k: int
    sources: Sequence[int]
    stage: int

    def where(self) -> str:
        if len(self.sources) == 1:
            return f"stage {self.sources[0]}"
        return f"stages {self.sources[0]}-{self.sources[-1]}"

    def choose(self, told: Iterable[TrialRecord], given: Sequence[Anchor] = ()
               ) -> list[Anchor]:
        """The top ``k`` of ``told``, best first, topped up with ``given`` anchors not
        among them; a ``SweepError`` when there is none at all.

        Example: ``rule.choose(records)``
        """
        ranked = rank_records(told, self.metric, self.k)
        anchors = [Anchor(r.trial_id, dict(r.params)) for r in ranked]
        if given and len(anchors) < self.k:
            have = {s.trial_id for s in anchors}
            anchors += [s for s in given if s.trial_id not in have][: self.k - len(anchors)]
        if not anchors:
            raise SweepError(
                f"stage {self.stage} (refine) has nothing to refine: no trial of "
                f"{self.where()} finished ok with a finite {self.metric.name!r}; see the "
                f"error column of {self.where()} (sweep status / sweep top)")
        return anchors

    def shortfall(self, anchors: Sequence[Anchor]) -> str | None:
        """A note for the user when fewer than ``k`` anchors were found, else None."""
        if len(anchors) >= self.k:
            return None
        return (f"stage {self.stage}: only {len(anchors)} trials of {self.where()} "
                f"succeeded; refining around those (top_k={self.k})")


__all__ = ["Anchor", "AnchorRule", "Box"]
