"""The live dashboard's JSON: a sweep's state and progress per stage, the trials table,
the figures (the report's own builders, serialised by plotly), a trial's page and the
parameter importance. Snapshots in (``sweep.views.live_state``), JSON-friendly values or
JSON text out; no I/O.

Example:
    >>> summary(watch.current())["stages"][0]["done"]          # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..core.records import STATUSES
from .figures import (
    METRIC_PREFIX,
    PARAM_PREFIX,
    TOP_KEPT,
    CurveSet,
    ReportData,
    curves_figure,
    distribution_figure,
    is_missing,
    parcoords_figure,
    sample_rows,
    scatter_figure,
    select_curves,
)
from .importance import Importance
from .insight_figures import best_so_far_figure, importance_figure
from .live_state import Snapshot, SweepWatch
from .prepare import prepare

__all__ = ["figures_json", "importance_payload", "summary", "table", "trial_payload"]

LIVE_POINTS = 4_000  # points per live scatter (the report draws 20,000)
LIVE_CURVES = 200
LIVE_TOP = 1_000  # best trials always drawn
TABLE_ROWS = (10, 100, 1000)
LINEAGE_DEPTH = 50
MAX_CHILDREN = 100
MAX_ERROR_CHARS = 20_000


def cell(value: Any) -> Any:
    """A JSON-friendly form of one table value: NaN/NaT/None as None, times as ISO text,
    numpy scalars as Python ones."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, default=str))
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# --------------------------------------------------------------------------- summary


def _counts(data: ReportData | None) -> dict[int, dict[str, int]]:
    if data is None:
        return {}
    grouped = data.df.groupby(["stage", "status"], sort=True).size()
    out: dict[int, dict[str, int]] = {}
    for (stage, status), n in grouped.items():
        out.setdefault(int(stage), {})[str(status)] = int(n)
    return out


def _running(snap: Snapshot) -> dict[int, int]:
    """Per stage, the trials that reported a step and have no result yet."""
    curves = snap.curves
    if not len(curves) or "trial_id" not in curves.columns:
        return {}
    done = set(snap.data.df["trial_id"]) if snap.data is not None else set()
    live = curves[~curves["trial_id"].isin(done)].drop_duplicates("trial_id")
    return {int(s): int(n) for s, n in live.groupby("stage").size().items()}


def _best(data: ReportData | None, stage: int | None = None) -> dict[str, Any] | None:
    if data is None or data.metric is None or not len(data.ranked):
        return None
    ranked = data.ranked if stage is None else data.ranked[data.ranked["stage"] == stage]
    if not len(ranked):
        return None
    row = ranked.iloc[0]
    return {"value": cell(row["_metric"]), "trial_id": row["trial_id"],
            "stage": cell(row["stage"])}


def _state(snap: Snapshot, stages: list[dict[str, Any]]) -> str:
    if snap.error:
        return "error"
    driver = snap.driver.get("state")
    if driver in ("running", "elsewhere"):
        return "running"
    planned = [s for s in stages if s["planned"] is not None]
    if stages and planned and all(s["done"] >= s["planned"] for s in planned) and \
            len(planned) == len(stages):
        return "finished"
    return "stopped" if stages and any(s["done"] for s in stages) else "idle"


def summary(watch: SweepWatch) -> dict[str, Any]:
    """A sweep's state: what it optimises, its driver, progress per stage (trials by
    status, planned, running, best), its best trial, problems.

    Example: ``summary(watch)["state"]`` is one of running, finished, stopped, idle, error
    """
    snap = watch.current()
    meta, data = snap.meta, snap.data
    counts, running = _counts(data), _running(snap)
    planned = {s.index: s for s in meta.stages} if meta else {}
    stages = []
    for index in sorted(set(planned) | set(counts) | set(running)):
        info = planned.get(index)
        by_status = counts.get(index, {})
        stages.append({
            "index": index, "plan": info.plan if info else None,
            "planned": info.planned if info else None,
            "fixed": {k: cell(v) for k, v in (info.fixed if info else {}).items()},
            "counts": {s: by_status.get(s, 0) for s in (*STATUSES, *sorted(
                set(by_status) - set(STATUSES)))},
            "done": sum(by_status.values()), "running": running.get(index, 0),
            "best": _best(data, index)})
    trials = len(data.df) if data is not None else 0
    return {
        "key": watch.key, "name": meta.name if meta else watch.name, "folder": watch.name,
        "root": watch.root, "location": watch.folder.location, "version": snap.version,
        "metric": meta.metric if meta else None, "goal": meta.goal if meta else None,
        "state": _state(snap, stages), "driver": {k: cell(v) for k, v in snap.driver.items()},
        "trials": trials, "ranked": len(data.ranked) if data is not None else 0,
        "pending": snap.pending, "stages": stages, "best": _best(data),
        "problems": list(snap.problems) + (list(data.notes) if data is not None else []),
        "error": snap.error, "read_at": snap.read_at or None,
        "read_seconds": round(snap.read_seconds, 3),
    }


