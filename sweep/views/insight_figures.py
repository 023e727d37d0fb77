"""Figures that answer "how is it going" and "what matters", shared by the HTML report and
the live dashboard (like ``sweep.views.figures``, plotly is passed in as ``go``):

* ``best_so_far_figure``: the best metric so far against wall time or against the count
  of finished trials (buttons switch), one line per stage and one for the whole sweep;
* ``importance_figure``: each parameter's share of the metric's variance (fANOVA, see
  ``sweep.views.importance``), alone and with interactions, with its spread.

Example:
    >>> import plotly.graph_objects as go                       # doctest: +SKIP
    >>> fig = best_so_far_figure(go, prepare(df, "loss", "minimize", scales))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.metric import Metric
from .figures import ReportData, esc, stage_colour
from .importance import Importance

__all__ = ["best_so_far_figure", "best_so_far_points", "importance_figure"]

_MARGIN = {"l": 60, "r": 20, "t": 70, "b": 50}
OVERALL = "#222"


def _finish_times(df: pd.DataFrame) -> np.ndarray:
    """``finished_at`` as datetime64[ns] in UTC (NaT where missing)."""
    if "finished_at" not in df.columns:
        return np.full(len(df), np.datetime64("NaT", "ns"))
    times = pd.to_datetime(df["finished_at"], utc=True, errors="coerce")
    return times.array.tz_convert(None).to_numpy().astype("datetime64[ns]")


def best_so_far_points(data: ReportData, stage: Any = None) -> pd.DataFrame:
    """Where the best metric so far improved (and where the series ends): columns
    ``count`` (trials finished, any status, of the whole sweep), ``time``, ``value``,
    ``trial_id``. ``stage``: only that stage's trials compete (counts stay the sweep's).

    Example: ``best_so_far_points(data)["value"].iloc[-1]`` is the best so far.
    """
    return _best_so_far(_FinishOrder(data), data.goal, stage)


class _FinishOrder:
    """The trials in the order they finished (no time: last, by row), as arrays."""

    def __init__(self, data: ReportData):
        df = data.df
        times = _finish_times(df)
        keys = np.where(np.isnat(times), np.iinfo(np.int64).max, times.astype("int64"))
        order = np.argsort(keys, kind="stable")
        self.times = times[order]
        self.metric = df["_metric"].to_numpy(dtype=float)[order]
        self.ok = (df["status"].to_numpy() == "ok")[order] & np.isfinite(self.metric)
        self.stage = df["stage"].to_numpy()[order]
        self.ids = df["trial_id"].to_numpy()[order]


def _best_so_far(rows: _FinishOrder, goal: str, stage: Any) -> pd.DataFrame:
    ok = rows.ok if stage is None else rows.ok & (rows.stage == stage)
    sign = Metric("_", goal).sign
    keyed = np.where(ok, sign * rows.metric, np.inf)
    best = np.minimum.accumulate(keyed) if len(keyed) else keyed
    improved = np.flatnonzero(ok & (keyed <= best) & np.r_[True, best[1:] < best[:-1]])
    if not len(improved):
        return pd.DataFrame({"count": [], "time": [], "value": [], "trial_id": []})
    last = len(keyed) - 1 if stage is None else int(np.flatnonzero(rows.stage == stage)[-1])
    at = np.unique(np.r_[improved, last])
    return pd.DataFrame({"count": at + 1, "time": rows.times[at], "value": sign * best[at],
                         "trial_id": rows.ids[at]})


def best_so_far_figure(go: Any, data: ReportData) -> Any:
    """The best metric so far, per stage and for the whole sweep, against wall time and
    (a button away) against the count of finished trials.

    Example: ``best_so_far_figure(go, prepare(df, "loss", "minimize", {}))``
    """
    series = [("all stages", None, OVERALL, 3.0)]
    if len(data.stages) > 1:
        series += [(f"stage {esc(s)}", s, stage_colour(s, data.stages), 1.5)
                   for s in data.stages]
    fig = go.Figure()
    rows = _FinishOrder(data)
    has_time = bool((~np.isnat(rows.times)).any())
    axes = ("time", "count") if has_time else ("count",)
    for axis in axes:
        for name, stage, colour, width in series:
            pts = _best_so_far(rows, data.goal, stage)
            if not len(pts):
                continue
            first = axis == axes[0]
            fig.add_trace(go.Scatter(
                x=pts[axis].to_numpy(), y=pts["value"].to_numpy(), mode="lines+markers",
                name=name, line={"shape": "hv", "color": colour, "width": width},
                marker={"size": 5, "color": colour}, legendgroup=name, visible=first,
                showlegend=first, meta=axis, customdata=[esc(t) for t in pts["trial_id"]],
                hovertemplate=(f"{esc(data.metric)}=%{{y:.6g}}<br>trial %{{customdata}}"
                               f"<extra>{name}</extra>"),
            ))
    layout: dict[str, Any] = {}
    if has_time:
        on_time = [t.meta == "time" for t in fig.data]
        on_count = [not v for v in on_time]
        layout["updatemenus"] = [{
            "type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.02,
            "yanchor": "bottom", "showactive": True, "active": 0, "buttons": [
                {"label": "by wall time", "method": "update",
                 "args": [{"visible": on_time, "showlegend": on_time},
                          {"xaxis.title.text": "finished at", "xaxis.type": "date"}]},
                {"label": "by trials finished", "method": "update",
                 "args": [{"visible": on_count, "showlegend": on_count},
                          {"xaxis.title.text": "trials finished", "xaxis.type": "linear"}]},
            ]}]
    fig.update_layout(
        title={"text": f"best {esc(data.metric)} so far ({esc(data.goal)})"},
        xaxis={"title": {"text": "finished at" if has_time else "trials finished"},
               "type": "date" if has_time else "linear"},
        yaxis={"title": {"text": esc(data.metric)}}, height=380, margin=_MARGIN,
        template="plotly_white", hovermode="closest", **layout,
    )
    return fig


def importance_figure(go: Any, imp: Importance) -> Any | None:
    """Each parameter's share of the metric's variance: the total (alone and in
    interactions, with its spread over resamples) and, inside it, the part it explains
    alone. Most important on top; None when there is nothing to show.

    Example: ``importance_figure(go, importance(df, "loss", "minimize", scales))``
    """
    if not imp.params:
        return None
    params = list(reversed(imp.params))  # plotly draws the first bar at the bottom
    names = [esc(p.name) + ("  (log)" if p.scale == "log" else "") for p in params]
    total = [100 * p.total for p in params]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        y=names, x=total, orientation="h", name="total (alone + interactions)",
        marker={"color": "#9ecae1"},
        error_x={"type": "data", "array": [100 * p.total_std for p in params],
                 "color": "#444", "thickness": 1.2, "width": 4},
        hovertemplate="%{y}: %{x:.1f}% of the variance, alone and with others<extra></extra>",
    ))
    fig.add_trace(go.Bar(
        y=names, x=[100 * p.main for p in params], orientation="h", name="alone",
        marker={"color": "#3182bd"}, width=0.45,
        error_x={"type": "data", "array": [100 * p.main_std for p in params],
                 "color": "#111", "thickness": 1, "width": 3},
        hovertemplate="%{y}: %{x:.1f}% of the variance alone<extra></extra>",
    ))
    fit = f"out-of-bag R² {imp.fit_r2:.2f}" if np.isfinite(imp.fit_r2) else ""
    caption = (f"fANOVA; mean ± std over {imp.resamples} resamples of {imp.trials:,} "
               f"trials; {fit}")
    fig.update_layout(
        title={"text": f"parameter importance for {esc(imp.metric)}"
                       f"<br><sup>{esc(caption)}</sup>"},
        barmode="overlay", xaxis={"title": {"text": "% of the metric's variance"},
                                  "range": [0, max(100.0, max(total) * 1.05)]},
        height=max(300, 150 + 34 * len(params)), margin={**_MARGIN, "l": 140, "b": 90},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25, "yanchor": "top", "x": 0},
    )
    return fig
