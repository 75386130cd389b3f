"""Read-only queries on the warehouse, for `frugal sql` and anyone who takes SQL from users.

The warehouse is opened read-only and external access is switched off before the query
runs, so a query can neither change the warehouse nor read or write any file
(COPY, ATTACH, read_csv, INSTALL/LOAD are all refused).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
from pathlib import Path

import duckdb

from provenance.errors import ProvenanceError
from provenance.warehouse import connect

__all__ = ["run_query", "format_result", "open_sandboxed", "json_value"]


def open_sandboxed(warehouse: str | Path) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only with file and network access disabled and locked."""
    con = connect(warehouse, read_only=True)
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(warehouse: str | Path, query: str, max_rows: int | None = None) -> tuple[list[str], list[tuple]]:
    """Run ``query`` on the warehouse read-only; return (column names, rows)."""
    con = open_sandboxed(warehouse)
    try:
        try:
            result = con.execute(query)
        except duckdb.Error as exc:
            raise ProvenanceError(
                f"query failed: {str(exc).strip()}. Queries are read-only and cannot touch files; "
                "see docs/warehouse.md for the tables."
            ) from exc
        if result.description is None:
            return [], []
        columns = [d[0] for d in result.description]
        rows = result.fetchmany(max_rows) if max_rows else result.fetchall()
        return columns, rows
    finally:
        con.close()


def _plain(value, json_safe: bool = False):
    if json_safe and isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [_plain(v, json_safe) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, json_safe) for k, v in value.items()}
    return value


def json_value(value):
    """A query value as JSON can carry it (times as ISO text, NaN as null, bytes as hex)."""
    return _plain(value, json_safe=True)


def format_result(columns: list[str], rows: list[tuple], fmt: str = "table") -> str:
    """Render a result as an aligned text table, CSV or JSON (a list of objects)."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, (_plain(v, True) for v in r))) for r in rows], ensure_ascii=False, default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if v is None else _plain(v) for v in r])
        return buf.getvalue()
    cells = [[("NULL" if v is None else str(_plain(v))) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()
    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"
