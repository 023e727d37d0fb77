"""Views of a results table: text tables (``tables``), the offline HTML page (``html``)
and its figures (``figures``). Records and frames in, text or HTML out; they never run
or write a sweep.

Example:
    >>> from sweep.views import top_table
    >>> print(top_table(df, metric, k=5))                 # doctest: +SKIP
"""

from .tables import store_stage_lines, top_frame, top_records, top_table

__all__ = ["store_stage_lines", "top_frame", "top_records", "top_table"]
