"""The DuckDB warehouse: open it, and load a staging batch into it with set-based SQL.

Every transformation from MLMD rows to warehouse rows happens here, once, for both readers:
enum names, UTC timestamps, effective execution state and ``duration_s`` (a finished
execution's custom property ``duration_s`` when it has one, as frugal records for steps that
ran fused inside one Beam pipeline; else MLMD's own update - create stamps), event paths and
event ids, type names, and the ``ingest_issues`` of a source. The caller owns the
transaction (see :func:`provenance.ingest.ingest`), which is what makes an ingest atomic.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from datetime import datetime, timezone
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from provenance.errors import ProvenanceError
from provenance.readers.staging import Batch, event_paths
from provenance.schema import ARTIFACT_STATES, EVENT_TYPES, EXECUTION_STATES, TABLES, create_schema

__all__ = ["connect", "batch_rows", "load_parts", "load_rows", "source_row", "table_counts", "DATA_TABLES", "FINISHED_STATES"]

log = logging.getLogger(__name__)

# Tables that hold rows of one source (everything but `sources`) in load order.
DATA_TABLES = tuple(t for t in TABLES if t != "sources")
FINISHED_STATES = ("COMPLETE", "FAILED", "CACHED", "CANCELED")

# Event id: MLMD keeps one event per (artifact, execution, type), but the ml_metadata API does not
# expose the Event row id, so both readers derive the id from that key:
# execution_id * 2^34 + artifact_id * 2^3 + type, exact and reversible for execution ids below
# 2^29 and artifact ids below 2^31; larger ids (never seen in practice) fall back to 63 bits of
# the key's MD5.
EVENT_ID_SQL = """CASE WHEN e.execution_id BETWEEN 0 AND 536870911 AND e.artifact_id BETWEEN 0 AND 2147483647
         AND e.type BETWEEN 0 AND 7
    THEN e.execution_id * 17179869184 + e.artifact_id * 8 + e.type
    ELSE (md5_number_upper(concat_ws(':', e.execution_id, e.artifact_id, e.type)) >> 1)::BIGINT END"""


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at ``path``; a writable warehouse gets every missing table created."""
    path = Path(path)
    if read_only:
        if not path.exists():
            raise ProvenanceError(
                f"warehouse not found: {path}. Create it with `frugal ingest STORE --warehouse {path}`."
            )
        try:
            con = duckdb.connect(str(path), read_only=True)
            con.execute("SET enable_progress_bar = false")
            return con
        except duckdb.Error as exc:
            raise ProvenanceError(f"cannot open the warehouse {path}: {exc}") from exc
    if path.parent and not path.parent.exists():
        raise ProvenanceError(f"cannot create the warehouse {path}: folder {path.parent} does not exist.")
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise ProvenanceError(
            f"cannot open the warehouse {path} for writing: {exc}. Is it a DuckDB file, and is no "
            "other process writing to it?"
        ) from exc
    con.execute("SET enable_progress_bar = false")
    create_schema(con)
    return con


def _case(column: str, names: dict[int, str]) -> str:
    whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in names.items())
    return f"CASE {column} {whens} ELSE CAST({column} AS VARCHAR) END"


def _ts(column: str) -> str:
    return f"CASE WHEN {column} > 0 THEN epoch_ms({column}) END"


def source_row(con: duckdb.DuckDBPyConnection, source_id: str) -> dict | None:
    """The `sources` row of ``source_id`` as a dict (watermark parsed), or None."""
    row = con.execute(
        "SELECT source_id, uri, kind, schema_version, last_ingested_at, watermark FROM sources "
        "WHERE source_id = ?", [source_id]
    ).fetchall()
    if not row:
        return None
    row = row[0]
    keys = ("source_id", "uri", "kind", "schema_version", "last_ingested_at", "watermark")
    out = dict(zip(keys, row))
    out["watermark"] = json.loads(out["watermark"]) if out["watermark"] else None
    return out


