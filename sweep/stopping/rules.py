"""Early stopping rules (``early_terminate:`` in the sweep file), decided report by report.

The driver feeds every intermediate report of a running trial to ``rule.report(trial_id,
step, value)``; a ``True`` answer means "stop this trial now". A rule is a deterministic
function of the sequence of reports it has seen: ``replay`` feeds stored reports into a
fresh rule and gets the same decisions, so a driver killed mid-stage and rerun rebuilds its
rungs from the stored curves and decides exactly as before.

Three rules:

* ``type: hyperband`` (``HyperbandRule``): W&B's own early terminator, bands from
  ``min_iter`` or ``max_iter`` + ``s`` and ``eta``, ``strict``.
* ``type: asha`` (``AshaRule``): asynchronous successive halving as in Ray Tune's
  ``AsyncHyperBandScheduler`` (rungs, top 1/eta, brackets).
* ``type: median`` (``MedianRule``): the median stopping rule (Vizier; Optuna's
  ``MedianPruner``, Ray Tune's ``MedianStoppingRule``).

Common conventions:

* ``value`` is the sweep's metric as reported; the goal (minimize/maximize) is given when
  the rule is built. NaN and +-inf count as the worst possible value. ``None`` (the report
  lacks the metric) is ignored: a trial that reports no value is never stopped.
* ``step`` is an integer that grows with training. ASHA and median read it as is: steps
  may jump (1 then 10), a rung ``c`` is reached by the first report with ``step >= c``
  and the trial's value at ``c`` is its value at the smallest reported step ``>= c``.
  Hyperband, like W&B, counts reports instead (band ``b`` is a trial's ``b``-th
  report, whatever its step number; see ``HyperbandRule``). A repeated report for a
  step replaces the value at that step (the last one counts) and the decision is taken
  again with it.
* Once ``report`` answered ``True`` for a trial, the stop is final: later reports of that
  trial (the task may report once more before its cancellation lands) answer ``True`` and
  change nothing.
* ``finished(trial_id)`` is bookkeeping only; it never changes a decision (the values a
  finished or stopped trial recorded keep counting, as in W&B, Tune and Vizier), which is
  what makes a replay from reports alone exact.

Example:
    >>> rule = parse_rule({"type": "hyperband", "min_iter": 1, "eta": 2}, goal="minimize")
    >>> [rule.report(t, 1, v) for t, v in [("a", 0.5), ("b", 0.4), ("c", 0.9)]]
    [False, False, True]
    >>> replay(parse_rule({"type": "hyperband", "min_iter": 1, "eta": 2}, goal="minimize"),
    ...        [("a", 1, 0.5), ("b", 1, 0.4), ("c", 1, 0.9)])
    {'c'}
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..core.errors import SpecError
from ..core.values import number

TYPES = ("hyperband", "asha", "median")
GOALS = ("minimize", "maximize")

_HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")
_ASHA_KEYS = ("type", "min_step", "grace_period", "max_step", "eta", "brackets")
_MEDIAN_KEYS = ("type", "grace_period", "min_step", "min_samples")
# Names other tools use for the same settings: hints for a key we do not know.
_ALIASES = {
    "max_t": "max_step", "reduction_factor": "eta", "rf": "eta", "min_t": "min_step",
    "min_samples_required": "min_samples", "n_warmup_steps": "grace_period",
    "n_startup_trials": "min_samples", "n_min_trials": "min_samples",
}
_MAX_S = 100  # more bands than anyone can reach; bounds W&B's band loop
_STEP_CAP = 2**62  # bands/rungs beyond this are never reached
_MAX_RUNGS = 1000  # an eta barely above 1 would otherwise make millions of rungs


# --------------------------------------------------------------------------- helpers


def _loss(value: Any, goal: str) -> float:
    """The value as a loss (lower is better); anything non-finite is +inf (the worst)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.inf
    if not math.isfinite(x):
        return math.inf
    return x if goal == "minimize" else -x


def _metric(loss: float, goal: str) -> float | None:
    """A loss back in the metric's units; None when it is not finite (JSON-friendly)."""
    if not math.isfinite(loss):
        return None
    return float(loss if goal == "minimize" else -loss)


def _show_steps(steps: list[Any], more: bool = False, limit: int = 6) -> str:
    shown = ", ".join(str(s) for s in steps[:limit])
    return shown + (", ..." if more or len(steps) > limit else "")


