"""Bayes: a model-based plan over the unit cube (a Gaussian process and expected
improvement) that proposes trials while others run. Ray-free; numpy and scipy only.

How it works
------------
Every parameter is a coordinate of the unit cube (``sweep.space.search_space``), so the model
needs no knowledge of priors: a log axis is already uniform in log space, a normal
prior is uniform through its CDF, integers sit at the centres of their unit cells,
and a categorical axis (choice, bernoulli) is one-hot coded with one length scale for
the whole axis (candidates are drawn from its prior weights, so a zero-weight value
is never proposed). The first ``n_initial`` trials are a scrambled Sobol design (the
priors, evenly covered); after that each proposal maximises expected improvement
under a Gaussian process:

* kernel: Matern-5/2, a signal and a noise variance, fitted by maximum a posteriori
  (L-BFGS-B, analytic gradients, warm starts) under a length-scale prior that widens
  with the number of dimensions (Hvarfner et al., 2024, "Vanilla Bayesian
  optimization performs great in high dimensions"). While there are fewer than
  ``2 x dims`` observations one length scale is shared by every axis (a per-axis fit
  on so few points picks irrelevant axes by chance); from then on each axis has its
  own, started from the shared one. Refitted at every result early on, then each
  time the data has grown by a tenth;
* targets: the values (minimised), with failed, timed-out and NaN trials counted as
  the worst value seen, are capped at their 75th percentile and standardised, so
  divergent runs and cliffs cannot dominate the scale while good trials stand out;
* trials in flight: each pending point joins the model with the posterior mean as
  its value (the "kriging believer" form of a constant liar), which keeps the mean
  and removes the variance near it, so n proposals asked at once, or asked while
  others run, spread out, and ``ask`` always answers: the cluster stays full;
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

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.records import TrialRecord
from ..space.search_space import Space, value_key
from .base import Candidate, Config, ProposingPlan, make_rng, seed_tuple
from .fixed import Grid

GOALS = ("minimize", "maximize")
LIARS = ("mean", "worst", "best")
HISTORY = ("joint", "stage", "none")
TRANSFORMS = ("q75", "median", "standard", "copula")

# Discrete spaces up to this many configs are searched exhaustively (every config not
# yet tried is a candidate); larger or continuous ones through sampled candidates.
ENUMERATE_LIMIT = 4096
# Discrete numeric axes up to this many values are snapped to their cells while the
# acquisition is maximised (so the model scores the config that will run).
_SNAP_LIMIT = 512
_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)


def default_initial(dims: int) -> int:
    """Trials of the initial design for a space of ``dims`` dimensions.

    Example: ``default_initial(8) == 8``
    """
    return int(min(max(dims, 5), 10))


# --------------------------------------------------------------------- encoding


class _Encoder:
    """Configs <-> model features: one column per ordered axis (its unit coordinate,
    integers at their cell centres) and one-hot columns per categorical axis (scaled
    so two different categories are at distance 1)."""

    def __init__(self, space: Space):
        self.space = space
        self.dims = list(space.dims)
        self.numeric = [n for n in self.dims if not space[n].categorical]
        self.categorical = [n for n in self.dims if space[n].categorical]
        self.groups: list[np.ndarray] = []
        self.names: list[str] = []
        col = 0
        for name in self.numeric:
            self.groups.append(np.array([col]))
            self.names.append(name)
            col += 1
        self.values: dict[str, list[Any]] = {}
        self.probs: dict[str, np.ndarray] = {}
        self.centres: dict[str, list[float]] = {}
        self.offsets: dict[str, int] = {}
        for name in self.categorical:
            dist = space[name]
            support = dist.support()
            probs = np.asarray(dist.probabilities(), dtype=float)
            self.values[name] = support
            self.probs[name] = probs / probs.sum()
            self.centres[name] = [dist.to_unit(v) for v in support]
            self.offsets[name] = col
            self.groups.append(np.arange(col, col + len(support)))
            self.names.append(name)
            col += len(support)
        self.width = col
        self.keys = {name: {value_key(v): i for i, v in enumerate(self.values[name])}
                     for name in self.categorical}
        # Column index of each numeric axis and its snapping table (edges, centres).
        self.snaps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j, name in enumerate(self.numeric):
            table = _snap_table(space[name])
            if table is not None:
                self.snaps[j] = table

    # configs -> features
    def encode(self, params: Mapping[str, Any]) -> np.ndarray | None:
        """Features of a config, or None when it does not fit this space (a value
        outside a categorical axis, a missing parameter)."""
        row = np.zeros(self.width)
        try:
            for j, name in enumerate(self.numeric):
                row[j] = float(self.space[name].to_unit(params[name]))
            for name in self.categorical:
                index = self.keys[name].get(value_key(params[name]))
                if index is None:
                    return None
                row[self.offsets[name] + index] = _ONE_HOT
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        if not np.all(np.isfinite(row)):
            return None
        return row

    # features -> configs
    def decode(self, row: np.ndarray) -> Config:
        """The config of a feature row (numeric columns are unit coordinates)."""
        unit = []
        numeric = iter(row[: len(self.numeric)])
        for name in self.dims:
            if self.space[name].categorical:
                cols = row[self.offsets[name]: self.offsets[name] + len(self.values[name])]
                unit.append(self.centres[name][int(np.argmax(cols))])
            else:
                unit.append(float(next(numeric)))
        return self.space.from_unit(unit)

    def snap(self, feats: np.ndarray) -> np.ndarray:
        """Discrete numeric columns moved to the centre of the cell they fall in."""
        for j, (edges, centres) in self.snaps.items():
            feats[:, j] = centres[np.searchsorted(edges, feats[:, j], side="right")]
        return feats

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """m feature rows drawn from the priors."""
        out = np.zeros((m, self.width))
        out[:, : len(self.numeric)] = rng.random((m, len(self.numeric)))
        for name in self.categorical:
            idx = rng.choice(len(self.values[name]), size=m, p=self.probs[name])
            out[np.arange(m), self.offsets[name] + idx] = _ONE_HOT
        return self.snap(out)

    def perturb(self, rng: np.random.Generator, centres: np.ndarray, m: int,
                scale: float) -> np.ndarray:
        """m rows near ``centres`` (rows, used in turn): a few coordinates moved by
        a normal step of ``scale`` (unit widths), a categorical axis now and then
        changed to another value drawn from its prior."""
        base = centres[np.arange(m) % len(centres)].copy()
        d = len(self.numeric) + len(self.categorical)
        p = min(1.0, 4.0 / max(d, 1))
        nnum = len(self.numeric)
        if nnum:
            mask = rng.random((m, nnum)) < p
            # At least one coordinate moves in every row (numeric or categorical).
            pick = rng.integers(0, d, size=m)
            rows = np.nonzero(pick < nnum)[0]
            mask[rows, pick[rows]] = True
            step = rng.normal(0.0, scale, size=(m, nnum))
            base[:, :nnum] = np.clip(base[:, :nnum] + mask * step, 0.0, 1.0)
        else:
            pick = rng.integers(0, max(d, 1), size=m)
        for k, name in enumerate(self.categorical):
            flip = rng.random(m) < p * 0.5
            flip |= pick == nnum + k
            rows = np.nonzero(flip)[0]
            if rows.size:
                off, size = self.offsets[name], len(self.values[name])
                idx = rng.choice(size, size=rows.size, p=self.probs[name])
                base[rows, off: off + size] = 0.0
                base[rows, off + idx] = _ONE_HOT
        return self.snap(base)


_ONE_HOT = math.sqrt(0.5)  # two different categories are at squared distance 1


def _snap_table(dist: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(edges, centres) of a discrete numeric axis: unit coordinate u falls in cell
    ``searchsorted(edges, u, 'right')``, whose value sits at ``centres[cell]``."""
    card = dist.cardinality
    if card is None or card < 1 or card > _SNAP_LIMIT:
        return None
    support = dist.support()
    centres = [float(dist.to_unit(v)) for v in support]
    order = np.argsort(centres, kind="stable")
    values = [support[i] for i in order]
    centres_sorted = np.asarray([centres[i] for i in order])
    edges = []
    for i in range(len(values) - 1):
        lo, hi = centres_sorted[i], centres_sorted[i + 1]
        key = value_key(values[i])
        for _ in range(40):  # the first u past lo whose value is no longer values[i]
            mid = 0.5 * (lo + hi)
            if value_key(dist.from_unit(mid)) == key:
                lo = mid
            else:
                hi = mid
        edges.append(hi)
    return np.asarray(edges), centres_sorted