def table_counts(con: duckdb.DuckDBPyConnection, source_id: str) -> dict[str, int]:
    """Rows per data table of one source."""
    return {
        t: con.execute(f"SELECT COUNT(*) FROM {t} WHERE source_id = ?", [source_id]).fetchall()[0][0]
        for t in DATA_TABLES
    }


def load_parts(
    con: duckdb.DuckDBPyConnection,
    source_id: str,
    uri: str,
    kind: str,
    parts: Iterable[Batch],
    *,
    fresh: bool = False,
) -> dict[str, int]:
    """Load the parts of one read, in order, as rows of ``source_id``; return rows written per table.

    The first part clears what the read replaces (every row of the source for a full read,
    the changed nodes for a delta) and writes the types; every part writes its rows; the
    source's ``ingest_issues`` and its ``sources`` row (with the watermark) are written once,
    after the last. Runs inside the caller's transaction, so the parts land together or not
    at all, while only one part is held in memory at a time. ``fresh`` says the source has no
    rows yet, which lets a full read skip the deletes.
    """
    written: dict[str, int] = {}
    last: Batch | None = None
    for i, batch in enumerate(parts):
        for table, n in load_rows(con, source_id, batch, fresh=fresh, first=i == 0).items():
            written[table] = written.get(table, 0) + n
        last = batch
    if last is None:
        raise ProvenanceError(f"nothing was read from {uri}: the reader yielded no batch")
    written["ingest_issues"] = record_issues(con, source_id)
    con.execute(
        "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
        [source_id, uri, kind, last.schema_version,
         datetime.now(timezone.utc).replace(tzinfo=None), json.dumps(last.watermark, sort_keys=True)],
    )
    return written


# Each data table's rows from the staging tables of a batch (registered as stg_<name>, the
# steps' paths as stg_event_paths); ``?``: the source id. Shared by load_rows and batch_rows.
def _rows_sql(table: str, kinds: str = "") -> str:
    if table == "properties":
        return f"""
            SELECT ?, entity, entity_id, name, is_custom <> 0, value_type,
                int_value, double_value, string_value, bool_value <> 0
            FROM stg_properties {kinds}"""
    if table == "artifacts":
        return f"""
            SELECT ?, a.artifact_id, a.type_id, t.name, a.uri, {_case('a.state', ARTIFACT_STATES)},
                   a.name, a.external_id, {_ts('a.create_ms')}, {_ts('a.update_ms')}
            FROM stg_artifacts a LEFT JOIN stg_types t ON t.type_id = a.type_id AND t.kind = 'artifact'
            """
    if table == "executions":
        return f"""
            WITH legacy AS (
                SELECT entity_id, arg_min(string_value, is_custom) AS state
                FROM stg_properties
                WHERE entity = 'execution' AND name = 'state' AND value_type = 'string'
                GROUP BY entity_id
            ), recorded AS (
                SELECT entity_id, any_value(coalesce(double_value, int_value)) AS duration_s
                FROM stg_properties
                WHERE entity = 'execution' AND name = 'duration_s' AND is_custom <> 0
                  AND coalesce(double_value, int_value) >= 0
                GROUP BY entity_id
            ), named AS (
                SELECT x.*, t.name AS type_name,
                       {_case('x.last_known_state', EXECUTION_STATES)} AS lks_name,
                       CASE WHEN x.last_known_state IS NOT NULL AND x.last_known_state <> 0
                                THEN {_case('x.last_known_state', EXECUTION_STATES)}
                            WHEN l.state IS NOT NULL AND trim(l.state) <> ''
                                THEN replace(upper(trim(l.state)), 'CANCELLED', 'CANCELED')
                            WHEN x.last_known_state IS NOT NULL
                                THEN {_case('x.last_known_state', EXECUTION_STATES)}
                       END AS eff_state, r.duration_s AS recorded_s
                FROM stg_executions x
                LEFT JOIN stg_types t ON t.type_id = x.type_id AND t.kind = 'execution'
                LEFT JOIN legacy l ON l.entity_id = x.execution_id
                LEFT JOIN recorded r ON r.entity_id = x.execution_id
            )
            SELECT ?, execution_id, type_id, type_name, eff_state, lks_name, name, external_id,
                   {_ts('create_ms')}, {_ts('update_ms')},
                   CASE WHEN eff_state IN {FINISHED_STATES} AND recorded_s IS NOT NULL THEN recorded_s
                        WHEN eff_state IN {FINISHED_STATES} AND create_ms > 0 AND update_ms > 0
                        THEN (update_ms - create_ms) / 1000.0 END
            FROM named"""
    if table == "contexts":
        return f"""
            SELECT ?, c.context_id, c.type_id, t.name, c.name, c.external_id,
                   {_ts('c.create_ms')}, {_ts('c.update_ms')}
            FROM stg_contexts c LEFT JOIN stg_types t ON t.type_id = c.type_id AND t.kind = 'context'
            """
    if table == "events":
        return f"""
            SELECT ?, {EVENT_ID_SQL}, e.artifact_id, e.execution_id, {_case('e.type', EVENT_TYPES)},
                   s.path, s.path_key, {_ts('e.ts_ms')}
            FROM stg_events e LEFT JOIN stg_event_paths s ON s.event_key = e.event_key"""
    raise ValueError(f"no rows query for table {table!r}")


