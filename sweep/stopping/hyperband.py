"""``type: hyperband``: W&B's own early terminator (bands of reports, ``strict``).

Example:
    >>> from sweep.core.metric import Metric
    >>> rule = HyperbandRule(Metric("loss"), min_iter=1, eta=2)
    >>> [rule.should_stop(t, 1, v) for t, v in [("a", 0.5), ("b", 0.4), ("c", 0.9)]]
    [False, False, True]
"""

from __future__ import annotations

import bisect
import math
import warnings
from typing import Any

from ..core.errors import SpecError
from ..core.metric import Metric
from .base import STEP_CAP, Curves, Points, StoppingRule, show_steps, value_of
from .settings import MAX_S, check_keys, setting_eta, setting_int


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
    KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")

    def __init__(self, metric: Metric, *, min_iter: int | None = None,
                 max_iter: int | None = None, s: int | None = None, eta: float = 3,
                 strict: bool = True):
        super().__init__(metric)
        if (min_iter is None) == (max_iter is None):
            raise SpecError("early_terminate", None, "one of min_iter, or max_iter with s")
        self.min_iter, self.max_iter, self.s, self.eta = min_iter, max_iter, s, eta
        self.strict = bool(strict)
        self.bands, self.open_ended = _hyperband_bands(min_iter, max_iter, s, eta)
        if not self.bands:
            raise SpecError("early_terminate.max_iter", max_iter,
                            f"an integer >= eta ({eta}): the first band is max_iter / eta")
        self._r = 1.0 / eta
        self._curves = Curves(self.bands)  # in iterations (W&B's history index + 1)
        self._iterations: dict[str, Points] = {}  # trial -> step -> iteration
        self._cache: dict[int, float] = {}

    @classmethod
    def from_dict(cls, raw: Any, metric: Metric, path: str = "early_terminate") -> HyperbandRule:
        """``{type: hyperband, min_iter | max_iter + s, eta, strict}`` as a rule.

        Example: ``HyperbandRule.from_dict({"type": "hyperband", "min_iter": 3}, Metric("loss"))``
        """
        check_keys(path, raw, cls.kind, cls.KEYS)
        eta = setting_eta(path, raw)
        strict = raw.get("strict", True)
        if not isinstance(strict, bool):
            raise SpecError(f"{path}.strict", strict, "true or false")
        if "min_iter" in raw and "max_iter" in raw:
            # W&B's engine takes max_iter (with s) when both are given.
            setting_int(f"{path}.min_iter", raw["min_iter"], 1)
            warnings.warn(f"{path}: both min_iter and max_iter given; max_iter and s are used "
                          f"and min_iter is ignored, as in W&B", stacklevel=2)
            raw = {k: v for k, v in raw.items() if k != "min_iter"}
        if "min_iter" in raw:
            min_iter = setting_int(f"{path}.min_iter", raw["min_iter"], 1)
            s = setting_int(f"{path}.s", raw["s"], 1, MAX_S) if "s" in raw else None
            return cls(metric, min_iter=min_iter, s=s, eta=eta, strict=strict)
        if "max_iter" in raw:
            max_iter = setting_int(f"{path}.max_iter", raw["max_iter"], 1)
            if "s" not in raw:
                raise SpecError(f"{path}.s", expected="an integer >= 1 with max_iter "
                                "(the number of bands below max_iter)")
            s = setting_int(f"{path}.s", raw["s"], 1, MAX_S)
            if max_iter / eta < 1:
                raise SpecError(f"{path}.max_iter", raw["max_iter"],
                                f"an integer >= eta ({eta}): the first band is max_iter / eta")
            return cls(metric, max_iter=max_iter, s=s, eta=eta, strict=strict)
        if "s" in raw:
            raise SpecError(f"{path}.max_iter", expected="an integer >= 1 with s (or min_iter)")
        raise SpecError(f"{path}.min_iter", expected="an integer >= 1 (or max_iter with s)")

    def _threshold(self, band: int) -> float:
        cached = self._cache.get(band)
        if cached is None:
            ordered = sorted(self._curves.at[band].values())
            cached = ordered[int(self._r * len(ordered))] if ordered else math.inf
            self._cache[band] = cached
        return cached

    def _decide(self, trial_id: str, step: int, loss: float) -> bool:
        iterations = self._iterations.get(trial_id)
        if iterations is None:
            iterations = self._iterations[trial_id] = Points("q")
        iteration = iterations.get(step)
        if iteration is None:
            iteration = len(iterations) + 1
            iterations.put(step, iteration)
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
                        "cutoff": value_of(self._threshold(band), self.metric) if n else None})
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
                f"{show_steps(self.bands, self.open_ended)} ({how}, eta {self.eta}); a trial "
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
        if int(band) > STEP_CAP:
            break
        if not bands or int(band) != bands[-1]:
            bands.append(int(band))
        band *= eta
    return bands, True


__all__ = ["HyperbandRule"]
