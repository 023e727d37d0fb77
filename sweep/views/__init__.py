"""Views of a results table: text tables (``tables``), the offline HTML page (``html``),
its figures (``figures``, ``insight_figures``), parameter importance (``importance`` on
the numpy forest of ``forest``), and the live dashboard (``dashboard_server`` serving
``live_page`` from ``live_state`` snapshots and ``live_payloads``). They read results
only through ``results_source``; they never run or write a sweep.

Example:
    >>> from sweep.views import top_table
    >>> print(top_table(df, metric, k=5))                 # doctest: +SKIP
"""

from .tables import store_stage_lines, top_frame, top_records, top_table

__all__ = ["store_stage_lines", "top_frame", "top_records", "top_table"]