@contextlib.contextmanager
def _staged(con: duckdb.DuckDBPyConnection, batch: Batch, names: list[str]):
    """The batch's tables ``names`` (and its steps' paths) registered on ``con`` as stg_<name>."""
    for name in names:
        con.register(f"stg_{name}", batch.table(name).combine_chunks())
    try:
        con.register("stg_event_paths", event_paths(batch.table("event_steps")))
        yield
    finally:
        for name in names + ["event_paths"]:
            con.unregister(f"stg_{name}")


def batch_rows(con: duckdb.DuckDBPyConnection, source_id: str, batch: Batch,
               tables: tuple[str, ...]) -> dict[str, pa.Table]:
    """The rows ``load_rows`` would write for ``batch`` into ``tables``, as Arrow tables in the
    warehouse's columns, without writing anything (``con``: any connection, it only registers
    the batch): a decision reads a run's records so (optimizer.pruning.online)."""
    names = sorted({"types", "event_steps", "properties", *tables})
    out = {}
    with _staged(con, batch, names):
        for table in tables:
            sql = _rows_sql(table)
            out[table] = con.sql(sql, params=[source_id] * sql.count("?")).to_arrow_table() \
                .rename_columns(_all_columns()[table])
    return out


@functools.cache
def _all_columns() -> dict[str, tuple[str, ...]]:
    """The warehouse's columns of each table, in order (from the schema's own DDL, once)."""
    con = duckdb.connect()
    try:
        create_schema(con)
        out: dict[str, list[str]] = {}
        for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                         "ORDER BY table_name, column_index").fetchall():
            out.setdefault(table, []).append(column)
        return {t: tuple(c) for t, c in out.items()}
    finally:
        con.close()


