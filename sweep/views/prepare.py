"""The results table made ready for the views (the report, the dashboard, importance):
columns normalised, the metric as float, the parameters' plotting scales resolved, the
ranked trials best first. Pure pandas; no plotly.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"trial_id": ["a", "b"], "stage": [0, 1], "status": ["ok", "ok"],
    ...                    "params.lr": [0.1, 0.01], "params.epochs": [3, 15],
    ...                    "metrics.loss": [0.5, 0.4]})
    >>> data = prepare(df, "loss", "minimize", {"lr": "log", "epochs": "constant"})
    >>> [p.name for p in data.params], data.constants["epochs"], list(data.ranked.trial_id)
    (['lr'], [([0], 3), ([1], 15)], ['b', 'a'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..core.metric import Metric
from ..core.ranking import rank
from ..core.ranking import unranked as unranked_trials
from .figures import (
    METRIC_PREFIX,
    PARAM_PREFIX,
    Param,
    ReportData,
    cat_label,
    cat_sort_key,
    is_missing,
    stage_int,
)

__all__ = ["SCALES", "check_scales", "normalise", "prepare", "resolve_params"]

SCALES = ("linear", "log", "categorical", "constant")
MAX_METRIC_COLUMNS = 6  # extra metrics shown in the views' tables


def _infer_scale(series: pd.Series) -> str:
    try:
        distinct = series.dropna().nunique()
    except TypeError:  # unhashable values (lists)
        return "categorical"
    if distinct <= 1:
        return "constant"
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    return "linear"


def check_scales(scales: Mapping[str, str]) -> None:
    for name, scale in scales.items():
        if scale not in SCALES:
            raise ValueError(
                f"scales[{name!r}]: got {scale!r}, expected one of {', '.join(SCALES)}"
            )


def _plot_scale(name: str, series: pd.Series, scale: str) -> tuple[str, str]:
    """The scale a numeric-declared parameter can really be drawn with, and why not."""
    non_null = series.dropna()
    is_bool = pd.api.types.is_bool_dtype(series) or (
        len(non_null) > 0 and all(isinstance(v, (bool, np.bool_)) for v in non_null)
    )
    numeric = pd.to_numeric(non_null, errors="coerce")
    if is_bool or numeric.isna().any():
        return "categorical", f"{name}: values are not numeric; drawn as categorical"
    if scale == "log" and (numeric <= 0).any():
        return "linear", f"{name}: has values <= 0; drawn on a linear axis instead of log"
    return scale, ""


def resolve_params(
    df: pd.DataFrame, scales: Mapping[str, str], notes: list[str]
) -> tuple[list[Param], dict[str, list[tuple[list[Any], Any]]]]:
    """The plotted parameters (declared ones first) and the constant ones' values, each
    as ``[(stages, value), ...]``: one pair when every stage ran the same value, one per
    value when a stage fixed its own (``epochs=3`` in stage 0, ``15`` in stage 1)."""
    check_scales(scales)
    in_df = [c[len(PARAM_PREFIX):] for c in df.columns if c.startswith(PARAM_PREFIX)]
    ordered = [n for n in scales if n in in_df] + [n for n in in_df if n not in scales]
    params: list[Param] = []
    constants: dict[str, Any] = {}
    for name in ordered:
        column = PARAM_PREFIX + name
        scale = scales.get(name) or _infer_scale(df[column])
        if scale == "constant":
            constants[name] = _stage_values(df, column)
            continue
        note = ""
        if scale in ("linear", "log"):
            scale, note = _plot_scale(name, df[column], scale)
        if note:
            notes.append(note)
        params.append(Param(name=name, column=column, scale=scale, note=note))
    return params, constants


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every expected column, string trial ids and statuses, int stages."""
    df = df.reset_index(drop=True)
    defaults: dict[str, Any] = {
        "sweep": None, "stage": 0, "trial_id": None, "parent_id": None,
        "status": "ok", "error": None, "attempts": None, "node": None,
    }
    for column, default in defaults.items():
        if column not in df.columns:
            df[column] = default
    trial = df["trial_id"]
    missing = trial.isna().to_numpy()
    ids = trial.astype(str).to_numpy(dtype=object)
    ids[missing] = [f"row{i}" for i in np.flatnonzero(missing)]
    df["trial_id"] = ids
    df["status"] = df["status"].where(df["status"].notna(), "?").astype(str)
    if pd.api.types.is_integer_dtype(df["stage"]):
        df["stage"] = df["stage"].astype("int64")
    else:
        df["stage"] = df["stage"].map(stage_int)
    return df