# --------------------------------------------------------------------------- table


def _columns(data: ReportData) -> list[tuple[str, str, str]]:
    """(label, column, kind) of the trials table."""
    cols = [("trial", "trial_id", "id"), ("stage", "stage", "int"),
            ("status", "status", "text")]
    if data.metric is not None:
        cols.append((data.metric, "_metric", "metric"))
    cols += [(c[len(METRIC_PREFIX):], c, "metric") for c in data.extra_metrics]
    cols += [(p.name, p.column, "param") for p in data.params]
    cols += [(name, column, "param") for name, column in _constant_columns(data)]
    for label, column, kind in (("attempts", "attempts", "int"), ("node", "node", "text"),
                                ("GPUs", "gpu_ids", "text"), ("seconds", "duration_s", "num"),
                                ("finished", "finished_at", "time"),
                                ("parent", "parent_id", "id")):
        if column in data.df.columns:
            cols.append((label, column, kind))
    return cols


def _constant_columns(data: ReportData) -> list[tuple[str, str]]:
    """Constants that differ between stages (epochs=3, then 15) deserve a column."""
    return [(name, PARAM_PREFIX + name) for name, by_stage in data.constants.items()
            if len(by_stage) > 1 and PARAM_PREFIX + name in data.df.columns]


def table(watch: SweepWatch, order: str = "top", k: int = 100) -> dict[str, Any]:
    """The trials table: the ``k`` best ranked trials (``order="top"``), or the ``k``
    that finished last, whatever their status (``order="latest"``).

    Example: ``table(watch, "latest", 10)["rows"][0][0]`` is the last trial's id
    """
    snap = watch.current()
    data = snap.data
    if data is None:
        return {"version": snap.version, "columns": [], "rows": [], "total": 0,
                "order": order}
    if order == "latest":
        rows = data.df
        if "finished_at" in rows.columns:
            times = pd.to_datetime(rows["finished_at"], utc=True, errors="coerce")
            rows = rows.assign(_t=times).sort_values("_t", ascending=False, kind="stable",
                                                     na_position="last")
        rows, total = rows.head(k), len(data.df)
    else:
        rows, total = data.ranked.head(k), len(data.ranked)
    cols = _columns(data)
    values = rows[[c for _, c, _ in cols]].to_numpy(dtype=object)
    return {"version": snap.version, "order": order, "total": total,
            "columns": [{"label": label, "key": column, "kind": kind}
                        for label, column, kind in cols],
            "rows": [[cell(v) for v in row] for row in values]}


# --------------------------------------------------------------------------- figures


def _dump(fig: Any) -> str:
    return fig.to_json(validate=False, pretty=False)


def figures_json(watch: SweepWatch) -> str:
    """Every figure of a sweep's page as JSON text: ``best``, ``curves``, ``params`` (one
    per parameter: the metric against it, or, without a metric, the values sampled) and
    ``parcoords``; figures with nothing to draw are null. The curves are built again only
    when the curves or the trials changed, the others only when the trials did.

    Example: ``json.loads(figures_json(watch))["curves"]["layout"]["title"]``
    """
    snap = watch.current()
    if snap.data is None:
        return f'{{"version":{snap.version}}}'
    curves = watch.cached("fig-curves", _curves_part,
                          lambda s: (s.data_version, s.curves_version))
    rest = watch.cached("fig-trials", _trials_part, lambda s: s.data_version)
    return f'{{"version":{snap.version},"curves":{curves},{rest}}}'


def _curves_part(snap: Snapshot) -> str:
    import plotly.graph_objects as go

    assert snap.data is not None
    curves = select_curves(snap.data, snap.curves, LIVE_CURVES)
    return _dump(curves_figure(go, snap.data, curves, snap.rungs)) if curves else "null"


def _trials_part(snap: Snapshot) -> str:
    """``"best":...,"params":[...],"parcoords":...`` (a JSON object's members)."""
    import plotly.graph_objects as go

    data = snap.data
    assert data is not None
    ranked = data.metric is not None and len(data.ranked) > 0
    best = _dump(best_so_far_figure(go, data)) if ranked else "null"
    params: list[Any] = []
    pc_sample = None
    if ranked:
        sample = sample_rows(data.ranked, LIVE_POINTS, min(TOP_KEPT, LIVE_TOP),
                             data.anchor_ids)
        params = [scatter_figure(go, data, p, sample, snap.boxes) for p in data.params]
        pc_sample = sample
    elif data.metric is None:
        params = [distribution_figure(go, data, p) for p in data.params]
        pc_sample = sample_rows(data.df, LIVE_POINTS, keep_top=0)
    listed = ",".join(
        f'{{"name":{json.dumps(p.name)},"scale":{json.dumps(p.scale)},"figure":{_dump(f)}}}'
        for p, f in zip(data.params, params))
    pc = parcoords_figure(go, data, pc_sample) if params and pc_sample is not None else None
    return f'"best":{best},"params":[{listed}],"parcoords":{_dump(pc) if pc else "null"}'