def load_rows(con: duckdb.DuckDBPyConnection, source_id: str, batch: Batch, *, fresh: bool = False,
              first: bool = True, tables: tuple[str, ...] | None = None) -> dict[str, int]:
    """The rows of one part of a read, without the source's bookkeeping (``ingest_issues``,
    ``sources``; see load_parts): the ``first`` part also clears what the read replaces and
    writes the types. With ``tables``, only these of them (and only the properties of these
    entities)."""
    names = [
        "types", "type_properties", "artifacts", "executions", "contexts", "events",
        "event_steps", "attributions", "associations", "parent_contexts", "properties",
    ]
    if tables is not None:
        if set(tables) - {"artifacts", "executions", "contexts", "events", "attributions", "associations",
                          "parent_contexts", "properties"} or batch.full:
            raise ValueError("load_rows loads only data tables of a batch that is not a whole read, "
                             f"not {sorted(tables)}")
        # (types give the rows their type names, the steps the events their paths, the
        # properties the executions their legacy states and recorded durations)
        names = [n for n in names if n in tables or n in ("types", "event_steps", "properties")]
    load = (lambda table: True) if tables is None else (lambda table: table in tables)
    entities = [(t, key, entity) for t, key, entity in (
        ("artifacts", "artifact_id", "artifact"),
        ("executions", "execution_id", "execution"),
        ("contexts", "context_id", "context"),
    ) if load(t)]
    sid = [source_id]
    written: dict[str, int] = {}
    with _staged(con, batch, names):
        if first and batch.full and not fresh:
            for table in DATA_TABLES:
                con.execute(f"DELETE FROM {table} WHERE source_id = ?", sid)
        elif not batch.full:
            if first and tables is None:
                for table in ("types", "type_properties", "ingest_issues"):
                    con.execute(f"DELETE FROM {table} WHERE source_id = ?", sid)
            for table, key, entity in entities:
                con.execute(
                    f"DELETE FROM {table} WHERE source_id = ? AND {key} IN (SELECT {key} FROM stg_{table})", sid
                )
                if load("properties"):
                    con.execute(
                        f"DELETE FROM properties WHERE source_id = ? AND entity = '{entity}' "
                        f"AND entity_id IN (SELECT {key} FROM stg_{table})", sid,
                    )
        if first and tables is None:
            written["types"] = _run(con, f"""
                INSERT INTO types SELECT ?, type_id, kind, name, version, description, base_type
                FROM stg_types""", sid)
            written["type_properties"] = _run(con, f"""
                INSERT INTO type_properties SELECT ?, type_id, name,
                    CASE data_type WHEN 1 THEN 'INT' WHEN 2 THEN 'DOUBLE' WHEN 3 THEN 'STRING'
                         WHEN 4 THEN 'STRUCT' WHEN 5 THEN 'PROTO' WHEN 6 THEN 'BOOLEAN'
                         WHEN 0 THEN 'UNKNOWN' ELSE CAST(data_type AS VARCHAR) END
                FROM stg_type_properties""", sid)
        if load("properties"):
            kinds = "" if tables is None else f"WHERE list_contains({[e for _, _, e in entities]}, entity)"
            written["properties"] = _run(con, "INSERT INTO properties " + _rows_sql("properties", kinds), sid)
        for table in ("artifacts", "executions", "contexts"):
            if load(table):
                written[table] = _run(con, f"INSERT INTO {table} " + _rows_sql(table), sid)
        if load("events"):
            if not batch.full:  # events are immutable in MLMD: replace the ones read again
                con.execute(
                    f"DELETE FROM events WHERE source_id = ? AND event_id IN (SELECT {EVENT_ID_SQL} FROM stg_events e)",
                    sid)
            written["events"] = _run(con, "INSERT INTO events " + _rows_sql("events"), sid)
        for table, cols in (
            ("attributions", ("context_id", "artifact_id")),
            ("associations", ("context_id", "execution_id")),
            ("parent_contexts", ("context_id", "parent_context_id")),
        ):
            if not load(table):
                continue
            select = f"SELECT DISTINCT ?, {', '.join(cols)} FROM stg_{table} s"
            if not batch.full:  # edges are insert-only in MLMD: add the new ones
                match = " AND ".join(f"t.{c} = s.{c}" for c in cols)
                select += f" WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.source_id = ? AND {match})"
            written[table] = _run(con, f"INSERT INTO {table} {select}", sid)
    return written


def _run(con: duckdb.DuckDBPyConnection, sql: str, sid: list[str]) -> int:
    params = sid * sql.count("?")
    rows = con.execute(sql, params).fetchall()
    return int(rows[0][0]) if rows else 0


