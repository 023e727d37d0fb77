"""Adaptive refine: boxes that follow the best trials so far and shrink as the stage's
budget is spent (successive refinement, a trust region per anchor). Ray-free.

A ``region: each`` refine draws all its trials from boxes fixed at the stage's start,
around the coarse stage's top-k. An adaptive refine starts the same way, then keeps
learning: every proposal is drawn from a box around one of the current top-k trials
of the coarse stage(s) *and of its own stage*, as results arrive, so a box moves to a
better trial as soon as one is told; and the boxes narrow from ``shrink`` (the initial
width per axis, in unit space) towards ``min_width`` as the stage's results come in:
wide boxes explore around the coarse anchors, narrow ones polish the best trials.

* The box width, once the results of a fraction p of the budget are in, is
  ``shrink * (min_width / shrink) ** (p ** decay)`` (with ``min_width`` 0,
  ``shrink * (1 - p ** decay)``): proposals made while trials run, before anything new
  is known, keep the width they had. When a discrete box has no config left, it widens
  (up to the whole axis) before the plan falls back to any config not tried yet.
* The anchors share the proposals by rank: the i-th best anchor (0-based) gets a share
  proportional to 1 / (i + 1), the best one most; an anchor that drops out of the top-k
  gets no more trials.
* Where in its box a proposal goes (``sample``): ``'thompson'`` (the default) draws
  ``candidates`` random points of the box and keeps the best of one joint draw of a
  Gaussian-process posterior (``sweep.plans.surrogate``, the model bayes uses too,
  fitted to every told trial of the stages it refines and of its own, trials in flight
  counted as pending), the
  batch form of Thompson sampling that TuRBO uses inside its trust regions; draws
  differ, so proposals made while others run spread over the box. ``'model'`` keeps
  the point of highest expected improvement instead; ``'random'`` a uniform point
  (no model at all).
* Categorical axes keep the anchor's value (``categorical='keep'``) or take any value
  among the current anchors (``'narrow'``).
* A box is clipped to the cube; a log axis narrows in decades; integers stay integers.
  In a discrete space a config already proposed or told is never proposed again (the
  box widens when it is exhausted; the plan finishes when the space is).

``ask`` always answers while budget is left, so a cluster stays full. Budget and
resume as for every learning plan: records of its own stage that this run did not
propose (a resumed stage) count against the budget, matched by config. Proposals
depend only on the seed and what the plan was told (reproducible when sequential).

The defaults (``sweep.plans.refine_options``: ``shrink=0.3``, ``min_width=0.05``,
``decay=1``, Thompson sampling) were chosen with ``tests/bench/quality.py`` on its
tuning families only.

Example:
    >>> from sweep.core.metric import Metric
    >>> from sweep.plans.anchors import AnchorRule
    >>> from sweep.space import Space, Uniform
    >>> rule = AnchorRule(Metric("loss"), k=2, sources=[0], stage=1)
    >>> plan = AdaptiveRefine(Space({"x": Uniform(0, 1)}), trials=8, rule=rule, seed=0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.ranking import rank_records
from ..core.records import TrialRecord
from ..space.search_space import Distribution, Space, value_key
from .anchors import Anchor, AnchorRule, Box
from .base import Candidate, Config, ProposingPlan, make_rng, seed_tuple
from .fixed import Grid
from .refine_options import (
    ADAPTIVE_CANDIDATES,
    ADAPTIVE_DECAY,
    ADAPTIVE_MIN_WIDTH,
    ADAPTIVE_SAMPLES,
    ADAPTIVE_SHRINK,
    CATEGORICAL,
    DEFAULT_CATEGORICAL,
)
from .surrogate import Surrogate


class AdaptiveRefine(ProposingPlan):
    """Refine whose boxes follow the best trials so far and shrink as the budget goes.

    Parameters:
        space: the stage's space.
        trials: the stage's budget.
        rule: where the anchors come from: the top ``rule.k`` of the told trials of
            ``rule.sources`` and of this stage (``rule.stage``), by ``rule.metric``.
        shrink: the initial box width per axis (a fraction of the unit interval).
        min_width: the width the boxes reach when the budget is spent.
        decay: the shape of the schedule (1: geometric in the budget spent; > 1
            keeps the boxes wide longer).
        categorical: 'keep' (the anchor's value) or 'narrow' (the anchors' values).
        seed: an int or a tuple such as (sweep seed, stage).
        anchors: initial anchors, used while the told trials give fewer than ``rule.k``.
        sample: 'thompson' (default), 'model' (expected improvement) or 'random'.
        candidates: random points of the box scored per proposal ('thompson', 'model').

    Example: ``AdaptiveRefine(space, 32, rule=AnchorRule(Metric("loss"), 4, [0], 1))``
    """

    learns = True
    region = "adaptive"

    def __init__(
        self,
        space: Space,
        trials: int,
        *,
        rule: AnchorRule,
        shrink: float = ADAPTIVE_SHRINK,
        min_width: float = ADAPTIVE_MIN_WIDTH,
        decay: float = ADAPTIVE_DECAY,
        categorical: str = DEFAULT_CATEGORICAL,
        seed: int | Sequence[int] = 0,
        anchors: Sequence[Anchor] | None = None,
        sample: str = ADAPTIVE_SAMPLES[0],
        candidates: int = ADAPTIVE_CANDIDATES,
    ):
        _check_options(trials, shrink, min_width, decay, sample, categorical)
        super().__init__(space, int(trials))
        self.trials = int(trials)
        self.rule = rule
        self.shrink, self.min_width, self.decay = float(shrink), float(min_width), float(decay)
        self.categorical = categorical
        self.seed = seed_tuple(seed)
        self._given = list(anchors) if anchors is not None else None
        self._pool: dict[Any, TrialRecord] = {}  # ranked candidates for anchors, by key
        # The anchors' records and those told since (None: rank the whole pool again);
        # the top k of these is the top k of the pool while no told slot was replaced.
        self._short: list[TrialRecord] | None = None
        self._results: set[Any] = set()  # own-stage configs whose result is in
        self._counts: dict[str, int] = {}
        self._started = False
        self._anchors: list[Anchor] | None = None
        self.sample = sample
        self.n_candidates = max(1, int(candidates))
        self._model: Surrogate | None = None
        if sample != "random":
            self._model = Surrogate(space, rule.metric, stage=rule.stage,
                                    sources=rule.sources)
        self._numeric = list(space.numeric_dims)
        self._cats = list(space.categorical_dims)
        self._cat_keys = {name: {value_key(v) for v in space[name].support()}
                          for name in self._cats}
        # Configs with a positive prior (a zero-weight value is never proposed).
        self._cardinality = space.possible_combinations() if space.dims else 1
        if self._cardinality is not None:
            self.total = min(self.total or 0, self._cardinality)
        if self._given is not None:
            for s in self._given:
                self._seen.add(space.key(s.params))
        self._update_finished()

    # ---------------------------------------------------------------- telling

    def tell(self, records: Sequence[TrialRecord]) -> None:
        rule = self.rule
        if self._model is not None:  # the model takes the same stages, keys computed
            taken = self._model.observe(records)
        else:
            sources = set(rule.sources)
            taken = [(r, self.space.key(r.params)) for r in records
                     if r.stage == rule.stage or r.stage in sources]
        for r, key in taken:
            own = r.stage == rule.stage
            if own:
                self._results.add(key)
            self._told(key, own)
            slot = (r.stage, key)
            if slot in self._pool:  # a retry replaces an older row: rank them all again
                self._short = None
            if r.ok and r.finite(rule.metric.name) and self._fits(r.params):
                self._pool[slot] = r
                if self._short is not None:
                    self._short.append(r)
            else:
                self._pool.pop(slot, None)  # a retry that failed replaces an older row
        self._anchors = None
        self._update_finished()

    def _fits(self, params: Mapping[str, Any]) -> bool:
        """Whether a told config lies in this stage's space (categorical values, numbers
        on numeric axes)."""
        for name in self.space.dims:
            if name not in params:
                return False
        for name in self._cats:
            if value_key(params[name]) not in self._cat_keys[name]:
                return False
        for name in self._numeric:
            try:
                if not math.isfinite(float(self.space[name].to_unit(params[name]))):
                    return False
            except (TypeError, ValueError, OverflowError):
                return False
        return True

    def start(self) -> None:
        self._started = True
        _ = self.anchors
        self._update_finished()

    # ------------------------------------------------------------------ anchors

    @property
    def anchors(self) -> list[Anchor]:
        """The current anchors: the top-k told trials (earlier stages and this one)."""
        if self._anchors is None:
            self._anchors = self._choose_anchors()
        return self._anchors

    def _choose_anchors(self) -> list[Anchor]:
        told = self._pool.values() if self._short is None else self._short
        # The top k only, ranked once here: with many trials told, each tell then costs
        # O(k + told since), not a ranking of the whole history.
        self._short = rank_records(told, self.rule.metric, self.rule.k)
        anchors = self.rule.choose(self._short, self._given or ())
        note = self.rule.shortfall(anchors)
        if note and not self.notes and self._proposed == 0:
            self.notes.append(note)
        return anchors

    # ------------------------------------------------------------------ boxes

    @property
    def progress(self) -> float:
        """The share of the budget whose results are in: what the boxes have learnt
        from (trials still running teach nothing yet)."""
        return min(1.0, len(self._results) / self.total) if self.total else 1.0

    @property
    def width(self) -> float:
        """The current box width per axis (unit-interval fraction)."""
        p = self.progress
        if self.min_width <= 0:
            return self.shrink * (1.0 - p ** self.decay)
        return self.shrink * (self.min_width / self.shrink) ** (p ** self.decay)

    def _unit_box(self, anchor: Anchor, width: float) -> dict[str, tuple[float, float]]:
        out = {}
        for name in self._numeric:
            u = self.space[name].to_unit(anchor.params[name])
            out[name] = (max(0.0, u - width / 2), min(1.0, u + width / 2))
        return out

    def _values(self, anchor: Anchor, name: str) -> list[Any]:
        if self.categorical == "keep":
            return [anchor.params[name]]
        out, keys = [], set()
        for s in self.anchors:
            k = value_key(s.params[name])
            if k not in keys:
                keys.add(k)
                out.append(s.params[name])
        return out

    @property
    def boxes(self) -> list[Box]:
        """The current boxes, one per anchor (for logs and the report); ``trials`` is the
        anchor's share of the budget still to propose."""
        width = self.width
        share = self._shares()
        out = []
        for anchor, weight in zip(self.anchors, share):
            replaced: dict[str, Distribution] = {}
            bounds: dict[str, list[Any]] = {}
            categories: dict[str, list[Any]] = {}
            for name, (lo, hi) in self._unit_box(anchor, width).items():
                dist = self.space[name]
                replaced[name] = dist.narrow(lo, hi)
                bounds[name] = [dist.from_unit(lo), dist.from_unit(hi)]
            for name in self._cats:
                values = self._values(anchor, name)
                replaced[name] = self.space[name].subset(values)  # type: ignore[attr-defined]
                categories[name] = replaced[name].support()
            left = max(0, (self.total or 0) - self.used)
            out.append(Box(anchor.trial_id, self.space.replace(**replaced),
                           int(round(weight * left)), bounds, categories))
        return out

    def _shares(self) -> list[float]:
        w = np.array([1.0 / (i + 1) for i in range(len(self.anchors))])
        return list(w / w.sum())

    def describe(self) -> dict[str, Any]:
        optimisations = self._model.optimisations if self._model is not None else 0
        return {"region": self.region, "sample": self.sample, "width": round(self.width, 6),
                "optimisations": optimisations,
                "progress": round(self.progress, 6), "used": self.used, "budget": self.total,
                "anchors": [{"trial_id": s.trial_id, "params": s.params} for s in self.anchors],
                "boxes": [b.describe() for b in self.boxes]}

    # -------------------------------------------------------------- proposing

    def ask(self, n: int) -> list[Candidate]:
        if not self._started:
            self.start()
        return super().ask(n)

    def _pick_anchor(self) -> tuple[int, Anchor]:
        """The anchor whose share of proposals is furthest behind (ties to the best)."""
        anchors = self.anchors
        shares = self._shares()
        total = sum(self._counts.get(s.trial_id, 0) for s in anchors) + 1
        lag = [shares[i] * total - self._counts.get(s.trial_id, 0) for i, s in enumerate(anchors)]
        i = int(np.argmax(lag))
        return i, anchors[i]

    def _next(self) -> Candidate | None:
        rng = make_rng((*self.seed, 23, self._proposed))
        first, _ = self._pick_anchor()
        order = [first] + [i for i in range(len(self.anchors)) if i != first]
        width = self.width
        discrete = self._cardinality is not None
        for i in order:
            anchor = self.anchors[i]
            w = width
            for _ in range(8 if discrete else 1):
                params = self._draw(rng, anchor, w, tries=16 if discrete else 1)
                if params is not None:
                    self._counts[anchor.trial_id] = self._counts.get(anchor.trial_id, 0) + 1
                    return self._take(params, anchor.trial_id)
                w = min(2.0, 2 * w)  # 2: the whole axis, even around an anchor at its edge
            if not discrete:
                break
        if discrete:
            return self._any_unseen(rng)
        return None

    def _draw(self, rng: np.random.Generator, anchor: Anchor, width: float, tries: int
              ) -> Config | None:
        if self._model is not None and self._model.ready:
            return self._draw_model(rng, anchor, width)
        box = self._unit_box(anchor, width)
        values = {name: self._values(anchor, name) for name in self._cats}
        for _ in range(tries):
            unit = []
            for name in self.space.dims:
                dist = self.space[name]
                if name in box:
                    lo, hi = box[name]
                    unit.append(lo + (hi - lo) * float(rng.random()))
                else:
                    vals = values[name]
                    pick = vals[int(rng.integers(len(vals)))] if len(vals) > 1 else vals[0]
                    unit.append(dist.to_unit(pick))
            params = self.space.from_unit(unit)
            if self._cardinality is None or self.space.key(params) not in self._seen:
                return params
        return None

    def _draw_model(self, rng: np.random.Generator, anchor: Anchor, width: float
                    ) -> Config | None:
        """The best of ``candidates`` random points of the box by a posterior draw
        (``'thompson'``) or expected improvement (``'model'``) under the Gaussian process
        of ``sweep.plans.surrogate`` (trials in flight included)."""
        model = self._model
        assert model is not None
        enc = model.encoder
        values = {name: self._values(anchor, name) for name in self._cats}
        rows = enc.box_rows(rng, self.n_candidates, self._unit_box(anchor, width), values)
        if self.sample == "thompson":
            score = model.thompson(rows, rng)
        else:
            score = model.expected_improvement(rows)
        order = np.argsort(-score, kind="stable")
        for i in order[:64]:
            params = enc.decode(rows[i])
            if self._cardinality is None or self.space.key(params) not in self._seen:
                return params
        return None

    def _many(self, n: int) -> list[Candidate]:
        """n proposals made together (``ask_many``): the anchors share them by rank as
        one at a time would; each anchor's j proposals come from one set of random
        points of its box, the best point of each of j independent posterior draws
        (batch Thompson sampling, as TuRBO proposes a batch) or greedy expected
        improvement (``'model'``). None without a model (``ask`` then proposes)."""
        model = self._model
        if model is None or not model.ready:
            return []
        if not self._started:
            self.start()
        model.fit(spread=True)  # no whole hyperparameter optimisation in a hurry
        anchors, shares = self.anchors, self._shares()
        counts = [self._counts.get(a.trial_id, 0) for a in anchors]
        wanted = [0] * len(anchors)
        for _ in range(n):  # the share rule of _pick_anchor, n times
            total = sum(counts) + 1
            i = int(np.argmax([shares[k] * total - counts[k] for k in range(len(anchors))]))
            counts[i] += 1
            wanted[i] += 1
        rng = make_rng((*self.seed, 29, self._proposed))
        width, enc = self.width, model.encoder
        out: list[Candidate] = []
        for anchor, j in zip(anchors, wanted):
            if not j:
                continue
            values = {name: self._values(anchor, name) for name in self._cats}
            m = min(max(self.n_candidates, 8 * j), 512)
            rows = enc.box_rows(rng, m, self._unit_box(anchor, width), values)
            for params in self._pick_rows(rows, j, rng):
                self._counts[anchor.trial_id] = self._counts.get(anchor.trial_id, 0) + 1
                out.append(self._take(params, anchor.trial_id))
        return out

    def _pick_rows(self, rows: np.ndarray, j: int, rng: np.random.Generator
                   ) -> list[Config]:
        """Up to j configs of ``rows``: the best of each of j posterior draws, or j
        greedy picks of expected improvement; never one proposed or (in a discrete
        space) seen before."""
        model = self._model
        assert model is not None
        enc, picked, keys = model.encoder, [], set()
        taken = np.zeros(len(rows), dtype=bool)  # rows picked or refused

        def first(order: np.ndarray) -> int | None:
            """The first row of ``order`` not taken whose config is new."""
            for i in order[~taken[order]][:64]:
                taken[i] = True
                params = enc.decode(rows[i])
                key = self.space.key(params)
                if key in keys or (self._cardinality is not None and key in self._seen):
                    continue
                keys.add(key)
                picked.append(params)
                return int(i)
            return None

        if self.sample == "thompson":
            draws = model.thompson_many(rows, rng, j)
            for c in range(j):
                first(np.argsort(-draws[:, c], kind="stable"))
            return picked
        batch = model.batch(rows)
        best = float(np.min(model.conditioned()[1]))
        for _ in range(j):
            i = first(np.argsort(-batch.log_ei(best), kind="stable"))
            if i is None:
                break
            batch.pick(i)
        return picked

    def _any_unseen(self, rng: np.random.Generator) -> Candidate | None:
        """A config not seen yet anywhere in a discrete space (boxes exhausted), drawn
        from the priors (so a zero-weight value never comes up), else the first such
        config of the grid."""
        assert self._cardinality is not None
        for _ in range(256):
            params = self.space.from_unit(rng.random(len(self.space.dims)).tolist())
            if self.space.key(params) not in self._seen:
                return self._take(params, self.anchors[0].trial_id)
        if self._cardinality > 100_000:
            return None
        try:
            grid = Grid(self.space)
        except ValueError:  # an axis too long to enumerate
            return None
        probs = self.space.combination_probabilities()
        if len(probs) != len(grid):  # not the plain product of the priors' supports
            probs = np.ones(len(grid))
        for params, p in zip(grid, probs):
            if p > 0 and self.space.key(params) not in self._seen:
                return self._take(params, self.anchors[0].trial_id)
        return None

    def _take(self, params: Config, parent: str) -> Candidate:
        """Propose ``params`` (drawn around anchor ``parent``); the model, if any, counts
        it as in flight."""
        self._proposing(self.space.key(params))
        if self._model is not None:
            self._model.pend(params)
        return Candidate(params, parent)


def _check_options(trials: int | None, shrink: float, min_width: float, decay: float,
                   sample: str, categorical: str) -> None:
    """ValueError for an option out of its range."""
    if sample not in ADAPTIVE_SAMPLES:
        raise ValueError(f"unknown sample {sample!r}: expected one of "
                         f"{', '.join(ADAPTIVE_SAMPLES)}")
    if categorical not in CATEGORICAL:
        raise ValueError(f"unknown categorical {categorical!r}: expected keep or narrow")
    if not 0 < shrink <= 1:
        raise ValueError("shrink must be in (0, 1]")
    if not 0 <= min_width <= shrink:
        raise ValueError("min_width must be in [0, shrink]")
    if decay <= 0:
        raise ValueError("decay must be > 0")
    if trials is None or trials < 0:
        raise ValueError("an adaptive refine needs a budget (trials >= 0)")


__all__ = ["AdaptiveRefine"]
