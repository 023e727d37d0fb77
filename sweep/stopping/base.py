"""What every stopping rule shares: ``StoppingRule`` (the decision verb ``should_stop``)
and the bookkeeping of trials' curves the rules build on.

Conventions of every rule:

* ``value`` is the sweep's metric as reported; the ``Metric`` given when the rule is built
  says which way is better. NaN and +-inf count as the worst possible value, literally:
  a loss of +inf, worse than every number. Where a cutoff falls between such a value and a
  number (an interpolated percentile, a median of two), it lies past every number and short
  of the worst (``PAST_EVERY_NUMBER``): every finite value is on its good side and the
  non-finite ones on its bad side, as for a finite worst value made ever worse. ``None``
  (the report lacks the metric) is ignored: a trial that reports no value is never stopped.
* ``step`` is an integer that grows with training. ASHA and median read it as is: steps
  may jump (1 then 10), a rung ``c`` is reached by the first report with ``step >= c``
  and the trial's value at ``c`` is its value at the smallest reported step ``>= c``.
  Hyperband, like W&B, counts reports instead (band ``b`` is a trial's ``b``-th
  report, whatever its step number; see ``HyperbandRule``). A repeated report for a
  step replaces the value at that step (the last one counts) and the decision is taken
  again with it.
* Once ``should_stop`` answered ``True`` for a trial, the stop is final: later reports of
  that trial (the task may report once more before its cancellation lands) answer
  ``True`` and change nothing.
* ``finished(trial_id)`` is bookkeeping only; it never changes a decision (the values a
  finished or stopped trial recorded keep counting, as in W&B, Tune and Vizier), which is
  what makes a replay from reports alone exact (``sweep.stopping.replay``).

Example:
    >>> from sweep.core.metric import Metric
    >>> curves = Curves([2])
    >>> curves.update("a", 1, 0.5), curves.update("a", 3, 0.4), curves.at[2]
    ([], [2], {'a': 0.4})
    >>> loss_of(float("nan"), Metric("acc", "maximize")), loss_of(0.9, Metric("acc", "maximize"))
    (inf, -0.9)
"""

from __future__ import annotations

import bisect
import math
import sys
from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.metric import Metric

STEP_CAP = 2**62  # bands/rungs beyond this are never reached
# A loss past every number and short of the worst (+inf): a cutoff between a NaN/inf and a
# number. No finite loss is greater, so ``loss > PAST_EVERY_NUMBER`` holds for +inf alone.
PAST_EVERY_NUMBER = sys.float_info.max


def loss_of(value: Any, metric: Metric) -> float:
    """The value as a loss (lower is better); anything non-finite is +inf (the worst)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.inf
    if not math.isfinite(x):
        return math.inf
    return metric.loss(x)


def value_of(loss: float, metric: Metric) -> float | None:
    """A loss back in the metric's units; None when it is not finite or past every number
    (JSON-friendly)."""
    if not math.isfinite(loss) or abs(loss) >= PAST_EVERY_NUMBER:
        return None
    return float(metric.sign * loss)


def show_steps(steps: list[Any], more: bool = False, limit: int = 6) -> str:
    """The first steps of a schedule for ``describe``: ``3, 9, 27, ...``."""
    shown = ", ".join(str(s) for s in steps[:limit])
    return shown + (", ..." if more or len(steps) > limit else "")


class Points:
    """One trial's points, sorted by key (its steps): keys and values in flat arrays, 16
    bytes a point (a dict of boxed numbers took ten times that: a trial of a million
    reports held about 150 MB of the driver). Keys past the int64 range fall back to a
    list.

    Example:
        >>> p = Points(); p.put(3, 0.5), p.put(1, 0.7), p.put(3, 0.4), p.get(3)
        ((0, None), (0, None), (1, 0.5), 0.4)
    """

    __slots__ = ("keys", "values")

    def __init__(self, typecode: str = "d"):
        self.keys: Any = array("q")
        self.values: Any = array(typecode)

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, key: float) -> int:
        """The index of the first key ``>= key``."""
        keys = self.keys
        if not keys or key > keys[-1]:
            return len(keys)
        return bisect.bisect_left(keys, key)

    def get(self, key: int) -> Any:
        """The value at ``key``, or None."""
        i = self.index(key)
        return self.values[i] if i < len(self.keys) and self.keys[i] == key else None

    def put(self, key: int, value: Any) -> tuple[int, Any]:
        """Set ``key``'s value: (its index, the value it replaced or None)."""
        i = self.index(key)
        if i < len(self.keys) and self.keys[i] == key:
            old = self.values[i]
            self.values[i] = value
            return i, old
        try:
            self.keys.insert(i, key)
        except OverflowError:
            self.keys = list(self.keys)
            self.keys.insert(i, key)
        self.values.insert(i, value)
        return i, None


