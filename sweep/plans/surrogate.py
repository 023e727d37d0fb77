"""The Gaussian-process surrogate of the model-based plans: a model of what the told
trials scored over the unit cube, with trials in flight counted as pending. Ray-free;
numpy and scipy only. ``sweep.plans.bayes`` proposes with it, and the adaptive refine
(``sweep.plans.adaptive_refine``) ranks the points of its boxes with it.

How it works
------------
* features (``Encoder``): one column per ordered axis (its unit coordinate, so a log
  axis is already uniform in log space and integers sit at the centres of their cells)
  and one-hot columns per categorical axis (one length scale for the whole axis);
* kernel (``GP``): Matern-5/2, a signal and a noise variance, fitted by maximum a
  posteriori (L-BFGS-B, analytic gradients, warm starts) under a length-scale prior
  that widens with the number of dimensions (Hvarfner et al., 2024, "Vanilla Bayesian
  optimization performs great in high dimensions"). While there are fewer than
  ``ard_after`` observations (default 2 x dims) one length scale is shared by every
  axis (a per-axis fit on so few points picks irrelevant axes by chance); from then on
  each axis has its own, started from the shared one. Refitted at every result early
  on, then each time the data has grown by a tenth;
* a bounded model (``cap``, default ``CAP`` = 256 observations): up to the cap the model
  is conditioned on every observation (exact); beyond it, on a subset of ``cap`` (the
  best half by target, a space-filling sample of the rest chosen by greedy maximin
  distance, and every observation told since that sample was drawn, redrawn every
  ``cap // 8`` observations), and each hyperparameter optimisation starts from the last
  fit and is spread over the next fits (``TUNE_ITERATIONS`` L-BFGS steps each, until it
  converges). A fit and a proposal then cost what they cost at the cap, at 5,000 or
  10,000 trials, and no fit pauses the proposals for long (``tests/bench/ask_cost.py``);
* targets: the losses (``Metric.loss``), with failed, timed-out and NaN trials counted
  as the worst value seen, capped at their 75th percentile and standardised
  (``transform``), so divergent runs and cliffs cannot dominate the scale while good
  trials stand out;
* trials in flight (``pend``): each pending point joins the model with the posterior
  mean as its value (the "kriging believer" form of a constant liar), which keeps the
  mean and removes the variance near it, so points chosen while others run spread out;
  ``lying`` conditions on them with the worst or best target instead;
* earlier stages (``sources``) are observations too, on the same scale
  (``history='joint'``); ``'stage'`` standardises each stage on its own and
  ``'none'`` ignores them.

Example:
    >>> from sweep.core.metric import Metric
    >>> from sweep.space import Space, Uniform
    >>> model = Surrogate(Space({"x": Uniform(0, 1)}), Metric("loss"))
    >>> model.ready
    False
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..core.metric import Metric
from ..core.records import TrialRecord
from ..space.search_space import Space, value_key
from .base import Config

HISTORY = ("joint", "stage", "none")
TRANSFORMS = ("q75", "median", "standard", "copula")

# Discrete numeric axes up to this many values are snapped to their cells while the
# acquisition is maximised (so the model scores the config that will run).
_SNAP_LIMIT = 512
# Observations the model is conditioned on at most (see the module's text): a fit costs
# O(CAP^3) and scoring a candidate O(CAP^2) whatever the history.
CAP = 256
# What a fit imports (``Plan.imports`` of the plans that fit this model).
SCIPY_MODULES = ("scipy.linalg", "scipy.optimize", "scipy.special", "scipy.stats")
# Beyond the cap, a hyperparameter optimisation runs at most this many L-BFGS iterations
# per fit (resumed at the next fits until it converges, TUNE_FITS fits at most): no fit
# pauses the proposals for a whole optimisation.
TUNE_ITERATIONS = 5
TUNE_FITS = 6
_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------- encoding


class Encoder:
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

    def box_rows(self, rng: np.random.Generator, m: int,
                 bounds: Mapping[str, tuple[float, float]],
                 values: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """m rows drawn uniformly in a box: each numeric axis within ``bounds[name]``
        (unit coordinates), each categorical axis one of ``values[name]`` (equally
        likely), discrete axes snapped to their cells.

        Example: ``enc.box_rows(rng, 128, {"x": (0.2, 0.4)}, {"opt": ["adam"]})``
        """
        rows = np.zeros((m, self.width))
        for j, name in enumerate(self.numeric):
            lo, hi = bounds[name]
            rows[:, j] = lo + (hi - lo) * rng.random(m)
        for name in self.categorical:
            index = [self.keys[name][value_key(v)] for v in values[name]]
            pick = np.asarray(index)[rng.integers(len(index), size=m)]
            rows[np.arange(m), self.offsets[name] + pick] = _ONE_HOT
        return self.snap(rows)

    def prior_weights(self, rows: np.ndarray) -> np.ndarray:
        """The prior weight of each row's categories (the product over categorical
        axes; 1 where there is none): 0 for a row with a zero-weight value."""
        weights = np.ones(len(rows))
        for name in self.categorical:
            off, size = self.offsets[name], len(self.values[name])
            weights *= rows[:, off: off + size] @ self.probs[name] / _ONE_HOT
        return weights

    def possible(self, rows: np.ndarray) -> np.ndarray:
        """Whether each row has a positive prior weight on every categorical axis."""
        keep = np.ones(len(rows), dtype=bool)
        for name in self.categorical:
            off, size = self.offsets[name], len(self.values[name])
            keep &= (rows[:, off: off + size] @ self.probs[name]) > 0
        return keep


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


class GP:
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
        self._tied_steps = 0  # calls of ``tune`` spent on the shared length scale
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

    def tune(self, X: np.ndarray, y: np.ndarray, ard: bool, iterations: int) -> bool:
        """Condition on (X, y) after at most ``iterations`` steps of the hyperparameter
        optimisation, started from the last fit (the shared length scale first, then,
        with ``ard``, one per axis); True once it has converged. A long optimisation
        is spread over several calls this way, each of bounded cost."""
        self.X, self.y = X, y
        done = len(y) < 2
        if not done:
            S = np.stack([_sqdist(X[:, cols], X[:, cols]) for cols in self.groups])
            g = len(self.groups)
            if ard and g > 1 and self.ard:
                full, done = self._minimise([self.theta], S, y, g, iterations, True)
                if full is not None:
                    self.theta = full
            else:
                tied, done = self._minimise([self.tied], S.sum(axis=0)[None], y, 1,
                                            iterations, True)
                if tied is not None:
                    self.tied = tied
                self.theta = np.concatenate([np.full(g, self.tied[0]), self.tied[1:]])
                self._tied_steps += 1
                if ard and g > 1 and (done or self._tied_steps >= 3):
                    # One length scale per axis from the shared one, at the next calls.
                    self.ard, done, self._tied_steps = True, False, 0
        self._factor()
        return done

    def _minimise(self, starts: Sequence[np.ndarray], S: np.ndarray, y: np.ndarray, g: int,
                  iterations: int = 60, report: bool = False) -> Any:
        """The best optimum from ``starts`` (None if none is finite); with ``report``,
        (that, whether every start converged within ``iterations``)."""
        from scipy.optimize import minimize

        bounds = ([(math.log(1e-2), math.log(1e2))] * g
                  + [(math.log(1e-2), math.log(1e2)), (math.log(1e-6), math.log(2.0))])
        best: tuple[float, np.ndarray] | None = None
        converged = True
        for start in starts:
            options: dict[str, Any] = {"maxiter": iterations}
            if report:  # a step of a spread optimisation: a looser stop
                options["ftol"] = 1e-6
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                res = minimize(self._neg_log_posterior, start, args=(S, y), jac=True,
                               method="L-BFGS-B", bounds=bounds, options=options)
            converged = converged and bool(res.success)
            if np.all(np.isfinite(res.x)) and (best is None or res.fun < best[0]):
                best = (float(res.fun), res.x)
        x = None if best is None else best[1]
        return (x, converged) if report else x

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
        mean, L = self._joint(C, pending)
        return mean + L @ rng.standard_normal(len(C))

    def draws(self, C: np.ndarray, pending: np.ndarray | None, rng: np.random.Generator,
              k: int) -> np.ndarray:
        """``k`` independent joint draws of the posterior at rows ``C`` (one column each):
        batch Thompson sampling, one factorisation for all."""
        mean, L = self._joint(C, pending)
        return mean[:, None] + L @ rng.standard_normal((len(C), k))

    def _joint(self, C: np.ndarray, pending: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mean at rows ``C`` and a factor of their joint covariance."""
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
        return mean, L

    def _posterior(self, C: np.ndarray, pending: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
        from scipy.linalg import solve_triangular

        assert self.L is not None and self.alpha is not None
        ls, sf2, _ = self._split(self.theta)
        Ks = self._k(C, self.X, ls, sf2)
        mean = Ks @ self.alpha
        if pending is None or len(pending) == 0:
            V = solve_triangular(self.L, Ks.T, lower=True, check_finite=False)
        else:
            _, La = self.augmented(pending)
            Ksa = np.hstack([Ks, self._k(C, pending, ls, sf2)])
            V = solve_triangular(La, Ksa.T, lower=True, check_finite=False)
        return mean, V, sf2

    def augmented(self, pending: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The training rows with ``pending`` rows joined (as observations with the
        noise variance) and the Cholesky factor of their kernel matrix."""
        from scipy.linalg import cholesky

        assert self.L is not None
        if pending is None or len(pending) == 0:
            return self.X, self.L
        ls, sf2, sn2 = self._split(self.theta)
        Xa = np.vstack([self.X, pending])
        K = self._k(Xa, Xa, ls, sf2)
        K[np.diag_indices(len(Xa))] += sn2 + 1e-8
        try:
            La = cholesky(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            K[np.diag_indices(len(Xa))] += 1e-6
            La = cholesky(K, lower=True, check_finite=False)
        return Xa, La

    def mean(self, C: np.ndarray) -> np.ndarray:
        ls, sf2, _ = self._split(self.theta)
        assert self.alpha is not None
        return self._k(C, self.X, ls, sf2) @ self.alpha


class Batch:
    """Candidate rows scored for a batch of proposals made from one fit: the posterior at
    the rows (points in flight pending), then, as rows are picked, each pick joins the
    pending points (kriging believer: the mean stays, the variance near it drops) by a
    rank-one update of the rows' variances. One triangular solve for the batch, then
    O(rows x model size) per pick, where proposing one at a time re-solves for each.

    Example: ``b = model.batch(rows); i = int(np.argmax(b.log_ei(best))); b.pick(i)``
    """

    def __init__(self, gp: GP, pending: np.ndarray | None):
        self.gp = gp
        self.ls, self.sf2, sn2 = gp._split(gp.theta)
        self.noise = sn2 + 1e-8
        self.base, self.L = gp.augmented(pending)
        width = gp.width
        self.rows = np.zeros((0, width))
        self.mean = np.zeros(0)
        self.var = np.zeros(0)
        self.V = np.zeros((len(self.base), 0))
        self.U = np.zeros((0, 0))  # one column per pick: its update of every row

    def add(self, rows: np.ndarray) -> None:
        """More candidate rows (before the first pick)."""
        from scipy.linalg import solve_triangular

        assert self.U.shape[1] == 0, "rows are added before the first pick"
        gp = self.gp
        assert gp.alpha is not None
        Ks = gp._k(rows, self.base, self.ls, self.sf2)
        V = solve_triangular(self.L, Ks.T, lower=True, check_finite=False)
        self.rows = np.vstack([self.rows, rows])
        self.mean = np.concatenate([self.mean, Ks[:, : len(gp.X)] @ gp.alpha])
        self.var = np.concatenate([self.var, self.sf2 - np.sum(V * V, axis=0)])
        self.V = np.hstack([self.V, V])
        self.U = np.zeros((len(self.rows), 0))

    def sd(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.var, 1e-12))

    def log_ei(self, best: float) -> np.ndarray:
        """log expected improvement below ``best`` at every row, the picks so far
        counted as pending."""
        return log_expected_improvement(self.mean, self.sd(), best)

    def pick(self, i: int) -> None:
        """Row ``i`` is proposed: it joins the pending points."""
        row = self.rows[i: i + 1]
        cov = (self.gp._k(self.rows, row, self.ls, self.sf2)[:, 0]
               - self.V.T @ self.V[:, i] - self.U @ self.U[i])
        u = cov / math.sqrt(max(float(self.var[i]), 0.0) + self.noise)
        self.var = self.var - u * u
        self.U = np.hstack([self.U, u[:, None]])


class _Rows:
    """Feature rows in a growing array (appending is amortised O(width))."""

    def __init__(self, width: int):
        self._data = np.zeros((64, width))
        self._n = 0

    def append(self, row: np.ndarray) -> None:
        if self._n == len(self._data):
            self._data = np.vstack([self._data, np.zeros_like(self._data)])
        self._data[self._n] = row
        self._n += 1

    def view(self) -> np.ndarray:
        return self._data[: self._n]

    def __len__(self) -> int:
        return self._n


def _maximin(X: np.ndarray, chosen: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` indices of ``pool``, each in turn the row of ``X`` farthest from the
    rows chosen so far (``chosen`` first): a space-filling sample (greedy maximin;
    ties to the lowest index, so it is deterministic)."""
    if k <= 0 or len(pool) == 0:
        return np.zeros(0, dtype=int)
    P = X[pool]
    if len(chosen):
        d = np.min(_sqdist(P, X[chosen]), axis=1)
    else:
        d = np.full(len(pool), np.inf)
    out = []
    for _ in range(min(k, len(pool))):
        i = int(np.argmax(d))
        out.append(pool[i])
        d = np.minimum(d, np.sum((P - P[i]) ** 2, axis=1))
        d[i] = -1.0
    return np.asarray(out, dtype=int)


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



# --------------------------------------------------------------------- surrogate


class Surrogate:
    """A Gaussian process fitted to the told trials of a stage and of its ``sources``,
    scoring feature rows (``encoder``) by expected improvement or a posterior draw.

    Parameters:
        space: the stage's space.
        metric: what the trials are scored by (``Metric.loss`` is modelled).
        stage: the stage the model serves (records of later stages are ignored; a
            record of this stage ends its config's pending state).
        sources: earlier stages whose records are observations too (None: every one).
        history: 'joint' (default), 'stage' or 'none' (see the module's text).
        transform: targets: 'q75' (default), 'median', 'standard' or 'copula'.
        ard_after: observations from which each axis has its own length scale
            (default 2 x dimensions).
        cap: observations the model is conditioned on at most (default ``CAP``;
            beyond, a subset: see the module's text).

    Example:
        ``model.tell(records); model.pend(params); model.expected_improvement(rows)``
        where ``rows = model.encoder.box_rows(rng, 128, bounds, values)``.
    """

    def __init__(self, space: Space, metric: Metric, *, stage: int = 0,
                 sources: Sequence[int] | None = None, history: str = "joint",
                 transform: str = "q75", ard_after: int | None = None, cap: int = CAP):
        for key, value, allowed in (("history", history, HISTORY),
                                    ("transform", transform, TRANSFORMS)):
            if value not in allowed:
                raise ValueError(f"unknown {key} {value!r}: expected one of "
                                 f"{', '.join(allowed)}")
        self.space, self.metric, self.stage = space, metric, int(stage)
        self.sources = None if sources is None else {int(s) for s in sources}
        if history == "none":
            self.sources = set()
        self.history = history
        self.transform = transform
        self.encoder = Encoder(space)
        self.ard_after = 2 * len(space.dims) if ard_after is None else int(ard_after)
        if cap < 16:
            raise ValueError("cap must be >= 16")
        self.cap = int(cap)
        self.gp: Any = GP(self.encoder.groups, self.encoder.width)
        # Observations: feature row, loss (+inf = failed), stage, trial id, params.
        self._rows = _Rows(self.encoder.width)
        self._v: list[float] = []
        self._stage_of: list[int] = []
        self._obs_index: dict[Any, int] = {}
        self._ids: list[str] = []
        self._params: list[Config] = []
        self._pending: dict[Any, np.ndarray] = {}
        self._finite = 0  # observations with a finite loss
        self._earlier = 0  # observations of earlier stages
        self._fitted_at = -1
        self.optimisations = 0  # hyperparameter optimisations so far
        self._dirty = True
        # Beyond the cap: the space-filling part of the subset, and the number of
        # observations when it was drawn (every one told since is in the model).
        self._spread: np.ndarray = np.zeros(0, dtype=int)
        self._best: np.ndarray = np.zeros(0, dtype=int)
        self._spread_at = -1
        self._tuning = 0  # fits left to the hyperparameter optimisation in progress

    # ---------------------------------------------------------------- telling

    def tell(self, records: Sequence[TrialRecord]) -> list[TrialRecord]:
        """Observe the records of this stage and of its sources (a retried trial's last
        attempt counts); returns those records, the others being ignored."""
        return [r for r, _ in self.observe(records)]

    def observe(self, records: Sequence[TrialRecord]) -> list[tuple[TrialRecord, Any]]:
        """``tell``, returning each record taken with its config's key
        (``Space.key``), so that a plan need not compute it again."""
        taken = []
        for r in records:
            if r.stage > self.stage:
                continue
            own = r.stage == self.stage
            if not own and self.sources is not None and r.stage not in self.sources:
                continue
            key = self.space.key(r.params)
            taken.append((r, key))
            if own:
                self._pending.pop(key, None)
            row = self.encoder.encode(r.params)
            if row is None:
                continue
            value = self.loss(r)
            slot = (r.stage, key)
            if slot in self._obs_index:  # a retried trial: its last attempt counts
                i = self._obs_index[slot]
                self._finite += math.isfinite(value) - math.isfinite(self._v[i])
                self._v[i] = value
            else:
                self._obs_index[slot] = len(self._v)
                self._rows.append(row)
                self._v.append(value)
                self._stage_of.append(r.stage)
                self._ids.append(r.trial_id)
                self._params.append(dict(r.params))
                self._finite += math.isfinite(value)
                self._earlier += r.stage != self.stage
            self._dirty = True
        return taken

    def loss(self, r: TrialRecord) -> float:
        """What the model sees of a trial: its loss, +inf when it failed or its metric
        is missing or not finite."""
        name = self.metric.name
        if r.status not in ("ok", "stopped") or not r.finite(name):
            return math.inf
        return self.metric.loss(float(r.metrics[name]))

    def pend(self, params: Config) -> None:
        """A config proposed that is now in flight (a pending point until told)."""
        row = self.encoder.encode(params)
        if row is not None:
            self._pending[self.space.key(params)] = row

    # ------------------------------------------------------------------ state

    @property
    def n_observed(self) -> int:
        """Observations (trials told that fit the space)."""
        return len(self._v)

    @property
    def n_earlier(self) -> int:
        """Observations from earlier stages."""
        return self._earlier

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    @property
    def ready(self) -> bool:
        """Whether the model has enough observations to score candidates."""
        return self._finite >= 2 and self.n_observed >= 3

    @property
    def one_length_scale(self) -> bool:
        """Whether the model is conditioned on fewer than ``ard_after`` points (it then
        shares one length scale by every axis, and is a weak guide far from the data)."""
        return len(self.gp.y) < self.ard_after

    # ---------------------------------------------------------------- fitting

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

    def fit(self, spread: bool = False) -> None:
        """Condition on what was told since the last fit (a no-op when nothing was);
        call only when ``ready``. With ``spread`` (for a batch made in a hurry), a due
        hyperparameter optimisation is spread over this fit and the next ones (as it
        always is beyond the cap) rather than run whole now."""
        n = self.n_observed
        if not self._dirty:
            return
        X = self._rows.view()
        y = self._targets()
        # Hyperparameters: every time while there are few observations, then each
        # time the data has grown by about a tenth.
        optimise = self._fitted_at < 0 or n < 24 or n >= self._fitted_at * 1.1 + 1
        ard = n >= self.ard_after
        if n > self.cap:
            keep = self._subset(X, y)
            X, y, spread = X[keep], y[keep], True
        if spread:
            if optimise:
                self._tuning, self._fitted_at = TUNE_FITS, n
                self.optimisations += 1
            if self._tuning:
                done = self.gp.tune(X, y, ard, TUNE_ITERATIONS)
                self._tuning = 0 if done else self._tuning - 1
            else:
                self.gp.fit(X, y, False, ard)
            self._dirty = False
            return
        self.gp.fit(X, y, optimise, ard)
        if optimise:
            self._fitted_at, self._tuning = n, 0
            self.optimisations += 1
        self._dirty = False

    def _subset(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The observations a model beyond the cap is conditioned on (sorted indices):
        the best ``cap // 2`` by target, every one told since the space-filling sample
        was drawn, and that sample (greedy maximin away from the best, redrawn once
        ``cap // 8`` observations have been told since: from every observation the
        first time, then from the last sample, the last best and those told since, so
        a redraw costs O(cap^2) whatever the history)."""
        n, cap = len(y), self.cap
        best = np.argsort(y, kind="stable")[: cap // 2]
        fresh = cap // 8
        if self._spread_at < 0 or n - self._spread_at >= fresh:
            if self._spread_at < 0:
                pool = np.arange(n)
            else:
                pool = np.unique(np.concatenate([self._spread, self._best,
                                                 np.arange(self._spread_at, n)]))
            rest = np.setdiff1d(pool, best)
            self._spread = _maximin(X, best, rest, cap - len(best) - fresh)
            self._spread_at = n
        self._best = best
        recent = np.arange(self._spread_at, n)
        return np.unique(np.concatenate([best, self._spread, recent]))

    # ---------------------------------------------------------------- scoring

    def conditioned(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows the fitted model is conditioned on and its posterior mean at each."""
        X = self.gp.X
        return X, self.gp.mean(X)

    def _pending_rows(self) -> np.ndarray | None:
        return np.vstack(list(self._pending.values())) if self._pending else None

    def log_ei(self, rows: np.ndarray, best: float) -> np.ndarray:
        """log expected improvement below ``best`` (a posterior mean) at feature rows,
        the points in flight taken into account. Call after ``fit``."""
        mean, sd = self.gp.predict(rows, self._pending_rows())
        return log_expected_improvement(mean, sd, best)

    def expected_improvement(self, rows: np.ndarray) -> np.ndarray:
        """log expected improvement at feature rows below the best posterior mean of
        the observations, the points in flight taken into account. Call only when
        ``ready``."""
        self.fit()
        best = float(np.min(self.conditioned()[1]))
        return self.log_ei(rows, best)

    def batch(self, rows: np.ndarray) -> Batch:
        """``rows`` scored for a batch of proposals (``Batch``), the points in flight
        taken into account. Call only when ``ready``."""
        self.fit()
        out = Batch(self.gp, self._pending_rows())
        out.add(rows)
        return out

    def thompson_many(self, rows: np.ndarray, rng: np.random.Generator, k: int
                      ) -> np.ndarray:
        """``k`` independent joint posterior draws at feature rows (one column each),
        negated: batch Thompson sampling. Call only when ``ready``."""
        self.fit()
        return -self.gp.draws(rows, self._pending_rows(), rng, k)

    def thompson(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A joint posterior draw at feature rows, negated (higher is better), for
        Thompson sampling among a plan's own candidates. Call only when ``ready``."""
        self.fit()
        return -self.gp.draw(rows, self._pending_rows(), rng)

    @contextmanager
    def lying(self, lie: str) -> Iterator[None]:
        """Within: the points in flight join the data with the worst (``'worst'``) or
        the best (``'best'``) observed target, the model conditioned (not refitted) on
        them, and none is pending (a constant liar). Call after ``fit``."""
        pending = self._pending_rows()
        if pending is None:
            yield
            return
        gp = self.gp
        y = gp.y
        value = float(np.max(y) if lie == "worst" else np.min(y))
        X_real, y_real = gp.X, gp.y
        L, alpha = gp.L, gp.alpha
        try:
            gp.X = np.vstack([X_real, pending])
            gp.y = np.concatenate([y_real, np.full(len(pending), value)])
            gp._factor()
            saved, self._pending = self._pending, {}
            try:
                yield
            finally:
                self._pending = saved
        finally:
            gp.X, gp.y, gp.L, gp.alpha = X_real, y_real, L, alpha

    # ---------------------------------------------------------------- describe

    def summary(self) -> dict[str, Any]:
        """What the model holds, JSON-friendly: observations (own stage, earlier ones,
        failed), points pending, hyperparameter optimisations, the incumbent (the best
        trial of this stage, else of any) and, once fitted, the length scales."""
        v = np.asarray(self._v) if self._v else np.zeros(0)
        own = [i for i, s in enumerate(self._stage_of) if s == self.stage]
        finite = [i for i in range(len(v)) if math.isfinite(v[i])]
        incumbent = None
        pool = [i for i in own if i in set(finite)] or finite
        if pool:
            i = min(pool, key=lambda j: (v[j], self._ids[j]))
            incumbent = {"trial_id": self._ids[i], "stage": self._stage_of[i],
                         "params": self._params[i],
                         self.metric.name: self.metric.sign * float(v[i])}
        out: dict[str, Any] = {
            "observations": len(v),
            "own": len(own),
            "history": len(self._stage_of) - len(own),
            "failed": int(np.sum(~np.isfinite(v))) if len(v) else 0,
            "pending": len(self._pending),
            "optimisations": self.optimisations,
            "incumbent": incumbent,
        }
        if self._fitted_at >= 0:
            out["lengthscales"] = {name: round(float(ls), 4) for name, ls in
                                   zip(self.encoder.names, self.gp.lengthscales)}
        return out


__all__ = ["CAP", "GP", "HISTORY", "TRANSFORMS", "Batch", "Encoder", "Surrogate",
           "log_expected_improvement", "normal_scores", "transform"]
