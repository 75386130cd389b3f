"""Fast path: read the MLMD tables of a SQLite store straight into Arrow.

Uses the Arrow-native ``adbc-driver-sqlite`` driver (no row objects in Python), after
checking ``MLMDEnv.schema_version`` against the layouts this module knows. Incremental reads
use a watermark: node rows whose ``last_update_time_since_epoch`` reached the last maximum
(MLMD updates nodes and their properties in place and bumps that time) or whose id is new,
and edge rows (events, attributions, associations) with ids above the last maximum. A store
that lost rows or was replaced is re-read in full.

Edges are read as the ml_metadata API sees them, so that both readers agree: events of
existing executions, attributions of existing artifacts, associations of existing executions,
parents of existing contexts. What dangles on the other side is kept and reported.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from provenance.connections import StoreSpec, check_supported, readonly_uri, sqlite_schema_version
from provenance.readers.staging import STAGING_SCHEMAS, Batch
from provenance.values import STRUCT_PREFIX, any_bytes_json, column_bytes, struct_text_json

__all__ = ["read_sqlite", "SYSTEM_TYPE_NAMES"]

log = logging.getLogger(__name__)

# Base types MLMD keeps as rows of `Type`; the ml_metadata API never lists them as types.
SYSTEM_TYPE_NAMES = (
    "mlmd.Dataset", "mlmd.Model", "mlmd.Metrics", "mlmd.Statistics",
    "mlmd.Train", "mlmd.Transform", "mlmd.Process", "mlmd.Evaluate", "mlmd.Deploy",
)
_SYSTEM = ", ".join(f"'{n}'" for n in SYSTEM_TYPE_NAMES)
_KINDS = "CASE t.type_kind WHEN 0 THEN 'execution' WHEN 1 THEN 'artifact' WHEN 2 THEN 'context' END"

_NODES = {  # staging table -> (MLMD table, property table, property id column)
    "artifacts": ("Artifact", "ArtifactProperty", "artifact_id"),
    "executions": ("Execution", "ExecutionProperty", "execution_id"),
    "contexts": ("Context", "ContextProperty", "context_id"),
}
_ENTITY = {"artifacts": "artifact", "executions": "execution", "contexts": "context"}

_BATCH_ROWS = 65536  # rows per Arrow batch: few large batches load into DuckDB much faster
_SENTINEL = {pa.int64(): "0", pa.string(): "''", pa.float64(): "0.0"}
_CAST = {pa.int64(): "INTEGER", pa.string(): "TEXT", pa.float64(): "REAL"}


class _ArrowSqlite:
    """A read-only SQLite connection that returns query results as Arrow tables.

    Uses the low-level ADBC driver interface: its DB-API layer imports pandas, which costs
    about a second per process.
    """

    def __init__(self, uri: str):
        import adbc_driver_manager
        import adbc_driver_sqlite

        self._db = adbc_driver_sqlite.connect(uri)
        self._conn = adbc_driver_manager.AdbcConnection(self._db)

    def query(self, sql: str) -> pa.Table:
        import adbc_driver_manager

        stmt = adbc_driver_manager.AdbcStatement(self._conn)
        try:
            stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(_BATCH_ROWS)})
            stmt.set_sql_query(sql)
            stream, _ = stmt.execute_query()
            return pa.RecordBatchReader._import_from_c(stream.address).read_all()
        finally:
            stmt.close()

    def close(self) -> None:
        self._conn.close()
        self._db.close()


def _query(cur: _ArrowSqlite, name: str, select: str) -> pa.Table:
    """Run ``select`` (columns in the staging order of ``name``) and return an Arrow table.

    The driver infers column types from the first rows; a typed sentinel row in front and a
    CAST around every column make the types fixed whatever the data looks like.
    """
    schema = STAGING_SCHEMAS[name]
    sentinel = ", ".join(f"{_SENTINEL[f.type]} AS {f.name}" for f in schema)
    outer = ", ".join(f"CAST({f.name} AS {_CAST[f.type]}) AS {f.name}" for f in schema)
    cols = ", ".join(f.name for f in schema)
    table = cur.query(f"WITH q({cols}) AS ({select}) SELECT {sentinel} UNION ALL SELECT {outer} FROM q").slice(1)
    return table.cast(schema)


def _decode_special(props: pa.Table) -> pa.Table:
    """Turn the raw struct, proto and bytes values of a property table into text, in place.

    The property query marks them by ``value_type`` and leaves the stored text in
    ``string_value`` (``mlmd-struct::<base64>`` for structs, ``<sqlite type>:<hex>`` for the
    blob columns); they are few, so Python decodes them one by one.
    """
    import pyarrow.compute as pc

    mask = pc.is_in(props["value_type"], pa.array(["struct", "proto", "bytes"])).fill_null(False)
    if not pc.any(mask).as_py():
        return props
    raw = props.filter(mask)
    decoded = []
    for vtype, text in zip(raw["value_type"].to_pylist(), raw["string_value"].to_pylist()):
        if vtype == "struct":
            decoded.append(struct_text_json(text))
            continue
        kind, _, hexed = text.partition(":")
        blob = bytes.fromhex(hexed)
        stored = blob.decode("ascii", "replace") if kind == "text" else blob  # MLMD: base64 text
        if vtype == "proto":
            decoded.append(any_bytes_json(stored))
        else:
            decoded.append(base64.b64encode(column_bytes(stored)).decode("ascii"))
    column = pc.replace_with_mask(props["string_value"].combine_chunks(), mask.combine_chunks(),
                                  pa.array(decoded, pa.string()))
    return props.set_column(props.schema.get_field_index("string_value"), "string_value", column)


def _run_jobs(uri, jobs, threads: int, on_table) -> dict[str, pa.Table]:
    """Run the staging queries on a small thread pool; returns staging tables by name."""
    local = threading.local()
    opened: list[_ArrowSqlite] = []
    lock = threading.Lock()

    def run(job: tuple[str, str]) -> tuple[str, pa.Table]:
        name, sql = job
        if not hasattr(local, "con"):
            local.con = _ArrowSqlite(uri)
            with lock:
                opened.append(local.con)
        table = _query(local.con, name.split(":")[0], sql)
        if on_table and not name.startswith("properties"):
            on_table(name, table.num_rows)
        return name, table

    # Biggest first.
    order = sorted(jobs, key=lambda j: j[0] not in ("properties:artifacts", "event_steps", "properties:executions", "events"))
    try:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            results = dict(pool.map(run, order))
    finally:
        for con in opened:
            con.close()
    props = [results.pop(k) for k in sorted(k for k in list(results) if k.startswith("properties:"))]
    if not props:
        return results
    results["properties"] = _decode_special(pa.concat_tables(props))
    if on_table:
        on_table("properties", results["properties"].num_rows)
    return results


def _store_marks(con: sqlite3.Connection) -> dict:
    """Current high-water marks and row counts of the store."""
    marks: dict = {}
    for name, (table, _, _) in _NODES.items():
        mx_upd, mx_id, n = con.execute(
            f"SELECT MAX(last_update_time_since_epoch), MAX(id), COUNT(*) FROM {table}"
        ).fetchone()
        marks[name] = {"update_ms": mx_upd, "max_id": mx_id, "count": n}
    for name, table in (("events", "Event"), ("attributions", "Attribution"), ("associations", "Association")):
        mx_id, n = con.execute(f"SELECT MAX(id), COUNT(*) FROM {table}").fetchone()
        marks[name] = {"max_id": mx_id, "count": n}
    return marks


def _can_continue(old: dict | None, marks: dict, version: int) -> bool:
    """True when the stored watermark describes an earlier state of this same store."""
    if not old or old.get("via") != "sqlite" or old.get("schema_version") != version:
        return False
    prev = old.get("marks") or {}
    for name, now in marks.items():
        before = prev.get(name)
        if before is None:
            return False
        if (before.get("max_id") or 0) > (now.get("max_id") or 0):
            return False  # ids went down: rows deleted or a different store at the same path
        if (before.get("count") or 0) > (now.get("count") or 0):
            return False  # rows were deleted: re-read everything
    return True


PART_IDS = 250_000  # ids of one table per part of a full read: bounds the rows held at once


def read_sqlite(
    spec: StoreSpec,
    watermark: dict | None = None,
    *,
    on_table: Callable[[str, int], None] | None = None,
    threads: int = 2,
    part_ids: int = PART_IDS,
) -> Iterator[Batch]:
    """Read a SQLite MLMD store: in full, or the delta since ``watermark`` when it still applies.

    Yields batches to load in order, together (one transaction): a delta is one batch; a full
    read is cut into parts of at most ``part_ids`` consecutive ids of one table (nodes with
    their properties, events with their path steps, edges), so that a first read of a store of
    any size holds one part at a time, not the whole store. Every part carries the (small)
    type tables. Rows are read up to the high-water marks taken
    at the start, in one snapshot: what is written meanwhile is read by the next ingest.
    ``threads`` queries run at once, each on its own read-only connection (SQLite and the
    Arrow conversion run without the GIL).
    """
    if part_ids < 1:
        raise ValueError(f"part_ids must be positive, got {part_ids}")
    version = sqlite_schema_version(spec.path)
    check_supported(version, str(spec.path))
    uri = readonly_uri(spec.path)
    scon = sqlite3.connect(uri, uri=True)
    try:
        scon.execute("BEGIN")  # one snapshot for all the marks
        marks = _store_marks(scon)
        full = not _can_continue(watermark, marks, version)
        lows = {name: scon.execute(f"SELECT MIN(id) FROM {table}").fetchone()[0]
                for name, table in _RANGED.items()} if full else {}
    finally:
        scon.rollback()
        scon.close()
    mark = {"via": "sqlite", "schema_version": version, "marks": marks}
    types = _type_jobs()
    if not full:
        tables = _run_jobs(uri, types + _delta_jobs(watermark["marks"]), threads, on_table)
        yield Batch(full=False, tables=tables, watermark=mark, schema_version=version,
                    store_rows=sum(t.num_rows for t in tables.values()))
        return
    type_tables = _run_jobs(uri, types, threads, None)
    type_rows = sum(t.num_rows for t in type_tables.values())   # counted with the first part
    empty = True
    for name, table in _RANGED.items():
        low, high = lows[name], marks[name]["max_id"]
        if low is None or high is None:
            continue
        for lo in range(int(low) - 1, int(high), part_ids):
            tables = _run_jobs(uri, _part_jobs(name, lo, min(lo + part_ids, int(high))), threads, on_table)
            yield Batch(full=True, tables={**type_tables, **tables}, watermark=mark, schema_version=version,
                        store_rows=sum(t.num_rows for t in tables.values()) + type_rows)
            empty, type_rows = False, 0
    if empty:  # an empty store: its types alone
        yield Batch(full=True, tables=type_tables, watermark=mark, schema_version=version, store_rows=type_rows)


# Tables a full read cuts into id ranges (staging name -> MLMD table).
_RANGED = {"artifacts": "Artifact", "executions": "Execution", "contexts": "Context",
           "events": "Event", "attributions": "Attribution", "associations": "Association"}


def _type_jobs() -> list[tuple[str, str]]:
    return [("types", f"""
        SELECT t.id, {_KINDS}, t.name, t.version, t.description,
               upper(substr(p.name, 6))
        FROM Type t
        LEFT JOIN ParentType pt ON pt.type_id = t.id
        LEFT JOIN Type p ON p.id = pt.parent_type_id AND p.name IN ({_SYSTEM})
        WHERE t.name NOT IN ({_SYSTEM})"""),
        ("type_properties", "SELECT type_id, name, data_type FROM TypeProperty")]


def _node_sql(name: str, cond: str) -> str:
    cols = {"artifacts": "id, type_id, uri, state, name, external_id",
            "executions": "id, type_id, last_known_state, name, external_id",
            "contexts": "id, type_id, name, external_id"}[name]
    return (f"SELECT {cols}, create_time_since_epoch, last_update_time_since_epoch "
            f"FROM {_NODES[name][0]} WHERE {cond}")


def _property_sql(name: str, where: str) -> str:
    _, ptable, idcol = _NODES[name]
    return f"""
        SELECT '{_ENTITY[name]}', {idcol}, name, is_custom_property,
               CASE WHEN proto_value IS NOT NULL THEN 'proto'
                    WHEN byte_value IS NOT NULL THEN 'bytes'
                    WHEN substr(string_value, 1, {len(STRUCT_PREFIX)}) = '{STRUCT_PREFIX}' THEN 'struct'
                    WHEN int_value IS NOT NULL THEN 'int'
                    WHEN double_value IS NOT NULL THEN 'double'
                    WHEN string_value IS NOT NULL THEN 'string'
                    WHEN bool_value IS NOT NULL THEN 'bool' END,
               int_value, double_value,
               CASE WHEN proto_value IS NOT NULL THEN typeof(proto_value) || ':' || hex(proto_value)
                    WHEN byte_value IS NOT NULL THEN typeof(byte_value) || ':' || hex(byte_value)
                    ELSE string_value END,
               bool_value
        FROM {ptable}
        WHERE {where}"""


# Edges as the ml_metadata API sees them (those of nodes that exist), rows chosen by ``{}``.
_EDGE_SQL = {
    "events": "SELECT id, artifact_id, execution_id, type, milliseconds_since_epoch FROM Event "
              "WHERE {} AND execution_id IN (SELECT id FROM Execution)",
    "event_steps": "SELECT event_id, rowid, is_index_step, step_index, step_key FROM EventPath WHERE {}",
    "attributions": "SELECT context_id, artifact_id FROM Attribution WHERE {} AND artifact_id IN (SELECT id FROM Artifact)",
    "associations": "SELECT context_id, execution_id FROM Association "
                    "WHERE {} AND execution_id IN (SELECT id FROM Execution)",
    "parent_contexts": "SELECT context_id, parent_context_id FROM ParentContext "
                       "WHERE {} AND context_id IN (SELECT id FROM Context)",
}


def _delta_jobs(prev: dict) -> list[tuple[str, str]]:
    """The rows changed since the marks ``prev``: nodes updated or new (all their properties), new edges."""
    jobs: list[tuple[str, str]] = []
    for name, (table, _, idcol) in _NODES.items():
        upd = int(prev[name].get("update_ms") or 0)
        mid = int(prev[name].get("max_id") or 0)
        cond = f"(last_update_time_since_epoch >= {upd} OR id > {mid})"
        jobs.append((name, _node_sql(name, cond)))
        jobs.append((f"properties:{name}", _property_sql(name, f"{idcol} IN (SELECT id FROM {table} WHERE {cond})")))
    after = {name: int(prev[name].get("max_id") or 0) for name in ("events", "attributions", "associations")}
    where = {"events": f"id > {after['events']}", "event_steps": f"event_id > {after['events']}",
             "attributions": f"id > {after['attributions']}", "associations": f"id > {after['associations']}",
             "parent_contexts": "1 = 1"}
    return jobs + [(name, _EDGE_SQL[name].format(cond)) for name, cond in where.items()]


def _part_jobs(name: str, lo: int, hi: int) -> list[tuple[str, str]]:
    """The queries of one part of a full read: ids ``lo < id <= hi`` of the table ``name``."""
    span = f"id > {lo} AND id <= {hi}"
    if name in _NODES:
        table, _, idcol = _NODES[name]
        jobs = [(name, _node_sql(name, span)),
                (f"properties:{name}", _property_sql(
                    name, f"{idcol} > {lo} AND {idcol} <= {hi} AND {idcol} IN (SELECT id FROM {table} WHERE {span})"))]
        if name == "contexts":
            jobs.append(("parent_contexts", _EDGE_SQL["parent_contexts"].format(
                f"context_id > {lo} AND context_id <= {hi}")))
        return jobs
    jobs = [(name, _EDGE_SQL[name].format(span))]
    if name == "events":
        jobs.append(("event_steps", _EDGE_SQL["event_steps"].format(f"event_id > {lo} AND event_id <= {hi}")))
    return jobs
