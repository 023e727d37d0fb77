"""A self-contained HTML report of a sweep's results table.

``build_report`` turns the results table (one row per trial, see ``sweep.results``) into
one HTML document that works offline: plotly's JavaScript is embedded once, every figure
is drawn from inline JSON, and nothing is fetched from the network. The report holds

* a summary: sweep name, trials by stage and status, the best trial;
* the best trial of each stage and the overall top 10;
* one scatter per non-constant parameter of the objective metric against that parameter
  (log axis for ``log`` parameters, categorical axis for categorical ones, colour by
  stage), with the refine stages' boxes shaded and their seed trials marked;
* a parallel-coordinates view of all parameters and the metric;
* the trials that cannot be ranked (``ok`` but NaN/inf metric) and the failed ones.

Only trials with status ``ok`` and a finite metric are ranked and plotted.

Plotly is an optional dependency (``pip install 'sweep[report]'``); it is imported inside
the functions. This module must not import ray.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "sweep": ["demo"] * 2, "stage": [0, 0], "trial_id": ["t0", "t1"],
    ...     "parent_id": [None, None], "status": ["ok", "ok"],
    ...     "params.lr": [1e-3, 1e-2], "metrics.loss": [0.5, 0.4],
    ... })
    >>> html_text = build_report(df, metric="loss", goal="minimize", scales={"lr": "log"})
    >>> "demo" in html_text and html_text.startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

import contextlib
import html
import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .ranking import rank
from .ranking import unranked as unranked_trials
from .trial import STATUSES

__all__ = ["build_report", "write_report"]

PARAM_PREFIX = "params."
METRIC_PREFIX = "metrics."
SCALES = ("linear", "log", "categorical", "constant")
GOALS = ("minimize", "maximize")
TOP_N = 10
MAX_EXTRA_METRICS = 6
MAX_ERROR_CHARS = 600
MAX_LISTED = 200  # rows shown in the not-ranked and failed tables
INSTALL_HINT = "pip install 'sweep[report]'"

# Plotly's default qualitative palette; stage i gets colour i (cycled).
_PALETTE = (
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A",
    "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
)
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_DASH = "\u2014"


def _require_plotly() -> tuple[Any, Any]:
    """Import plotly lazily; a clear RuntimeError says how to install it when missing."""
    try:
        import plotly.graph_objects as go
        from plotly.offline import get_plotlyjs
    except ImportError as exc:  # pragma: no cover - exercised only without plotly
        raise RuntimeError(
            f"the sweep HTML report needs plotly, which is not installed: {INSTALL_HINT}"
        ) from exc
    return go, get_plotlyjs


# --------------------------------------------------------------------------- formatting


class _Raw(str):
    """A string that is already HTML (not escaped again by ``_cell``)."""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _fmt(value: Any) -> str:
    """Plain-text form of one table value (not escaped)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return _DASH
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


def _or_none(value: Any) -> Any:
    """Missing values (None, NaN, NA) as None, shown as a dash rather than "NaN"."""
    return None if _is_missing(value) else value


def _cell(value: Any) -> str:
    return value if isinstance(value, _Raw) else _esc(_fmt(value))


