"""Ranking trials by the sweep's metric: the one rule that top-k tables, refine
anchors and reports share.

Only trials with status ``ok`` and a finite metric are ranked; ties are broken
by trial id, so the order is the same on every run.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"trial_id": ["a", "b"], "status": ["ok", "ok"],
    ...                    "metrics.loss": [0.2, 0.1]})
    >>> list(rank(df, Metric("loss")).trial_id)
    ['b', 'a']
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .metric import Metric
from .records import TrialRecord


def rank(df: pd.DataFrame, metric: Metric, k: int | None = None) -> pd.DataFrame:
    """The ranked trials (best first), optionally the top ``k``. Failed trials and
    NaN/inf metrics are left out.
    """
    column = metric.column
    if df.empty or column not in df.columns:
        return df.iloc[0:0]
    values = pd.to_numeric(df[column], errors="coerce")
    ok = (df["status"] == "ok") & np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    ranked = df[ok].assign(_key=metric.loss(values[ok]))
    ranked = ranked.sort_values(["_key", "trial_id"], kind="stable").drop(columns="_key")
    return ranked if k is None else ranked.head(k)


def ordered(df: pd.DataFrame, metric: Metric | None, k: int | None = None) -> pd.DataFrame:
    """``rank`` by the metric, or every trial in finishing order when there is none.

    Example: ``ordered(df, None, k=5)`` (the first five to finish)
    """
    if metric is not None:
        return rank(df, metric, k)
    out = df.sort_values([c for c in ("finished_at", "trial_id") if c in df.columns],
                         kind="stable")
    return out if k is None else out.head(k)


def unranked(df: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """Trials with status ok whose metric is NaN or infinite (they rank last)."""
    column = metric.column
    if df.empty or column not in df.columns:
        return df.iloc[0:0]
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return df[(df["status"] == "ok") & ~np.isfinite(values)]


def rank_records(records: Iterable[TrialRecord], metric: Metric,
                 k: int | None = None) -> list[TrialRecord]:
    """``rank`` for trial records: ok trials with a finite metric, best first, ties by
    trial id.

    Example: ``rank_records(records, Metric("loss"), k=4)``
    """
    name = metric.name
    ranked = sorted((r for r in records if r.status == "ok" and r.finite(name)),
                    key=lambda r: (metric.loss(r.metrics[name]), r.trial_id))
    return ranked if k is None else ranked[:k]
