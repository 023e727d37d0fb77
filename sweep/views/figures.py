"""The figures of the sweep HTML report, and the small helpers they share with
``sweep.views.html``.

Every figure is a plotly ``Figure`` built from a ``ReportData`` (the prepared results
table, see ``sweep.views.html``):

* ``scatter_figure``: the metric against one parameter, one trace per stage, the refine
  boxes shaded and their seed trials starred;
* ``parcoords_figure``: all parameters (and the metric, when there is one) as parallel
  coordinates;
* ``distribution_figure``: for a sweep without a metric, the values each stage sampled of
  one parameter (histograms, or counts per category);
* ``curves_figure``: the learning curves (the metric against the step, one line per
  trial; trials stopped early faded) with the stopping rule's rungs marked.

Large sweeps are sampled, never drawn whole: ``sample_rows`` keeps the best trials and a
uniform sample of the rest (fixed seed, so the same table gives the same page), and each
figure says in its title how many trials it shows. Plotly is imported by the caller and
passed in as ``go`` (``plotly.graph_objects``), so importing this module needs no plotly.

Example:
    >>> frame = pd.DataFrame({"trial_id": [f"t{i}" for i in range(10)]})
    >>> s = sample_rows(frame, max_points=4, keep_top=2)
    >>> list(s.rows.trial_id[:2]), len(s.rows), s.caption()
    (['t0', 't1'], 4, '4 of 10 trials shown (the best 2 and a uniform sample of the rest)')
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DASH", "MAX_CURVES", "MAX_POINTS", "METRIC_PREFIX", "PARAM_PREFIX", "TOP_KEPT", "CurveSet",
    "Param", "ReportData", "Sample", "cat_label", "cat_sort_key", "categories",
    "curves_figure", "distribution_figure", "esc", "fmt", "is_missing", "parcoords_figure",
    "sample_rows", "scatter_figure", "select_curves", "stage_colour", "stage_int",
]

PARAM_PREFIX = "params."
METRIC_PREFIX = "metrics."
MAX_POINTS = 20_000  # points per scatter / lines in the parallel coordinates
TOP_KEPT = 1_000  # the best trials are always drawn, whatever the sample
MAX_CURVES = 300  # learning curves drawn at most
MAX_RUNG_LINES = 200
WEBGL_ABOVE = 5_000  # a scatter with more points is drawn with WebGL (scattergl)
SAMPLE_SEED = 0
HIST_BINS = 40
DASH = "\u2014"

# Plotly's default qualitative palette; stage i gets colour i (cycled).
PALETTE = (
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A",
    "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
)
_MARGIN = {"l": 60, "r": 20, "t": 70, "b": 50}


# --------------------------------------------------------------------------- values


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML (quotes too). Example: ``esc("<a>")`` is
    ``'&lt;a&gt;'``."""
    return html.escape(str(value), quote=True)


def is_missing(value: Any) -> bool:
    """None, NA, NaT or a float NaN. Example: ``is_missing(float("nan"))`` is True."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt(value: Any) -> str:
    """Plain-text form of one table value (not escaped): numbers to 6 significant
    digits, missing values as a dash. Example: ``fmt(1 / 3)`` is ``'0.333333'``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)


def cat_label(value: Any) -> str:
    """The label a categorical value gets on an axis (1.0 and 1 read the same).
    Example: ``cat_label(2.0)`` is ``'2'``."""
    if is_missing(value):
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        return str(int(v)) if v.is_integer() else f"{v:g}"
    return str(value)


def cat_sort_key(value: Any) -> tuple[int, Any]:
    """Sort key of categorical values: numbers, then strings, then missing values.
    Example: ``sorted(["b", 2, None], key=cat_sort_key)`` is ``[2, 'b', None]``."""
    if is_missing(value):
        return (2, "")
    if isinstance(value, (bool, np.bool_, numbers.Real)):
        return (0, float(value))
    return (1, str(value))