def _table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_cell(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    cls_attr = f' class="{_esc(cls)}"' if cls else ""
    return (
        f"<table{cls_attr}><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"
    )


def _cat_label(value: Any) -> str:
    """The label a categorical value gets on an axis (1.0 and 1 read the same)."""
    if _is_missing(value):
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        return str(int(v)) if v.is_integer() else f"{v:g}"
    return str(value)


def _cat_sort_key(value: Any) -> tuple[int, Any]:
    if _is_missing(value):
        return (2, "")
    if isinstance(value, (bool, np.bool_, numbers.Real)):
        return (0, float(value))
    return (1, str(value))


def _stage_colour(stage: Any, stages: Sequence[Any]) -> str:
    try:
        i = list(stages).index(stage)
    except ValueError:
        i = len(stages) + (int(stage) if isinstance(stage, numbers.Integral) else 0)
    return _PALETTE[i % len(_PALETTE)]


def _stage_int(value: Any) -> Any:
    return int(value) if isinstance(value, numbers.Integral) else value


# --------------------------------------------------------------------------- table prep


@dataclass
class _Param:
    name: str
    column: str
    scale: str  # the scale actually used for plotting
    note: str = ""


@dataclass
class _Data:
    df: pd.DataFrame
    metric: str
    metric_col: str
    goal: str
    params: list[_Param]
    constants: dict[str, Any]
    stages: list[Any]
    ranked: pd.DataFrame
    unranked: pd.DataFrame
    failed: pd.DataFrame
    extra_metrics: list[str]
    seed_ids: set[str]
    notes: list[str] = field(default_factory=list)


def _infer_scale(series: pd.Series) -> str:
    values = series.dropna()
    if values.nunique() <= 1:
        return "constant"
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    return "linear"


def _resolve_params(
    df: pd.DataFrame, scales: Mapping[str, str], notes: list[str]
) -> tuple[list[_Param], dict[str, Any]]:
    for name, scale in scales.items():
        if scale not in SCALES:
            raise ValueError(
                f"scales[{name!r}]: got {scale!r}, expected one of {', '.join(SCALES)}"
            )
    in_df = [c[len(PARAM_PREFIX):] for c in df.columns if c.startswith(PARAM_PREFIX)]
    ordered = [n for n in scales if n in in_df] + [n for n in in_df if n not in scales]
    params: list[_Param] = []
    constants: dict[str, Any] = {}
    for name in ordered:
        column = PARAM_PREFIX + name
        series = df[column]
        scale = scales.get(name) or _infer_scale(series)
        note = ""
        non_null = series.dropna()
        if scale == "constant":
            constants[name] = non_null.iloc[0] if len(non_null) else None
            continue
        is_bool = pd.api.types.is_bool_dtype(series) or (
            len(non_null) > 0 and all(isinstance(v, (bool, np.bool_)) for v in non_null)
        )
        if scale in ("linear", "log"):
            numeric = pd.to_numeric(non_null, errors="coerce")
            if is_bool or numeric.isna().any():
                note = f"{name}: values are not numeric; drawn as categorical"
                scale = "categorical"
            elif scale == "log" and (numeric <= 0).any():
                note = f"{name}: has values <= 0; drawn on a linear axis instead of log"
                scale = "linear"
        if note:
            notes.append(note)
        params.append(_Param(name=name, column=column, scale=scale, note=note))
    return params, constants


def _prepare(
    df: pd.DataFrame,
    metric: str,
    goal: str,
    scales: Mapping[str, str],
    boxes: Sequence[Mapping[str, Any]],
) -> _Data:
    notes: list[str] = []
    df = df.reset_index(drop=True).copy()
    defaults: dict[str, Any] = {
        "sweep": None, "stage": 0, "trial_id": None, "parent_id": None,
        "status": "ok", "error": None, "attempts": None, "node": None,
    }
    for column, default in defaults.items():
        if column not in df.columns:
            df[column] = default
    df["trial_id"] = [
        f"row{i}" if _is_missing(t) else str(t) for i, t in enumerate(df["trial_id"])
    ]
    df["status"] = ["?" if _is_missing(s) else str(s) for s in df["status"]]
    df["stage"] = [_stage_int(s) for s in df["stage"]]

    metric_col = METRIC_PREFIX + metric
    if metric_col in df.columns:
        values = pd.to_numeric(df[metric_col], errors="coerce").astype("float64")
    else:
        if len(df):
            present = sorted(c[len(METRIC_PREFIX):] for c in df.columns
                             if c.startswith(METRIC_PREFIX))
            notes.append(
                f"the table has no column {metric_col!r}"
                + (f" (metrics present: {', '.join(present)})" if present else "")
                + "; no trial can be ranked"
            )
        values = pd.Series(np.nan, index=df.index, dtype="float64")
    df["_metric"] = values

    params, constants = _resolve_params(df, scales, notes)
    stages = sorted(set(df["stage"]), key=_cat_sort_key)

    # The one ranking rule of the project (sweep.ranking): ok, finite, ties by trial id.
    ranked = rank(df, metric, goal)
    unranked = unranked_trials(df, metric) if metric_col in df.columns else df[
        df["status"] == "ok"]
    failed = df[df["status"] != "ok"]

    extra_metrics = [
        c for c in df.columns if c.startswith(METRIC_PREFIX) and c != metric_col
    ][:MAX_EXTRA_METRICS]

    seed_ids = {str(b["seed"]) for b in boxes if not _is_missing(b.get("seed"))}
    seed_ids |= {str(p) for p in df["parent_id"] if not _is_missing(p)}

    return _Data(
        df=df, metric=metric, metric_col=metric_col, goal=goal, params=params,
        constants=constants, stages=stages, ranked=ranked, unranked=unranked,
        failed=failed, extra_metrics=extra_metrics, seed_ids=seed_ids, notes=notes,
    )


# --------------------------------------------------------------------------- sections


def _summary(data: _Data, title: str) -> str:
    df = data.df
    sweeps = sorted({str(s) for s in df["sweep"] if not _is_missing(s)})
    statuses = [s for s in STATUSES if (df["status"] == s).any()] + sorted(
        set(df["status"]) - set(STATUSES)
    )
    items = [
        ("sweep", ", ".join(sweeps) if sweeps else _DASH),
        ("objective", f"{data.goal} {data.metric}"),
        ("trials", f"{len(df)} ({len(data.ranked)} ranked, {len(data.unranked)} not ranked, "
                   f"{len(data.failed)} not ok)"),
    ]
    started = _times(df, "started_at")
    finished = _times(df, "finished_at")
    if started is not None and finished is not None:
        items.append(("time", f"{_fmt(started.min())} to {_fmt(finished.max())}"))
    if "duration_s" in df.columns:
        total = pd.to_numeric(df["duration_s"], errors="coerce").sum()
        items.append(("trial time", f"{total / 3600:.3g} h in total"))
    if data.constants:
        items.append(
            ("constants", ", ".join(f"{k}={_fmt(v)}" for k, v in data.constants.items()))
        )
    parts = [f"<h1>{_esc(title)}</h1>", '<dl class="summary">']
    parts += [f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items]
    parts.append("</dl>")

    rows = []
    for stage in data.stages:
        sub = df[df["stage"] == stage]
        counts = [int((sub["status"] == s).sum()) for s in statuses]
        rows.append([stage, *counts, len(sub)])
    rows.append([_Raw("<b>all</b>"), *[int((df["status"] == s).sum()) for s in statuses],
                 len(df)])
    parts.append("<h3>Trials by stage and status</h3>")
    parts.append(_table(["stage", *statuses, "total"], rows, "counts"))

    if len(data.ranked):
        best = data.ranked.iloc[0]
        params = ", ".join(f"{p.name}={_fmt(best[p.column])}" for p in data.params)
        parts.append(
            f'<p class="best">Best trial: <b>{_esc(best["trial_id"])}</b> '
            f"(stage {_esc(_fmt(best['stage']))}) with {_esc(data.metric)} = "
            f"<b>{_esc(_fmt(best['_metric']))}</b>"
            + (f"<br>{_esc(params)}" if params else "")
            + "</p>"
        )
    if data.notes:
        parts.append('<ul class="notes">')
        parts += [f"<li>{_esc(n)}</li>" for n in data.notes]
        parts.append("</ul>")
    return "\n".join(parts)


def _times(df: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in df.columns:
        return None
    times = pd.to_datetime(df[column], utc=True, errors="coerce").dropna()
    return times if len(times) else None


def _trial_rows(data: _Data, rows: pd.DataFrame, rank: bool) -> tuple[list[str], list[list]]:
    headers: list[str] = (["rank"] if rank else []) + ["trial", "stage", "parent", data.metric]
    headers += [c[len(METRIC_PREFIX):] for c in data.extra_metrics]
    headers += [p.name for p in data.params]
    out = []
    for i, (_, row) in enumerate(rows.iterrows(), start=1):
        trial = _esc(row["trial_id"])
        if row["trial_id"] in data.seed_ids:
            trial += ' <span class="seed" title="seed of a refine stage">seed</span>'
        cells: list[Any] = [i] if rank else []
        cells += [_Raw(trial), row["stage"], _or_none(row["parent_id"]), row["_metric"]]
        cells += [row[c] for c in data.extra_metrics]
        cells += [_or_none(row[p.column]) for p in data.params]
        out.append(cells)
    return headers, out


def _best_tables(data: _Data) -> str:
    parts = ["<h2>Best trial per stage</h2>"]
    best = data.ranked.groupby("stage", sort=True).head(1).sort_values("stage", kind="stable")
    headers, rows = _trial_rows(data, best, rank=False)
    parts.append(_table(headers, rows, "trials"))
    parts.append(f"<h2>Top {TOP_N}</h2>")
    headers, rows = _trial_rows(data, data.ranked.head(TOP_N), rank=True)
    parts.append(_table(headers, rows, "trials"))
    return "\n".join(parts)


def _unranked_and_failed(data: _Data) -> str:
    parts = []
    if len(data.unranked):
        parts.append(f"<h2>Not ranked ({len(data.unranked)})</h2>")
        parts.append(
            f"<p>These trials finished but their {_esc(data.metric)} is NaN, infinite or "
            "missing; they are left out of the rankings and the plots.</p>"
        )
        headers, rows = _trial_rows(data, data.unranked.head(MAX_LISTED), rank=False)
        parts.append(_table(headers, rows, "trials"))
        parts.append(_more(len(data.unranked)))
    if len(data.failed):
        parts.append(f"<h2>Failed, timed out or cancelled ({len(data.failed)})</h2>")
        rows = []
        for _, row in data.failed.head(MAX_LISTED).iterrows():
            error = row["error"]
            text = _DASH if _is_missing(error) else str(error)
            if len(text) > MAX_ERROR_CHARS:
                text = text[:MAX_ERROR_CHARS] + " ..."
            rows.append([
                row["trial_id"], row["stage"], row["status"], row["attempts"], row["node"],
                _Raw(f"<pre>{_esc(text)}</pre>"),
            ])
        parts.append(
            _table(["trial", "stage", "status", "attempts", "node", "error"], rows, "failed")
        )
        parts.append(_more(len(data.failed)))
    return "\n".join(p for p in parts if p)


def _more(total: int) -> str:
    if total <= MAX_LISTED:
        return ""
    return f"<p>... and {total - MAX_LISTED} more (see the results table).</p>"


def _boxes_table(boxes: Sequence[Mapping[str, Any]]) -> str:
    if not boxes:
        return ""
    rows = []
    for box in boxes:
        bounds = box.get("bounds") or {}
        cats = box.get("categories") or {}
        region = [f"{k} in [{_fmt(v[0])}, {_fmt(v[1])}]" for k, v in bounds.items()]
        region += [f"{k} in {{{', '.join(_cat_label(x) for x in v)}}}" for k, v in cats.items()]
        rows.append([box.get("stage"), box.get("seed"), "; ".join(region) or _DASH])
    return "<h3>Refine boxes</h3>\n" + _table(["stage", "seed", "region"], rows, "boxes")


# --------------------------------------------------------------------------- figures


def _categories(data: _Data, param: _Param, boxes: Sequence[Mapping[str, Any]]) -> list[str]:
    values = list(data.ranked[param.column])
    for box in boxes:
        values += list((box.get("categories") or {}).get(param.name, []))
    seen: dict[str, Any] = {}
    for v in sorted(values, key=_cat_sort_key):
        seen.setdefault(_cat_label(v), v)
    return list(seen)


def _box_bounds(box: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    bounds = (box.get("bounds") or {}).get(name)
    if bounds is None:
        return None
    if isinstance(bounds, Mapping):
        bounds = (bounds.get("lo", bounds.get("low")), bounds.get("hi", bounds.get("high")))
    if isinstance(bounds, (str, bytes)) or len(bounds) != 2:
        raise ValueError(f"boxes: bounds of {name!r} must be [lo, hi], got {bounds!r}")
    lo, hi = float(bounds[0]), float(bounds[1])
    return (min(lo, hi), max(lo, hi))


def _scatter(go: Any, data: _Data, param: _Param, boxes: Sequence[Mapping[str, Any]]) -> Any:
    fig = go.Figure()
    ranked = data.ranked
    categorical = param.scale == "categorical"
    cats = _categories(data, param, boxes) if categorical else []
    name = _esc(param.name)
    metric = _esc(data.metric)

    def xs(frame: pd.DataFrame) -> tuple[list[Any], np.ndarray]:
        col = frame[param.column]
        if categorical:
            return [_esc(_cat_label(v)) for v in col], np.ones(len(col), dtype=bool)
        num = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        keep = np.isfinite(num)
        return list(num[keep]), keep

    hover = (
        "trial %{customdata}<br>" + name + "=%{x}<br>" + metric + "=%{y:.6g}<extra>%{fullData.name}"
        "</extra>"
    )
    for stage in data.stages:
        sub = ranked[ranked["stage"] == stage]
        if not len(sub):
            continue
        x, keep = xs(sub)
        fig.add_trace(go.Scatter(
            x=x, y=sub["_metric"].to_numpy()[keep], mode="markers",
            name=f"stage {_esc(_fmt(stage))}",
            marker={"color": _stage_colour(stage, data.stages), "size": 7, "opacity": 0.75,
                    "line": {"width": 0.5, "color": "white"}},
            customdata=[_esc(t) for t in sub["trial_id"].to_numpy()[keep]],
            hovertemplate=hover,
        ))
    seeds = ranked[ranked["trial_id"].isin(data.seed_ids)]
    if len(seeds):
        x, keep = xs(seeds)
        fig.add_trace(go.Scatter(
            x=x, y=seeds["_metric"].to_numpy()[keep], mode="markers", name="refine seeds",
            marker={"symbol": "star-open", "size": 15, "color": "black",
                    "line": {"width": 1.5}},
            customdata=[_esc(t) for t in seeds["trial_id"].to_numpy()[keep]],
            hovertemplate=hover,
        ))

    legend_done: set[Any] = set()
    for box in boxes:
        stage = _stage_int(box.get("stage"))
        spans: list[tuple[float, float]] = []
        if categorical:
            chosen = (box.get("categories") or {}).get(param.name)
            if chosen is not None:
                labels = {_cat_label(v) for v in chosen}
                spans = [(i - 0.45, i + 0.45) for i, c in enumerate(cats) if c in labels]
        else:
            bounds = _box_bounds(box, param.name)
            if bounds is not None:
                spans = [bounds]
        for x0, x1 in spans:
            first = stage not in legend_done
            legend_done.add(stage)
            fig.add_vrect(
                x0=x0, x1=x1, fillcolor=_stage_colour(stage, data.stages), opacity=0.15,
                line_width=0, layer="below", showlegend=first,
                name=f"stage {_esc(_fmt(stage))} boxes", legendgroup=f"box-{stage}",
            )

    xaxis: dict[str, Any] = {"title": {"text": name}}
    if param.scale == "log":
        xaxis.update(type="log", exponentformat="e")
    elif categorical:
        xaxis.update(type="category", categoryorder="array", categoryarray=[_esc(c) for c in cats])
    else:
        xaxis["type"] = "linear"
    fig.update_layout(
        title={"text": f"{metric} vs {name}" + (" (log scale)" if param.scale == "log" else "")},
        xaxis=xaxis,
        yaxis={"title": {"text": metric}},
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        template="plotly_white",
        legend={"title": {"text": "stage"}},
    )
    return fig


def _parcoords(go: Any, data: _Data) -> Any | None:
    ranked = data.ranked
    dims: list[dict[str, Any]] = []
    if len(data.stages) > 1:
        stage_vals = pd.to_numeric(ranked["stage"], errors="coerce")
        if stage_vals.notna().all():
            dims.append({"label": "stage", "values": stage_vals.to_numpy(dtype=float),
                         "tickvals": [float(s) for s in sorted(set(stage_vals))]})
    for param in data.params:
        col = ranked[param.column]
        label = _esc(param.name)
        if param.scale == "categorical":
            cats = _categories(data, param, [])
            index = {c: i for i, c in enumerate(cats)}
            codes = np.array([index[_cat_label(v)] for v in col], dtype=float)
            dims.append({"label": label, "values": codes,
                         "tickvals": list(range(len(cats))),
                         "ticktext": [_esc(c) for c in cats],
                         "range": [-0.25, max(len(cats) - 1, 0) + 0.25]})
            continue
        values = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        dim: dict[str, Any] = {"label": label}
        if param.scale == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.log10(values)
            dim["label"] = f"log10({label})"
            finite = values[np.isfinite(values)]
            if len(finite):
                decades = list(range(math.ceil(finite.min()), math.floor(finite.max()) + 1))
                if len(decades) >= 2:
                    dim["tickvals"] = [float(d) for d in decades]
                    dim["ticktext"] = [f"{10.0 ** d:g}" for d in decades]
        dim["values"] = values
        dims.append(dim)
    if not any(d["label"] != "stage" for d in dims):
        return None
    metric = ranked["_metric"].to_numpy(dtype=float)
    dims.append({"label": _esc(data.metric), "values": metric})
    fig = go.Figure(go.Parcoords(
        dimensions=dims,
        line={"color": metric, "colorscale": "Viridis",
              "reversescale": data.goal == "minimize", "showscale": True,
              "colorbar": {"title": {"text": _esc(data.metric)}, "x": 1.04}},
    ))
    fig.update_layout(
        height=520, margin={"l": 80, "r": 110, "t": 110, "b": 30}, template="plotly_white",
        title={"text": "all ranked trials (brighter = better)", "y": 0.97},
    )
    return fig


def _fig_html(fig: Any, div_id: str) -> str:
    return str(fig.to_html(
        include_plotlyjs=False, full_html=False, div_id=div_id, config=_PLOT_CONFIG,
    ))


# --------------------------------------------------------------------------- document

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #222; background: #fff; }
h1 { margin-bottom: 8px; }
h2 { margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
td pre { margin: 0; white-space: pre-wrap; max-width: 70ch; font-size: 12px; }
.scroll { overflow-x: auto; }
.seed { font-size: 11px; background: #222; color: #fff; border-radius: 3px; padding: 0 4px; }
.notes li { color: #8a5a00; }
.message { padding: 12px 16px; background: #fff4e5; border: 1px solid #f0c36d;
           border-radius: 4px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr));
         gap: 16px; }
.plots > section { min-width: 0; border: 1px solid #eee; }
"""


def build_report(
    df: pd.DataFrame,
    *,
    metric: str,
    goal: str,
    scales: dict[str, str],
    boxes: list[dict] | None = None,
    title: str = "sweep report",
) -> str:
    """Render a sweep's results table as one self-contained, offline HTML document.

    Args:
        df: the results table, one row per trial (``sweep``, ``stage``, ``trial_id``,
            ``parent_id``, ``status``, ``params.<name>``, ``metrics.<name>``, ``error``, ...).
        metric: the objective metric's name without the ``metrics.`` prefix.
        goal: ``"minimize"`` or ``"maximize"``.
        scales: each parameter's name (no prefix) to ``linear``, ``log``, ``categorical``
            or ``constant``; constants are not plotted. Parameters missing here are
            inferred from their column (bool/str: categorical, numbers: linear).
        boxes: the refine stages' regions, e.g. ``[{"stage": 1, "seed": "t3",
            "bounds": {"lr": [1e-3, 1e-2]}, "categories": {"opt": ["adam"]}}]`` in raw
            parameter units; each is shaded on the parameter plots and its seed is marked.
        title: the document's title (escaped).

    Returns:
        The HTML text; plotly's JavaScript is embedded once, so no network is needed.

    Raises:
        RuntimeError: plotly is not installed (``pip install 'sweep[report]'``).
        ValueError: ``goal`` or a scale is not one of the known values.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"sweep": ["s", "s"], "stage": [0, 0],
        ...     "trial_id": ["a", "b"], "status": ["ok", "failed"],
        ...     "params.opt": ["adam", "sgd"], "metrics.acc": [0.9, float("nan")]})
        >>> text = build_report(df, metric="acc", goal="maximize",
        ...                     scales={"opt": "categorical"})
        >>> "Best trial" in text
        True
    """
    go, get_plotlyjs = _require_plotly()
    if goal not in GOALS:
        raise ValueError(f"goal: got {goal!r}, expected 'minimize' or 'maximize'")
    if metric.startswith(METRIC_PREFIX):
        metric = metric[len(METRIC_PREFIX):]
    boxes = list(boxes or [])
    body: list[str] = []
    figures: list[str] = []

    if df is None or len(df) == 0:
        body.append(f"<h1>{_esc(title)}</h1>")
        body.append('<p class="message">The results table is empty: no trial has run yet.</p>')
    else:
        data = _prepare(df, metric, goal, scales, boxes)
        body.append(_summary(data, title))
        if len(data.ranked) == 0:
            if len(data.failed) == len(data.df):
                msg = (f"All {len(data.df)} trials failed, timed out or were cancelled: "
                       "there is nothing to rank or plot. Their errors are listed below.")
            else:
                msg = (f"No trial has a finite {data.metric}: there is nothing to rank or "
                       "plot. The trials are listed below.")
            body.append(f'<p class="message">{_esc(msg)}</p>')
        else:
            body.append('<div class="scroll">' + _best_tables(data) + "</div>")
            body.append("<h2>Metric against each parameter</h2>")
            if data.params:
                body.append(
                    "<p>Ranked trials only, coloured by stage; shaded bands are the refine "
                    "stages' boxes and stars mark their seed trials.</p>"
                )
                body.append('<div class="plots">')
                for i, param in enumerate(data.params):
                    div_id = f"sweep-param-{i}"
                    figures.append(div_id)
                    fig_html = _fig_html(_scatter(go, data, param, boxes), div_id)
                    body.append(
                        f'<section class="param-plot" data-param="{_esc(param.name)}" '
                        f'data-scale="{_esc(param.scale)}">{fig_html}</section>'
                    )
                body.append("</div>")
            else:
                body.append("<p>No parameter varies in this sweep.</p>")
            body.append(_boxes_table(boxes))
            par = _parcoords(go, data) if data.params else None
            if par is not None:
                body.append("<h2>Parallel coordinates</h2>")
                body.append(
                    "<p>Categorical parameters are drawn as integer ticks with their labels; "
                    "log-scaled ones as log10. Drag along an axis to filter.</p>"
                )
                figures.append("sweep-parcoords")
                body.append(
                    '<section class="parcoords">'
                    + _fig_html(par, "sweep-parcoords")
                    + "</section>"
                )
        body.append('<div class="scroll">' + _unranked_and_failed(data) + "</div>")

    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="sweep.report">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
    ]
    if figures:
        # Embedded once; every figure below draws with include_plotlyjs=False.
        head.append('<script type="text/javascript">window.PlotlyConfig = '
                    "{MathJaxConfig: 'local'};</script>")
        head.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    head.append("</head>")
    return "\n".join([*head, "<body>", *[b for b in body if b], "</body>", "</html>", ""])


def write_report(html: str, path: str | os.PathLike[str]) -> None:
    """Write the report atomically: to a temporary name beside ``path``, then rename.

    A reader never sees a half-written file; on failure the temporary file is removed.
    Missing parent directories are created.

    Example:
        >>> import pathlib, tempfile
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
        >>> write_report("<!DOCTYPE html><html></html>", out)
        >>> out.read_text(encoding="utf-8")
        '<!DOCTYPE html><html></html>'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(html)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
