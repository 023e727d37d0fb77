"""A small regression random forest in numpy, grown level by level with every tree at
once, that keeps each leaf's box (the region of the input space it covers): what
``sweep.views.importance`` decomposes (fANOVA).

Inputs are columns of floats: a numeric column is split at midpoints between the values
it holds (log-scaled parameters arrive as log10, so a split is in decades); a categorical
column holds codes ``0..k-1`` and is split into two sets of categories (the categories of
a node ordered by their mean, then cut: Breiman's exact rule for a squared loss). Each
node keeps its box: ``lo``/``hi`` per numeric column and the set of categories per
categorical column, so a leaf is a product of intervals and category sets.

Why not scikit-learn: it is not a dependency of sweep, its trees split categoricals only
as one-hot columns (a box of one-hot columns is not a set of categories), and fANOVA needs
the leaf boxes, which sklearn gives only by walking ``tree_`` node by node.

Example:
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 2)); y = 3 * X[:, 0]
    >>> forest = grow_forest(X, y, Domain.numeric(X), trees=4, seed=0)
    >>> bool(abs(forest.predict(np.array([[0.9, 0.5]])).mean() - 2.7) < 0.2)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Domain", "Forest", "grow_forest"]


@dataclass(frozen=True)
class Domain:
    """The input space: per column, ``k`` categories (0 for a numeric column) and the
    numeric range ``lo..hi`` (ignored for categorical columns)."""

    k: np.ndarray  # (d,) int
    lo: np.ndarray  # (d,) float
    hi: np.ndarray  # (d,) float

    @classmethod
    def numeric(cls, X: np.ndarray) -> Domain:
        """Every column numeric, over the range of the values in ``X``."""
        d = X.shape[1]
        return cls(np.zeros(d, int), X.min(axis=0).astype(float), X.max(axis=0).astype(float))

    @property
    def categorical(self) -> np.ndarray:
        return self.k > 0

    @property
    def width(self) -> np.ndarray:
        """Each numeric column's range (1 where it is empty or categorical)."""
        w = self.hi - self.lo
        return np.where(self.categorical | ~(w > 0), 1.0, w)


@dataclass
class Forest:
    """Every node of every tree, in flat arrays. ``feature`` is -1 at a leaf; a numeric
    split sends ``x <= threshold`` left; a categorical split sends the categories of
    ``left_cats`` left. ``lo``/``hi`` and ``cats`` are each node's box."""

    domain: Domain
    tree: np.ndarray  # (nodes,) which tree
    feature: np.ndarray  # (nodes,)
    threshold: np.ndarray  # (nodes,)
    left: np.ndarray  # (nodes,) child ids, -1 at leaves
    right: np.ndarray
    value: np.ndarray  # (nodes,) mean of the node's rows
    lo: np.ndarray  # (nodes, d)
    hi: np.ndarray  # (nodes, d)
    cats: np.ndarray  # (nodes, d, kmax) bool: categories in the box (categorical columns)
    left_cats: np.ndarray  # (nodes, kmax) bool
    samples: np.ndarray  # (trees, m) the rows each tree was grown on
    trees: int

    def leaves(self, t: int) -> np.ndarray:
        """The node ids of tree ``t``'s leaves."""
        return np.flatnonzero((self.tree == t) & (self.feature < 0))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(trees, n): each tree's prediction for each row of ``X``."""
        n = len(X)
        node = np.repeat(np.arange(self.trees), n)  # roots are nodes 0..trees-1
        rows = np.tile(np.arange(n), self.trees)
        while True:
            inner = self.feature[node] >= 0
            if not inner.any():
                break
            idx = np.flatnonzero(inner)
            nd, f = node[idx], self.feature[node[idx]]
            x = X[rows[idx], f]
            cat = self.domain.categorical[f]
            go_left = np.where(cat, False, x <= self.threshold[nd])
            if cat.any():
                c = np.flatnonzero(cat)
                go_left[c] = self.left_cats[nd[c], x[c].astype(int)]
            node[idx] = np.where(go_left, self.left[nd], self.right[nd])
        return self.value[node].reshape(self.trees, n)