def categories(values: Iterable[Any], extra: Iterable[Any] = ()) -> list[str]:
    """The distinct labels of ``values`` (and ``extra``), sorted by ``cat_sort_key``.
    Example: ``categories(["sgd", "adam", "sgd"])`` is ``['adam', 'sgd']``."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    try:
        distinct = list(series.unique())
    except TypeError:  # unhashable values (lists): sort them all
        distinct = list(series)
    distinct += list(extra)
    seen: dict[str, Any] = {}
    for v in sorted(distinct, key=cat_sort_key):
        seen.setdefault(cat_label(v), v)
    return list(seen)


def stage_colour(stage: Any, stages: Sequence[Any]) -> str:
    """The colour of ``stage`` (its position in ``stages``, cycled through the palette).
    Example: ``stage_colour(1, [0, 1])`` is ``'#EF553B'``."""
    try:
        i = list(stages).index(stage)
    except ValueError:
        i = len(stages) + (int(stage) if isinstance(stage, numbers.Integral) else 0)
    return PALETTE[i % len(PALETTE)]


def stage_int(value: Any) -> Any:
    """An integral stage as a Python int; anything else unchanged.
    Example: ``stage_int(np.int64(2))`` is ``2``."""
    return int(value) if isinstance(value, numbers.Integral) else value


def _stage_name(stage: Any) -> str:
    return f"stage {esc(fmt(stage))}"


def _as_float(value: Any) -> float:
    """``float(value)``, or NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


# --------------------------------------------------------------------------- data


@dataclass
class Param:
    """One plotted parameter: its name, its column and the scale it is drawn with."""

    name: str
    column: str
    scale: str  # the scale actually used for plotting: linear, log or categorical
    note: str = ""


@dataclass
class ReportData:
    """The prepared results table (see ``sweep.views.html``). ``metric`` is None for a sweep
    without a metric; then ``ranked`` and ``unranked`` are empty. ``ranked`` is best
    first and holds the metric in column ``_metric``."""

    df: pd.DataFrame
    metric: str | None
    metric_col: str | None
    goal: str
    params: list[Param]
    constants: dict[str, list[tuple[list[Any], Any]]]  # name -> [(stages, value)]
    stages: list[Any]
    ranked: pd.DataFrame
    unranked: pd.DataFrame
    stopped: pd.DataFrame
    failed: pd.DataFrame
    extra_metrics: list[str]
    anchor_ids: set[str]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    """The rows a figure draws: ``rows`` (in the order of the frame they came from) out of
    ``total``, the first ``top`` of which were kept whole (the best trials)."""

    rows: pd.DataFrame
    total: int
    top: int

    @property
    def sampled(self) -> bool:
        return len(self.rows) < self.total

    def caption(self, noun: str = "trials") -> str:
        """"20,000 of 1,000,000 trials shown (...)", or "" when nothing was left out."""
        if not self.sampled:
            return ""
        how = (f"the best {self.top:,} and a uniform sample of the rest" if self.top
               else "a uniform sample")
        return f"{len(self.rows):,} of {self.total:,} {noun} shown ({how})"


def sample_rows(frame: pd.DataFrame, max_points: int = MAX_POINTS, keep_top: int = TOP_KEPT,
                always: Iterable[str] = ()) -> Sample:
    """At most ``max_points`` rows of ``frame``: its first ``keep_top`` rows (the frame is
    best first), the rows whose ``trial_id`` is in ``always`` (up to ``keep_top`` of them)
    and a uniform sample of the rest, drawn with a fixed seed. Row order is kept.

    Example: ``sample_rows(ranked, 20_000).caption()`` gives
    ``"20,000 of 1,000,000 trials shown (the best 1,000 and ...)"``.
    """
    total = len(frame)
    if total <= max_points:
        return Sample(frame, total, total)
    top = max(0, min(keep_top, max_points))
    chosen = np.zeros(total, dtype=bool)
    chosen[:top] = True
    always = set(always)
    if always and top:
        wanted = frame["trial_id"].isin(always).to_numpy() & ~chosen
        wanted &= np.cumsum(wanted) <= min(top, max_points - top)
        chosen |= wanted
    rest = np.flatnonzero(~chosen)
    k = max_points - int(chosen.sum())
    if k > 0 and len(rest):
        rng = np.random.default_rng(SAMPLE_SEED)
        chosen[rng.choice(rest, size=min(k, len(rest)), replace=False)] = True
    return Sample(frame[chosen], total, top)


