"""Parameter importance: how much of the metric's variance each parameter explains,
alone and together with others, and how sure that is.

The method is fANOVA (Hutter, Hoos and Leyton-Brown, 2014), the one behind Optuna's
default importance evaluator and W&B's importance panel, on the random forest of
``sweep.views.forest``:

1. The ranked trials (``ok``, finite metric) are encoded as the search space sees them:
   a log parameter as log10 (splits and volumes in decades), a linear one as is, a
   categorical one as codes split into sets of categories (never one-hot).
2. A forest is fit to the metric. Each tree is a piecewise-constant function over boxes,
   so its functional ANOVA over the uniform measure of the space is exact: for parameter
   ``i``, the **main effect** ``V_i / V`` (the variance of the tree averaged over every
   other parameter), and the **total effect** ``1 - Var(E_i f) / V`` (the part of the
   variance that ``i`` takes part in, alone or in any interaction; from the overlaps of
   every pair of leaves). A parameter that matters only with another one (a pure
   interaction) has a main effect near 0 and a large total effect; Optuna's default shows
   only the main effect, so it misses it. For the leading parameters the **pairwise
   interactions** ``V_ij / V`` are given too.
3. Spread: the trials are resampled (bootstrap) ``resamples`` times and a forest of
   ``trees`` trees is fit to each; every figure is the mean over the resamples, with its
   standard deviation and 5-95 % range. The forest's out-of-bag R² says how much of the
   metric the parameters explain at all: importances of a model that fits nothing are
   noise, and the result says so.

Large sweeps are sampled (``max_trials`` uniformly, fixed seed) and the result says so.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"trial_id": [f"t{i}" for i in range(300)], "status": "ok",
    ...                    "params.a": rng.random(300), "params.b": rng.random(300)})
    >>> df["metrics.loss"] = 5 * df["params.a"] + 0.1 * df["params.b"]
    >>> imp = importance(df, "loss", "minimize", {"a": "linear", "b": "linear"},
    ...                  resamples=2, trees=4)
    >>> [p.name for p in imp.params], imp.params[0].total > 0.9
    (['a', 'b'], True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .figures import Param, ReportData, cat_label, categories
from .forest import Domain, Forest, grow_forest
from .prepare import prepare

__all__ = ["Importance", "PairImportance", "ParamImportance", "fanova", "importance",
           "importance_text"]

MIN_TRIALS = 8  # below this, no importance is computed
MAX_TRIALS = 2000
RESAMPLES = 8
TREES = 16
PAIRS_OF = 5  # pairwise interactions among the leading parameters
MAX_LEAVES = 256  # per tree: the total effect costs (leaves² x parameters)
POOR_FIT = 0.2  # out-of-bag R² below this: the importances are flagged as unreliable


@dataclass(frozen=True)
class ParamImportance:
    """One parameter's share of the metric's variance: ``main`` alone, ``total`` alone and
    in interactions (``total >= main``); ``*_std`` over resamples, ``*_range`` 5-95 %."""

    name: str
    scale: str
    main: float
    main_std: float
    main_range: tuple[float, float]
    total: float
    total_std: float
    total_range: tuple[float, float]

    @property
    def interactions(self) -> float:
        """The share of variance this parameter explains only with others."""
        return max(0.0, self.total - self.main)


@dataclass(frozen=True)
class PairImportance:
    """The variance share of the interaction of two parameters (beyond their main
    effects)."""

    a: str
    b: str
    value: float
    std: float


@dataclass(frozen=True)
class Importance:
    """Importances of a sweep's parameters for its metric, most important first (by
    total effect). ``fit_r2`` is the forest's out-of-bag R²; ``trials`` the trials the
    forest saw out of ``ranked`` ranked ones."""

    metric: str | None
    goal: str
    params: tuple[ParamImportance, ...]
    pairs: tuple[PairImportance, ...]
    trials: int
    ranked: int
    resamples: int
    trees: int
    fit_r2: float
    notes: tuple[str, ...] = field(default=())
    method: str = "fANOVA on a random forest (numpy), spread over bootstrap resamples"

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (floats rounded to 6 digits, NaN as None)."""
        return _plain(asdict(self) | {"method": self.method})


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class _Encoded:
    X: np.ndarray
    y: np.ndarray
    domain: Domain
    params: list[Param]


