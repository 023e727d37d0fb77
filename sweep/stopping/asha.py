"""``type: asha``: asynchronous successive halving as Ray Tune's ``AsyncHyperBandScheduler``
(rungs at ``min_step * eta**k``, a trial continues in the top 1/eta of a rung).

Example:
    >>> from sweep.core.metric import Metric
    >>> rule = AshaRule(Metric("loss"), min_step=1, eta=2)
    >>> [rule.should_stop(t, 1, v) for t, v in [("a", 0.5), ("b", 0.9)]]
    [False, True]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.errors import SpecError
from ..core.metric import Metric
from .base import STEP_CAP, Curves, StoppingRule, percentile, show_steps, value_of
from .settings import MAX_S, check_keys, setting_eta, setting_int, synonym

MAX_RUNGS = 1000  # an eta barely above 1 would otherwise make millions of rungs


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

    * A report at ``max_step`` or past it is never judged: the trial has run every step and
      is finished, whatever rung it first reaches with that report (a rung below
      ``max_step`` that a step gap or a non-integer ``eta`` leaves unreached until then).
      Its value is recorded at those rungs all the same. (Tune: a trial at ``max_t`` is
      stopped as completed before any rung is judged.)

    Differences from Tune: ``max_step`` bounds the rungs and does not stop a trial (the
    objective's own length does; Tune's ``stop_last_trials`` would stop it); a report
    that jumps past several rungs is judged (and recorded) at each of them, lowest first,
    with its value (Tune judges only the highest and fills the skipped ones with later
    values); a repeated report of the step a rung was judged at replaces the value and
    judges again; NaN/inf are the worst value (Tune's ``nanpercentile`` skips NaN and a
    NaN trial is never stopped), a cutoff between a NaN and a number lying past every number
    (``base.percentile``).
    """

    kind = "asha"
    KEYS = ("type", "min_step", "grace_period", "max_step", "eta", "brackets")

    def __init__(self, metric: Metric, *, min_step: int = 1,
                 max_step: int | None = None, eta: float = 3, brackets: int = 1):
        super().__init__(metric)
        self.min_step, self.max_step, self.eta, self.n_brackets = min_step, max_step, eta, brackets
        self.brackets = [_asha_rungs(min_step, max_step, eta, b) for b in range(brackets)]
        if any(not r for r in self.brackets):
            raise SpecError("early_terminate.brackets", brackets,
                            f"at most {len(self.brackets[0])}: bracket s starts at "
                            f"min_step * eta**s, which must be below max_step ({max_step})")
        sizes = np.array([len(r) for r in self.brackets], dtype=float)
        probs = np.e ** (sizes - sizes.max())
        self._cumulative = list(np.cumsum(probs / probs.sum()))
        self._curves = [Curves(r) for r in self.brackets]
        self._bracket_of: dict[str, int] = {}
        self._q = (1 - 1 / eta) * 100

    @classmethod
    def from_dict(cls, raw: Any, metric: Metric, path: str = "early_terminate") -> AshaRule:
        """``{type: asha, min_step | grace_period, max_step, eta, brackets}`` as a rule.

        Example: ``AshaRule.from_dict({"type": "asha", "max_step": 27}, Metric("loss"))``
        """
        check_keys(path, raw, cls.kind, cls.KEYS)
        eta = setting_eta(path, raw)
        key = synonym(path, raw, ("min_step", "grace_period"))
        min_step = setting_int(f"{path}.{key}", raw[key], 1) if key else 1
        max_step = None
        if "max_step" in raw:
            max_step = setting_int(f"{path}.max_step", raw["max_step"], 1)
            if max_step <= min_step:
                raise SpecError(f"{path}.max_step", raw["max_step"],
                                f"an integer > {key or 'min_step'} ({min_step})")
        brackets = (setting_int(f"{path}.brackets", raw["brackets"], 1, MAX_S)
                    if "brackets" in raw else 1)
        if max_step is not None:
            available = len(_asha_rungs(min_step, max_step, eta, 0))
            if brackets > available:
                raise SpecError(f"{path}.brackets", raw["brackets"],
                                f"an integer in [1, {available}]: bracket s starts at "
                                f"min_step * eta**s, which must be below max_step ({max_step})")
        return cls(metric, min_step=min_step, max_step=max_step, eta=eta, brackets=brackets)

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
        return percentile(rewards, self._q) if rewards else None

    def _decide(self, trial_id: str, step: int, loss: float) -> bool:
        curves = self._curves[self.bracket(trial_id)]
        rungs = curves.update(trial_id, step, loss)
        if self.max_step is not None and step >= self.max_step:
            return False  # it has run every step: finished, whatever rung it reaches here
        stop = False
        for rung in rungs:
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
                            "cutoff": None if cutoff is None else value_of(-cutoff, self.metric)})
                if not recorded and self.max_step is None:
                    break
        return out

    def describe(self) -> str:
        bound = f"below max_step {self.max_step}" if self.max_step is not None else "no max_step"
        first = self.brackets[0]
        return (f"asha: rungs at steps {show_steps(first, self.max_step is None)} "
                f"(min_step * eta**k = {self.min_step} * {self.eta}**k, {bound}), "
                f"{self.n_brackets} bracket{'s' if self.n_brackets > 1 else ''}; a trial "
                f"continues at a rung only in the top 1/{self.eta} of the values recorded "
                f"there so far")


def _asha_rungs(min_step: int, max_step: int | None, eta: float, s: int) -> list[float]:
    rungs: list[float] = []
    k = s
    while True:
        rung = min_step * eta**k
        if (rung > STEP_CAP or len(rungs) >= MAX_RUNGS
                or (max_step is not None and rung >= max_step)):
            return rungs
        rungs.append(int(rung) if float(rung).is_integer() else rung)
        k += 1


__all__ = ["AshaRule"]