def _metric_values(df: pd.DataFrame, metric: str | None, notes: list[str]) -> pd.Series:
    """The metric as float64 (NaN where missing); a note when its column is absent."""
    column = None if metric is None else METRIC_PREFIX + metric
    if column is not None and column in df.columns:
        return pd.to_numeric(df[column], errors="coerce").astype("float64")
    if column is not None and len(df):
        present = sorted(c[len(METRIC_PREFIX):] for c in df.columns
                         if c.startswith(METRIC_PREFIX))
        notes.append(
            f"the table has no column {column!r}"
            + (f" (metrics present: {', '.join(present)})" if present else "")
            + "; no trial can be ranked"
        )
    return pd.Series(np.nan, index=df.index, dtype="float64")


def prepare(df: pd.DataFrame, metric: str | None, goal: str, scales: Mapping[str, str],
            boxes: Sequence[Mapping[str, Any]] = ()) -> ReportData:
    """The results table made ready for the views: every expected column, the metric as
    float in ``_metric``, the plotted parameters with their scales, the ranked trials best
    first (``sweep.core.ranking``), the stopped and failed ones, the refine anchors.

    Example: ``prepare(df, "loss", "minimize", {"lr": "log"}).ranked.head(1)``
    """
    notes: list[str] = []
    df = normalise(df)
    df["_metric"] = _metric_values(df, metric, notes)
    metric_col = None if metric is None else METRIC_PREFIX + metric
    params, constants = resolve_params(df, scales, notes)
    stages = sorted((stage_int(s) for s in pd.unique(df["stage"])), key=cat_sort_key)

    # The one ranking rule of the project (sweep.core.ranking): ok, finite, ties by trial id.
    if metric is None:
        ranked = unranked = df.iloc[0:0]
    else:
        ranked = rank(df, Metric(metric, goal))
        unranked = (unranked_trials(df, Metric(metric, goal)) if metric_col in df.columns
                    else df[df["status"] == "ok"])
    # "seed": the key of stage files written before anchors were called anchors.
    anchor_ids = {str(b.get("anchor", b.get("seed"))) for b in boxes
                  if not is_missing(b.get("anchor", b.get("seed")))}
    anchor_ids |= set(df["parent_id"].dropna().astype(str))
    return ReportData(
        df=df, metric=metric, metric_col=metric_col, goal=goal, params=params,
        constants=constants, stages=stages, ranked=ranked, unranked=unranked,
        stopped=df[df["status"] == "stopped"],
        failed=df[~df["status"].isin(["ok", "stopped"])],
        extra_metrics=[c for c in df.columns if c.startswith(METRIC_PREFIX)
                       and c != metric_col][:MAX_METRIC_COLUMNS],
        anchor_ids=anchor_ids, notes=notes,
    )


def _stage_values(df: pd.DataFrame, column: str) -> list[tuple[list[Any], Any]]:
    """A constant's value in each stage, stages with the same value together."""
    groups: dict[str, tuple[list[Any], Any]] = {}
    for stage, values in df.groupby("stage", sort=False)[column]:
        non_null = values.dropna()
        value = non_null.iloc[0] if len(non_null) else None
        value = value.item() if isinstance(value, np.generic) else value
        stages, _ = groups.setdefault(cat_label(value), ([], value))
        stages.append(stage_int(stage))
    out = [(sorted(stages, key=cat_sort_key), value) for stages, value in groups.values()]
    return sorted(out, key=lambda pair: cat_sort_key(pair[0][0]))
