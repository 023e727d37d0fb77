"""Refine: boxes around the best trials of earlier stages, sampled densely.

A refine plan is told the finished trials of the stages it refines (the driver
tells it the stored ones before its first ask); its anchors are their top-k, ranked
by the one rule of ``sweep.core.ranking``. Boxes live in the unit cube, so a log axis
narrows in decades and an integer axis stays integer. No Ray, no store.

Example:
    >>> from sweep.space import Space, LogUniform
    >>> space = Space({"lr": LogUniform(1e-4, 1.0)})
    >>> plan = Refine(space, [Anchor("t1", {"lr": 0.01})], trials=4, region="each",
    ...               shrink=0.25, seed=0)
    >>> plan.boxes[0].bounds["lr"]
    [0.00316227766017, 0.0316227766017]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..core.errors import SweepError
from ..core.ranking import rank_records
from ..core.records import TrialRecord
from ..space.search_space import Distribution, Space
from .base import Candidate, Config, seed_tuple
from .fixed import FixedPlan, Grid, distinct_sample

REGIONS = ("each", "hull")


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
    """Where a refine stage takes its anchors: the top ``k`` of the told trials of
    ``sources`` (stage numbers), ranked by ``metric`` and ``goal``."""

    metric: str
    goal: str
    k: int
    sources: Sequence[int]
    stage: int

    def where(self) -> str:
        if len(self.sources) == 1:
            return f"stage {self.sources[0]}"
        return f"stages {self.sources[0]}-{self.sources[-1]}"


class Refine(FixedPlan):
    """Boxes around the best trials of earlier stages, sampled densely.

    ``region='hull'``: one box, the bounding box of the anchors in unit space,
    widened by ``margin`` (a fraction of its width per side) and never narrower
    than ``min_width``; categorical axes keep the values seen among the anchors.
    ``region='each'``: one box per anchor, ``shrink`` wide per axis, the budget split
    evenly (remainder to the best); categorical axes keep the anchor's value
    (``categorical='keep'``) or the values among the anchors (``'narrow'``).

    Anchors are given (``anchors``) or taken from what the plan is told (``rule``).
    """

    learns = True

    def __init__(
        self,
        space: Space,
        anchors: Sequence[Anchor] | None = None,
        *,
        trials: int | None,
        region: str = "each",
        shrink: float = 0.25,
        margin: float = 0.1,
        min_width: float = 0.1,
        categorical: str = "keep",
        sample: str = "random",
        points: int | Mapping[str, int] | None = None,
        seed: int | Sequence[int] = 0,
        rule: AnchorRule | None = None,
    ):
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}: expected hull or each")
        if anchors is None and rule is None:
            raise ValueError("a refine plan needs anchors or a rule to choose them")
        super().__init__(space, trials)
        self.trials = trials
        self.region, self.shrink, self.margin = region, shrink, margin
        self.min_width, self.categorical = min_width, categorical
        self.sample, self.points, self.seed = sample, points, seed
        self.rule = rule
        self.notes: list[str] = []
        self._told: list[TrialRecord] = []
        self._anchors = list(anchors) if anchors is not None else None
        self._boxes: list[Box] | None = None

    # ----------------------------------------------------------- learning

    def tell(self, records: Sequence[TrialRecord]) -> None:
        if self._boxes is None and self.rule is not None:
            sources = set(self.rule.sources)
            self._told.extend(r for r in records if r.stage in sources and r.ok
                              and r.finite(self.rule.metric))

    @property
    def anchors(self) -> list[Anchor]:
        if self._anchors is None:
            self._anchors = self._anchors_from_told()
        return self._anchors

    def _anchors_from_told(self) -> list[Anchor]:
        rule = self.rule
        assert rule is not None
        ranked = rank_records(self._told, rule.metric, rule.goal)
        self._told = []
        if not ranked:
            raise SweepError(
                f"stage {rule.stage} (refine) has nothing to refine: no trial of "
                f"{rule.where()} finished ok with a finite {rule.metric!r}; see the error "
                f"column of {rule.where()} (sweep status / sweep top)")
        if len(ranked) < rule.k:
            self.notes.append(f"stage {rule.stage}: only {len(ranked)} trials of "
                              f"{rule.where()} succeeded; refining around those "
                              f"(top_k={rule.k})")
        return [Anchor(r.trial_id, dict(r.params)) for r in ranked[: rule.k]]

    @property
    def boxes(self) -> list[Box]:
        if self._boxes is None:
            self._boxes = self._build_boxes()
            self.total = sum(b.trials for b in self._boxes)
        return self._boxes

    def start(self) -> None:
        _ = self.boxes

    def describe(self) -> dict[str, Any]:
        return {"region": self.region,
                "anchors": [{"trial_id": s.trial_id, "params": s.params} for s in self.anchors],
                "boxes": [b.describe() for b in self.boxes]}

    def __len__(self) -> int:
        _ = self.boxes
        return super().__len__()

    # ------------------------------------------------------------- boxes

    def _build_boxes(self) -> list[Box]:
        if not self.anchors:
            raise ValueError("a refine stage needs at least one anchor trial")
        self._anchor_units = {s.trial_id: self._unit(s.params) for s in self.anchors}
        n = self.trials if self.trials is not None else 0
        boxes = self._hull_boxes(n) if self.region == "hull" else self._each_boxes(n)
        if self.trials is None or self.sample == "grid":
            for box in boxes:
                size = len(Grid(box.space, points=self.points))
                box.trials = size if self.trials is None else min(box.trials, size)
        return boxes

    def _unit(self, params: Config) -> dict[str, float]:
        return {n: self.space[n].to_unit(params[n]) for n in self.space.numeric_dims
                if n in params}

    def _narrowed(self, name: str, lo: float, hi: float) -> tuple[Distribution, list[Any]]:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
        parent = self.space[name]
        return parent.narrow(lo, hi), [parent.from_unit(lo), parent.from_unit(hi)]

    def _restricted(self, name: str, values: list[Any]) -> Distribution:
        dist = self.space[name]
        return dist.subset(values)  # type: ignore[attr-defined]

    def _seen_values(self, name: str) -> list[Any]:
        return [s.params[name] for s in self.anchors if name in s.params]

    def _hull_boxes(self, trials: int) -> list[Box]:
        replaced: dict[str, Distribution] = {}
        bounds: dict[str, list[Any]] = {}
        categories: dict[str, list[Any]] = {}
        for name in self.space.numeric_dims:
            us = [u[name] for u in self._anchor_units.values() if name in u]
            lo, hi = min(us), max(us)
            pad = self.margin * (hi - lo)
            lo, hi = lo - pad, hi + pad
            if hi - lo < self.min_width:
                mid = (lo + hi) / 2
                lo, hi = mid - self.min_width / 2, mid + self.min_width / 2
            replaced[name], bounds[name] = self._narrowed(name, lo, hi)
        for name in self.space.categorical_dims:
            replaced[name] = self._restricted(name, self._seen_values(name))
            categories[name] = replaced[name].support()
        return [Box(self.anchors[0].trial_id, self.space.replace(**replaced), trials, bounds,
                    categories)]

    def _each_boxes(self, trials: int) -> list[Box]:
        share, extra = divmod(trials, len(self.anchors))
        boxes = []
        for i, s in enumerate(self.anchors):
            replaced: dict[str, Distribution] = {}
            bounds: dict[str, list[Any]] = {}
            categories: dict[str, list[Any]] = {}
            units = self._anchor_units[s.trial_id]
            for name in self.space.numeric_dims:
                u = units[name]
                replaced[name], bounds[name] = self._narrowed(
                    name, u - self.shrink / 2, u + self.shrink / 2)
            for name in self.space.categorical_dims:
                keep = self.categorical == "keep"
                values = [s.params[name]] if keep else self._seen_values(name)
                replaced[name] = self._restricted(name, values)
                categories[name] = replaced[name].support()
            n = share + (extra if i == 0 else 0)
            boxes.append(Box(s.trial_id, self.space.replace(**replaced), n, bounds, categories))
        return boxes

    def _parent_of(self, box: Box, params: Config) -> str:
        if self.region == "each":
            return box.anchor
        point = self._unit(params)
        cats = self.space.categorical_dims

        def distance(anchor: Anchor) -> float:
            su = self._anchor_units[anchor.trial_id]
            d = sum((point[n] - su[n]) ** 2 for n in point if n in su)
            return d + sum(params.get(n) != anchor.params.get(n) for n in cats)

        return min(self.anchors, key=distance).trial_id

    # ------------------------------------------------------------ proposing

    def _stream(self) -> Iterator[Candidate]:
        for index, box in enumerate(self.boxes):
            if box.trials <= 0:
                continue
            if self.sample == "grid":
                inner: Iterator[Config] = itertools.islice(
                    iter(Grid(box.space, points=self.points)), box.trials)
            else:
                entropy = (*seed_tuple(self.seed), index)
                inner = distinct_sample(box.space, self.sample, box.trials, entropy)
            for params in inner:
                yield Candidate(params, self._parent_of(box, params))


__all__ = ["REGIONS", "Anchor", "AnchorRule", "Box", "Refine"]
