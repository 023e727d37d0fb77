"""Plain-text summaries of a results table: the top-k table, best per stage, status
counts. Shared by ``sweep run``, ``sweep top`` and ``sweep status``.

A sweep without a metric ranks nothing: its "top" is every trial in the order it
finished. Columns keep their ``params.`` / ``metrics.`` prefix wherever dropping it
would make a parameter read as another field (a parameter named ``rank``, ``stage``
or like the metric).

Example:
    >>> print(top_table(df, Metric("val_error"), k=5))      # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..core.ranking import ordered
from ..core.records import STATUSES

FIELDS = ("rank", "stage", "trial_id", "status")


def _varying(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """Parameter columns whose value differs between trials (constants add nothing)."""
    return [c for c in columns if df[c].astype(str).nunique() > 1] or columns


def _short_names(columns: list[str]) -> dict[str, str]:
    """Column -> shown name: the prefix dropped unless two columns would then clash."""
    bare = [c.split(".", 1)[1] if c.startswith(("params.", "metrics.")) else c
            for c in columns]
    taken = [b for b, c in zip(bare, columns) if not c.startswith(("params.", "metrics."))]
    out = {}
    for column, name in zip(columns, bare):
        clash = bare.count(name) > 1 or (column != name and name in taken)
        out[column] = column if clash else name
    return out




def top_frame(df: pd.DataFrame, metric: Any, k: int = 10, stage: int | None = None
              ) -> pd.DataFrame:
    """The best ``k`` trials as a frame: rank, stage, trial_id, the metric, the params."""
    if stage is not None:
        df = df[df["stage"] == stage]
    picked = ordered(df, metric, k)
    params = [c for c in df.columns if c.startswith("params.")]
    shown = _varying(df, params) if len(df) > 1 else params
    head = ["stage", "trial_id"] + ([f"metrics.{metric.name}"] if metric else ["status"])
    columns = [c for c in [*head, *shown] if c in picked.columns]
    out = picked[columns].copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    return out.rename(columns=_short_names(list(out.columns))).reset_index(drop=True)


def top_table(df: pd.DataFrame, metric: Any, k: int = 10, stage: int | None = None,
              title: bool = False, total: int | None = None) -> str:
    """The top-k table as aligned text (with a title line when ``title``; ``total`` is the
    number of trials when ``df`` holds only the best ones)."""
    frame = top_frame(df, metric, k, stage)
    total = len(df) if total is None else total
    if metric is None:
        head = f"{min(k, len(frame))} of {total} trials (no metric: in the order they finished):"
    else:
        head = f"top {k} of {total} trials ({metric.goal} {metric.name}):"
    if frame.empty:
        body = (f"no trial finished ok with a finite {metric.name!r}" if metric is not None
                else "no trials stored yet")
    else:
        body = frame.to_string(index=False, float_format=lambda x: f"{x:.6g}")
    return f"{head}\n{body}" if title else body


def top_records(df: pd.DataFrame, metric: Any, k: int = 10, stage: int | None = None
                ) -> list[dict[str, Any]]:
    """The top-k as JSON-friendly records: rank, stage, trial_id, status and the metrics
    and params as mappings of their own (a parameter named like a field never hides it)."""
    if stage is not None:
        df = df[df["stage"] == stage]
    picked = ordered(df, metric, k)
    out = []
    for i, row in enumerate(picked.to_dict("records"), start=1):
        out.append({
            "rank": i, "stage": _plain(row.get("stage")), "trial_id": row.get("trial_id"),
            "status": row.get("status"),
            "metrics": {c[8:]: _plain(v) for c, v in row.items() if c.startswith("metrics.")
                        and not _missing(v)},
            "params": {c[7:]: _plain(v) for c, v in row.items() if c.startswith("params.")},
        })
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value (floats keep every digit; NaN becomes null)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def store_stage_lines(store: Any, metric: Any, counts: pd.DataFrame | None = None
                      ) -> list[str]:
    """One line per stage: trials by status and the stage's best, read from a store
    without loading its table (``ResultsReader.counts``, or ``counts`` when the caller
    has them; ``ResultsReader.best``).

    Example: ``for line in store_stage_lines(store, spec.metric): print(line)``
    """
    counts = store.counts() if counts is None else counts
    if counts.empty:
        return ["no trials stored yet"]
    unranked_n = store.unranked_counts(metric.name) if metric is not None else {}
    lines = []
    for stage, part in counts.groupby("stage", sort=True):
        by_status = dict(zip(part["status"], part["n"]))
        n = int(part["n"].sum())
        status = ", ".join(f"{by_status[s]} {s}" for s in STATUSES if s in by_status)
        if metric is None:
            lines.append(f"stage {stage}: {n} trials ({status}); no metric to rank by")
            continue
        nan = unranked_n.get(int(stage), 0)
        extra = f", {nan} with NaN/inf {metric.name}" if nan else ""
        best = store.best(metric, 1, stages=[int(stage)])
        if best.empty:
            lines.append(f"stage {stage}: {n} trials ({status}{extra}); no ranked trial")
            continue
        row = best.iloc[0]
        params = {c[7:]: row[c] for c in best.columns if c.startswith("params.")}
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        lines.append(f"stage {stage}: {n} trials ({status}{extra}); best {metric.name}="
                     f"{_fmt(row[f'metrics.{metric.name}'])} [{row['trial_id']}] {shown}")
    return lines


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}" if math.isfinite(x) else str(x)
    return str(x)


__all__ = ["store_stage_lines", "top_frame", "top_records", "top_table"]
