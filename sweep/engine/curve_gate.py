"""Which intermediate reports of running trials the driver stores now, so that a trial
that runs again from a checkpoint stores every step of its curve once. No Ray.

Reports arrive while trials run (the report hub). A trial that checkpoints may die and
run again from its last checkpoint, reporting again the steps after it: those reports
of the dead attempt must never reach the curves table. So once a trial has committed
a checkpoint, its reports are held here until a later checkpoint covers them (they can
never be redone) or the trial ends; a dead attempt's held reports are dropped. Reports
at or below a step already stored (those a restored attempt sends back from its
checkpoint) are dropped too; after a driver restart ``seed`` says what is stored.

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
        self._stored: dict[str, int] = {}  # trial -> highest step stored (checkpointing)
        self._held: dict[str, dict[int, Report]] = {}

    def admit(self, reports: Sequence[Report]) -> tuple[list[Report], list[Report]]:
        """(the reports that are new, those to store now) of a batch of reports."""
        fresh: list[Report] = []
        ready: list[Report] = []
        for report in reports:
            tid = report.trial_id
            high = self._stored.get(tid)
            if high is None and not report.checkpoint:
                fresh.append(report)
                ready.append(report)  # not (yet) a checkpointing trial: stored as it comes
                continue
            if high is not None and report.step <= high:
                continue  # stored already (a restored attempt sends its reports again)
            fresh.append(report)
            held = self._held.setdefault(tid, {})
            held[report.step] = report  # a step reported again: the last one counts
            if report.checkpoint:
                ready.extend(held.pop(step) for step in sorted(held) if step <= report.step)
                self._stored[tid] = report.step
        return fresh, ready

    def end(self, trial_id: str, last_step: int | None) -> list[Report]:
        """The trial ended with its report at ``last_step``: its held reports up to there
        (all of them when None), to store; a dead attempt's beyond it are dropped."""
        held = self._held.pop(trial_id, {})
        self._stored.pop(trial_id, None)
        return [held[s] for s in sorted(held) if last_step is None or s <= last_step]

    def drop(self, trial_id: str) -> None:
        """The trial's attempt died: what it reported after its last checkpoint will be
        reported again by the next attempt."""
        self._held.pop(trial_id, None)

    def seed(self, stored: Iterable[tuple[str, int]]) -> None:
        """Trials that checkpointed before this driver started, with the highest step of
        each already in the curves table."""
        for trial_id, step in stored:
            self._stored[trial_id] = max(step, self._stored.get(trial_id, step))

    def held_steps(self, trial_id: str) -> list[int]:
        return sorted(self._held.get(trial_id, {}))


__all__ = ["CurveGate"]
