"""Bayes: a model-based plan over the unit cube (a Gaussian process and expected
improvement) that proposes trials while others run. Ray-free; numpy and scipy only.

How it works
------------
Every parameter is a coordinate of the unit cube (``sweep.space.search_space``), so the model
needs no knowledge of priors: a log axis is already uniform in log space, a normal
prior is uniform through its CDF, integers sit at the centres of their unit cells,
and a categorical axis (choice, bernoulli) is one-hot coded (candidates are drawn
from its prior weights, so a zero-weight value is never proposed). The first
``n_initial`` trials are a scrambled Sobol design (the priors, evenly covered); after
that each proposal maximises expected improvement under the Gaussian process of
``sweep.plans.surrogate`` (its kernel, fitting, targets and pending points are
described there):

* trials in flight: each pending point joins the model with the posterior mean as
  its value (``liar='mean'``; ``'worst'`` and ``'best'`` are constant liars), so n
  proposals asked at once, or asked while others run, spread out, and ``ask`` always
  answers: the cluster stays full;
* candidates: half drawn from the priors, half near the best trials so far (a few
  axes moved at steps of 0.2, 0.05 and 0.01), then a finer round around the best
  candidates; while the model still shares one length scale, only near the best
  trials (a weak model explores badly in many dimensions). In a discrete space of at
  most ``ENUMERATE_LIMIT`` configs every config not tried yet is a candidate.

As a fine stage (``stage`` > 0) the trials of earlier stages (``sources``) are
observations too, on the same scale (``history='joint'``): the refine stages make
the same bet when they take the coarse stage's top-k. ``history='stage'``
standardises each stage on its own (for a coarse stage on another scale) and
``'none'`` ignores them. With at least ``n_initial`` of them there is no initial
design: the model is used from the first proposal.

Budget and resume: ``total`` is the stage's budget. Records of the plan's own stage
that it did not propose in this run (a resumed stage: the driver tells them before
``start``) count against it, matched by config; in a discrete space the plan never
proposes a config it proposed or was told before, and finishes early when none is
left. Proposals depend only on the seed and on what the plan was told, so a
sequential run is reproducible.

The defaults were chosen with ``tests/bench/quality.py`` on its tuning families only.

Example:
    >>> from sweep.space import Space, Uniform, LogUniform
    >>> space = Space({"x": Uniform(-2.0, 2.0), "lr": LogUniform(1e-4, 1.0)})
    >>> plan = Bayes(space, trials=12, seed=0, metric="loss")
    >>> first = plan.ask(4)
    >>> len(first), plan.describe()["phase"]
    (4, 'initial design')
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.metric import Metric
from ..core.records import TrialRecord
from ..space.search_space import Space
from .base import (
    Candidate,
    ProposingPlan,
    StageSettings,
    as_metric,
    make_rng,
    needs_metric,
    register,
    seed_tuple,
)
from .fixed import Grid
from .surrogate import SCIPY_MODULES, Surrogate

LIARS = ("mean", "worst", "best")

# Discrete spaces up to this many configs are searched exhaustively (every config not
# yet tried is a candidate); larger or continuous ones through sampled candidates.
ENUMERATE_LIMIT = 4096


def default_initial(dims: int) -> int:
    """Trials of the initial design for a space of ``dims`` dimensions.

    Example: ``default_initial(8) == 8``
    """
    return int(min(max(dims, 5), 10))


# -------------------------------------------------------------------------- plan


@register
class Bayes(ProposingPlan):
    """Gaussian-process Bayesian optimisation (expected improvement) over the unit
    cube, with trials in flight taken into account.

    Parameters:
        space: the stage's space (any prior; constants are carried along).
        trials: the stage's budget (None: no limit, W&B's bayes without run_cap).
        seed: an int or a tuple (such as (sweep seed, stage)).
        metric: the metric the plan optimises: a ``Metric``, or a name with ``goal``
            ('minimize', the default, or 'maximize').
        stage: the stage this plan runs (records of this stage are its own).
        sources: earlier stages whose records are observations too (None: every
            earlier stage).
        n_initial: trials of the Sobol initial design (default ``default_initial(d)``,
            d = number of dimensions); none when earlier stages give the model at
            least this many observations.
        liar: the value of a trial in flight: 'mean' (the posterior mean, default),
            'worst' or 'best' (of the observed targets).
        candidates: points scored per proposal when the space is not enumerated.
        transform: targets: 'q75' (capped at the 75th percentile, default),
            'median', 'standard' (no cap) or 'copula' (normal scores of the ranks).
        local: the share of candidates drawn near the best trials (the rest from the
            priors) once the model has one length scale per axis.
        ard_after: observations from which each axis gets its own length scale
            (default 2 x dimensions); ``early_local``: only local candidates before.
        history: 'joint' (default), 'stage' or 'none': how earlier stages' records
            are used (see the module's text).

    The model (``model``, a ``sweep.plans.surrogate.Surrogate``) is the plan's; the
    plan chooses the candidates it scores.

    Example: ``Bayes(space, trials=64, seed=(0, 1), metric="loss", stage=1)``
    """

    name = "bayes"
    imports = SCIPY_MODULES  # the model's, and scipy.stats.qmc's Sobol design

    def __init__(
        self,
        space: Space,
        trials: int | None,
        seed: int | Sequence[int] = 0,
        *,
        metric: Metric | str,
        goal: str | None = None,
        stage: int = 0,
        sources: Sequence[int] | None = None,
        n_initial: int | None = None,
        liar: str = "mean",
        candidates: int = 1024,
        transform: str = "q75",
        local: float = 0.5,
        ard_after: int | None = None,
        history: str = "joint",
        early_local: bool = True,
    ):
        self.metric = as_metric(metric, goal)
        if liar not in LIARS:
            raise ValueError(f"unknown liar {liar!r}: expected one of {', '.join(LIARS)}")
        if trials is not None and trials < 0:
            raise ValueError("trials must be >= 0")
        super().__init__(space, trials)
        self.stage = int(stage)
        self.model = Surrogate(space, self.metric, stage=stage, sources=sources,
                               history=history, transform=transform, ard_after=ard_after)
        self.seed = seed_tuple(seed)
        self.enc = self.model.encoder
        d = len(space.dims)
        self.n_initial = default_initial(d) if n_initial is None else max(0, int(n_initial))
        self.liar = liar
        self.local = min(max(float(local), 0.0), 1.0)
        self.early_local = bool(early_local)
        self.n_candidates = max(64, int(candidates))
        self._all: np.ndarray | None = None  # enumerated features of a small discrete space
        self._all_keys: list[Any] | None = None
        self._sobol: Any = None
        # Configs with a positive prior (a zero-weight value is never proposed).
        self._cardinality = space.possible_combinations()
        if not space.dims:
            self._cardinality = 1
        if self.total is not None and self._cardinality is not None:
            self.total = min(self.total, self._cardinality)
        self._update_finished()

    @classmethod
    def from_stage(cls, stage: StageSettings, space: Space, metric: Metric | None) -> Bayes:
        """A bayes stage: its budget and initial design; every earlier stage's trials
        are observations too."""
        return cls(space, stage.trials or 0, stage.seed,
                   metric=needs_metric(metric, stage, "bayes"), n_initial=stage.initial,
                   stage=stage.index, sources=list(range(stage.index)))

    # ---------------------------------------------------------------- telling

    def tell(self, records: Sequence[TrialRecord]) -> None:
        for r, key in self.model.observe(records):
            self._told(key, r.stage == self.stage)
        self._update_finished()

    def start(self) -> None:
        self._update_finished()

    # --------------------------------------------------------------- proposing

    def _next(self) -> Candidate | None:
        index = self._proposed
        rng = make_rng((*self.seed, 17, index))
        row: np.ndarray | None = None
        if self._use_model():
            row = self._propose_model(rng)
        if row is None:
            row = self._propose_initial(rng)
        if row is None:
            return None
        params = self.enc.decode(row)
        self.model.pend(params)
        self._proposing(self.space.key(params))
        return Candidate(params, None)

    def _use_model(self) -> bool:
        if not self.model.ready:
            return False
        if self.model.n_earlier >= self.n_initial:
            return True
        return self.used >= self.n_initial

    # initial design: scrambled Sobol points (continuing the sequence when trials
    # are asked before any result is back)
    def _propose_initial(self, rng: np.random.Generator) -> np.ndarray | None:
        if self._small_discrete():
            return self._pick_unseen(self._random_unseen(rng))
        from scipy.stats import qmc

        d = len(self.space.dims)
        if d == 0:
            params = self.space.from_unit([])
            key = self.space.key(params)
            return None if key in self._seen else self.enc.encode(params)
        if self._sobol is None:
            self._sobol = qmc.Sobol(d, scramble=True, seed=make_rng((*self.seed, 11)))
        for _ in range(64):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                unit = self._sobol.random(1)[0]
            params = self.space.from_unit(unit.tolist())
            key = self.space.key(params)
            if key not in self._seen:
                return self.enc.encode(params)
        # A crowded discrete space: any config not seen yet, drawn from the priors.
        return self._pick_unseen(self.enc.sample(rng, 4 * self.n_candidates))

    def _pick_unseen(self, rows: np.ndarray, order: np.ndarray | None = None
                     ) -> np.ndarray | None:
        if order is None:
            order = np.arange(len(rows))
        for i in order:
            params = self.enc.decode(rows[i])
            if self.space.key(params) not in self._seen:
                return rows[i]
        return None

    def _small_discrete(self) -> bool:
        return self._cardinality is not None and self._cardinality <= ENUMERATE_LIMIT

    def _enumerate(self) -> tuple[np.ndarray, list[Any]]:
        if self._all is None:
            rows, keys = [], []
            for params in Grid(self.space):
                row = self.enc.encode(params)
                if row is not None:
                    rows.append(row)
                    keys.append(self.space.key(params))
            self._all = np.asarray(rows).reshape(len(rows), self.enc.width)
            self._all_keys = keys
        assert self._all_keys is not None
        return self._all, self._all_keys

    def _unseen_rows(self) -> np.ndarray:
        rows, keys = self._enumerate()
        keep = [i for i, k in enumerate(keys) if k not in self._seen]
        return rows[keep]

    def _random_unseen(self, rng: np.random.Generator) -> np.ndarray:
        rows = self._unseen_rows()
        if len(rows) == 0:
            return rows
        # Weighted by the priors: a zero-weight category is never proposed.
        weights = self.enc.prior_weights(rows)
        if weights.sum() <= 0:
            return rows[:0]
        keep = weights > 0
        rows, weights = rows[keep], weights[keep]
        return rows[rng.choice(len(rows), size=len(rows), replace=False,
                               p=weights / weights.sum())]

    # model-based proposals
    def _propose_model(self, rng: np.random.Generator) -> np.ndarray | None:
        model = self.model
        model.fit()
        if self.liar != "mean" and model.n_pending:
            with model.lying(self.liar):
                return self._propose_model(rng)
        X, mean_obs = model.conditioned()
        best = float(np.min(mean_obs))
        order_obs = np.argsort(mean_obs, kind="stable")
        if self._small_discrete():
            C = self._unseen_rows()
            if len(C) == 0:
                return None
            C = C[self.enc.possible(C)]
            if len(C) == 0:
                return None
            score = model.log_ei(C, best)
            return C[int(np.argmax(score))]
        C = self._first_round(rng, X, order_obs)
        score = model.log_ei(C, best)
        # A second, finer round around the best few candidates.
        C2 = self._second_round(rng, C[np.argsort(-score, kind="stable")[:4]])
        score2 = model.log_ei(C2, best)
        C = np.vstack([C, C2])
        score = np.concatenate([score, score2])
        return self._pick_unseen(C, np.argsort(-score, kind="stable")[:256])

    def _first_round(self, rng: np.random.Generator, X: np.ndarray, order_obs: np.ndarray
                     ) -> np.ndarray:
        """Candidates from the priors and near the best observations."""
        m = self.n_candidates
        top = X[order_obs[: min(5, len(order_obs))]]
        local = self.local
        if self.early_local and self.model.one_length_scale:
            local = 1.0
        parts = [self.enc.sample(rng, max(1, int(m * (1 - local))))] if local < 1 else []
        for scale, share in ((0.2, 0.4), (0.05, 0.4), (0.01, 0.2)):
            parts.append(self.enc.perturb(rng, top, max(1, int(m * local * share)), scale))
        return np.vstack(parts)

    def _second_round(self, rng: np.random.Generator, lead: np.ndarray) -> np.ndarray:
        """Finer candidates around the best few of the first round."""
        m = self.n_candidates
        return np.vstack([self.enc.perturb(rng, lead, m // 8, 0.03),
                          self.enc.perturb(rng, lead, m // 8, 0.005)])

    def _many(self, n: int) -> list[Candidate]:
        """n proposals from one fit and one set of candidates (``ask_many``): greedy
        expected improvement, each pick joining the pending points before the next
        (``Surrogate.batch``). Not in the initial design, with a constant liar or in
        an enumerated space (one at a time there)."""
        model = self.model
        if self.liar != "mean" or self._small_discrete() or not self._use_model():
            return []
        rng = make_rng((*self.seed, 19, self._proposed))
        model.fit(spread=True)
        X, mean_obs = model.conditioned()
        best = float(np.min(mean_obs))
        C = self._first_round(rng, X, np.argsort(mean_obs, kind="stable"))
        batch = model.batch(C)
        lead = C[np.argsort(-batch.log_ei(best), kind="stable")[:4]]
        batch.add(self._second_round(rng, lead))
        out: list[Candidate] = []
        gone = np.zeros(len(batch.rows), dtype=bool)  # picked, or seen already
        while len(out) < n:
            score = np.where(gone, -np.inf, batch.log_ei(best))
            pick = None
            for i in np.argsort(-score, kind="stable")[:256]:
                if gone[i]:
                    break
                params = self.enc.decode(batch.rows[i])
                if self.space.key(params) not in self._seen:
                    pick = int(i)
                    break
                gone[i] = True
            if pick is None:
                break
            gone[pick] = True
            model.pend(params)
            self._proposing(self.space.key(params))
            out.append(Candidate(params, None))
            batch.pick(pick)
        return out

    # ---------------------------------------------------------------- describe

    def describe(self) -> dict[str, Any]:
        held = self.model.summary()
        out: dict[str, Any] = {
            "plan": "bayes",
            "phase": "model" if self._use_model() else "initial design",
            "observations": held["observations"],
            "own": held["own"],
            "history": held["history"],
            "failed": held["failed"],
            "pending": held["pending"],
            "proposed": self._proposed,
            "budget": self.total,
            "used": self.used,
            "n_initial": self.n_initial,
            "optimisations": held["optimisations"],
            "incumbent": held["incumbent"],
        }
        if "lengthscales" in held:
            out["lengthscales"] = held["lengthscales"]
        return out


__all__ = ["ENUMERATE_LIMIT", "LIARS", "Bayes", "default_initial"]