class Curves:
    """Every trial's curve (step -> loss, the last report of a step wins) and, for each
    checkpoint step ``c``, every trial's value at ``c``: its value at the smallest
    reported step ``>= c`` (present once the trial has reached ``c``)."""

    def __init__(self, checkpoints: Iterable[float] = ()):
        self.checkpoints: list[float] = sorted(set(checkpoints))
        self.at: dict[float, dict[str, float]] = {c: {} for c in self.checkpoints}
        self._points: dict[str, Points] = {}
        self._best: dict[str, float] = {}

    def add_checkpoint(self, c: float) -> None:
        if c in self.at:
            return
        bisect.insort(self.checkpoints, c)
        table: dict[str, float] = {}
        for trial, points in self._points.items():
            i = points.index(c)
            if i < len(points):
                table[trial] = points.values[i]
        self.at[c] = table

    def update(self, trial: str, step: int, loss: float) -> list[float]:
        """Record a report; returns the checkpoints whose value for ``trial`` it sets
        (those in (previous reported step below ``step``, ``step``])."""
        points = self._points.get(trial)
        if points is None:
            points = self._points[trial] = Points()
        i, replaced = points.put(step, loss)
        below = points.keys[i - 1] if i > 0 else -math.inf
        best = self._best.get(trial)
        if best is None or loss < best:
            self._best[trial] = loss
        elif replaced == best and loss > best:  # the best value was replaced by a worse
            self._best[trial] = min(points.values)
        lo = bisect.bisect_right(self.checkpoints, below)
        hi = bisect.bisect_right(self.checkpoints, step)
        affected = self.checkpoints[lo:hi]
        for c in affected:
            self.at[c][trial] = loss
        return affected

    def best(self, trial: str) -> float:
        """The trial's best (lowest) loss over the steps it reported."""
        return self._best[trial]


def percentile(values: Iterable[float], q: float) -> float:
    """numpy's linear percentile (Ray Tune's ASHA cutoff) with -inf as the worst value
    literally: where the interpolation falls strictly between a -inf and a number, the
    result is ``-PAST_EVERY_NUMBER`` (above the worst, below every number: the limit of a
    finite worst value made ever worse); exactly on a -inf it is -inf. numpy gives NaN
    there (``-inf + inf * t``).

    Example: ``percentile([-math.inf, -1.0], 50) == -PAST_EVERY_NUMBER``
    """
    ordered = sorted(values)
    if ordered[0] != -math.inf and ordered[-1] != math.inf:
        return float(np.percentile(np.asarray(ordered, dtype=float), q))
    # numpy's "linear" method: the virtual index (n - 1) * q / 100, then its two neighbours.
    n = len(ordered)
    index = (n - 1) * (q / 100)
    below = min(int(math.floor(index)), n - 1)
    gamma = index - below
    a, b = ordered[below], ordered[min(below + 1, n - 1)]
    if math.isfinite(a) and math.isfinite(b):
        return float(np.percentile(np.asarray(ordered, dtype=float), q))
    if gamma == 0 or a == b:
        return a
    if a == -math.inf:
        return -math.inf if b == math.inf else -PAST_EVERY_NUMBER
    return PAST_EVERY_NUMBER  # a finite, b = +inf


def median(values: Iterable[float]) -> float:
    """``np.median`` (Optuna's ``MedianPruner`` cutoff) with +inf as the worst loss
    literally: the median of a number and +inf (an even count) is ``PAST_EVERY_NUMBER``,
    where numpy gives +inf.

    Example: ``median([1.0, math.inf]) == PAST_EVERY_NUMBER``
    """
    ordered = sorted(values)
    n = len(ordered)
    if n % 2 == 0 and ordered[n // 2] == math.inf and math.isfinite(ordered[n // 2 - 1]):
        return PAST_EVERY_NUMBER
    return float(np.median(np.asarray(ordered, dtype=float)))


class StoppingRule:
    """Decides, report by report, whether a running trial should stop.

    A subclass sets ``kind`` (its ``type:`` in the sweep file) and ``KEYS`` (the settings
    it reads), and writes ``from_dict``, ``_decide``, ``rungs`` and ``describe``.
    """

    kind = ""
    KEYS: tuple[str, ...] = ("type",)

    def __init__(self, metric: Metric):
        self.metric = metric
        self._stopped: dict[str, int] = {}  # trial -> step of the report that stopped it
        self._finished: set[str] = set()
        self._reports = 0

    @classmethod
    def from_dict(cls, raw: Any, metric: Metric, path: str = "early_terminate"
                  ) -> StoppingRule:
        """The rule of an ``early_terminate:`` mapping whose ``type`` is ``kind``; raises
        SpecError naming the field under ``path``."""
        raise NotImplementedError

    def should_stop(self, trial_id: str, step: int, value: float | None) -> bool:
        """Record one report; True when the trial should stop now (and from then on).

        ``value`` is the sweep's metric at ``step`` as reported (NaN/inf: the worst
        possible; None: no value, ignored)."""
        if trial_id in self._stopped:
            return True
        if value is None:
            return False
        self._reports += 1
        step = int(step)
        if self._decide(trial_id, step, loss_of(value, self.metric)):
            self._stopped[trial_id] = step
            return True
        return False

    @property
    def fresh(self) -> bool:
        """True while the rule has been given no value (a replay needs a fresh rule)."""
        return not (self._reports or self._stopped)

    def finished(self, trial_id: str) -> None:
        """The trial ended (completed, failed or stopped); its values keep counting."""
        self._finished.add(trial_id)

    def stopped(self) -> dict[str, int]:
        """The trials this rule stopped, each with the step of the report that stopped it."""
        return dict(self._stopped)

    def rungs(self) -> list[dict]:
        """JSON-friendly state: one dict per band/rung, ``{"bracket", "step", "cutoff",
        "trials"}``; ``cutoff`` is in the metric's units (None when nothing counts yet)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for ``sweep validate``."""
        raise NotImplementedError

    def _decide(self, trial_id: str, step: int, loss: float) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


__all__ = ["PAST_EVERY_NUMBER", "STEP_CAP", "Curves", "Points", "StoppingRule", "loss_of", "median",
           "percentile", "show_steps", "value_of"]