def _title(text: str, caption: str = "") -> dict[str, Any]:
    """A figure title with an optional smaller second line."""
    return {"text": text + (f"<br><sup>{esc(caption)}</sup>" if caption else "")}


# --------------------------------------------------------------------------- scatter


def _axis_values(frame: pd.DataFrame, param: Param) -> tuple[Any, np.ndarray]:
    """The x values of ``frame`` for ``param`` and the mask of rows that have one."""
    col = frame[param.column]
    if param.scale == "categorical":
        return [esc(cat_label(v)) for v in col], np.ones(len(col), dtype=bool)
    num = _numeric(col)
    keep = np.isfinite(num)
    return num[keep], keep


def _points(go: Any, frame: pd.DataFrame, data: ReportData, param: Param, name: str,
            marker: dict[str, Any], webgl: bool) -> Any:
    """One trace of ``frame``'s trials: the metric against ``param``."""
    x, keep = _axis_values(frame, param)
    hover = (f"trial %{{customdata}}<br>{esc(param.name)}=%{{x}}<br>{esc(data.metric)}"
             "=%{y:.6g}<extra>%{fullData.name}</extra>")
    trace = go.Scattergl if webgl else go.Scatter
    return trace(
        x=x, y=frame["_metric"].to_numpy(dtype=float)[keep], mode="markers", name=name,
        marker=marker, customdata=[esc(t) for t in frame["trial_id"].to_numpy()[keep]],
        hovertemplate=hover,
    )


def _box_spans(box: Mapping[str, Any], param: Param, cats: list[str]) -> list[tuple[float,
                                                                                   float]]:
    """The x ranges a refine box covers on ``param``'s axis."""
    if param.scale == "categorical":
        chosen = (box.get("categories") or {}).get(param.name)
        if chosen is None:
            return []
        labels = {cat_label(v) for v in chosen}
        return [(i - 0.45, i + 0.45) for i, c in enumerate(cats) if c in labels]
    bounds = (box.get("bounds") or {}).get(param.name)
    if bounds is None:
        return []
    if isinstance(bounds, Mapping):
        bounds = (bounds.get("lo", bounds.get("low")), bounds.get("hi", bounds.get("high")))
    if isinstance(bounds, (str, bytes)) or len(bounds) != 2:
        raise ValueError(f"boxes: bounds of {param.name!r} must be [lo, hi], got {bounds!r}")
    lo, hi = float(bounds[0]), float(bounds[1])
    return [(min(lo, hi), max(lo, hi))]


def _shade_boxes(fig: Any, data: ReportData, param: Param,
                 boxes: Sequence[Mapping[str, Any]], cats: list[str]) -> None:
    """Shade each refine box's range on ``param``'s axis, one legend entry per stage."""
    legend_done: set[Any] = set()
    for box in boxes:
        stage = stage_int(box.get("stage"))
        for x0, x1 in _box_spans(box, param, cats):
            fig.add_vrect(
                x0=x0, x1=x1, fillcolor=stage_colour(stage, data.stages), opacity=0.15,
                line_width=0, layer="below", showlegend=stage not in legend_done,
                name=f"{_stage_name(stage)} boxes", legendgroup=f"box-{stage}",
            )
            legend_done.add(stage)


def _x_axis(param: Param, cats: list[str]) -> dict[str, Any]:
    axis: dict[str, Any] = {"title": {"text": esc(param.name)}}
    if param.scale == "log":
        axis.update(type="log", exponentformat="e")
    elif param.scale == "categorical":
        axis.update(type="category", categoryorder="array",
                    categoryarray=[esc(c) for c in cats])
    else:
        axis["type"] = "linear"
    return axis


