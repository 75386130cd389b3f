"""The warehouse contract: DuckDB tables that hold MLMD provenance from many sources.

Every row carries ``source_id``; MLMD ids are unique only within one source. States and
event types are stored by their MLMD names, times as UTC ``TIMESTAMP``. Downstream packages
(``analysis``, ``optimizer``) build on these names; add columns freely, never rename.
See docs/warehouse.md for where every column comes from.
"""

from __future__ import annotations

__all__ = ["TABLES", "DDL", "KEYS", "create_schema", "ARTIFACT_STATES", "EXECUTION_STATES", "EVENT_TYPES"]

# MLMD enum values -> names (ml_metadata/proto/metadata_store.proto).
ARTIFACT_STATES = {
    0: "UNKNOWN", 1: "PENDING", 2: "LIVE", 3: "MARKED_FOR_DELETION", 4: "DELETED",
    5: "ABANDONED", 6: "REFERENCE",
}
EXECUTION_STATES = {
    0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED", 6: "CANCELED",
}
EVENT_TYPES = {
    0: "UNKNOWN", 1: "DECLARED_OUTPUT", 2: "DECLARED_INPUT", 3: "INPUT", 4: "OUTPUT",
    5: "INTERNAL_INPUT", 6: "INTERNAL_OUTPUT", 7: "PENDING_OUTPUT",
}

