"""Which intermediate reports of running trials the driver stores now, so that a trial
that runs again from a checkpoint stores every step of its curve once. No Ray.

Reports arrive while trials run (the report hub). A trial that checkpoints may die and
run again from its last checkpoint, reporting again the steps after it: those reports
of the dead attempt must never reach the curves table. So once a trial has committed
a checkpoint, its reports are held here until a later checkpoint covers them (they can
never be redone) or the trial ends; a dead attempt's held reports are dropped. Reports
of a step already stored (those a restored attempt sends back from its checkpoint) are
dropped too; after a driver restart ``seed`` says what is stored. The steps stored are
kept as a set, not a high-water mark: a dead attempt's last reports may never reach the
driver (lost with the worker) while its checkpoint committed, and the next attempt's
restored reports fill that gap after its later steps are stored.

A trial that never checkpointed is stored as its reports come, as before.

Example:
    >>> gate = CurveGate()
    >>> new, store = gate.admit([Report("t", 0, {}, checkpoint=True), Report("t", 1, {})])
    >>> [r.step for r in store], gate.held_steps("t")
    ([0], [1])
    >>> gate.drop("t"); [r.step for r in gate.admit([Report("t", 0, {})])[1]]
    []
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..core.records import Report


class CurveGate:
    """Holds the reports of checkpointing trials until they are safe to store."""

    def __init__(self) -> None:
        self._stored: dict[str, set[int]] = {}  # trial -> steps stored (checkpointing)
        self._held: dict[str, dict[int, Report]] = {}
        # trial -> highest step stored before its first checkpoint (stored as it came;
        # a restored attempt sends those steps again). One number, not a set: a trial
        # that never checkpoints may report millions of steps.
        self._early: dict[str, int] = {}

    def admit(self, reports: Sequence[Report]) -> tuple[list[Report], list[Report]]:
        """(the reports that are new, those to store now) of a batch of reports."""
        fresh: list[Report] = []
        ready: list[Report] = []
        for report in reports:
            tid = report.trial_id
            stored = self._stored.get(tid)
            early = self._early.get(tid, -1)
            if stored is None and not report.checkpoint:
                fresh.append(report)
                ready.append(report)  # not (yet) a checkpointing trial: stored as it comes
                self._early[tid] = max(early, report.step)
                continue
            if (stored is not None and report.step in stored) or report.step <= early:
                continue  # stored already (a restored attempt sends its reports again)
            fresh.append(report)
            held = self._held.setdefault(tid, {})
            held[report.step] = report  # a step reported again: the last one counts
            if report.checkpoint:
                steps = [step for step in sorted(held) if step <= report.step]
                ready.extend(held.pop(step) for step in steps)
                self._stored.setdefault(tid, set()).update(steps)
        return fresh, ready

    def end(self, trial_id: str, last_step: int | None) -> list[Report]:
        """The trial ended with its report at ``last_step``: its held reports up to there
        (all of them when None), to store; a dead attempt's beyond it are dropped."""
        held = self._held.pop(trial_id, {})
        self._stored.pop(trial_id, None)
        self._early.pop(trial_id, None)
        return [held[s] for s in sorted(held) if last_step is None or s <= last_step]

    def drop(self, trial_id: str) -> None:
        """The trial's attempt died: what it reported after its last checkpoint will be
        reported again by the next attempt."""
        self._held.pop(trial_id, None)

    def seed(self, stored: Iterable[tuple[str, Iterable[int]]]) -> None:
        """Trials that checkpointed before this driver started, with the steps of each
        already in the curves table."""
        for trial_id, steps in stored:
            self._stored.setdefault(trial_id, set()).update(steps)

    def held_steps(self, trial_id: str) -> list[int]:
        return sorted(self._held.get(trial_id, {}))


__all__ = ["CurveGate"]