def scatter_figure(go: Any, data: ReportData, param: Param, sample: Sample,
                   boxes: Sequence[Mapping[str, Any]] = ()) -> Any:
    """The metric against ``param`` for the sampled ranked trials: one trace per stage,
    the refine boxes shaded, their seed trials starred; the title says how many trials
    are shown when some were left out.

    Example: ``scatter_figure(go, data, data.params[0], sample_rows(data.ranked))``
    """
    fig = go.Figure()
    rows = sample.rows
    cats = (categories(data.ranked[param.column],
                       [v for b in boxes for v in (b.get("categories") or {}).get(
                           param.name, [])])
            if param.scale == "categorical" else [])
    webgl = len(rows) > WEBGL_ABOVE
    for stage in data.stages:
        sub = rows[rows["stage"] == stage]
        if len(sub):
            marker = {"color": stage_colour(stage, data.stages), "size": 7, "opacity": 0.75,
                      "line": {"width": 0.5, "color": "white"}}
            fig.add_trace(_points(go, sub, data, param, _stage_name(stage), marker, webgl))
    anchors = rows[rows["trial_id"].isin(data.anchor_ids)]
    if len(anchors):
        marker = {"symbol": "star-open", "size": 15, "color": "black", "line": {"width": 1.5}}
        fig.add_trace(_points(go, anchors, data, param, "refine anchors", marker, False))
    _shade_boxes(fig, data, param, boxes, cats)
    scale_note = " (log scale)" if param.scale == "log" else ""
    fig.update_layout(
        title=_title(f"{esc(data.metric)} vs {esc(param.name)}{scale_note}", sample.caption()),
        xaxis=_x_axis(param, cats), yaxis={"title": {"text": esc(data.metric)}},
        height=420, margin=_MARGIN, template="plotly_white",
        legend={"title": {"text": "stage"}},
    )
    return fig


# --------------------------------------------------------------------------- parcoords


def _categorical_dim(label: str, col: pd.Series, cats: list[str]) -> dict[str, Any]:
    index = {c: i for i, c in enumerate(cats)}
    codes = np.array([index.get(cat_label(v), -1) for v in col], dtype=float)
    return {"label": label, "values": codes, "tickvals": list(range(len(cats))),
            "ticktext": [esc(c) for c in cats],
            "range": [-0.25, max(len(cats) - 1, 0) + 0.25]}


def _numeric_dim(label: str, col: pd.Series, log: bool) -> dict[str, Any]:
    values = _numeric(col)
    if not log:
        return {"label": label, "values": values}
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log10(values)
    dim: dict[str, Any] = {"label": f"log10({label})", "values": values}
    finite = values[np.isfinite(values)]
    if len(finite):
        decades = list(range(math.ceil(finite.min()), math.floor(finite.max()) + 1))
        if len(decades) >= 2:
            dim["tickvals"] = [float(d) for d in decades]
            dim["ticktext"] = [f"{10.0 ** d:g}" for d in decades]
    return dim


def _parcoords_dims(data: ReportData, rows: pd.DataFrame, everyone: pd.DataFrame
                    ) -> list[dict[str, Any]]:
    dims: list[dict[str, Any]] = []
    if len(data.stages) > 1:
        stage_vals = pd.to_numeric(rows["stage"], errors="coerce")
        if stage_vals.notna().all():
            dims.append({"label": "stage", "values": stage_vals.to_numpy(dtype=float),
                         "tickvals": [float(s) for s in sorted(set(stage_vals))]})
    for param in data.params:
        label = esc(param.name)
        if param.scale == "categorical":
            cats = categories(everyone[param.column])
            dims.append(_categorical_dim(label, rows[param.column], cats))
        else:
            dims.append(_numeric_dim(label, rows[param.column], param.scale == "log"))
    return dims