class _Nodes:
    """Growable node arrays."""

    def __init__(self, capacity: int, d: int, kmax: int):
        self.n = 0
        self.tree = np.zeros(capacity, np.int32)
        self.feature = np.full(capacity, -1, np.int32)
        self.threshold = np.full(capacity, np.nan)
        self.left = np.full(capacity, -1, np.int32)
        self.right = np.full(capacity, -1, np.int32)
        self.value = np.zeros(capacity)
        self.lo = np.zeros((capacity, d))
        self.hi = np.zeros((capacity, d))
        self.cats = np.zeros((capacity, d, kmax), bool)
        self.left_cats = np.zeros((capacity, kmax), bool)

    def add(self, count: int) -> np.ndarray:
        ids = np.arange(self.n, self.n + count)
        self.n += count
        return ids


@dataclass
class _Best:
    """The best split found so far for each frontier node."""

    gain: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left_cats: np.ndarray  # (A, kmax) categories sent left (a categorical split)
    seen: np.ndarray  # (A, kmax) categories the node holds rows of
    larger_left: np.ndarray  # (A,) the left side holds at least as many rows


@dataclass
class _Rows:
    """The stacked rows of every tree still being split: inputs, targets, the node each
    sits in, and per numeric column the rows in order of value (kept through every
    filter, so no level sorts by value again)."""

    xs: np.ndarray
    ys: np.ndarray
    where: np.ndarray
    orders: list[np.ndarray | None]

    def filtered(self, keep: np.ndarray) -> _Rows:
        """The rows where ``keep`` holds, in the same order."""
        renum = np.cumsum(keep) - 1
        orders = [None if o is None else renum[o[keep[o]]] for o in self.orders]
        return _Rows(self.xs[keep], self.ys[keep], self.where[keep], orders)


