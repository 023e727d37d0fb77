"""A self-contained HTML report of a sweep's results table (and its learning curves).

``build_report`` turns the results table (one row per trial, see ``sweep.worker.returned``) into
one HTML document that works offline: plotly's JavaScript is embedded once, every figure
is drawn from inline JSON, and nothing is fetched from the network. The report holds

* a summary: sweep name, trials by stage and status, the best trial;
* the best trial of each stage and the overall top 10;
* the best metric so far over wall time and over trials finished, per stage;
* the parameters' importance (``sweep.views.importance``: fANOVA, alone and with
  interactions, with its spread over resamples);
* the learning curves, when a curves table is given (one line per trial, trials stopped
  early faded, the stopping rule's rungs dotted; at most ``max_curves`` lines);
* one scatter per non-constant parameter of the objective metric against that parameter
  (log axis for ``log`` parameters, categorical axis for categorical ones, colour by
  stage), with the refine stages' boxes shaded and their anchor trials marked;
* a parallel-coordinates view of all parameters and the metric;
* the trials that cannot be ranked (``ok`` but NaN/inf metric), those stopped early and
  the failed ones.

Only trials with status ``ok`` and a finite metric are ranked and plotted (the one rule of
``sweep.core.ranking``); trials ``stopped`` early are counted and listed but not ranked. A
sweep without a metric (``metric=None``) ranks nothing: the page says so, lists the trials
in the order they finished and shows, for each parameter, the values each stage sampled.

Large sweeps stay small: every scatter and the parallel coordinates draw at most
``max_points`` trials (the best 1,000 and a uniform sample of the rest, fixed seed), and
the figure's title says so ("20,000 of 1,000,000 trials shown"). The figures live in
``sweep.views.figures``.

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
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.metric import GOALS
from ..core.records import STATUSES
from .figures import (
    DASH,
    MAX_CURVES,
    MAX_POINTS,
    METRIC_PREFIX,
    TOP_KEPT,
    CurveSet,
    Param,
    ReportData,
    cat_label,
    curves_figure,
    distribution_figure,
    esc,
    fmt,
    is_missing,
    parcoords_figure,
    sample_rows,
    scatter_figure,
    select_curves,
)
from .importance import Importance, fanova
from .insight_figures import best_so_far_figure, importance_figure
from .prepare import check_scales, prepare
from .schedule import schedule_figure

__all__ = ["build_report", "write_report"]

TOP_N = 10
MAX_ERROR_CHARS = 600
MAX_LISTED = 200  # rows shown in the not-ranked, stopped, failed and finish-order tables
INSTALL_HINT = "pip install 'sweep[report]'"
NOT_OK = "failed or timed out"

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


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


# --------------------------------------------------------------------------- HTML bits


class _Raw(str):
    """A string that is already HTML (not escaped again by ``_cell``)."""


def _or_none(value: Any) -> Any:
    """Missing values (None, NaN, NA) as None, shown as a dash rather than "NaN"."""
    return None if is_missing(value) else value


def _cell(value: Any) -> str:
    return value if isinstance(value, _Raw) else esc(fmt(value))


def _table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_cell(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    cls_attr = f' class="{esc(cls)}"' if cls else ""
    return (
        f"<table{cls_attr}><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"
    )


def _message(text: str, cls: str = "") -> str:
    return f'<p class="message{" " + cls if cls else ""}">{esc(text)}</p>'


def _more(total: int) -> str:
    if total <= MAX_LISTED:
        return ""
    return f"<p>... and {total - MAX_LISTED:,} more (see the results table).</p>"


@dataclass
class _Page:
    """The body of the document being built and the ids of its figures."""

    go: Any
    parts: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def add(self, *html_parts: str) -> None:
        self.parts += [p for p in html_parts if p]

    def figure(self, fig: Any, div_id: str, cls: str, attrs: str = "") -> str:
        """The figure's HTML in a ``<section class=cls>``; it is counted as a figure."""
        self.figures.append(div_id)
        body = fig.to_html(include_plotlyjs=False, full_html=False, div_id=div_id,
                           config=_PLOT_CONFIG)
        return f'<section class="{cls}"{attrs}>{body}</section>'


