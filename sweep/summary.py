"""Plain-text summaries of a results table: the top-k table, best per stage, status
counts. Shared by ``sweep run``, ``sweep top`` and ``sweep status``.

Example:
    >>> print(top_table(df, "val_error", "minimize", k=5))      # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .ranking import rank, unranked


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=lambda c: c.split(".", 1)[1] if c.startswith(
        ("params.", "metrics.")) else c)


def _varying(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """Parameter columns whose value differs between trials (constants add nothing)."""
    return [c for c in columns if df[c].astype(str).nunique() > 1] or columns


def top_frame(df: pd.DataFrame, metric: str, goal: str, k: int = 10,
              stage: int | None = None) -> pd.DataFrame:
    """The best ``k`` trials as a frame: rank, stage, trial_id, metric, params."""
    if stage is not None:
        df = df[df["stage"] == stage]
    ranked = rank(df, metric, goal, k)
    params = [c for c in df.columns if c.startswith("params.")]
    shown = _varying(df, params) if len(df) > 1 else params
    columns = ["stage", "trial_id", f"metrics.{metric}", *shown]
    out = ranked[[c for c in columns if c in ranked.columns]].copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    return _strip(out).reset_index(drop=True)


def top_table(df: pd.DataFrame, metric: str, goal: str, k: int = 10,
              stage: int | None = None) -> str:
    """The top-k table as aligned text."""
    frame = top_frame(df, metric, goal, k, stage)
    if frame.empty:
        return f"no trial finished ok with a finite {metric!r}"
    return frame.to_string(index=False, float_format=lambda x: f"{x:.6g}")


def top_records(df: pd.DataFrame, metric: str, goal: str, k: int = 10,
                stage: int | None = None) -> list[dict[str, Any]]:
    """The top-k as JSON-friendly records."""
    frame = top_frame(df, metric, goal, k, stage)
    return [{key: _plain(value) for key, value in row.items()}
            for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value (floats keep every digit; NaN becomes null)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def stage_lines(df: pd.DataFrame, metric: str, goal: str) -> list[str]:
    """One line per stage: trials by status and the stage's best."""
    lines = []
    if df.empty:
        return ["no trials stored yet"]
    for stage, part in df.groupby("stage", sort=True):
        counts = part["status"].value_counts()
        status = ", ".join(f"{counts[s]} {s}" for s in ("ok", "failed", "timeout", "cancelled")
                           if s in counts)
        best = rank(part, metric, goal, 1)
        nan = len(unranked(part, metric))
        extra = f", {nan} with NaN/inf {metric}" if nan else ""
        if best.empty:
            lines.append(f"stage {stage}: {len(part)} trials ({status}{extra}); no ranked trial")
            continue
        row = best.iloc[0]
        value = row[f"metrics.{metric}"]
        params = {c[7:]: row[c] for c in part.columns if c.startswith("params.")}
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        lines.append(f"stage {stage}: {len(part)} trials ({status}{extra}); best {metric}="
                     f"{_fmt(value)} [{row['trial_id']}] {shown}")
    return lines


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}" if math.isfinite(x) else str(x)
    return str(x)