def _encode(rows: pd.DataFrame, params: Sequence[Param], notes: list[str]) -> _Encoded:
    """The trials as the forest sees them: log10 for log parameters, category codes for
    categorical ones; parameters with a single value among ``rows`` are left out."""
    columns, ks, kept = [], [], []
    for param in params:
        col = rows[param.column]
        if param.scale == "categorical":
            labels = categories(col)
            if len(labels) < 2:
                continue
            index = {c: i for i, c in enumerate(labels)}
            columns.append(np.array([index[cat_label(v)] for v in col], float))
            ks.append(len(labels))
        else:
            x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            if param.scale == "log":
                with np.errstate(divide="ignore", invalid="ignore"):
                    x = np.log10(np.where(x > 0, x, np.nan))
            missing = ~np.isfinite(x)
            if missing.all():
                continue
            if missing.any():
                notes.append(f"{param.name}: {int(missing.sum())} trials without a value "
                             f"were given the median")
                x = np.where(missing, np.median(x[~missing]), x)
            if x.min() == x.max():
                continue
            columns.append(x)
            ks.append(0)
        kept.append(param)
    X = np.column_stack(columns) if columns else np.zeros((len(rows), 0))
    k = np.array(ks, int)
    num = k == 0
    lo = np.where(num, X.min(axis=0, initial=np.inf), 0.0) if len(k) else np.zeros(0)
    hi = np.where(num, X.max(axis=0, initial=-np.inf), 0.0) if len(k) else np.zeros(0)
    return _Encoded(X, rows["_metric"].to_numpy(dtype=float), Domain(k, lo, hi), kept)


# --------------------------------------------------------------------------- one tree


@dataclass
class _TreeEffects:
    """One tree's functional ANOVA: shares of variance per column, and what the pairwise
    interactions need."""

    main: np.ndarray  # (d,) V_i / V
    total: np.ndarray  # (d,) 1 - Var(E_i f) / V
    values: np.ndarray  # (L,) the leaves' values
    frac: np.ndarray  # (L, d) the leaves' share of each column's range
    cells: list[tuple[np.ndarray, np.ndarray]]
    mean: float
    var: float

    def pair(self, i: int, j: int) -> float:
        """V_ij / V: the variance of the (i, j) marginal beyond the two main effects."""
        (ci, si), (cj, sj) = self.cells[i], self.cells[j]
        joint = ci.T @ ((self.values * _without(self.frac, [i, j]))[:, None] * cj)
        share = si @ (joint - self.mean) ** 2 @ sj / self.var
        return max(0.0, float(share - self.main[i] - self.main[j]))