def _stage_colours(data: ReportData, rows: pd.DataFrame) -> dict[str, Any]:
    """Parallel-coordinates line colours by stage (a sweep without a metric)."""
    index = {s: i for i, s in enumerate(data.stages)}
    codes = np.array([index.get(s, 0) for s in rows["stage"]], dtype=float)
    n = max(len(data.stages), 1)
    scale = [[i / max(n - 1, 1), stage_colour(s, data.stages)]
             for i, s in enumerate(data.stages)] if n > 1 else [[0, PALETTE[0]], [1, PALETTE[0]]]
    return {"color": codes, "colorscale": scale, "cmin": 0, "cmax": max(n - 1, 1)}


def parcoords_figure(go: Any, data: ReportData, sample: Sample) -> Any | None:
    """All parameters of the sampled trials as parallel coordinates, coloured by the metric
    (brighter = better), or by stage when the sweep has no metric; None when no parameter
    varies.

    Example: ``parcoords_figure(go, data, sample_rows(data.ranked))``
    """
    rows = sample.rows
    everyone = data.ranked if data.metric is not None else data.df
    dims = _parcoords_dims(data, rows, everyone)
    if not any(d["label"] != "stage" for d in dims):
        return None
    if data.metric is not None:
        metric = rows["_metric"].to_numpy(dtype=float)
        dims.append({"label": esc(data.metric), "values": metric})
        line = {"color": metric, "colorscale": "Viridis",
                "reversescale": data.goal == "minimize", "showscale": True,
                "colorbar": {"title": {"text": esc(data.metric)}, "x": 1.04}}
        text = "all ranked trials (brighter = better)"
    else:
        line = _stage_colours(data, rows)
        text = "all trials, coloured by stage"
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    caption = sample.caption()
    fig.update_layout(
        height=520, margin={"l": 80, "r": 110, "t": 120 if caption else 110, "b": 30},
        template="plotly_white", title={**_title(text, caption), "y": 0.97},
    )
    return fig


# --------------------------------------------------------------------------- distributions


def _category_bars(go: Any, data: ReportData, param: Param) -> tuple[list[Any], list[str]]:
    df = data.df
    cats = categories(df[param.column])
    traces = []
    for stage in data.stages:
        counts = df.loc[df["stage"] == stage, param.column].value_counts(dropna=False)
        by_label: dict[str, int] = {}
        for value, n in counts.items():
            by_label[cat_label(value)] = by_label.get(cat_label(value), 0) + int(n)
        traces.append(go.Bar(
            x=[esc(c) for c in cats], y=[by_label.get(c, 0) for c in cats],
            name=_stage_name(stage), marker={"color": stage_colour(stage, data.stages)},
        ))
    return traces, cats


def _histogram_bars(go: Any, data: ReportData, param: Param) -> list[Any]:
    values = _numeric(data.df[param.column])
    if param.scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.log10(values)
    finite = np.isfinite(values)
    if not finite.any():
        return []
    edges = np.histogram_bin_edges(values[finite], bins=HIST_BINS)
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    stages = data.df["stage"].to_numpy()
    traces = []
    for stage in data.stages:
        mine = finite & (stages == stage)
        if mine.any():
            counts, _ = np.histogram(values[mine], bins=edges)
            traces.append(go.Bar(
                x=centres, y=counts, width=widths, name=_stage_name(stage), opacity=0.6,
                marker={"color": stage_colour(stage, data.stages)},
            ))
    return traces


def _log_ticks(data: ReportData, param: Param) -> dict[str, Any]:
    values = _numeric(data.df[param.column])
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return {}
    lo, hi = np.log10(values.min()), np.log10(values.max())
    decades = list(range(math.floor(lo), math.ceil(hi) + 1))
    return {"tickvals": decades, "ticktext": [f"{10.0 ** d:g}" for d in decades]}