class _Curves:
    """Every trial's curve (step -> loss, the last report of a step wins) and, for each
    checkpoint step ``c``, every trial's value at ``c``: its value at the smallest
    reported step ``>= c`` (present once the trial has reached ``c``)."""

    def __init__(self, checkpoints: Iterable[float] = ()):
        self.checkpoints: list[float] = sorted(set(checkpoints))
        self.at: dict[float, dict[str, float]] = {c: {} for c in self.checkpoints}
        self.steps: dict[str, list[int]] = {}
        self.values: dict[str, dict[int, float]] = {}

    def add_checkpoint(self, c: float) -> None:
        if c in self.at:
            return
        bisect.insort(self.checkpoints, c)
        table: dict[str, float] = {}
        for trial, steps in self.steps.items():
            i = bisect.bisect_left(steps, c)
            if i < len(steps):
                table[trial] = self.values[trial][steps[i]]
        self.at[c] = table

    def update(self, trial: str, step: int, loss: float) -> list[float]:
        """Record a report; returns the checkpoints whose value for ``trial`` it sets
        (those in (previous reported step below ``step``, ``step``])."""
        steps = self.steps.setdefault(trial, [])
        values = self.values.setdefault(trial, {})
        i = bisect.bisect_left(steps, step)
        below = steps[i - 1] if i > 0 else -math.inf
        if not (i < len(steps) and steps[i] == step):
            steps.insert(i, step)
        values[step] = loss
        lo = bisect.bisect_right(self.checkpoints, below)
        hi = bisect.bisect_right(self.checkpoints, step)
        affected = self.checkpoints[lo:hi]
        for c in affected:
            self.at[c][trial] = loss
        return affected

    def best(self, trial: str) -> float:
        return min(self.values[trial].values())


def _percentile(values: list[float], q: float) -> float:
    """numpy's linear percentile, with the limit (-inf) where a -inf takes part."""
    with np.errstate(invalid="ignore"):
        p = float(np.percentile(np.asarray(values, dtype=float), q))
    return -math.inf if math.isnan(p) else p


# ----------------------------------------------------------------------------- rules


class StoppingRule:
    """Decides, report by report, whether a running trial should stop."""

    kind = ""

    def __init__(self, goal: str = "minimize"):
        if goal not in GOALS:
            raise SpecError("metric.goal", goal, "one of " + ", ".join(GOALS))
        self.goal = goal
        self._stopped: dict[str, int] = {}  # trial -> step of the report that stopped it
        self._finished: set[str] = set()
        self._reports = 0

    def report(self, trial_id: str, step: int, value: float) -> bool:
        """Record one report; True when the trial should stop now (and from then on).

        ``value`` is the sweep's metric at ``step`` as reported (NaN/inf: the worst
        possible; None: no value, ignored)."""
        if trial_id in self._stopped:
            return True
        if value is None:
            return False
        self._reports += 1
        step = int(step)
        if self._decide(trial_id, step, _loss(value, self.goal)):
            self._stopped[trial_id] = step
            return True
        return False

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