def _cells(forest: Forest, leaves: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Column ``j`` cut into the cells of the tree's splits: (leaf x cell) coverage and
    each cell's share of the column's range."""
    dom = forest.domain
    if dom.k[j]:
        k = int(dom.k[j])
        return forest.cats[leaves, j, :k].astype(float), np.full(k, 1.0 / k)
    lo, hi = forest.lo[leaves, j], forest.hi[leaves, j]
    edges = np.unique(np.concatenate([lo, hi]))
    mid = (edges[:-1] + edges[1:]) / 2
    cover = (lo[:, None] < mid[None, :]) & (mid[None, :] < hi[:, None])
    return cover.astype(float), np.diff(edges) / dom.width[j]


def _overlaps(forest: Forest, leaves: np.ndarray) -> np.ndarray:
    """(d, L, L): the share of each column's range where two leaves' boxes overlap."""
    dom = forest.domain
    out = []
    for j in range(len(dom.k)):
        if dom.k[j]:
            c = forest.cats[leaves, j, :int(dom.k[j])].astype(float)
            out.append(c @ c.T / dom.k[j])
        else:
            lo, hi = forest.lo[leaves, j], forest.hi[leaves, j]
            span = np.minimum(hi[:, None], hi[None, :]) - np.maximum(lo[:, None], lo[None, :])
            out.append(np.clip(span, 0.0, None) / dom.width[j])
    return np.stack(out)


def _tree_effects(forest: Forest, t: int) -> _TreeEffects | None:
    """The exact functional ANOVA of tree ``t`` over the uniform measure of the domain
    (None when the tree is constant)."""
    leaves = forest.leaves(t)
    v = forest.value[leaves]
    d = len(forest.domain.k)
    overlap = _overlaps(forest, leaves)
    frac = np.stack([overlap[j].diagonal() for j in range(d)], axis=1)  # (L, d)
    vol = frac.prod(axis=1)
    f0 = float(v @ vol)
    var = float(vol @ (v - f0) ** 2)
    if not var > 1e-12 * max(f0 * f0, 1e-300):
        return None
    main = np.zeros(d)
    cells = [_cells(forest, leaves, j) for j in range(d)]
    for j in range(d):
        cover, share = cells[j]
        marginal = cover.T @ (v * _without(frac, [j]))
        main[j] = share @ (marginal - f0) ** 2 / var
    # Total effects: Var(E_j f) from every pair of leaves' overlap outside column j.
    before = np.ones((d + 1, *overlap.shape[1:]))
    after = np.ones((d + 1, *overlap.shape[1:]))
    for j in range(d):
        before[j + 1] = before[j] * overlap[j]
        after[d - j - 1] = after[d - j] * overlap[d - j - 1]
    total = np.zeros(d)
    for j in range(d):
        a = v * frac[:, j]
        closed = float(a @ (before[j] * after[j + 1]) @ a) - f0 * f0
        total[j] = 1.0 - closed / var
    return _TreeEffects(np.clip(main, 0, 1), np.clip(total, 0, 1), v, frac, cells, f0, var)


def _without(frac: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Each leaf's volume share outside ``columns``."""
    mask = np.ones(frac.shape[1], bool)
    mask[list(columns)] = False
    return frac[:, mask].prod(axis=1)


# --------------------------------------------------------------------------- forests


def _oob_r2(forest: Forest, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(sum of squared out-of-bag errors, sum of squares about the mean) for R²."""
    pred = forest.predict(X)
    inbag = np.zeros(pred.shape, bool)
    np.put_along_axis(inbag, forest.samples, True, axis=1)
    out = ~inbag
    n_out = out.sum(axis=0)
    has = n_out > 0
    if not has.any():
        return 0.0, 0.0
    mean = (pred * out).sum(axis=0)[has] / n_out[has]
    return float(((mean - y[has]) ** 2).sum()), float(((y[has] - y[has].mean()) ** 2).sum())


def _summary(values: np.ndarray) -> tuple[float, float, tuple[float, float]]:
    if not len(values):
        return math.nan, math.nan, (math.nan, math.nan)
    lo, hi = np.quantile(values, [0.05, 0.95])
    return float(values.mean()), float(values.std()), (float(lo), float(hi))


def fanova(rows: pd.DataFrame, params: Sequence[Param], *, metric: str | None = None,
           goal: str = "minimize", ranked: int | None = None, resamples: int = RESAMPLES,
           trees: int = TREES, max_trials: int = MAX_TRIALS, min_leaf: int | None = None,
           pairs_of: int = PAIRS_OF, seed: int = 0) -> Importance:
    """Importance of ``params`` for the values in ``rows["_metric"]`` (prepared, ranked
    trials: see ``sweep.views.prepare``).

    Example: ``fanova(data.ranked, data.params, metric="loss")``
    """
    notes: list[str] = []
    total_rows = len(rows) if ranked is None else ranked
    rng = np.random.default_rng(seed)
    if len(rows) > max_trials:
        rows = rows.iloc[np.sort(rng.choice(len(rows), max_trials, replace=False))]
        notes.append(f"{max_trials:,} of {total_rows:,} ranked trials used (a uniform sample)")
    enc = _encode(rows, params, notes)
    empty = Importance(metric, goal, (), (), len(rows), total_rows, resamples, trees,
                       math.nan, ())
    if len(rows) < MIN_TRIALS:
        return _with_notes(empty, [*notes, f"too few ranked trials ({len(rows)}) to say "
                                           f"which parameters matter; {MIN_TRIALS} needed"])
    if not enc.params:
        return _with_notes(empty, [*notes, "no parameter varies among the ranked trials"])
    if np.ptp(enc.y) == 0:
        return _with_notes(empty, [*notes, "the metric is the same for every ranked trial"])
    n = len(enc.y)
    leaf = min_leaf or max(2, math.ceil(n / MAX_LEAVES))
    mains, totals, pair_values = [], [], []
    sse = sst = 0.0
    lead: list[tuple[int, int]] | None = None
    for _ in range(resamples):
        outer = rng.integers(0, n, n) if resamples > 1 else np.arange(n)
        samples = outer[rng.integers(0, n, size=(trees, n))]
        forest = grow_forest(enc.X, enc.y, enc.domain, samples=samples, min_leaf=leaf)
        e, t = _oob_r2(forest, enc.X, enc.y)
        sse, sst = sse + e, sst + t
        effects = [x for x in (_tree_effects(forest, i) for i in range(trees)) if x]
        if not effects:
            continue
        mains.append(np.mean([x.main for x in effects], axis=0))
        totals.append(np.mean([x.total for x in effects], axis=0))
        if lead is None:  # pairs among the parameters the first forest ranks highest
            top = np.argsort(-totals[0], kind="stable")[:pairs_of]
            lead = [(int(a), int(b)) for i, a in enumerate(top) for b in top[i + 1:]]
        pair_values.append([np.mean([x.pair(a, b) for x in effects]) for a, b in lead])
    if not mains:
        return _with_notes(empty, [*notes, "the forest found no structure in the metric"])
    main, total, pair_arr = np.array(mains), np.array(totals), np.array(pair_values)
    out = []
    for j, param in enumerate(enc.params):
        m, ms, mr = _summary(main[:, j])
        t, ts, tr = _summary(total[:, j])
        out.append(ParamImportance(param.name, param.scale, m, ms, mr, t, ts, tr))
    out.sort(key=lambda p: (-p.total, -p.main, p.name))
    found = [PairImportance(enc.params[a].name, enc.params[b].name,
                            float(pair_arr[:, i].mean()), float(pair_arr[:, i].std()))
             for i, (a, b) in enumerate(lead or [])]
    found.sort(key=lambda p: -p.value)
    r2 = 1.0 - sse / sst if sst > 0 else math.nan
    if not r2 >= POOR_FIT:
        notes.append(f"the forest explains little of the metric (out-of-bag R² {r2:.2f}): "
                     f"the metric is mostly noise, or depends on something the parameters "
                     f"do not say; read these importances with care")
    return Importance(metric, goal, tuple(out), tuple(found), n, total_rows, len(mains),
                      trees, r2, tuple(notes))


def _stages(stages: Sequence[Any]) -> str:
    return ("stage " if len(stages) == 1 else "stages ") + ", ".join(map(str, stages))


def _with_notes(imp: Importance, notes: list[str]) -> Importance:
    return Importance(imp.metric, imp.goal, imp.params, imp.pairs, imp.trials, imp.ranked,
                      imp.resamples, imp.trees, imp.fit_r2, tuple(notes))


def importance(df: pd.DataFrame, metric: str, goal: str = "minimize",
               scales: Mapping[str, str] | None = None, *,
               stages: Sequence[int] | None = None, data: ReportData | None = None,
               **options: Any) -> Importance:
    """Importance of each parameter of a results table for ``metric`` (ranked trials of
    ``stages``, or of every stage). ``options`` go to ``fanova``.

    Example: ``importance(store.read(), "val_error", "minimize", spec.space.scales())``
    """
    if data is None:
        if stages is not None:
            df = df[df["stage"].isin(list(stages))]
        data = prepare(df, metric, goal, scales or {})
    notes = list(data.notes)
    for name, by_stage in data.constants.items():
        if len(by_stage) > 1:
            runs = "; ".join(f"{_stages(stages)}: {value}" for stages, value in by_stage)
            notes.append(f"{name} differs by stage ({runs}), and is no parameter here: its "
                         f"effect is unexplained (--stage S looks within one stage)")
    imp = fanova(data.ranked, data.params, metric=data.metric, goal=goal,
                 ranked=len(data.ranked), **options)
    return _with_notes(imp, [*notes, *imp.notes]) if notes else imp


# --------------------------------------------------------------------------- text


def _pct(x: float) -> str:
    return "  -  " if not math.isfinite(x) else f"{100 * x:5.1f}"


def importance_text(imp: Importance) -> str:
    """The importances as an aligned table, then the leading interactions and notes.

    Example: ``print(importance_text(importance(df, "loss")))``
    """
    head = (f"parameter importance for {imp.metric} ({imp.goal}): share of its variance, "
            f"% (mean ± std over {imp.resamples} resamples of {imp.trials:,} trials)")
    lines = [head]
    if imp.params:
        width = max(9, *(len(p.name) for p in imp.params))
        lines.append(f"  {'parameter':<{width}}  {'scale':<11}  {'total':>13}  "
                     f"{'alone':>13}  {'with others':>11}")
        for p in imp.params:
            lines.append(f"  {p.name:<{width}}  {p.scale:<11}  {_pct(p.total)} ± "
                         f"{_pct(p.total_std).strip():>5}  {_pct(p.main)} ± "
                         f"{_pct(p.main_std).strip():>5}  {_pct(p.interactions):>11}")
        strong = [q for q in imp.pairs if q.value >= 0.01]
        if strong:
            lines.append("interactions (share of variance beyond both parameters alone):")
            lines += [f"  {q.a} x {q.b}: {_pct(q.value).strip()} ± {_pct(q.std).strip()}"
                      for q in strong]
        lines.append(f"model fit: out-of-bag R² {imp.fit_r2:.2f} ({imp.method})")
    lines += [f"note: {n}" for n in imp.notes]
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return round(v, 6) if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