def distribution_figure(go: Any, data: ReportData, param: Param) -> Any:
    """The values of ``param`` that each stage sampled, over all trials (not sampled):
    counts per category, or a histogram (of log10 for ``log`` parameters).

    Example: ``distribution_figure(go, data, data.params[0])``
    """
    fig = go.Figure()
    name = esc(param.name)
    if param.scale == "categorical":
        traces, cats = _category_bars(go, data, param)
        xaxis: dict[str, Any] = {"title": {"text": name}, "type": "category",
                                 "categoryorder": "array",
                                 "categoryarray": [esc(c) for c in cats]}
        barmode = "group"
    else:
        traces = _histogram_bars(go, data, param)
        log = param.scale == "log"
        xaxis = {"title": {"text": f"{name} (log scale)" if log else name}, "type": "linear",
                 **(_log_ticks(data, param) if log else {})}
        barmode = "overlay"
    for trace in traces:
        fig.add_trace(trace)
    fig.update_layout(
        title=_title(f"{name}: values sampled, by stage", f"all {len(data.df):,} trials"),
        xaxis=xaxis, yaxis={"title": {"text": "trials"}}, barmode=barmode, height=420,
        margin=_MARGIN, template="plotly_white", legend={"title": {"text": "stage"}},
    )
    return fig


# --------------------------------------------------------------------------- curves


@dataclass
class CurveSet:
    """The learning curves chosen for drawing: ``points`` (trial_id, stage, step, and the
    value in ``_y``) of the ``trials`` chosen, out of ``total`` trials with a curve; the
    first ``best`` of ``trials`` are the best ranked ones."""

    metric: str
    points: pd.DataFrame
    trials: list[str]
    total: int
    best: int

    def caption(self) -> str:
        if len(self.trials) >= self.total:
            return f"{self.total:,} trials"
        how = (f"the best {self.best:,} and a uniform sample of the rest" if self.best
               else "a uniform sample")
        return f"{len(self.trials):,} of {self.total:,} trials' curves shown ({how})"