def importance_payload(watch: SweepWatch) -> dict[str, Any]:
    """The latest importance of a sweep: its figure, table and notes, how many ranked
    trials it saw, and whether a fit runs (the figure is built once per fit)."""
    snap = watch.current()
    done = watch.importance
    out: dict[str, Any] = {"version": snap.version, "busy": watch.importance_busy,
                           "ranked": len(snap.data.ranked) if snap.data is not None else 0}
    if done is None:
        out["result"] = None
        return out
    _, at, n, seconds = done
    out.update(at=at, trials_seen=n, seconds=round(seconds, 2))
    out.update(watch.cached("importance", lambda _: _importance_parts(done),
                            lambda _: at))
    return out


def _importance_parts(done: tuple[Importance, float, int, float]) -> dict[str, Any]:
    import plotly.graph_objects as go

    fig = importance_figure(go, done[0])
    return {"result": done[0].to_json(),
            "figure": json.loads(_dump(fig)) if fig is not None else None}


# --------------------------------------------------------------------------- a trial


def _row_of(data: ReportData | None, tid: str) -> Mapping[str, Any] | None:
    if data is None:
        return None
    rows = data.df[data.df["trial_id"] == tid]
    return None if not len(rows) else rows.iloc[-1].to_dict()


def _brief(data: ReportData | None, tid: str) -> dict[str, Any]:
    row = _row_of(data, tid)
    if row is None:
        return {"trial_id": tid, "known": False}
    return {"trial_id": tid, "known": True, "status": row.get("status"),
            "stage": cell(row.get("stage")), "metric": cell(row.get("_metric"))}


def trial_payload(watch: SweepWatch, tid: str) -> dict[str, Any] | None:
    """One trial: its row (params, metrics, status, attempts, node, GPUs, times), its
    error, its rank, its lineage (parents up the refine or PBT chain, children) and its
    curve; a trial still running has a curve and no row. None when nothing is known.

    Example: ``trial_payload(watch, "s0-t0003")["lineage"]["parents"]``
    """
    import plotly.graph_objects as go

    snap = watch.current()
    data = snap.data
    row = _row_of(data, tid)
    curves = snap.curves
    mine = curves[curves["trial_id"] == tid] if len(curves) and "trial_id" in curves else \
        curves.iloc[0:0]
    if row is None and not len(mine):
        return None
    out: dict[str, Any] = {"trial_id": tid, "version": snap.version, "sweep": watch.key,
                           "metric": data.metric if data is not None else None,
                           "running": row is None}
    if row is not None:
        out["fields"] = {k: cell(row.get(k)) for k in (
            "stage", "status", "parent_id", "attempts", "node", "gpu_ids", "started_at",
            "finished_at", "duration_s", "step") if k in row}
        out["params"] = {k[len(PARAM_PREFIX):]: cell(v) for k, v in row.items()
                         if k.startswith(PARAM_PREFIX)}
        out["metrics"] = {k[len(METRIC_PREFIX):]: cell(v) for k, v in row.items()
                          if k.startswith(METRIC_PREFIX)}
        error = row.get("error")
        out["error"] = None if is_missing(error) else str(error)[:MAX_ERROR_CHARS]
        ranked = data.ranked["trial_id"].to_numpy() if data is not None else np.array([])
        hit = np.flatnonzero(ranked == tid)
        out["rank"] = int(hit[0]) + 1 if len(hit) else None
        out["ranked"] = len(ranked)
    parents, seen, parent = [], {tid}, row.get("parent_id") if row else None
    while isinstance(parent, str) and parent not in seen and len(parents) < LINEAGE_DEPTH:
        seen.add(parent)
        parents.append(_brief(data, parent))
        above = _row_of(data, parent)
        parent = above.get("parent_id") if above else None
    children = []
    if data is not None and "parent_id" in data.df.columns:
        kids = data.df[data.df["parent_id"] == tid]["trial_id"].head(MAX_CHILDREN)
        children = [_brief(data, k) for k in kids]
    out["lineage"] = {"parents": parents, "children": children}
    out["figure"] = None
    if len(mine) and data is not None:
        one = select_curves(data, mine, 1)
        if one is not None:
            out["figure"] = json.loads(_dump(curves_figure(go, data, one, snap.rungs)))
    elif len(mine):
        out["figure"] = json.loads(_dump(_lone_curve(go, mine)))
    return out


def _lone_curve(go: Any, mine: pd.DataFrame) -> Any:
    """A running trial's curve before the sweep has any result (no prepared table)."""
    columns = [c for c in mine.columns if c.startswith(METRIC_PREFIX)]
    frame = pd.DataFrame({"trial_id": [mine["trial_id"].iloc[0]], "stage": [
        mine["stage"].iloc[0] if "stage" in mine else 0], "status": ["running"]})
    data = prepare(frame, columns[0][len(METRIC_PREFIX):] if columns else None, "minimize", {})
    chosen = select_curves(data, mine, 1) or CurveSet("", mine.iloc[0:0], [], 0, 0)
    return curves_figure(go, data, chosen)
