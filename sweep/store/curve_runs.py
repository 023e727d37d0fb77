"""A trial's curve as its last run left it, when the trial ran more than once.

A trial can run again from an earlier step than it had reached: a retry after its worker
or node was lost, a rerun after the driver was killed, with no checkpoint covering the
steps it had reported (with one, the driver stores each step once already). Both runs'
reports are stored, as they arrived: the stopping rules replay them all, as they saw
them live. A curve drawn or read from them should show one run, not two interleaved:
in arrival order, a report of a step that is *below* the trial's highest step so far
and was stored before starts a new run, and the earlier run's reports from that step on
give way to the new one's. A step reported twice in a row (the same run repeating
itself) is not a new run and both reports stay.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"trial_id": ["t"] * 5, "step": [0, 1, 2, 0, 1],
    ...                    "seq": [0, 1, 2, 3, 4], "metrics.loss": [9, 8, 7, 6, 5]})
    >>> last_runs(df).sort_values("step")["metrics.loss"].tolist()
    [6, 5]
"""

from __future__ import annotations

import pandas as pd


def last_runs(curves: pd.DataFrame) -> pd.DataFrame:
    """``curves`` with each trial's reports of a run that a later run replaced left out
    (see the module); the rows kept are unchanged, in no particular order."""
    if curves.empty or "step" not in curves.columns:
        return curves
    repeated = curves.duplicated(["trial_id", "step"], keep=False)
    if not repeated.any():  # the common case: every trial ran once
        return curves
    ids = set(curves.loc[repeated, "trial_id"])
    mine = curves["trial_id"].isin(ids)
    kept = [_one_run(rows) for _, rows in _in_arrival_order(curves[mine])
            .groupby("trial_id", sort=False)]
    return pd.concat([curves[~mine], *kept])


def _in_arrival_order(df: pd.DataFrame) -> pd.DataFrame:
    """By arrival number (``seq``); rows stored before there were arrival numbers first,
    by time (as ``ResultsReader.arrivals`` orders them)."""
    keys = pd.DataFrame(index=df.index)
    seq = df["seq"] if "seq" in df.columns else pd.Series(pd.NA, index=df.index)
    keys["numbered"] = seq.notna()
    keys["seq"] = pd.to_numeric(seq, errors="coerce").fillna(0)
    keys["time"] = pd.to_numeric(df["time"], errors="coerce") if "time" in df.columns else 0
    order = keys.sort_values(["numbered", "seq", "time"], kind="stable").index
    return df.loc[order]


def _one_run(rows: pd.DataFrame) -> pd.DataFrame:
    """One trial's rows in arrival order, less those a later run replaced."""
    kept: list[tuple[int, object]] = []  # (step, index label)
    steps: set[int] = set()  # the steps in kept
    top = None
    for label, step in zip(rows.index, rows["step"].tolist(), strict=True):
        if top is not None and step < top and step in steps:
            kept = [(s, i) for s, i in kept if s < step]  # a new run from this step
            steps = {s for s, _ in kept}
            top = max(steps, default=None)
        kept.append((step, label))
        steps.add(step)
        top = step if top is None else max(top, step)
    return rows.loc[[i for _, i in kept]]


__all__ = ["last_runs"]