def _choose_curves(data: ReportData, ids: np.ndarray, max_curves: int
                   ) -> tuple[list[str], int]:
    """The trial ids to draw: all of them, or the best ranked ones (a third) and a
    uniform sample of the rest; and how many of them are the best ones."""
    if len(ids) <= max_curves:
        return sorted(ids.tolist()), 0
    best: list[str] = []
    if data.metric is not None and len(data.ranked):
        ranked_ids = data.ranked["trial_id"]
        best = ranked_ids[ranked_ids.isin(ids)].drop_duplicates().head(
            max_curves // 3).tolist()
    rest = np.array(sorted(set(ids.tolist()) - set(best)), dtype=object)
    rng = np.random.default_rng(SAMPLE_SEED)
    picked = rng.choice(rest, size=min(max_curves - len(best), len(rest)), replace=False)
    return best + sorted(picked.tolist()), len(best)


def select_curves(data: ReportData, curves: pd.DataFrame | None,
                  max_curves: int = MAX_CURVES) -> CurveSet | None:
    """The learning curves to draw of the sweep's metric (of the curves table's first
    metric when the sweep has none), or None when there is nothing to draw; a note in
    ``data.notes`` says why when the table lacks the metric.

    Example: ``select_curves(data, store.read_curves(), 300)``
    """
    if curves is None or len(curves) == 0 or not {"trial_id", "step"} <= set(curves.columns):
        return None
    present = [c for c in curves.columns if c.startswith(METRIC_PREFIX)]
    column = data.metric_col if data.metric is not None else (present[0] if present else None)
    if column is None or column not in curves.columns:
        if column is not None:
            data.notes.append(f"the curves table has no column {column!r}: "
                              "no learning curves are drawn")
        return None
    y = _numeric(curves[column])
    step = _numeric(curves["step"])
    keep = np.isfinite(y) & np.isfinite(step)
    if not keep.any():
        return None
    stage = curves["stage"].to_numpy() if "stage" in curves.columns else np.zeros(len(y), int)
    points = pd.DataFrame({"trial_id": curves["trial_id"].astype(str).to_numpy()[keep],
                           "stage": stage[keep], "step": step[keep], "_y": y[keep]})
    ids = pd.unique(points["trial_id"])
    chosen, best = _choose_curves(data, np.asarray(ids, dtype=object), max_curves)
    points = points[points["trial_id"].isin(chosen)].sort_values(
        ["trial_id", "step"], kind="stable")
    return CurveSet(column[len(METRIC_PREFIX):], points, chosen, len(ids), best)


def _curve_traces(go: Any, data: ReportData, curves: CurveSet) -> list[Any]:
    """One line per chosen trial, coloured by stage; trials stopped early faded, drawn
    first so the others lie on top."""
    df = data.df[data.df["trial_id"].isin(curves.trials)]
    last = df.drop_duplicates("trial_id", keep="last").set_index("trial_id")["status"]
    status = last.reindex(curves.trials).to_numpy()
    groups = dict(tuple(curves.points.groupby("trial_id", sort=False)))
    order = sorted(range(len(curves.trials)), key=lambda i: status[i] != "stopped")
    traces, legend_done = [], set()
    metric = esc(curves.metric)
    for i in order:
        tid = curves.trials[i]
        pts = groups.get(tid)
        if pts is None:
            continue
        stage = stage_int(pts["stage"].iloc[0])
        stopped = status[i] == "stopped"
        group = _stage_name(stage) + (", stopped early" if stopped else "")
        traces.append(go.Scatter(
            x=pts["step"].to_numpy(), y=pts["_y"].to_numpy(), name=group, legendgroup=group,
            mode="lines" if len(pts) > 1 else "markers", showlegend=group not in legend_done,
            line={"color": stage_colour(stage, data.stages), "width": 1.3},
            marker={"color": stage_colour(stage, data.stages), "size": 5},
            opacity=0.25 if stopped else 0.9,
            hovertemplate=(f"trial {esc(tid)}<br>step=%{{x}}<br>{metric}=%{{y:.6g}}"
                           f"<extra>{group}</extra>"),
        ))
        legend_done.add(group)
    return traces


def _rung_marks(go: Any, fig: Any, rungs: Sequence[Mapping[str, Any]], max_step: float
                ) -> None:
    """A dotted vertical line at each rung's step (those within the curves' steps), and
    a marker at each cutoff whose hover text gives the rung."""
    usable = [(_as_float(r.get("step")), r) for r in rungs]
    usable = [(s, r) for s, r in usable if 0 <= s <= max_step]  # NaN fails both
    steps = sorted({s for s, _ in usable})[:MAX_RUNG_LINES]
    for step in steps:
        fig.add_vline(x=step, line={"dash": "dot", "color": "#333", "width": 1.5},
                      layer="below")
    drawn = set(steps)
    marks = [(s, r) for s, r in usable
             if s in drawn and math.isfinite(_as_float(r.get("cutoff")))]
    if not marks:
        return
    fig.add_trace(go.Scatter(
        x=[s for s, _ in marks], y=[_as_float(r["cutoff"]) for _, r in marks], mode="markers",
        name="rung cutoffs", marker={"symbol": "line-ew-open", "size": 16, "color": "#222",
                                     "line": {"width": 2}},
        hovertext=[esc(f"rung at step {fmt(r.get('step'))}, bracket {fmt(r.get('bracket'))}: "
                       f"cutoff {fmt(r.get('cutoff'))} ({fmt(r.get('trials'))} trials)")
                   for _, r in marks],
        hoverinfo="text",
    ))


def curves_figure(go: Any, data: ReportData, curves: CurveSet,
                  rungs: Sequence[Mapping[str, Any]] = ()) -> Any:
    """The learning curves: the metric against the step, one line per trial, coloured by
    stage, trials stopped early faded; the rungs of the stopping rule dotted.

    Example: ``curves_figure(go, data, select_curves(data, curves), rungs=rule.rungs())``
    """
    fig = go.Figure()
    for trace in _curve_traces(go, data, curves):
        fig.add_trace(trace)
    if rungs:
        _rung_marks(go, fig, rungs, float(curves.points["step"].max()))
    metric = esc(curves.metric)
    fig.update_layout(
        title=_title(f"{metric} by step", curves.caption()),
        xaxis={"title": {"text": "step"}}, yaxis={"title": {"text": metric}},
        height=480, margin=_MARGIN, template="plotly_white",
        legend={"title": {"text": "stage"}}, hovermode="closest",
    )
    return fig
