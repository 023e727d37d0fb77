"""The results table's columns: one codec for parameter cells, and the Arrow schemas of
the trials and curves tables. Owned by the store; no Ray.

A parameter column has one Arrow type for the whole sweep, chosen from every value
it can take (the prior, each stage's fixed values and grid values): int64, float64,
bool, or string (mixed-type choices and lists/mappings, as JSON). ``Codec.encode``
turns a config value into its cell; ``Codec.decode`` gives the value back exactly
(a string cell of a choice decodes to the choice's value, 1 and True apart).

Example:
    >>> from sweep.space import Space, Choice
    >>> codec = Codec.of(Space({"act": Choice([1, "relu", True])}))
    >>> codec.types["act"], codec.encode("act", True), codec.decode("act", "true")
    (DataType(string), 'true', True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..core.records import TrialRecord
from ..core.values import INT64_MAX, INT64_MIN
from ..space.distributions import scalar_kind, value_key
from ..space.search_space import Space

BASE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("sweep", pa.string()),
    ("trial_id", pa.string()),
    ("parent_id", pa.string()),
    ("status", pa.string()),
]
TAIL_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("error", pa.string()),
    ("attempts", pa.int64()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("duration_s", pa.float64()),
    ("node", pa.string()),
    ("gpu_ids", pa.string()),
    ("step", pa.int64()),
    # Checkpoints (issue 23): older part files lack these; readers take them as nulls.
    ("restored_from", pa.int64()),
    ("checkpoint_bytes", pa.int64()),
    ("checkpoint_s", pa.float64()),
]
CURVE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("sweep", pa.string()),
    ("trial_id", pa.string()),
    ("step", pa.int64()),
    ("time", pa.timestamp("us", tz="UTC")),
    # The order the driver received a stage's reports in, and its stopping rule saw them
    # (a replay after a restart feeds them in this order); null in files written before.
    ("seq", pa.int64()),
]


def column_type(kinds: Iterable[str]) -> pa.DataType:
    """The Arrow type of a parameter column from the kinds of value it takes
    ('int', 'float', 'bool', 'str', 'none', 'json').

    Example: ``column_type({"int", "float"}) == pa.float64()``
    """
    kinds = set(kinds) - {"none"}
    if not kinds:
        return pa.string()
    if kinds == {"int"}:
        return pa.int64()
    if kinds <= {"int", "float"}:
        return pa.float64()
    if kinds == {"bool"}:
        return pa.bool_()
    return pa.string()


def string_cell(value: Any) -> str:
    """A value in a string column: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def fits_int64(value: Any) -> bool:
    """True for None and for the integers an int64 column holds: a value outside that
    range must never reach ``pa.array`` (its OverflowError would fail every flush).

    Example: ``fits_int64(2**63) is False``
    """
    return value is None or INT64_MIN <= value <= INT64_MAX


def micros(seconds: float | None) -> int | None:
    """Epoch seconds as integer microseconds (the timestamp columns' unit)."""
    return None if seconds is None else int(seconds * 1_000_000)