def record_issues(con: duckdb.DuckDBPyConnection, source_id: str) -> int:
    """Recompute the `ingest_issues` of a source from its warehouse rows; return how many."""
    sid = [source_id]
    con.execute("DELETE FROM ingest_issues WHERE source_id = ?", sid)
    checks = [
        ("dangling_event", "event", "e.event_id",
         "'event ' || e.type || ' refers to ' || CASE WHEN a.artifact_id IS NULL THEN 'missing artifact ' || e.artifact_id ELSE '' END"
         " || CASE WHEN a.artifact_id IS NULL AND x.execution_id IS NULL THEN ' and ' ELSE '' END"
         " || CASE WHEN x.execution_id IS NULL THEN 'missing execution ' || e.execution_id ELSE '' END",
         "events e LEFT JOIN artifacts a ON a.source_id = e.source_id AND a.artifact_id = e.artifact_id "
         "LEFT JOIN executions x ON x.source_id = e.source_id AND x.execution_id = e.execution_id",
         "e.source_id = ? AND (a.artifact_id IS NULL OR x.execution_id IS NULL)"),
        ("dangling_attribution", "context", "r.context_id",
         "'attribution of artifact ' || r.artifact_id || ' to context ' || r.context_id || ': one side is missing'",
         "attributions r LEFT JOIN artifacts a ON a.source_id = r.source_id AND a.artifact_id = r.artifact_id "
         "LEFT JOIN contexts c ON c.source_id = r.source_id AND c.context_id = r.context_id",
         "r.source_id = ? AND (a.artifact_id IS NULL OR c.context_id IS NULL)"),
        ("dangling_association", "context", "r.context_id",
         "'association of execution ' || r.execution_id || ' to context ' || r.context_id || ': one side is missing'",
         "associations r LEFT JOIN executions x ON x.source_id = r.source_id AND x.execution_id = r.execution_id "
         "LEFT JOIN contexts c ON c.source_id = r.source_id AND c.context_id = r.context_id",
         "r.source_id = ? AND (x.execution_id IS NULL OR c.context_id IS NULL)"),
        ("dangling_parent_context", "context", "r.context_id",
         "'parent context ' || r.parent_context_id || ' of context ' || r.context_id || ': one side is missing'",
         "parent_contexts r LEFT JOIN contexts c ON c.source_id = r.source_id AND c.context_id = r.context_id "
         "LEFT JOIN contexts p ON p.source_id = r.source_id AND p.context_id = r.parent_context_id",
         "r.source_id = ? AND (c.context_id IS NULL OR p.context_id IS NULL)"),
    ]
    for table, key in (("artifacts", "artifact_id"), ("executions", "execution_id"), ("contexts", "context_id")):
        checks.append((
            "unknown_type", table[:-1], f"n.{key}",
            f"'{table[:-1]} has type id ' || n.type_id || ', which the store does not define'",
            f"{table} n", "n.source_id = ? AND n.type_name IS NULL",
        ))
    for issue, entity, id_sql, detail_sql, from_sql, where_sql in checks:
        con.execute(
            f"INSERT INTO ingest_issues SELECT ?, '{issue}', '{entity}', {id_sql}, {detail_sql} "
            f"FROM {from_sql} WHERE {where_sql}", sid + sid,
        )
    con.execute(
        """INSERT INTO ingest_issues
           SELECT ?, 'empty_store', NULL, NULL, 'the store holds no artifacts, executions or contexts'
           WHERE NOT EXISTS (SELECT 1 FROM artifacts WHERE source_id = ?)
             AND NOT EXISTS (SELECT 1 FROM executions WHERE source_id = ?)
             AND NOT EXISTS (SELECT 1 FROM contexts WHERE source_id = ?)""",
        sid * 4,
    )
    return con.execute("SELECT COUNT(*) FROM ingest_issues WHERE source_id = ?", sid).fetchall()[0][0]