class HyperbandRule(StoppingRule):
    """``type: hyperband`` with W&B's semantics (W&B's engine: the ``sweeps`` package,
    ``sweeps/hyperband_stopping.py``, ``hyperband_stop_runs``; version 0.3.0 on PyPI =
    github.com/wandb/sweeps master).

    What W&B does:

    * Bands. ``min_iter`` (integer >= 1): ``band = min_iter``, then 100 times
      ``bands.append(int(band)); band *= eta``, so ``min_iter: 3`` gives 3, 9, 27, 81, ...
      (W&B docs: "[3, 3*eta, 3*eta*eta, 3*eta*eta*eta], which equals [3, 9, 27, 81]").
      ``max_iter`` + ``s``: ``band = max_iter``, then ``s`` times ``band /= eta``; stop
      when ``band < 1``, else ``bands.append(int(band))``; sorted. ``max_iter: 27, s: 2``
      gives 3, 9 (docs: "[27/eta, 27/eta/eta], which equals [9, 3]"); ``max_iter: 18,
      s: 2`` gives 2, 6; ``max_iter: 81, s: 3`` gives 3, 9, 27. ``eta`` defaults to 3. W&B
      uses ``max_iter`` when both are given, and so does sweep (with a warning).
    * Iterations, not steps. A band counts *logged values* of the metric, not the step
      counter (docs: "Brackets are based on the number of logged iterations ... The
      numerical value of the step counter is not used in bracket calculations"; the
      engine indexes ``run.metric_history(name)``, the list of logged values): band
      ``b`` is reached when the run has logged ``b`` values and its value there is
      ``history[b - 1]`` (sweeps 0.3.0, since wandb/sweeps#99; 0.2.0 read ``history[b]``,
      one value later, and had no ``strict``). So here too a trial's iteration count is
      the number of distinct steps it has reported (a repeated step replaces that value
      and does not count again): band ``b`` is reached at its ``b``-th report whatever
      the step numbers are (0, 1, 2, ... or 1, 2, 3, ... or 10, 20, 30, ...), and a jump
      in the step number is no gap. ``rungs()`` gives bands in these iterations.
    * Threshold of band ``b``: the values at ``b`` of *every* run that has reached it
      (running, finished, stopped or crashed, the judged run included), negated when the
      goal is maximize, sorted ascending; ``threshold = sorted[int((1.0 / eta) * n)]``.
    * Decision, for each *running* run: its closest band is the largest band it has
      reached (after the last band it stays the last one); it stops when its condition
      value is strictly worse than that band's threshold. The condition value is, with
      ``strict: true``, its value at the band; with ``strict: false``, its best value so
      far (``min(history)``, every value logged up to now, after the band too).
    * ``strict`` defaults to **true** in W&B's engine since wandb/sweeps#108 (April 2024,
      the schema default; the code reads ``et_config.get("strict") is True``) although
      W&B's docs say "Defaults to false". We follow the engine.
    * NaN/inf: W&B drops non-finite values from the history (they are no iteration);
      here they count as an iteration with the worst value (so a diverging trial is
      judged, and stopped when others are finite).

    Where the online decision differs from W&B's controller: W&B's controller runs every
    few minutes over all running runs ("The end run timestamp might differ from the
    specified brackets if your run or iteration are short"), so a run is stopped some
    time after its data says so, and may have logged past a band first. Here each report
    is judged when it arrives, exactly as W&B's controller would judge that run if it
    looked at every run's history at that moment; other trials are judged at their own
    next report (a trial that reports nothing is never judged, so never stopped).
    """

    kind = "hyperband"

    def __init__(self, *, goal: str = "minimize", min_iter: int | None = None,
                 max_iter: int | None = None, s: int | None = None, eta: float = 3,
                 strict: bool = True):
        super().__init__(goal)
        if (min_iter is None) == (max_iter is None):
            raise SpecError("early_terminate", None, "one of min_iter, or max_iter with s")
        self.min_iter, self.max_iter, self.s, self.eta = min_iter, max_iter, s, eta
        self.strict = bool(strict)
        self.bands, self.open_ended = _hyperband_bands(min_iter, max_iter, s, eta)
        if not self.bands:
            raise SpecError("early_terminate.max_iter", max_iter,
                            f"an integer >= eta ({eta}): the first band is max_iter / eta")
        self._r = 1.0 / eta
        self._curves = _Curves(self.bands)  # in iterations (W&B's history index + 1)
        self._iterations: dict[str, dict[int, int]] = {}  # trial -> step -> iteration
        self._cache: dict[int, float] = {}

    def _threshold(self, band: int) -> float:
        cached = self._cache.get(band)
        if cached is None:
            ordered = sorted(self._curves.at[band].values())
            cached = ordered[int(self._r * len(ordered))] if ordered else math.inf
            self._cache[band] = cached
        return cached

    def _decide(self, trial_id: str, step: int, loss: float) -> bool:
        iterations = self._iterations.setdefault(trial_id, {})
        iteration = iterations.setdefault(step, len(iterations) + 1)
        for band in self._curves.update(trial_id, iteration, loss):
            self._cache.pop(band, None)
        i = bisect.bisect_right(self.bands, len(iterations)) - 1
        if i < 0:
            return False
        band = self.bands[i]
        if self.strict:
            condition = self._curves.at[band][trial_id]
        else:
            condition = self._curves.best(trial_id)
        return condition > self._threshold(band)

    def rungs(self) -> list[dict]:
        out = []
        for band in self.bands:
            n = len(self._curves.at[band])
            out.append({"bracket": 0, "step": band, "trials": n,
                        "cutoff": _metric(self._threshold(band), self.goal) if n else None})
            if n == 0 and self.open_ended:
                break
        return out

    def describe(self) -> str:
        how = (f"min_iter {self.min_iter}" if self.min_iter is not None
               else f"max_iter {self.max_iter}, s {self.s}")
        ignored = ("; s is ignored without max_iter, as in W&B"
                   if self.min_iter is not None and self.s is not None else "")
        judged = "its value at its latest band" if self.strict else "its best value so far"
        return (f"hyperband (W&B, {'strict' if self.strict else 'not strict'}): bands at reports "
                f"{_show_steps(self.bands, self.open_ended)} ({how}, eta {self.eta}); a trial "
                f"stops when {judged} is worse than the top 1/{self.eta} of all trials' "
                f"values at that band{ignored}")


