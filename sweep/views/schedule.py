"""The hyperparameter schedule that population-based training found: the lineage of the
best final trial (its parent, the parent's parent... each from the step it restored),
read back from the results table's ``parent_id`` and ``restored_from`` columns, and
its figure (one step line per parameter against the training step).

Example:
    >>> df = pd.DataFrame({"trial_id": ["a", "b"], "parent_id": [None, "a"],
    ...                    "restored_from": [None, 4], "step": [5, 9],
    ...                    "params.lr": [0.1, 0.05]})
    >>> [(s["trial_id"], s["start"], s["end"], s["params"]["lr"]) for s in lineage(df, "b")]
    [('a', 0, 4, 0.1), ('b', 5, 9, 0.05)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

PARAM_PREFIX = "params."


def _int(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else int(number)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def lineage(df: pd.DataFrame, trial_id: str) -> list[dict[str, Any]]:
    """The segments that made ``trial_id``'s model, oldest first: each with its trial id,
    the steps it ran (``start`` to ``end``, inclusive) and its params. A trial restored
    from its parent's checkpoint at step s ran from s + 1; its parent ran up to s."""
    if "parent_id" not in df.columns or "restored_from" not in df.columns:
        return []
    rows = df.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    params = [c for c in df.columns if c.startswith(PARAM_PREFIX)]
    out: list[dict[str, Any]] = []
    current: str | None = trial_id
    end = _int(rows.loc[trial_id, "step"]) if trial_id in rows.index else None
    seen: set[str] = set()
    while current is not None and current in rows.index and current not in seen:
        seen.add(current)
        row = rows.loc[current]
        parent = row.get("parent_id")
        restored = _int(row.get("restored_from"))
        has_parent = isinstance(parent, str) and restored is not None
        start = restored + 1 if has_parent else 0
        out.append({"trial_id": current, "start": start,
                    "end": end if end is not None else start,
                    "params": {c[len(PARAM_PREFIX):]: _plain(row[c]) for c in params}})
        if not has_parent:
            break
        current, end = parent, restored
    return out[::-1]


def schedule_figure(go: Any, df: pd.DataFrame, trial_id: str,
                    params: Sequence[tuple[str, str]], title: str = "") -> Any | None:
    """One step line per parameter (``params``: (name, scale) pairs, log drawn on a log
    axis) of ``trial_id``'s lineage; None when it has no parent (no schedule to show).

    Example: ``schedule_figure(go, df, best_id, [("lr", "log")])``
    """
    from plotly.subplots import make_subplots

    segments = lineage(df, trial_id)
    if len(segments) < 2 or not params:
        return None
    fig = make_subplots(rows=len(params), cols=1, shared_xaxes=True,
                        subplot_titles=[name for name, _ in params], vertical_spacing=0.08)
    for i, (name, scale) in enumerate(params, start=1):
        xs: list[Any] = []
        ys: list[Any] = []
        for seg in segments:
            xs += [seg["start"], seg["end"] + 1]
            ys += [seg["params"].get(name)] * 2
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", name=name,
                                 hovertemplate="step %{x}: %{y}<extra>" + name + "</extra>"),
                      row=i, col=1)
        starts = [s["start"] for s in segments[1:]]
        fig.add_trace(go.Scatter(x=starts, y=[s["params"].get(name) for s in segments[1:]],
                                 mode="markers", marker={"symbol": "diamond", "size": 7},
                                 name="exploit", showlegend=i == 1,
                                 hovertext=[f"{s['trial_id']} from step {s['start'] - 1}"
                                            for s in segments[1:]]),
                      row=i, col=1)
        if scale == "log":
            fig.update_yaxes(type="log", row=i, col=1)
    fig.update_xaxes(title_text="step", row=len(params), col=1)
    fig.update_layout(title=title or f"schedule of {trial_id} ({len(segments)} segments)",
                      height=220 * len(params) + 120, showlegend=False,
                      margin={"l": 60, "r": 20, "t": 70, "b": 50})
    return fig


__all__ = ["lineage", "schedule_figure"]