class Codec:
    """Parameter columns: their Arrow types, and config values to cells and back."""

    def __init__(self, types: Mapping[str, pa.DataType],
                 values: Mapping[str, Sequence[Any]] | None = None):
        self.types = dict(types)
        # Columns where a plain string would read like another value ("1" and 1): there,
        # every value is written as JSON, strings quoted.
        self._as_json = {
            name for name, vals in (values or {}).items()
            if pa.types.is_string(self.types[name])
            and len({string_cell(v) for v in vals}) < len({value_key(v) for v in vals})
        }
        # Values a string cell may stand for (choices): decode gives them back exactly.
        self._lookup = {
            name: {self._string(name, v): v for v in vals}
            for name, vals in (values or {}).items() if pa.types.is_string(self.types[name])
        }
        self._ints = {n for n, t in self.types.items() if pa.types.is_integer(t)}

    @classmethod
    def of(cls, space: Space, extra: Mapping[str, Iterable[Any]] | None = None) -> Codec:
        """The codec of a space, with ``extra`` values some parameters may also take
        (stages' fixed and grid values).

        Example: ``Codec.of(spec.space, {"epochs": [3, 15]})``
        """
        kinds: dict[str, set[str]] = {}
        values: dict[str, list[Any]] = {}
        for name, dist in space.items():
            if dist.categorical or not dist.is_dimension:
                support = dist.support()
                kinds[name] = {scalar_kind(v) for v in support}
                values[name] = list(support)
            else:
                kinds[name] = {"int" if dist.kind == "int" else "float"}
                values[name] = []
        for name, more in (extra or {}).items():
            if name in kinds:
                more = list(more)
                kinds[name].update(scalar_kind(v) for v in more)
                values[name].extend(more)
        return cls({n: column_type(k) for n, k in kinds.items()}, values)

    def encode(self, name: str, value: Any) -> Any:
        """The cell of ``value`` in column ``params.<name>``."""
        if value is None:
            return None
        typ = self.types.get(name)
        if typ is None or pa.types.is_string(typ):
            return self._string(name, value)
        if pa.types.is_floating(typ):
            return float(value)
        return value

    def _string(self, name: str, value: Any) -> str:
        return json.dumps(value) if name in self._as_json else string_cell(value)

    def needs_encoding(self, name: str) -> bool:
        """False when a column's cells are the config values as they are (int, bool and
        float columns: Arrow takes Python ints for a float column)."""
        typ = self.types.get(name)
        return typ is None or pa.types.is_string(typ)

    def decode(self, name: str, cell: Any) -> Any:
        """The config value of a cell of column ``params.<name>``."""
        if hasattr(cell, "item") and not isinstance(cell, (str, bytes)):
            cell = cell.item()
        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
            return None
        lookup = self._lookup.get(name)
        if lookup is not None:
            return lookup.get(cell, cell)
        if name in self._ints and isinstance(cell, float) and cell.is_integer():
            return int(cell)
        return cell

    def decode_params(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A flat config back from a stored row (``params.<name>`` keys)."""
        return {name: self.decode(name, row.get(f"params.{name}")) for name in self.types}

    def same_values(self, a: Any, b: Any) -> bool:
        """True when two config values are the same value (1, 1.0 and True apart)."""
        return value_key(a) == value_key(b)


def trials_schema(param_types: Mapping[str, pa.DataType], metrics: Sequence[str]) -> pa.Schema:
    """The schema of every trials part file (the stage column comes from the folder)."""
    fields = list(BASE_COLUMNS)
    fields += [(f"params.{n}", t) for n, t in sorted(param_types.items())]
    fields += [(f"metrics.{n}", pa.float64()) for n in metrics]
    fields += TAIL_COLUMNS
    return pa.schema(fields)


def curves_schema(metrics: Sequence[str]) -> pa.Schema:
    """The schema of every curves part file."""
    return pa.schema(list(CURVE_COLUMNS) + [(f"metrics.{n}", pa.float64()) for n in metrics])


def _timestamps(values: list[float | None], typ: pa.DataType) -> pa.Array:
    return pa.array([micros(v) for v in values], pa.int64()).cast(typ)


def trials_table(records: Sequence[TrialRecord], codec: Codec, schema: pa.Schema) -> pa.Table:
    """Records to an Arrow table of ``schema``, one column at a time (the flush's hot loop)."""
    arrays = []
    for f in schema:
        name, typ = f.name, f.type
        if name.startswith("params."):
            key = name[7:]
            values = [r.params.get(key) for r in records]
            if codec.needs_encoding(key):
                values = [codec.encode(key, v) for v in values]
        elif name.startswith("metrics."):
            key = name[8:]
            values = [r.metrics.get(key) for r in records]
            values = [None if v is None else float(v) for v in values]
        elif pa.types.is_timestamp(typ):
            arrays.append(_timestamps([getattr(r, name) for r in records], typ))
            continue
        else:
            values = [getattr(r, name) for r in records]
            if name in ("step", "restored_from"):  # beyond int64: no step; row written
                values = [v if fits_int64(v) else None for v in values]
        arrays.append(pa.array(values, typ, from_pandas=False))
    return pa.Table.from_arrays(arrays, schema=schema)


def curves_table(rows: Sequence[tuple[str, Any, int | None]], schema: pa.Schema) -> pa.Table:
    """(sweep name, Report, arrival number) triples to an Arrow table of ``schema``; a report
    whose step is beyond int64 is left out (the worker refuses those, an older journal may
    not)."""
    rows = [row for row in rows if fits_int64(row[1].step)]
    arrays = []
    for f in schema:
        name, typ = f.name, f.type
        if name == "sweep":
            values: list[Any] = [sweep for sweep, _, _ in rows]
        elif name == "seq":
            values = [seq for _, _, seq in rows]
        elif name == "time":
            arrays.append(_timestamps([r.time for _, r, _ in rows], typ))
            continue
        elif name.startswith("metrics."):
            key = name[8:]
            values = [r.metrics.get(key) for _, r, _ in rows]
            values = [None if v is None else float(v) for v in values]
        else:
            values = [getattr(r, name) for _, r, _ in rows]
        arrays.append(pa.array(values, typ, from_pandas=False))
    return pa.Table.from_arrays(arrays, schema=schema)


def record_from_row(row: Mapping[str, Any], codec: Codec) -> TrialRecord:
    """A stored row (a dict of column -> value, as pandas gives it) as a TrialRecord."""
    metrics = {k[8:]: float(v) for k, v in row.items()
               if k.startswith("metrics.") and v is not None and not _nan(v)}
    step = row.get("step")
    return TrialRecord(
        sweep=str(row.get("sweep") or ""), stage=int(row.get("stage") or 0),
        trial_id=str(row["trial_id"]), parent_id=_text(row.get("parent_id")),
        status=str(row.get("status")), params=codec.decode_params(row), metrics=metrics,
        error=_text(row.get("error")), attempts=int(row.get("attempts") or 1),
        started_at=_seconds(row.get("started_at")), finished_at=_seconds(row.get("finished_at")),
        duration_s=_float(row.get("duration_s")), node=str(row.get("node") or ""),
        gpu_ids=str(row.get("gpu_ids") or ""), step=None if _nan(step) else int(step),
        restored_from=_int(row.get("restored_from")),
        checkpoint_bytes=_int(row.get("checkpoint_bytes")),
        checkpoint_s=_float(row.get("checkpoint_s")),
    )


def _nan(v: Any) -> bool:
    if v is None:
        return True
    try:
        return (isinstance(v, float) and math.isnan(v)) or str(v) in ("NaT", "<NA>")
    except Exception:
        return False


def _text(v: Any) -> str | None:
    return None if _nan(v) else str(v)


def _int(v: Any) -> int | None:
    return None if _nan(v) else int(v)


def _float(v: Any) -> float | None:
    return None if _nan(v) else float(v)


def _seconds(v: Any) -> float | None:
    if _nan(v):
        return None
    if hasattr(v, "timestamp"):
        return float(v.timestamp())
    return float(v)


__all__ = ["BASE_COLUMNS", "CURVE_COLUMNS", "TAIL_COLUMNS", "Codec", "column_type",
           "curves_schema", "curves_table", "fits_int64", "micros", "record_from_row",
           "string_cell", "trials_schema", "trials_table"]