@dataclass
class _Options:
    boxes: list[dict]
    curves: pd.DataFrame | None
    rungs: Sequence[Mapping[str, Any]]
    max_points: int
    max_curves: int
    importance: bool = True


# --------------------------------------------------------------------------- summary


def _times(df: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in df.columns:
        return None
    times = pd.to_datetime(df[column], utc=True, errors="coerce").dropna()
    return times if len(times) else None


def _summary_items(data: ReportData) -> list[tuple[str, str]]:
    df = data.df
    sweeps = sorted({str(s) for s in pd.unique(df["sweep"]) if not is_missing(s)})
    if data.metric is None:
        objective = "none: the sweep has no metric, so no trial is ranked"
        counts = f"{int((df['status'] == 'ok').sum()):,} ok"
    else:
        objective = f"{data.goal} {data.metric}"
        counts = f"{len(data.ranked):,} ranked, {len(data.unranked):,} not ranked"
    items = [
        ("sweep", ", ".join(sweeps) if sweeps else DASH),
        ("objective", objective),
        ("trials", f"{len(df):,} ({counts}, {len(data.stopped):,} stopped early, "
                   f"{len(data.failed):,} {NOT_OK})"),
    ]
    started, finished = _times(df, "started_at"), _times(df, "finished_at")
    if started is not None and finished is not None:
        items.append(("time", f"{fmt(started.min())} to {fmt(finished.max())}"))
    if "duration_s" in df.columns:
        total = pd.to_numeric(df["duration_s"], errors="coerce").sum()
        items.append(("trial time", f"{total / 3600:.3g} h in total"))
    if data.constants:
        items.append(("constants", ", ".join(_constant(k, v) for k, v in
                                             data.constants.items())))
    return items


def _constant(name: str, by_stage: list[tuple[list[Any], Any]]) -> str:
    """``epochs=3``, or ``epochs=3 (stage 0), 15 (stages 1, 2)`` when stages differ."""
    if len(by_stage) == 1:
        return f"{name}={fmt(by_stage[0][1])}"
    parts = [f"{fmt(value)} ({'stage' if len(stages) == 1 else 'stages'} "
             f"{', '.join(fmt(s) for s in stages)})" for stages, value in by_stage]
    return f"{name}={', '.join(parts)}"


def _counts_table(data: ReportData) -> str:
    """Trials by stage (rows) and status (columns), with totals."""
    df = data.df
    present = set(pd.unique(df["status"]))
    statuses = [s for s in STATUSES if s in present] + sorted(present - set(STATUSES))
    counts = df.groupby(["stage", "status"], sort=False).size().unstack(fill_value=0)
    counts = counts.reindex(index=data.stages, columns=statuses, fill_value=0)
    rows: list[list[Any]] = [[stage, *map(int, counts.loc[stage]), int(counts.loc[stage].sum())]
                             for stage in data.stages]
    rows.append([_Raw("<b>all</b>"), *map(int, counts.sum()), len(df)])
    return _table(["stage", *statuses, "total"], rows, "counts")


def _best_line(data: ReportData) -> str:
    if not len(data.ranked):
        return ""
    best = data.ranked.iloc[0]
    params = ", ".join(f"{p.name}={fmt(best[p.column])}" for p in data.params)
    return (
        f'<p class="best">Best trial: <b>{esc(best["trial_id"])}</b> '
        f"(stage {esc(fmt(best['stage']))}) with {esc(data.metric)} = "
        f"<b>{esc(fmt(best['_metric']))}</b>"
        + (f"<br>{esc(params)}" if params else "")
        + "</p>"
    )


def _summary(data: ReportData, title: str) -> str:
    parts = [f"<h1>{esc(title)}</h1>", '<dl class="summary">']
    parts += [f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in _summary_items(data)]
    parts += ["</dl>", "<h3>Trials by stage and status</h3>", _counts_table(data),
              _best_line(data)]
    if data.notes:
        parts += ['<ul class="notes">', *[f"<li>{esc(n)}</li>" for n in data.notes], "</ul>"]
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- trial tables


def _trial_columns(data: ReportData, rows: pd.DataFrame, *, status: bool = False,
                   finished: bool = False) -> list[tuple[str, str]]:
    """(header, column) of a table of trials."""
    cols = [("trial", "trial_id"), ("stage", "stage"), ("parent", "parent_id")]
    if status:
        cols.append(("status", "status"))
    if finished and "finished_at" in rows.columns:
        cols.append(("finished", "finished_at"))
    if data.metric is not None:
        cols.append((data.metric, "_metric"))
    if "step" in rows.columns and (rows["status"] == "stopped").any():
        cols.append(("last step", "step"))
    cols += [(c[len(METRIC_PREFIX):], c) for c in data.extra_metrics]
    cols += [(p.name, p.column) for p in data.params]
    return cols


def _trial_table(data: ReportData, rows: pd.DataFrame, *, numbered: str = "",
                 status: bool = False, finished: bool = False) -> str:
    """An HTML table of ``rows`` (trials): id (anchors marked), stage, metrics, params;
    ``numbered`` names a first column that counts the rows."""
    cols = _trial_columns(data, rows, status=status, finished=finished)
    dashed = {"parent_id", "step", *(p.column for p in data.params)}
    values = rows[[c for _, c in cols]].to_numpy(dtype=object)
    out = []
    for i, row in enumerate(values, start=1):
        trial = esc(row[0])
        if row[0] in data.anchor_ids:
            trial += ' <span class="seed" title="anchor of a refine stage">anchor</span>'
        cells = [_Raw(trial)] + [_or_none(v) if c in dashed else v
                                 for (_, c), v in zip(cols[1:], row[1:])]
        out.append(([i] if numbered else []) + cells)
    headers = ([numbered] if numbered else []) + [h for h, _ in cols]
    return _table(headers, out, "trials")


def _best_tables(data: ReportData) -> str:
    best = data.ranked.groupby("stage", sort=True).head(1).sort_values("stage", kind="stable")
    return "\n".join([
        "<h2>Best trial per stage</h2>", _trial_table(data, best),
        f"<h2>Top {TOP_N}</h2>", _trial_table(data, data.ranked.head(TOP_N), numbered="rank"),
    ])


def _unranked_table(data: ReportData) -> str:
    if not len(data.unranked):
        return ""
    return "\n".join([
        f"<h2>Not ranked ({len(data.unranked):,})</h2>",
        f"<p>These trials finished but their {esc(data.metric)} is NaN, infinite or "
        "missing; they are left out of the rankings and the plots.</p>",
        _trial_table(data, data.unranked.head(MAX_LISTED)), _more(len(data.unranked)),
    ])


def _stopped_table(data: ReportData) -> str:
    if not len(data.stopped):
        return ""
    return "\n".join([
        f"<h2>Stopped early ({len(data.stopped):,})</h2>",
        "<p>The stopping rule ended these trials before they finished; their metric is "
        "the last one they reported, so they are not ranked with the finished ones.</p>",
        _trial_table(data, data.stopped.head(MAX_LISTED)), _more(len(data.stopped)),
    ])


def _failed_table(data: ReportData) -> str:
    if not len(data.failed):
        return ""
    rows = []
    for _, row in data.failed.head(MAX_LISTED).iterrows():
        text = DASH if is_missing(row["error"]) else str(row["error"])
        if len(text) > MAX_ERROR_CHARS:
            text = text[:MAX_ERROR_CHARS] + " ..."
        rows.append([row["trial_id"], row["stage"], row["status"], row["attempts"],
                     row["node"], _Raw(f"<pre>{esc(text)}</pre>")])
    return "\n".join([
        f"<h2>{NOT_OK.capitalize()} ({len(data.failed):,})</h2>",
        _table(["trial", "stage", "status", "attempts", "node", "error"], rows, "failed"),
        _more(len(data.failed)),
    ])


def _finish_order(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in the order its trials finished (rows without a time last, then by row)."""
    if "finished_at" not in df.columns:
        return df
    times = df["finished_at"]
    if not pd.api.types.is_numeric_dtype(times):
        times = pd.to_datetime(times, utc=True, errors="coerce")
    order = times.reset_index(drop=True).sort_values(kind="stable", na_position="last")
    return df.iloc[order.index[:MAX_LISTED]]


def _finish_order_table(data: ReportData) -> str:
    rows = _finish_order(data.df)
    return "\n".join([
        f"<h2>Trials in the order they finished ({len(data.df):,})</h2>",
        '<div class="scroll">'
        + _trial_table(data, rows.head(MAX_LISTED), numbered="#", status=True,
                       finished=True)
        + "</div>",
        _more(len(data.df)),
    ])


def _boxes_table(boxes: Sequence[Mapping[str, Any]]) -> str:
    if not boxes:
        return ""
    rows = []
    for box in boxes:
        bounds = box.get("bounds") or {}
        cats = box.get("categories") or {}
        region = [f"{k} in [{fmt(v[0])}, {fmt(v[1])}]" for k, v in bounds.items()]
        region += [f"{k} in {{{', '.join(cat_label(x) for x in v)}}}" for k, v in cats.items()]
        anchor = box.get("anchor", box.get("seed"))
        rows.append([box.get("stage"), anchor, "; ".join(region) or DASH])
    return "<h3>Refine boxes</h3>\n" + _table(["stage", "anchor", "region"], rows, "boxes")


# --------------------------------------------------------------------------- figure sections


def _param_section(page: _Page, fig: Any, i: int, param: Param) -> str:
    attrs = f' data-param="{esc(param.name)}" data-scale="{esc(param.scale)}"'
    return page.figure(fig, f"sweep-param-{i}", "param-plot", attrs)


def _scatter_sections(page: _Page, data: ReportData, opts: _Options) -> None:
    page.add("<h2>Metric against each parameter</h2>")
    if not data.params:
        page.add("<p>No parameter varies in this sweep.</p>")
        return
    sample = sample_rows(data.ranked, opts.max_points, TOP_KEPT, data.anchor_ids)
    page.add("<p>Ranked trials only, coloured by stage; shaded bands are the refine "
             "stages' boxes and stars mark their anchor trials."
             + (f" {esc(sample.caption())}." if sample.sampled else "") + "</p>")
    page.add('<div class="plots">')
    for i, param in enumerate(data.params):
        fig = scatter_figure(page.go, data, param, sample, opts.boxes)
        page.add(_param_section(page, fig, i, param))
    page.add("</div>")


def _distribution_sections(page: _Page, data: ReportData) -> None:
    page.add("<h2>Sampled values of each parameter</h2>")
    if not data.params:
        page.add("<p>No parameter varies in this sweep.</p>")
        return
    page.add("<p>How many trials of each stage took each value (all trials, whatever "
             "their status).</p>", '<div class="plots">')
    for i, param in enumerate(data.params):
        page.add(_param_section(page, distribution_figure(page.go, data, param), i, param))
    page.add("</div>")


def _parcoords_section(page: _Page, data: ReportData, opts: _Options) -> None:
    if not data.params:
        return
    if data.metric is None:
        sample = sample_rows(data.df, opts.max_points, keep_top=0)
    else:
        sample = sample_rows(data.ranked, opts.max_points, TOP_KEPT, data.anchor_ids)
    fig = parcoords_figure(page.go, data, sample)
    if fig is None:
        return
    page.add("<h2>Parallel coordinates</h2>",
             "<p>Categorical parameters are drawn as integer ticks with their labels; "
             "log-scaled ones as log10. Drag along an axis to filter.</p>",
             page.figure(fig, "sweep-parcoords", "parcoords"))


def _best_so_far_section(page: _Page, data: ReportData) -> None:
    page.add("<h2>Best so far</h2>",
             "<p>The best ranked trial so far, over the whole sweep and within each stage; "
             "the buttons switch between wall time and the count of finished trials.</p>",
             page.figure(best_so_far_figure(page.go, data), "sweep-best", "best"))


def _importance_section(page: _Page, data: ReportData) -> None:
    imp: Importance = fanova(data.ranked, data.params, metric=data.metric, goal=data.goal)
    fig = importance_figure(page.go, imp)
    page.add("<h2>Parameter importance</h2>",
             f"<p>How much of {esc(data.metric)}'s variance each parameter explains "
             "(fANOVA on a random forest: log parameters in decades, categorical ones as "
             "sets of categories): the light bar alone and with others, the dark bar alone "
             "(what Optuna's default evaluator shows); whiskers are the spread over "
             "resamples of the trials.</p>")
    if fig is not None:
        page.add(page.figure(fig, "sweep-importance", "importance"))
    pairs = [q for q in imp.pairs if q.value >= 0.01]
    if pairs:
        page.add("<h3>Interactions</h3>", _table(
            ["parameters", "share of variance beyond both alone"],
            [[f"{q.a} x {q.b}", f"{100 * q.value:.1f}% ± {100 * q.std:.1f}"] for q in pairs],
            "pairs"))
    if imp.notes:
        page.add('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in imp.notes)
                 + "</ul>")


def _curves_section(page: _Page, data: ReportData, curves: CurveSet | None,
                    opts: _Options) -> None:
    if curves is None:
        return
    fig = curves_figure(page.go, data, curves, opts.rungs)
    note = "" if data.metric is not None else (
        f" The sweep has no metric; these are the curves of {esc(curves.metric)}.")
    page.add("<h2>Learning curves</h2>",
             "<p>Each trial's intermediate reports, coloured by stage; faded lines are "
             "trials the stopping rule stopped early, dotted lines its rungs (hover the "
             f"marks for the cutoffs).{note}</p>",
             page.figure(fig, "sweep-curves", "curves"))


def _schedule_section(page: _Page, data: ReportData) -> None:
    """PBT: the hyperparameter schedule of the best trial's lineage (none without one)."""
    best = str(data.ranked["trial_id"].iloc[0])
    params = [(p.name, p.scale) for p in data.params if p.scale != "categorical"]
    fig = schedule_figure(page.go, data.df, best, params)
    if fig is None:
        return
    page.add("<h2>Hyperparameter schedule of the best trial</h2>",
             "<p>Population-based training: the best trial's lineage, each segment from "
             "the step it restored its parent's checkpoint (diamonds) with its mutated "
             "parameters.</p>", page.figure(fig, "sweep-schedule", "curves"))


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
.plots > section, section.curves { min-width: 0; border: 1px solid #eee; }
"""


def _nothing_ranked(data: ReportData) -> str:
    n = len(data.df)
    if len(data.failed) == n:
        return (f"All {n} trials failed or timed out: there is nothing to "
                "rank or plot. Their errors are listed below.")
    if len(data.failed) + len(data.stopped) == n:
        return (f"No trial finished: {len(data.stopped)} were stopped early and "
                f"{len(data.failed)} failed or timed out, so there is "
                "nothing to rank. They are listed below.")
    return (f"No trial has a finite {data.metric}: there is nothing to rank or plot. The "
            "trials are listed below.")


def _body(page: _Page, data: ReportData, title: str, opts: _Options) -> None:
    """Every section of a non-empty table, in page order."""
    curves = select_curves(data, opts.curves, opts.max_curves)  # may add a note
    page.add(_summary(data, title))
    if data.metric is None:
        page.add(_message("This sweep has no metric, so nothing is ranked: the trials are "
                          "listed in the order they finished, and the plots show the values "
                          "each stage sampled.", "no-metric"))
        _curves_section(page, data, curves, opts)
        _distribution_sections(page, data)
        _parcoords_section(page, data, opts)
        page.add(_finish_order_table(data))
    elif len(data.ranked) == 0:
        page.add(_message(_nothing_ranked(data)))
        _curves_section(page, data, curves, opts)
    else:
        page.add('<div class="scroll">' + _best_tables(data) + "</div>")
        _best_so_far_section(page, data)
        if opts.importance:
            _importance_section(page, data)
        _curves_section(page, data, curves, opts)
        _schedule_section(page, data)
        _scatter_sections(page, data, opts)
        page.add(_boxes_table(opts.boxes))
        _parcoords_section(page, data, opts)
    tables = [_unranked_table(data), _stopped_table(data), _failed_table(data)]
    page.add('<div class="scroll">' + "\n".join(t for t in tables if t) + "</div>")


def _document(title: str, page: _Page, get_plotlyjs: Any) -> str:
    head = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="sweep.views.html">',
        f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>",
    ]
    if page.figures:
        # Embedded once; every figure below draws with include_plotlyjs=False.
        head.append('<script type="text/javascript">window.PlotlyConfig = '
                    "{MathJaxConfig: 'local'};</script>")
        head.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    head.append("</head>")
    return "\n".join([*head, "<body>", *page.parts, "</body>", "</html>", ""])


def build_report(
    df: pd.DataFrame,
    *,
    metric: str | None,
    goal: str = "minimize",
    scales: Mapping[str, str] | None = None,
    boxes: Sequence[Mapping[str, Any]] | None = None,
    title: str = "sweep report",
    curves: pd.DataFrame | None = None,
    rungs: Sequence[Mapping[str, Any]] | None = None,
    max_points: int = MAX_POINTS,
    max_curves: int = MAX_CURVES,
    importance: bool = True,
) -> str:
    """Render a sweep's results table as one self-contained, offline HTML document.

    Args:
        df: the results table, one row per trial (``sweep``, ``stage``, ``trial_id``,
            ``parent_id``, ``status``, ``params.<name>``, ``metrics.<name>``, ``error``, ...).
        metric: the objective metric's name (the ``metrics.`` prefix is optional), or None
            for a sweep without a metric: then nothing is ranked and the page says so.
        goal: ``"minimize"`` or ``"maximize"``.
        scales: each parameter's name (no prefix) to ``linear``, ``log``, ``categorical``
            or ``constant``; constants are not plotted. Parameters missing here are
            inferred from their column (bool/str: categorical, numbers: linear).
        boxes: the refine stages' regions, e.g. ``[{"stage": 1, "anchor": "t3",
            "bounds": {"lr": [1e-3, 1e-2]}, "categories": {"opt": ["adam"]}}]`` in raw
            parameter units; each is shaded on the parameter plots and its anchor is marked.
        title: the document's title (escaped).
        curves: the curves table (``sweep, stage, trial_id, step, time, metrics.<name>``,
            one row per intermediate report); None or empty: no learning-curves section.
        rungs: the stopping rule's rungs, e.g. ``[{"bracket": 0, "step": 9, "cutoff": 0.42,
            "trials": 17}]``, dotted on the learning curves.
        max_points: the most trials one scatter or the parallel coordinates draw (the best
            1,000 and a uniform sample of the rest; the figure title says so).
        max_curves: the most learning curves drawn (the best third and a sample).
        importance: draw the parameters' importance (fANOVA, ``sweep.views.importance``;
            a few seconds on large sweeps, which are sampled to 2,000 trials).

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
        raise ValueError(f"goal: got {goal!r}, expected one of {', '.join(GOALS)}")
    if metric is not None and metric.startswith(METRIC_PREFIX):
        metric = metric[len(METRIC_PREFIX):]
    opts = _Options(boxes=[dict(b) for b in boxes or []], curves=curves,
                    rungs=list(rungs or []), max_points=max(1, int(max_points)),
                    max_curves=max(1, int(max_curves)), importance=importance)
    page = _Page(go)
    if df is None or len(df) == 0:
        check_scales(scales or {})
        page.add(f"<h1>{esc(title)}</h1>",
                 _message("The results table is empty: no trial has run yet."))
    else:
        _body(page, prepare(df, metric, goal, scales or {}, opts.boxes), title, opts)
    return _document(title, page, get_plotlyjs)


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