def _hyperband_bands(min_iter: int | None, max_iter: int | None, s: int | None,
                     eta: float) -> tuple[list[int], bool]:
    """W&B's bands (duplicates dropped, bands past 2**62 left out)."""
    bands: list[int] = []
    if max_iter is not None:
        band: float = max_iter
        for _ in range(s or 0):
            band /= eta
            if band < 1:
                break
            bands.append(int(band))
        return sorted(set(bands)), False
    band = min_iter
    for _ in range(100):
        if int(band) > _STEP_CAP:
            break
        if not bands or int(band) != bands[-1]:
            bands.append(int(band))
        band *= eta
    return bands, True


class AshaRule(StoppingRule):
    """``type: asha``: asynchronous successive halving as Ray Tune's
    ``AsyncHyperBandScheduler`` (ray/tune/schedulers/async_hyperband.py, ``_Bracket``).

    * Rungs of bracket ``s`` (0 <= s < brackets): ``min_step * eta**(k + s)`` for
      k = 0, 1, ... below ``max_step`` (Tune: ``MAX_RUNGS = int(log(max_t / min_t) /
      log(rf) - s + 1)``; a rung at ``max_t`` itself is never judged in Tune, whose trial
      is stopped at ``max_t`` first). Without ``max_step`` the rungs go on (at most
      1,000 of them, below 2**62).
    * A trial is judged at a rung when it first reaches it, against the values the
      *other* trials recorded at that rung so far (Tune computes the cutoff before
      recording the trial): ``cutoff = np.percentile(rewards, (1 - 1/eta) * 100)``
      (linear interpolation), reward = the value (maximize) or minus the value
      (minimize); the trial stops when its reward < cutoff. So it continues only in the
      top 1/eta of the values recorded so far; with no value recorded it continues; with
      fewer than eta values the percentile interpolates between them (one recorded value:
      the trial must be at least as good as it). Its value is recorded at the rung
      whatever the decision, and keeps counting.
    * Steps are Tune's ``time_attr`` (``training_iteration`` counts from 1: a trial that
      reports steps from 0 reaches rung ``r`` at its ``r + 1``-th report).
    * Brackets: Tune draws a bracket at random with probability proportional to
      ``e**(number of rungs)``; here the same probabilities are used but the draw is a
      hash (sha256) of the trial id, so a replay assigns the same brackets.

    Differences from Tune: ``max_step`` bounds the rungs and does not stop a trial (the
    objective's own length does; Tune's ``stop_last_trials`` would stop it); a report
    that jumps past several rungs is judged (and recorded) at each of them, lowest first,
    with its value (Tune judges only the highest and fills the skipped ones with later
    values); a repeated report of the step a rung was judged at replaces the value and
    judges again; NaN/inf are the worst value (Tune's ``nanpercentile`` skips NaN and a
    NaN trial is never stopped).
    """

    kind = "asha"

    def __init__(self, *, goal: str = "minimize", min_step: int = 1,
                 max_step: int | None = None, eta: float = 3, brackets: int = 1):
        super().__init__(goal)
        self.min_step, self.max_step, self.eta, self.n_brackets = min_step, max_step, eta, brackets
        self.brackets = [_asha_rungs(min_step, max_step, eta, b) for b in range(brackets)]
        if any(not r for r in self.brackets):
            raise SpecError("early_terminate.brackets", brackets,
                            f"at most {len(self.brackets[0])}: bracket s starts at "
                            f"min_step * eta**s, which must be below max_step ({max_step})")
        sizes = np.array([len(r) for r in self.brackets], dtype=float)
        probs = np.e ** (sizes - sizes.max())
        self._cumulative = list(np.cumsum(probs / probs.sum()))
        self._curves = [_Curves(r) for r in self.brackets]
        self._bracket_of: dict[str, int] = {}
        self._q = (1 - 1 / eta) * 100

    def bracket(self, trial_id: str) -> int:
        """The trial's bracket: a hash of its id against Tune's softmax probabilities."""
        b = self._bracket_of.get(trial_id)
        if b is None:
            digest = hashlib.sha256(trial_id.encode("utf-8")).digest()
            u = int.from_bytes(digest[:8], "big") / 2.0**64
            b = next((i for i, c in enumerate(self._cumulative) if u < c),
                     len(self._cumulative) - 1)
            self._bracket_of[trial_id] = b
        return b

    def _cutoff(self, losses: Iterable[float]) -> float | None:
        rewards = [-x for x in losses]
        return _percentile(rewards, self._q) if rewards else None

    def _decide(self, trial_id: str, step: int, loss: float) -> bool:
        curves = self._curves[self.bracket(trial_id)]
        stop = False
        for rung in curves.update(trial_id, step, loss):
            others = [v for t, v in curves.at[rung].items() if t != trial_id]
            cutoff = self._cutoff(others)
            if cutoff is not None and -loss < cutoff:
                stop = True
        return stop

    def rungs(self) -> list[dict]:
        out = []
        for b, (rungs, curves) in enumerate(zip(self.brackets, self._curves)):
            for rung in rungs:
                recorded = curves.at[rung]
                cutoff = self._cutoff(recorded.values())
                out.append({"bracket": b, "step": rung, "trials": len(recorded),
                            "cutoff": None if cutoff is None else _metric(-cutoff, self.goal)})
                if not recorded and self.max_step is None:
                    break
        return out

    def describe(self) -> str:
        bound = f"below max_step {self.max_step}" if self.max_step is not None else "no max_step"
        first = self.brackets[0]
        return (f"asha: rungs at steps {_show_steps(first, self.max_step is None)} "
                f"(min_step * eta**k = {self.min_step} * {self.eta}**k, {bound}), "
                f"{self.n_brackets} bracket{'s' if self.n_brackets > 1 else ''}; a trial "
                f"continues at a rung only in the top 1/{self.eta} of the values recorded "
                f"there so far")