DDL: dict[str, str] = {
    "sources": """
        CREATE TABLE IF NOT EXISTS sources (
            source_id        VARCHAR PRIMARY KEY,  -- stable name of one MLMD store
            uri              VARCHAR NOT NULL,     -- absolute SQLite path or mysql://host:port/db
            kind             VARCHAR NOT NULL,     -- sqlite | mysql | postgresql
            schema_version   INTEGER,              -- MLMDEnv.schema_version
            last_ingested_at TIMESTAMP,            -- UTC wall time of the last successful ingest
            watermark        VARCHAR               -- JSON: high-water marks for incremental reads
        )""",
    "types": """
        CREATE TABLE IF NOT EXISTS types (
            source_id   VARCHAR NOT NULL,
            type_id     BIGINT  NOT NULL,
            kind        VARCHAR NOT NULL,          -- artifact | execution | context
            name        VARCHAR NOT NULL,
            version     VARCHAR,
            description VARCHAR,
            base_type   VARCHAR                   -- e.g. DATASET, MODEL (from ParentType/base_type)
        )""",
    "type_properties": """
        CREATE TABLE IF NOT EXISTS type_properties (
            source_id VARCHAR NOT NULL,
            type_id   BIGINT  NOT NULL,
            name      VARCHAR NOT NULL,
            data_type VARCHAR                     -- INT | DOUBLE | STRING | STRUCT | PROTO | BOOLEAN
        )""",
    "artifacts": """
        CREATE TABLE IF NOT EXISTS artifacts (
            source_id   VARCHAR NOT NULL,
            artifact_id BIGINT  NOT NULL,
            type_id     BIGINT,
            type_name   VARCHAR,                   -- NULL when the type id is unknown (counted in ingest_issues)
            uri         VARCHAR,
            state       VARCHAR,                   -- MLMD Artifact.State name
            name        VARCHAR,
            external_id VARCHAR,
            create_time TIMESTAMP,
            update_time TIMESTAMP
        )""",
    "executions": """
        CREATE TABLE IF NOT EXISTS executions (
            source_id        VARCHAR NOT NULL,
            execution_id     BIGINT  NOT NULL,
            type_id          BIGINT,
            type_name        VARCHAR,
            state            VARCHAR,              -- effective state: last_known_state, or for legacy
                                                   -- stores the `state` property (new/running/complete/
                                                   -- failed/cached/canceled upper-cased)
            last_known_state VARCHAR,              -- MLMD Execution.last_known_state as recorded (may be NULL)
            name             VARCHAR,
            external_id      VARCHAR,
            create_time      TIMESTAMP,
            update_time      TIMESTAMP,
            duration_s       DOUBLE,               -- update_time - create_time when state is finished
                                                   -- (COMPLETE, FAILED, CACHED, CANCELED), else NULL
            PRIMARY KEY (source_id, execution_id)
        )""",
    "events": """
        CREATE TABLE IF NOT EXISTS events (
            source_id    VARCHAR NOT NULL,
            event_id     BIGINT  NOT NULL,         -- MLMD Event row id (API path: stable position)
            artifact_id  BIGINT  NOT NULL,
            execution_id BIGINT  NOT NULL,
            type         VARCHAR NOT NULL,         -- INPUT | OUTPUT | DECLARED_INPUT | ...
            path         VARCHAR,                  -- steps joined by '/': key steps as-is, index steps
                                                   -- as decimal, e.g. 'examples/0'; NULL when no steps
            path_key     VARCHAR,                  -- first key step, e.g. 'examples', 'model', 'blessing'
            ts           TIMESTAMP                -- milliseconds_since_epoch
        )""",
    "contexts": """
        CREATE TABLE IF NOT EXISTS contexts (
            source_id   VARCHAR NOT NULL,
            context_id  BIGINT  NOT NULL,
            type_id     BIGINT,
            type_name   VARCHAR,                   -- pipeline | pipeline_run | node | run | ...
            name        VARCHAR,
            external_id VARCHAR,
            create_time TIMESTAMP,
            update_time TIMESTAMP
        )""",
    "attributions": """
        CREATE TABLE IF NOT EXISTS attributions (
            source_id   VARCHAR NOT NULL,
            context_id  BIGINT  NOT NULL,
            artifact_id BIGINT  NOT NULL
        )""",
    "associations": """
        CREATE TABLE IF NOT EXISTS associations (
            source_id    VARCHAR NOT NULL,
            context_id   BIGINT  NOT NULL,
            execution_id BIGINT  NOT NULL
        )""",
    "parent_contexts": """
        CREATE TABLE IF NOT EXISTS parent_contexts (
            source_id         VARCHAR NOT NULL,
            context_id        BIGINT  NOT NULL,
            parent_context_id BIGINT  NOT NULL
        )""",
    "properties": """
        CREATE TABLE IF NOT EXISTS properties (
            source_id    VARCHAR NOT NULL,
            entity       VARCHAR NOT NULL,         -- artifact | execution | context
            entity_id    BIGINT  NOT NULL,
            name         VARCHAR NOT NULL,
            is_custom    BOOLEAN NOT NULL,
            value_type   VARCHAR,                  -- int | double | string | struct | proto | bool | bytes
            int_value    BIGINT,
            double_value DOUBLE,
            string_value VARCHAR,                  -- strings; struct and proto values as JSON text;
                                                   -- bytes as base64
            bool_value   BOOLEAN
        )""",
    "ingest_issues": """
        CREATE TABLE IF NOT EXISTS ingest_issues (
            source_id VARCHAR NOT NULL,
            issue     VARCHAR NOT NULL,            -- dangling_event | unknown_type | huge_property | ...
            entity    VARCHAR,
            entity_id BIGINT,
            detail    VARCHAR
        )""",
}

# The key of every data table: unique per row. Ingestion keeps keys unique by deleting and
# inserting by key; they are not declared as PRIMARY KEY because DuckDB's key indexes made bulk
# loads about twice as slow and the file six times larger (benchmarks/ingest.py).
KEYS: dict[str, tuple[str, ...]] = {
    "sources": ("source_id",),
    "types": ("source_id", "type_id"),
    "type_properties": ("source_id", "type_id", "name"),
    "artifacts": ("source_id", "artifact_id"),
    "executions": ("source_id", "execution_id"),
    "events": ("source_id", "event_id"),
    "contexts": ("source_id", "context_id"),
    "attributions": ("source_id", "context_id", "artifact_id"),
    "associations": ("source_id", "context_id", "execution_id"),
    "parent_contexts": ("source_id", "context_id", "parent_context_id"),
    "properties": ("source_id", "entity", "entity_id", "name", "is_custom"),
}

TABLES = tuple(DDL)


def create_schema(con) -> None:
    """Create every warehouse table that does not exist yet (idempotent)."""
    for ddl in DDL.values():
        con.execute(ddl)