def grow_forest(X: np.ndarray, y: np.ndarray, domain: Domain, *, trees: int = 16,
                samples: np.ndarray | None = None, min_leaf: int = 2, max_depth: int = 32,
                seed: int = 0) -> Forest:
    """Grow ``trees`` regression trees on ``X`` (n, d) and ``y`` (n,): each on a bootstrap
    sample of the rows (or on the rows ``samples[t]`` gives), splitting on every column
    (like Optuna's fANOVA forest: all features at each split), until a node holds fewer
    than ``2 * min_leaf`` rows, its values are equal, or ``max_depth``.

    Example: ``grow_forest(X, y, Domain.numeric(X), trees=32, min_leaf=3)``
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, d = X.shape
    if samples is None:
        rng = np.random.default_rng(seed)
        samples = rng.integers(0, n, size=(trees, n))
    samples = np.asarray(samples)
    trees, m = samples.shape
    kmax = max(1, int(domain.k.max(initial=0)))
    nodes = _Nodes(trees * (2 * max(1, m // max(1, min_leaf)) + 1), d, kmax)
    roots = nodes.add(trees)
    nodes.tree[roots] = np.arange(trees)
    nodes.lo[roots], nodes.hi[roots] = domain.lo, domain.hi
    for j in np.flatnonzero(domain.categorical):
        nodes.cats[roots, j, :domain.k[j]] = True

    xs = X[samples.ravel()]
    orders = [None if domain.k[j] else np.argsort(xs[:, j], kind="stable")
              for j in range(d)]
    rows = _Rows(xs, y[samples.ravel()], np.repeat(roots, m), orders)
    frontier = roots
    for depth in range(max_depth + 1):
        frontier, rows = _level(nodes, domain, frontier, rows, min_leaf,
                                last=depth == max_depth)
        if not len(frontier):
            break
    k = nodes.n
    return Forest(domain, nodes.tree[:k], nodes.feature[:k], nodes.threshold[:k],
                  nodes.left[:k], nodes.right[:k], nodes.value[:k], nodes.lo[:k],
                  nodes.hi[:k], nodes.cats[:k], nodes.left_cats[:k], samples, trees)


def _level(nodes: _Nodes, domain: Domain, frontier: np.ndarray, rows: _Rows, min_leaf: int,
           last: bool) -> tuple[np.ndarray, _Rows]:
    """Set the values of the ``frontier`` nodes, split those that can be, and return the
    next frontier with the rows that sit in it."""
    local = np.full(nodes.n, -1)
    local[frontier] = np.arange(len(frontier))
    loc = local[rows.where]
    a, ys = len(frontier), rows.ys
    count = np.bincount(loc, minlength=a)
    total = np.bincount(loc, ys, minlength=a)
    nodes.value[frontier] = total / np.maximum(count, 1)
    spread = np.bincount(loc, ys * ys, minlength=a) - total ** 2 / np.maximum(count, 1)
    scale = max(float(np.abs(ys).max(initial=0.0)) ** 2, 1e-300)
    can = (count >= 2 * min_leaf) & (spread > 1e-12 * scale * count)
    if last or not can.any():
        return frontier[:0], rows.filtered(np.zeros(len(ys), bool))
    keep = can[loc]
    rows = rows.filtered(keep)
    # Renumber the splittable nodes 0..b-1 so the rows' segments are contiguous.
    splittable = np.flatnonzero(can)
    renum = np.full(a, -1)
    renum[splittable] = np.arange(len(splittable))
    loc = renum[loc[keep]]
    parents = frontier[splittable]
    count, total = count[splittable], total[splittable]
    best = _best_splits(domain, rows, loc, count, total, min_leaf, nodes.left_cats.shape[1])
    gain = best.gain - total ** 2 / count
    split = np.isfinite(best.gain) & (gain > 1e-12 * scale * count)
    if not split.any():
        return frontier[:0], rows.filtered(np.zeros(len(rows.ys), bool))
    return _split(nodes, domain, parents, best, split, rows, loc)


def _by_node(loc: np.ndarray, order: np.ndarray, b: int) -> np.ndarray:
    """``order`` (rows by value) stably regrouped by node: rows by (node, value). A radix
    sort when the node numbers fit in 16 bits."""
    kind = np.uint16 if b <= np.iinfo(np.uint16).max else np.int64
    return order[np.argsort(loc[order].astype(kind), kind="stable")]


def _best_splits(domain: Domain, rows: _Rows, loc: np.ndarray, count: np.ndarray,
                 total: np.ndarray, min_leaf: int, kmax: int) -> _Best:
    """For each node, the split of largest ``sum_left^2/n_left + sum_right^2/n_right``
    (the squared error it removes, plus a constant) over every column."""
    b = len(count)
    best = _Best(np.full(b, -np.inf), np.full(b, -1), np.full(b, np.nan),
                 np.zeros((b, kmax), bool), np.zeros((b, kmax), bool), np.zeros(b, bool))
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    xs, ys = rows.xs, rows.ys
    for j in range(xs.shape[1]):
        v = xs[:, j]
        rank = None
        if domain.k[j]:
            k = int(domain.k[j])
            rank = _category_ranks(v.astype(int), ys, loc, b, k)
            v = rank[loc, v.astype(int)].astype(float)
            order = np.argsort(loc * (k + 1) + v.astype(int), kind="stable")
        else:
            order = _by_node(loc, rows.orders[j], b)
        vs, node = v[order], loc[order]
        csum = np.cumsum(ys[order])
        before = np.concatenate([[0.0], csum])[start][node]
        nl = np.arange(len(vs)) - start[node] + 1
        nr = count[node] - nl
        sl = csum - before
        sr = total[node] - sl
        nxt = np.append(vs[1:], np.inf)
        same_node = np.append(node[1:] == node[:-1], False)
        ok = same_node & (vs < nxt) & (nl >= min_leaf) & (nr >= min_leaf)
        gain = np.full(len(vs), -np.inf)
        gain[ok] = sl[ok] ** 2 / nl[ok] + sr[ok] ** 2 / nr[ok]
        top = np.maximum.reduceat(gain, start)
        better = top > best.gain
        if not better.any():
            continue
        hit = np.flatnonzero(ok & (gain == top[node]) & better[node])
        nodes_hit, first = np.unique(node[hit], return_index=True)
        pos = hit[first]
        best.gain[nodes_hit] = top[nodes_hit]
        best.feature[nodes_hit] = j
        best.larger_left[nodes_hit] = nl[pos] >= nr[pos]
        if rank is None:
            best.threshold[nodes_hit] = (vs[pos] + nxt[pos]) / 2
        else:
            cut = vs[pos]
            best.threshold[nodes_hit] = cut
            k = rank.shape[1]
            best.left_cats[nodes_hit] = False
            best.left_cats[nodes_hit, :k] = rank[nodes_hit] <= cut[:, None]
            best.seen[nodes_hit] = False
            best.seen[nodes_hit, :k] = rank[nodes_hit] < k
    return best


def _category_ranks(codes: np.ndarray, ys: np.ndarray, loc: np.ndarray, b: int, k: int
                    ) -> np.ndarray:
    """(b, k): each category's position when a node's categories are ordered by their
    mean value there; categories a node has no rows of come last (rank k)."""
    key = loc * k + codes
    n = np.bincount(key, minlength=b * k).reshape(b, k)
    s = np.bincount(key, ys, minlength=b * k).reshape(b, k)
    mean = np.where(n > 0, s / np.maximum(n, 1), np.inf)
    order = np.argsort(mean, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k)[None, :].repeat(b, 0), axis=1)
    return np.where(n > 0, rank, k)


def _split(nodes: _Nodes, domain: Domain, parents: np.ndarray, best: _Best,
           split: np.ndarray, rows: _Rows, loc: np.ndarray) -> tuple[np.ndarray, _Rows]:
    """Make two children of each node that splits; route its rows to them."""
    which = np.flatnonzero(split)
    p, f = parents[which], best.feature[which]
    lefts, rights = nodes.add(len(which)), nodes.add(len(which))
    nodes.feature[p], nodes.threshold[p] = f, best.threshold[which]
    nodes.left[p], nodes.right[p] = lefts, rights
    for child in (lefts, rights):
        nodes.tree[child] = nodes.tree[p]
        nodes.lo[child], nodes.hi[child] = nodes.lo[p], nodes.hi[p]
        nodes.cats[child] = nodes.cats[p]
    cat = domain.categorical[f]
    num = np.flatnonzero(~cat)
    nodes.hi[lefts[num], f[num]] = best.threshold[which[num]]
    nodes.lo[rights[num], f[num]] = best.threshold[which[num]]
    ci = np.flatnonzero(cat)
    if len(ci):
        w = which[ci]
        box = nodes.cats[p[ci], f[ci]]
        # A category the node holds no rows of goes with the larger side.
        unseen = box & ~best.seen[w]
        chosen = best.left_cats[w] | (unseen & best.larger_left[w][:, None])
        nodes.left_cats[p[ci]] = chosen
        nodes.cats[lefts[ci], f[ci]] = box & chosen
        nodes.cats[rights[ci], f[ci]] = box & ~chosen
    # Route the rows of the split nodes; rows of nodes that did not split are dropped.
    child_of = np.full(len(split), -1)
    child_of[which] = np.arange(len(which))
    c = child_of[loc]
    moving = c >= 0
    rows = rows.filtered(moving)
    xs, c = rows.xs, c[moving]
    feat = f[c]
    x = xs[np.arange(len(xs)), feat]
    go_left = x <= best.threshold[which][c]
    is_cat = domain.categorical[feat]
    if is_cat.any():
        r = np.flatnonzero(is_cat)
        go_left[r] = nodes.left_cats[p[c[r]], x[r].astype(int)]
    rows.where = np.where(go_left, lefts[c], rights[c])
    return np.concatenate([lefts, rights]), rows