# ------------------------------------------------------------------------- model


class _GP:
    """A zero-mean Gaussian process with a Matern-5/2 kernel over feature groups (one
    length scale per group), fitted by MAP on targets of about unit scale."""

    def __init__(self, groups: Sequence[np.ndarray], width: int):
        self.groups = list(groups)
        self.width = width
        g = len(self.groups)
        # The dimension-scaled length-scale prior (on log length scale, unit inputs).
        self.prior_mu = math.sqrt(2.0) + 0.5 * math.log(max(g, 1))
        self.prior_sd = math.sqrt(3.0)
        self.theta = np.concatenate([np.full(g, self.prior_mu - math.log(2.0)),
                                     [0.0, math.log(1e-2)]])
        self.tied = np.array([self.prior_mu - math.log(2.0), 0.0, math.log(1e-2)])
        self.ard = False
        self.col_group = np.zeros(width, dtype=int)
        for i, cols in enumerate(self.groups):
            self.col_group[cols] = i
        self.X = np.zeros((0, width))
        self.y = np.zeros(0)
        self.L: np.ndarray | None = None
        self.alpha: np.ndarray | None = None

    # -- hyperparameters

    @staticmethod
    def _split(theta: np.ndarray) -> tuple[np.ndarray, float, float]:
        g = len(theta) - 2
        return np.exp(theta[:g]), float(np.exp(theta[g])), float(np.exp(theta[g + 1]))

    def _neg_log_posterior(self, theta: np.ndarray, S: np.ndarray, y: np.ndarray
                           ) -> tuple[float, np.ndarray]:
        from scipy.linalg import cho_solve, cholesky

        ls, sf2, sn2 = self._split(theta)
        n = len(y)
        inv2 = 1.0 / ls**2
        R2 = np.tensordot(inv2, S, axes=1)
        R = np.sqrt(np.maximum(R2, 0.0))
        E = np.exp(-_SQRT5 * R)
        Km = (1.0 + _SQRT5 * R + (5.0 / 3.0) * R2) * E
        K = sf2 * Km
        K[np.diag_indices(n)] += sn2 + 1e-8
        try:
            L = cholesky(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        alpha = cho_solve((L, True), y, check_finite=False)
        nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * _LOG_2PI
        Kinv = cho_solve((L, True), np.eye(n), check_finite=False)
        W = Kinv - np.outer(alpha, alpha)
        A = sf2 * (5.0 / 3.0) * (1.0 + _SQRT5 * R) * E
        grad = np.empty_like(theta)
        g = len(theta) - 2
        grad[:g] = 0.5 * np.tensordot(S, W * A, axes=([1, 2], [0, 1])) * inv2
        grad[g] = 0.5 * float(np.sum(W * (sf2 * Km)))
        grad[g + 1] = 0.5 * sn2 * float(np.trace(W))
        # Priors: log length scales ~ N(mu, sd); log signal variance ~ N(0, 1);
        # log noise variance ~ N(log 1e-2, 2).
        d = theta[:g] - self.prior_mu
        nll += float(np.sum(d**2)) / (2 * self.prior_sd**2)
        grad[:g] += d / self.prior_sd**2
        nll += 0.5 * theta[g] ** 2
        grad[g] += theta[g]
        dn = theta[g + 1] - math.log(1e-2)
        nll += dn**2 / 8.0
        grad[g + 1] += dn / 4.0
        return nll, grad

    def fit(self, X: np.ndarray, y: np.ndarray, optimise: bool, ard: bool) -> None:
        """Condition on (X, y); with ``optimise``, refit the hyperparameters first: one
        length scale shared by every axis, then (with ``ard``) one per axis, started
        from the shared one and from the last fit."""
        self.X, self.y = X, y
        if optimise and len(y) >= 2:
            S = np.stack([_sqdist(X[:, cols], X[:, cols]) for cols in self.groups])
            g = len(self.groups)
            shared = [self.tied]
            for log_ls in (self.prior_mu - math.log(2.0), math.log(0.25)):
                shared.append(np.array([log_ls, 0.0, math.log(1e-3)]))
            tied = self._minimise(shared, S.sum(axis=0)[None], y, 1)
            if tied is not None:
                self.tied = tied
            broadcast = np.concatenate([np.full(g, self.tied[0]), self.tied[1:]])
            if ard and g > 1:
                starts = [broadcast] + ([self.theta] if self.ard else [])
                full = self._minimise(starts, S, y, g)
                self.theta = full if full is not None else broadcast
            else:
                self.theta = broadcast
            self.ard = ard and g > 1
        self._factor()

    def _minimise(self, starts: Sequence[np.ndarray], S: np.ndarray, y: np.ndarray, g: int
                  ) -> np.ndarray | None:
        from scipy.optimize import minimize

        bounds = ([(math.log(1e-2), math.log(1e2))] * g
                  + [(math.log(1e-2), math.log(1e2)), (math.log(1e-6), math.log(2.0))])
        best: tuple[float, np.ndarray] | None = None
        for start in starts:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                res = minimize(self._neg_log_posterior, start, args=(S, y), jac=True,
                               method="L-BFGS-B", bounds=bounds, options={"maxiter": 60})
            if np.all(np.isfinite(res.x)) and (best is None or res.fun < best[0]):
                best = (float(res.fun), res.x)
        return None if best is None else best[1]

    def _factor(self) -> None:
        from scipy.linalg import cho_solve, cholesky

        ls, sf2, sn2 = self._split(self.theta)
        K = self._k(self.X, self.X, ls, sf2)
        n = len(self.y)
        jitter = 1e-8
        while True:
            try:
                K2 = K.copy()
                K2[np.diag_indices(n)] += sn2 + jitter
                self.L = cholesky(K2, lower=True, check_finite=False)
                break
            except np.linalg.LinAlgError:
                jitter *= 10
                if jitter > 1.0:
                    raise
        self.alpha = cho_solve((self.L, True), self.y, check_finite=False)

    def _k(self, A: np.ndarray, B: np.ndarray, ls: np.ndarray, sf2: float) -> np.ndarray:
        scale = 1.0 / ls[self.col_group]
        R2 = _sqdist(A * scale, B * scale)
        R = np.sqrt(R2)
        return sf2 * (1.0 + _SQRT5 * R + (5.0 / 3.0) * R2) * np.exp(-_SQRT5 * R)

    @property
    def lengthscales(self) -> np.ndarray:
        return self._split(self.theta)[0]

    def predict(self, C: np.ndarray, pending: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at rows ``C``; ``pending`` rows join
        the training set with the posterior mean as their value (kriging believer:
        the mean is unchanged, the variance near them drops)."""
        mean, V, sf2 = self._posterior(C, pending)
        var = sf2 - np.sum(V * V, axis=0)
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def draw(self, C: np.ndarray, pending: np.ndarray | None, rng: np.random.Generator
             ) -> np.ndarray:
        """One joint draw of the posterior at rows ``C`` (Thompson sampling)."""
        from scipy.linalg import cholesky

        mean, V, sf2 = self._posterior(C, pending)
        ls, _, _ = self._split(self.theta)
        cov = self._k(C, C, ls, sf2) - V.T @ V
        cov[np.diag_indices(len(C))] += 1e-6 * sf2
        try:
            L = cholesky(cov, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            w, Q = np.linalg.eigh(cov)
            L = Q * np.sqrt(np.maximum(w, 0.0))
        return mean + L @ rng.standard_normal(len(C))

    def _posterior(self, C: np.ndarray, pending: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
        from scipy.linalg import cholesky, solve_triangular

        assert self.L is not None and self.alpha is not None
        ls, sf2, sn2 = self._split(self.theta)
        Ks = self._k(C, self.X, ls, sf2)
        mean = Ks @ self.alpha
        if pending is None or len(pending) == 0:
            V = solve_triangular(self.L, Ks.T, lower=True, check_finite=False)
        else:
            Xa = np.vstack([self.X, pending])
            K = self._k(Xa, Xa, ls, sf2)
            K[np.diag_indices(len(Xa))] += sn2 + 1e-8
            try:
                La = cholesky(K, lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                K[np.diag_indices(len(Xa))] += 1e-6
                La = cholesky(K, lower=True, check_finite=False)
            Ksa = np.hstack([Ks, self._k(C, pending, ls, sf2)])
            V = solve_triangular(La, Ksa.T, lower=True, check_finite=False)
        return mean, V, sf2

    def mean(self, C: np.ndarray) -> np.ndarray:
        ls, sf2, _ = self._split(self.theta)
        assert self.alpha is not None
        return self._k(C, self.X, ls, sf2) @ self.alpha


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    a = np.sum(A * A, axis=1)[:, None]
    b = np.sum(B * B, axis=1)[None, :]
    return np.maximum(a + b - 2.0 * (A @ B.T), 0.0)


def log_expected_improvement(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """log EI of minimisation below ``best``, accurate far into the tail (so points
    with a vanishing improvement are still ordered)."""
    from scipy.special import log_ndtr, ndtr

    z = (best - mean) / sd
    out = np.empty_like(z)
    hi = z > -6.0
    zh = z[hi]
    phi = np.exp(-0.5 * zh**2) / math.sqrt(2 * math.pi)
    out[hi] = np.log(np.maximum(phi + zh * ndtr(zh), 1e-300))
    zl = z[~hi]
    # h(z) = phi(z) + z Phi(z) ~ phi(z) / z^2 (1 - 3 / z^2) for z -> -inf
    out[~hi] = -0.5 * zl**2 - 0.5 * _LOG_2PI - 2.0 * np.log(-zl) + np.log1p(-3.0 / zl**2)
    del log_ndtr
    return out + np.log(sd)


def transform(values: np.ndarray, kind: str) -> np.ndarray:
    """Model targets of one stage's values (minimised; +inf = failed)."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(len(v))
    v = np.where(finite, v, np.max(v[finite]))
    if kind == "copula":
        return normal_scores(v)
    if kind == "median":
        v = np.minimum(v, np.median(v))
    elif kind == "q75":
        v = np.minimum(v, np.percentile(v, 75))
    scale = float(np.max(np.abs(v)))  # so that np.std cannot overflow on huge values
    v = v / scale if scale > 0 else v
    sd = float(np.std(v))
    return (v - np.mean(v)) / (sd if sd > 0 else 1.0)


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of ``values`` (ties share their mean rank); +inf
    (failed trials) ranks last."""
    from scipy.stats import norm, rankdata

    n = len(values)
    if n == 0:
        return values.astype(float)
    ranks = rankdata(values, method="average")
    return norm.ppf(ranks / (n + 1))


# -------------------------------------------------------------------------- plan


class Bayes(ProposingPlan):
    """Gaussian-process Bayesian optimisation (expected improvement) over the unit
    cube, with trials in flight taken into account.

    Parameters:
        space: the stage's space (any prior; constants are carried along).
        trials: the stage's budget (None: no limit, W&B's bayes without run_cap).
        seed: an int or a tuple (such as (sweep seed, stage)).
        metric, goal: the metric the plan optimises and 'minimize' or 'maximize'.
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

    Example: ``Bayes(space, trials=64, seed=(0, 1), metric="loss", stage=1)``
    """

    def __init__(
        self,
        space: Space,
        trials: int | None,
        seed: int | Sequence[int] = 0,
        *,
        metric: str,
        goal: str = "minimize",
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
        _check_options(trials, goal=goal, history=history, liar=liar, transform=transform)
        super().__init__(space, trials)
        self.metric, self.goal, self.stage = metric, goal, int(stage)
        self.sources = None if sources is None else {int(s) for s in sources}
        if history == "none":
            self.sources = set()
        self.history = history
        self.seed = seed_tuple(seed)
        self.enc = _Encoder(space)
        d = len(space.dims)
        self.n_initial = default_initial(d) if n_initial is None else max(0, int(n_initial))
        self.liar = liar
        self.transform = transform
        self.local = min(max(float(local), 0.0), 1.0)
        self.early_local = bool(early_local)
        groups = len(space.dims)
        self.ard_after = 2 * groups if ard_after is None else int(ard_after)
        self.n_candidates = max(64, int(candidates))
        self.gp = _GP(self.enc.groups, self.enc.width)
        # Observations: feature row, value (minimised; +inf = failed), stage, key.
        self._X: list[np.ndarray] = []
        self._v: list[float] = []
        self._stage_of: list[int] = []
        self._obs_index: dict[Any, int] = {}
        self._ids: list[str] = []
        self._params: list[Config] = []
        self._pending: dict[Any, np.ndarray] = {}
        self._initial_asked = 0
        self._fitted_at = -1
        self.optimisations = 0  # hyperparameter optimisations so far (see describe())
        self._dirty = True
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

    # ---------------------------------------------------------------- telling

    def tell(self, records: Sequence[TrialRecord]) -> None:
        for r in records:
            if r.stage > self.stage:
                continue
            own = r.stage == self.stage
            if not own and self.sources is not None and r.stage not in self.sources:
                continue
            key = self.space.key(r.params)
            if own:
                self._pending.pop(key, None)
            self._told(key, own)
            row = self.enc.encode(r.params)
            if row is None:
                continue
            value = self._value(r)
            slot = (r.stage, key)
            if slot in self._obs_index:  # a retried trial: its last attempt counts
                i = self._obs_index[slot]
                self._v[i] = value
            else:
                self._obs_index[slot] = len(self._X)
                self._X.append(row)
                self._v.append(value)
                self._stage_of.append(r.stage)
                self._ids.append(r.trial_id)
                self._params.append(dict(r.params))
            self._dirty = True
        self._update_finished()

    def _value(self, r: TrialRecord) -> float:
        if r.status not in ("ok", "stopped") or not r.finite(self.metric):
            return math.inf
        value = float(r.metrics[self.metric])
        return value if self.goal == "minimize" else -value

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
        key = self.space.key(params)
        self._pending[key] = self.enc.encode(params)
        self._proposing(key)
        return Candidate(params, None)

    def _observed(self) -> int:
        return len(self._X)

    def _use_model(self) -> bool:
        finite = sum(1 for v in self._v if math.isfinite(v))
        if finite < 2 or self._observed() < 3:
            return False
        history = sum(1 for s in self._stage_of if s != self.stage)
        if history >= self.n_initial:
            return True
        own_spent = self.used
        return own_spent >= self.n_initial

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
            self._initial_asked += 1
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
        weights = np.ones(len(rows))
        for name in self.enc.categorical:
            off, size = self.enc.offsets[name], len(self.enc.values[name])
            weights *= rows[:, off: off + size] @ self.enc.probs[name] / _ONE_HOT
        if weights.sum() <= 0:
            return rows[:0]
        keep = weights > 0
        rows, weights = rows[keep], weights[keep]
        return rows[rng.choice(len(rows), size=len(rows), replace=False,
                               p=weights / weights.sum())]

    # model-based proposals
    def _targets(self) -> np.ndarray:
        v = np.asarray(self._v)
        stages = np.asarray(self._stage_of)
        y = np.zeros(len(v))
        if self.history == "joint":
            return transform(v, self.transform)
        for s in np.unique(stages):
            sel = stages == s
            y[sel] = transform(v[sel], self.transform)
        return y

    def _refit(self) -> None:
        n = self._observed()
        if not self._dirty:
            return
        X = np.vstack(self._X)
        y = self._targets()
        # Hyperparameters: every time while there are few observations, then each
        # time the data has grown by about a tenth.
        optimise = self._fitted_at < 0 or n < 24 or n >= self._fitted_at * 1.1 + 1
        self.gp.fit(X, y, optimise, ard=n >= self.ard_after)
        if optimise:
            self._fitted_at = n
            self.optimisations += 1
        self._dirty = False

    def _propose_model(self, rng: np.random.Generator) -> np.ndarray | None:
        self._refit()
        X = self.gp.X
        pending = np.vstack(list(self._pending.values())) if self._pending else None
        if self.liar != "mean" and pending is not None:
            return self._propose_lying(rng, pending)
        mean_obs = self.gp.mean(X)
        best = float(np.min(mean_obs))
        order_obs = np.argsort(mean_obs, kind="stable")
        if self._small_discrete():
            C = self._unseen_rows()
            if len(C) == 0:
                return None
            C = self._allowed(C)
            if len(C) == 0:
                return None
            score = self._score(C, pending, best)
            return C[int(np.argmax(score))]
        m = self.n_candidates
        top = X[order_obs[: min(5, len(order_obs))]]
        local = self.local
        early = self.early_local and len(self.gp.y) < self.ard_after
        if early:
            local = 1.0
        parts = [self.enc.sample(rng, max(1, int(m * (1 - local))))] if local < 1 else []
        for scale, share in ((0.2, 0.4), (0.05, 0.4), (0.01, 0.2)):
            parts.append(self.enc.perturb(rng, top, max(1, int(m * local * share)), scale))
        C = np.vstack(parts)
        score = self._score(C, pending, best)
        # A second, finer round around the best few candidates.
        lead = C[np.argsort(-score, kind="stable")[:4]]
        C2 = np.vstack([self.enc.perturb(rng, lead, m // 8, 0.03),
                        self.enc.perturb(rng, lead, m // 8, 0.005)])
        score2 = self._score(C2, pending, best)
        C = np.vstack([C, C2])
        score = np.concatenate([score, score2])
        return self._pick_unseen(C, np.argsort(-score, kind="stable")[:256])

    # ------------------------------------------------- the model as a scorer

    @property
    def ready(self) -> bool:
        """Whether the model has enough observations to score candidates."""
        finite = sum(1 for v in self._v if math.isfinite(v))
        return finite >= 2 and self._observed() >= 3

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """log expected improvement of feature rows (``self.enc``), trials in flight
        taken into account; for plans that choose among their own candidates (the
        adaptive refine). Call only when ``ready``."""
        self._refit()
        pending = np.vstack(list(self._pending.values())) if self._pending else None
        best = float(np.min(self.gp.mean(self.gp.X)))
        return self._score(rows, pending, best)

    def draw_rows(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A joint posterior draw at feature rows, negated (higher is better), for
        Thompson sampling among a plan's own candidates. Call only when ``ready``."""
        self._refit()
        pending = np.vstack(list(self._pending.values())) if self._pending else None
        return -self.gp.draw(rows, pending, rng)

    def pend(self, params: Config) -> None:
        """A config proposed elsewhere that is now in flight (a pending point)."""
        row = self.enc.encode(params)
        if row is not None:
            self._pending[self.space.key(params)] = row

    def _allowed(self, C: np.ndarray) -> np.ndarray:
        keep = np.ones(len(C), dtype=bool)
        for name in self.enc.categorical:
            off, size = self.enc.offsets[name], len(self.enc.values[name])
            keep &= (C[:, off: off + size] @ self.enc.probs[name]) > 0
        return C[keep]

    def _score(self, C: np.ndarray, pending: np.ndarray | None, best: float) -> np.ndarray:
        mean, sd = self.gp.predict(C, pending)
        return log_expected_improvement(mean, sd, best)

    def _propose_lying(self, rng: np.random.Generator, pending: np.ndarray
                       ) -> np.ndarray | None:
        """Constant liar: pending points join the data with the worst (or best)
        observed score, the model is conditioned (not refitted) on them."""
        y = self.gp.y
        lie = float(np.max(y) if self.liar == "worst" else np.min(y))
        X_real, y_real = self.gp.X, self.gp.y
        L, alpha = self.gp.L, self.gp.alpha
        try:
            self.gp.X = np.vstack([X_real, pending])
            self.gp.y = np.concatenate([y_real, np.full(len(pending), lie)])
            self.gp._factor()
            saved, self._pending = self._pending, {}
            try:
                return self._propose_model(rng)
            finally:
                self._pending = saved
        finally:
            self.gp.X, self.gp.y, self.gp.L, self.gp.alpha = X_real, y_real, L, alpha

    # ---------------------------------------------------------------- describe

    def describe(self) -> dict[str, Any]:
        v = np.asarray(self._v) if self._v else np.zeros(0)
        own = [i for i, s in enumerate(self._stage_of) if s == self.stage]
        history = len(self._stage_of) - len(own)
        finite = [i for i in range(len(v)) if math.isfinite(v[i])]
        incumbent = None
        pool = [i for i in own if i in set(finite)] or finite
        if pool:
            i = min(pool, key=lambda j: (v[j], self._ids[j]))
            value = float(v[i]) if self.goal == "minimize" else -float(v[i])
            incumbent = {"trial_id": self._ids[i], "stage": self._stage_of[i],
                         "params": self._params[i], self.metric: value}
        out: dict[str, Any] = {
            "plan": "bayes",
            "phase": "model" if self._use_model() else "initial design",
            "observations": len(v),
            "own": len(own),
            "history": history,
            "failed": int(np.sum(~np.isfinite(v))) if len(v) else 0,
            "pending": len(self._pending),
            "proposed": self._proposed,
            "budget": self.total,
            "used": self.used,
            "n_initial": self.n_initial,
            "optimisations": self.optimisations,
            "incumbent": incumbent,
        }
        if self._fitted_at >= 0:
            out["lengthscales"] = {name: round(float(ls), 4) for name, ls in
                                   zip(self.enc.names, self.gp.lengthscales)}
        return out


def _check_options(trials: int | None, **options: str) -> None:
    """ValueError for an unknown goal, history, liar or target transform."""
    allowed = {"goal": GOALS, "history": HISTORY, "liar": LIARS, "transform": TRANSFORMS}
    for key, value in options.items():
        if value not in allowed[key]:
            raise ValueError(f"unknown {key} {value!r}: expected one of "
                             f"{', '.join(allowed[key])}")
    if trials is not None and trials < 0:
        raise ValueError("trials must be >= 0")


__all__ = ["ENUMERATE_LIMIT", "Bayes", "default_initial", "log_expected_improvement",
           "normal_scores"]