def _asha_rungs(min_step: int, max_step: int | None, eta: float, s: int) -> list[float]:
    rungs: list[float] = []
    k = s
    while True:
        rung = min_step * eta**k
        if (rung > _STEP_CAP or len(rungs) >= _MAX_RUNGS
                or (max_step is not None and rung >= max_step)):
            return rungs
        rungs.append(int(rung) if float(rung).is_integer() else rung)
        k += 1


class MedianRule(StoppingRule):
    """``type: median``: the median stopping rule (Golovin et al., "Google Vizier", 2017),
    with Optuna's ``MedianPruner`` comparison (optuna/pruners/_percentile.py).

    At a report at step ``t >= grace_period`` (Optuna: ``n_warmup_steps``; Tune:
    ``grace_period``), take the *other* trials' values at step ``t`` (each one's value at
    its smallest reported step ``>= t``, so trials that have reached ``t``); when there are
    at least ``min_samples`` of them (Tune: ``min_samples_required``, default 3), the trial
    stops when its best value so far (every value it reported, before the grace period
    too) is strictly worse than their median (``np.median``, Optuna's 50th
    ``nanpercentile``). Vizier and Tune compare with the median of the others' *running
    averages* up to ``t``; Optuna (and this rule) with their values *at* ``t``.

    Differences from Optuna: Optuna counts only completed trials (and waits for
    ``n_startup_trials=5`` of them); here every other trial that reached ``t`` counts,
    running, finished or stopped, because a decision must follow from the reports alone
    (a replay has no completion events); ``min_samples`` plays both ``n_startup_trials``
    and ``n_min_trials``. NaN/inf are the worst value (Optuna: a trial whose values are all
    NaN is pruned; NaN values of others are skipped).
    """

    kind = "median"

    def __init__(self, *, goal: str = "minimize", grace_period: int = 0, min_samples: int = 3):
        super().__init__(goal)
        self.grace_period, self.min_samples = grace_period, min_samples
        self._curves = _Curves()

    def _decide(self, trial_id: str, step: int, loss: float) -> bool:
        if step >= self.grace_period:
            self._curves.add_checkpoint(step)
        self._curves.update(trial_id, step, loss)
        if step < self.grace_period:
            return False
        others = [v for t, v in self._curves.at[step].items() if t != trial_id]
        if len(others) < self.min_samples:
            return False
        return self._curves.best(trial_id) > float(np.median(others))

    def rungs(self) -> list[dict]:
        out = []
        for step in self._curves.checkpoints:
            values = list(self._curves.at[step].values())
            if len(values) >= self.min_samples:
                out.append({"bracket": 0, "step": step, "trials": len(values),
                            "cutoff": _metric(float(np.median(values)), self.goal)})
        return out

    def describe(self) -> str:
        return (f"median: from step {self.grace_period}, a trial stops when its best value "
                f"so far is worse than the median of the other trials' values at the same "
                f"step (at least {self.min_samples} of them)")


