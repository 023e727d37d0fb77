"""Refine: fixed boxes around the best trials of earlier stages, sampled densely.

A refine plan is told the finished trials of the stages it refines (the driver
tells it the stored ones before its first ask); its anchors are their top-k
(``sweep.plans.anchors``). Boxes live in the unit cube, so a log axis narrows in
decades and an integer axis stays integer. Once the boxes are drawn (``start``) its
proposals are a fixed stream: on resume it proposes the stored trials again and the
driver skips them. The boxes that follow new results are ``sweep.plans.adaptive_refine``
(``region: adaptive``, the default of a sweep file's refine stage). No Ray, no store.

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
from typing import Any

from ..core.errors import SweepError
from ..core.metric import Metric
from ..core.records import TrialRecord
from ..space.search_space import Distribution, Space
from .adaptive_refine import AdaptiveRefine
from .anchors import Anchor, AnchorRule, Box
from .base import (
    Candidate,
    Config,
    ProposingPlan,
    StageSettings,
    needs_metric,
    register,
    seed_tuple,
)
from .fixed import Grid, distinct_sample
from .refine_options import (
    DEFAULT_CATEGORICAL,
    DEFAULT_MARGIN,
    DEFAULT_MIN_WIDTH,
    DEFAULT_SHRINK,
    FIXED_REGIONS,
    SAMPLES,
)
from .surrogate import SCIPY_MODULES


@register
class Refine(ProposingPlan):
    """Boxes around the best trials of earlier stages, sampled densely.

    ``region='hull'``: one box, the bounding box of the anchors in unit space,
    widened by ``margin`` (a fraction of its width per side) and never narrower
    than ``min_width``; categorical axes keep the values seen among the anchors.
    ``region='each'``: one box per anchor, ``shrink`` wide per axis, the budget split
    evenly (remainder to the best); categorical axes keep the anchor's value
    (``categorical='keep'``) or the values among the anchors (``'narrow'``).

    Anchors are given (``anchors``) or taken from what the plan is told (``rule``).
    A sweep file's refine stage (``from_stage``) is this plan for ``region: each`` or
    ``hull`` and an ``AdaptiveRefine`` for ``region: adaptive``.
    """

    name = "refine"
    imports = SCIPY_MODULES  # the adaptive refine's model; the boxes' Sobol points
    refines = True

    def __init__(
        self,
        space: Space,
        anchors: Sequence[Anchor] | None = None,
        *,
        trials: int | None,
        region: str = "each",
        shrink: float = DEFAULT_SHRINK,
        margin: float = DEFAULT_MARGIN,
        min_width: float = DEFAULT_MIN_WIDTH,
        categorical: str = DEFAULT_CATEGORICAL,
        sample: str = SAMPLES[0],
        points: int | Mapping[str, int] | None = None,
        seed: int | Sequence[int] = 0,
        rule: AnchorRule | None = None,
    ):
        if region not in FIXED_REGIONS:
            raise ValueError(f"unknown region {region!r}: expected hull or each")
        if anchors is None and rule is None:
            raise ValueError("a refine plan needs anchors or a rule to choose them")
        super().__init__(space, trials)
        self.trials = trials
        self.region, self.shrink, self.margin = region, shrink, margin
        self.min_width, self.categorical = min_width, categorical
        self.sample, self.points, self.seed = sample, points, seed
        self.rule = rule
        self._history: list[TrialRecord] = []  # told trials of the sources, until start
        self._anchors = list(anchors) if anchors is not None else None
        self._kept: list[Anchor] | None = None  # anchors of this stage's first start
        self._boxes: list[Box] | None = None
        self._it: Iterator[Candidate] | None = None

    @classmethod
    def from_stage(cls, stage: StageSettings, space: Space, metric: Metric | None
                   ) -> ProposingPlan:
        """A sweep file's refine stage: fixed boxes (``each``, ``hull``) or, for
        ``region: adaptive``, an ``AdaptiveRefine``."""
        rule = AnchorRule(needs_metric(metric, stage, "refine"), stage.refine_top_k,
                          stage.sources, stage.index)
        if stage.region == "adaptive":
            return AdaptiveRefine(space, stage.trials or 0, rule=rule, shrink=stage.shrink,
                                  min_width=stage.min_width, categorical=stage.categorical,
                                  sample=stage.sample, seed=stage.seed)
        return cls(space, trials=stage.trials, region=stage.region, shrink=stage.shrink,
                   margin=stage.margin, min_width=stage.min_width,
                   categorical=stage.categorical, sample=stage.sample,
                   points=stage.axis_points, seed=stage.seed, rule=rule)

    @classmethod
    def extension_problem(cls, stage: StageSettings, space: Space) -> str | None:
        """Fixed boxes keep their anchors (``restore``) and each box's stream extends,
        except random draws in an all-discrete space (drawn together, without
        replacement); an adaptive refine counts what is stored."""
        if stage.region == "adaptive" or stage.sample != "random" or not space.is_discrete:
            return None
        return ("its boxes over an all-discrete space draw their share of the budget "
                "together, without replacement, so a larger one would not start with the "
                "trials stored")

    def restore(self, decided: Mapping[str, Any]) -> None:
        """Keep the anchors this stage chose when it first started (stored in its stage
        file): its boxes stay those its stored trials were drawn from, even when the
        stages it refines have more trials since."""
        if self._anchors is not None or decided.get("region") != self.region:
            return
        kept = [Anchor(a["trial_id"], dict(a["params"])) for a in decided.get("anchors", [])
                if isinstance(a, dict) and isinstance(a.get("trial_id"), str)
                and isinstance(a.get("params"), dict)]
        if kept:
            self._kept = kept

    # ----------------------------------------------------------- learning

    def tell(self, records: Sequence[TrialRecord]) -> None:
        if self._boxes is None and self.rule is not None:
            sources = set(self.rule.sources)
            name = self.rule.metric.name
            self._history.extend(r for r in records if r.stage in sources and r.ok
                                 and r.finite(name))

    @property
    def anchors(self) -> list[Anchor]:
        if self._anchors is None and self._kept is not None:
            self._anchors = self._kept_anchors()
        if self._anchors is None:
            assert self.rule is not None
            self._anchors = self.rule.choose(self._history)
            self._history = []
            note = self.rule.shortfall(self._anchors)
            if note:
                self.notes.append(note)
        return self._anchors

    def _kept_anchors(self) -> list[Anchor]:
        """The restored anchors, with a note when the history now ranks others first."""
        assert self._kept is not None and self.rule is not None
        try:
            now = [a.trial_id for a in self.rule.choose(self._history)]
        except SweepError:
            now = []
        self._history = []
        kept = [a.trial_id for a in self._kept]
        if now and now != kept:
            self.notes.append(
                f"stage {self.rule.stage}: keeps the anchors it started with "
                f"({', '.join(kept)}); {self.rule.where()} now ranks "
                f"{', '.join(now)} first (its boxes stay those its stored trials came "
                f"from: add a refine stage to refine around the new best)")
        return list(self._kept)

    @property
    def boxes(self) -> list[Box]:
        if self._boxes is None:
            self._boxes = self._build_boxes()
            self.total = sum(b.trials for b in self._boxes)
            self._update_finished()
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

    def _next(self) -> Candidate | None:
        if self._it is None:
            self._it = self._stream()
        candidate = next(self._it, None)
        if candidate is not None:
            self._proposing(self.space.key(candidate.params))
        return candidate

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


__all__ = ["Anchor", "AnchorRule", "Box", "Refine"]