# --------------------------------------------------------------------------- parsing


def _number(path: str, x: Any) -> float:
    return number(path, x)


def _int(path: str, x: Any, minimum: int, maximum: int | None = None) -> int:
    expected = (f"an integer in [{minimum}, {maximum}]" if maximum is not None
                else f"an integer >= {minimum}")
    try:
        n = _number(path, x)
    except SpecError:
        raise SpecError(path, x, expected) from None
    if not float(n).is_integer() or abs(n) > _STEP_CAP:
        raise SpecError(path, x, expected)
    n = int(n)
    if n < minimum or (maximum is not None and n > maximum):
        raise SpecError(path, x, expected)
    return n


def _eta(path: str, raw: Mapping[str, Any]) -> float:
    if "eta" not in raw:
        return 3
    try:
        eta = _number(f"{path}.eta", raw["eta"])
    except SpecError:
        raise SpecError(f"{path}.eta", raw["eta"], "a number > 1") from None
    if eta <= 1:
        raise SpecError(f"{path}.eta", raw["eta"], "a number > 1")
    return int(eta) if float(eta).is_integer() else float(eta)


def _check_keys(path: str, raw: Mapping[str, Any], kind: str, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key in allowed:
            continue
        alias = _ALIASES.get(str(key))
        if alias in allowed:
            hint = f"did you mean {alias!r}?"
        else:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
        raise SpecError(f"{path}.{key}", expected=f"a key of type: {kind}", hint=hint)


def _one_of(path: str, raw: Mapping[str, Any], names: tuple[str, str]) -> str | None:
    present = [n for n in names if n in raw]
    if len(present) == 2:
        raise SpecError(f"{path}.{names[1]}", raw[names[1]],
                        f"no {names[1]} next to {names[0]} (the same setting)")
    return present[0] if present else None


def parse_rule(raw: Mapping[str, Any] | None, *, goal: str,
               path: str = "early_terminate") -> StoppingRule | None:
    """The rule of a sweep file's ``early_terminate:`` mapping (None: no early stopping).

    Raises SpecError naming the field, the value and what was expected, e.g.
    ``early_terminate.eta: got 1, expected a number > 1``.
    """
    if raw is None:
        return None
    if goal not in GOALS:
        raise SpecError("metric.goal", goal, "one of " + ", ".join(GOALS))
    if not isinstance(raw, Mapping):
        raise SpecError(path, raw, "a mapping with type: " + ", ".join(TYPES))
    kind = raw.get("type")
    if kind is None:
        raise SpecError(f"{path}.type", expected="one of " + ", ".join(TYPES))
    if not isinstance(kind, str) or kind not in TYPES:
        close = difflib.get_close_matches(str(kind).lower(), TYPES, n=1)
        raise SpecError(f"{path}.type", kind, "one of " + ", ".join(TYPES),
                        f"did you mean {close[0]!r}?" if close else "")
    if kind == "hyperband":
        return _parse_hyperband(raw, goal, path)
    if kind == "asha":
        return _parse_asha(raw, goal, path)
    return _parse_median(raw, goal, path)


def _parse_hyperband(raw: Mapping[str, Any], goal: str, path: str) -> HyperbandRule:
    _check_keys(path, raw, "hyperband", _HYPERBAND_KEYS)
    eta = _eta(path, raw)
    strict = raw.get("strict", True)
    if not isinstance(strict, bool):
        raise SpecError(f"{path}.strict", strict, "true or false")
    if "min_iter" in raw and "max_iter" in raw:
        # W&B's engine takes max_iter (with s) when both are given.
        _int(f"{path}.min_iter", raw["min_iter"], 1)
        warnings.warn(f"{path}: both min_iter and max_iter given; max_iter and s are used "
                      f"and min_iter is ignored, as in W&B", stacklevel=2)
        raw = {k: v for k, v in raw.items() if k != "min_iter"}
    if "min_iter" in raw:
        min_iter = _int(f"{path}.min_iter", raw["min_iter"], 1)
        s = _int(f"{path}.s", raw["s"], 1, _MAX_S) if "s" in raw else None
        return HyperbandRule(goal=goal, min_iter=min_iter, s=s, eta=eta, strict=strict)
    if "max_iter" in raw:
        max_iter = _int(f"{path}.max_iter", raw["max_iter"], 1)
        if "s" not in raw:
            raise SpecError(f"{path}.s", expected="an integer >= 1 with max_iter "
                            "(the number of bands below max_iter)")
        s = _int(f"{path}.s", raw["s"], 1, _MAX_S)
        if max_iter / eta < 1:
            raise SpecError(f"{path}.max_iter", raw["max_iter"],
                            f"an integer >= eta ({eta}): the first band is max_iter / eta")
        return HyperbandRule(goal=goal, max_iter=max_iter, s=s, eta=eta, strict=strict)
    if "s" in raw:
        raise SpecError(f"{path}.max_iter", expected="an integer >= 1 with s (or min_iter)")
    raise SpecError(f"{path}.min_iter", expected="an integer >= 1 (or max_iter with s)")


def _parse_asha(raw: Mapping[str, Any], goal: str, path: str) -> AshaRule:
    _check_keys(path, raw, "asha", _ASHA_KEYS)
    eta = _eta(path, raw)
    key = _one_of(path, raw, ("min_step", "grace_period"))
    min_step = _int(f"{path}.{key}", raw[key], 1) if key else 1
    max_step = None
    if "max_step" in raw:
        max_step = _int(f"{path}.max_step", raw["max_step"], 1)
        if max_step <= min_step:
            raise SpecError(f"{path}.max_step", raw["max_step"],
                            f"an integer > {key or 'min_step'} ({min_step})")
    brackets = _int(f"{path}.brackets", raw["brackets"], 1, _MAX_S) if "brackets" in raw else 1
    if max_step is not None:
        available = len(_asha_rungs(min_step, max_step, eta, 0))
        if brackets > available:
            raise SpecError(f"{path}.brackets", raw["brackets"],
                            f"an integer in [1, {available}]: bracket s starts at "
                            f"min_step * eta**s, which must be below max_step ({max_step})")
    return AshaRule(goal=goal, min_step=min_step, max_step=max_step, eta=eta, brackets=brackets)


def _parse_median(raw: Mapping[str, Any], goal: str, path: str) -> MedianRule:
    _check_keys(path, raw, "median", _MEDIAN_KEYS)
    key = _one_of(path, raw, ("grace_period", "min_step"))
    grace = _int(f"{path}.{key}", raw[key], 0) if key else 0
    min_samples = (_int(f"{path}.min_samples", raw["min_samples"], 1)
                   if "min_samples" in raw else 3)
    return MedianRule(goal=goal, grace_period=grace, min_samples=min_samples)


def replay(rule: StoppingRule, reports: Iterable[tuple[str, int, float]]) -> set[str]:
    """Feed stored reports (in the order they arrived) into a fresh rule; the ids it stops.

    A rule is a deterministic function of its reports, so this gives the decisions the
    live rule made (a driver rerun after a crash rebuilds its rule this way).
    """
    if rule._reports or rule._stopped:
        raise ValueError("replay needs a fresh rule (this one has already seen reports)")
    stopped: set[str] = set()
    for trial_id, step, value in reports:
        if rule.report(trial_id, step, value):
            stopped.add(trial_id)
    return stopped


__all__ = [
    "AshaRule",
    "HyperbandRule",
    "MedianRule",
    "StoppingRule",
    "parse_rule",
    "replay",
]
