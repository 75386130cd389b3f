"""The staging batch: what a reader hands to the warehouse loader.

Readers emit MLMD rows nearly as stored (integer enums, epoch milliseconds, raw event path
steps) in fixed Arrow schemas; :mod:`provenance.warehouse` turns them into warehouse rows
with one set of SQL statements. Keeping every transformation in that one place is what
makes the API reader and the SQLite reader produce identical tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

__all__ = ["STAGING_SCHEMAS", "Batch", "empty_table"]

_i = pa.int64()
_s = pa.string()

STAGING_SCHEMAS: dict[str, pa.Schema] = {
    "types": pa.schema([("type_id", _i), ("kind", _s), ("name", _s), ("version", _s),
                        ("description", _s), ("base_type", _s)]),
    "type_properties": pa.schema([("type_id", _i), ("name", _s), ("data_type", _i)]),
    "artifacts": pa.schema([("artifact_id", _i), ("type_id", _i), ("uri", _s), ("state", _i),
                            ("name", _s), ("external_id", _s), ("create_ms", _i), ("update_ms", _i)]),
    "executions": pa.schema([("execution_id", _i), ("type_id", _i), ("last_known_state", _i),
                             ("name", _s), ("external_id", _s), ("create_ms", _i), ("update_ms", _i)]),
    "contexts": pa.schema([("context_id", _i), ("type_id", _i), ("name", _s), ("external_id", _s),
                           ("create_ms", _i), ("update_ms", _i)]),
    # event_key only joins an event to its path steps inside one batch.
    "events": pa.schema([("event_key", _i), ("artifact_id", _i), ("execution_id", _i), ("type", _i),
                         ("ts_ms", _i)]),
    "event_steps": pa.schema([("event_key", _i), ("seq", _i), ("is_index", _i), ("step_index", _i),
                              ("step_key", _s)]),
    "attributions": pa.schema([("context_id", _i), ("artifact_id", _i)]),
    "associations": pa.schema([("context_id", _i), ("execution_id", _i)]),
    "parent_contexts": pa.schema([("context_id", _i), ("parent_context_id", _i)]),
    # value_type: int | double | string | struct | proto | bool | bytes; struct/proto as JSON text.
    "properties": pa.schema([("entity", _s), ("entity_id", _i), ("name", _s), ("is_custom", _i),
                             ("value_type", _s), ("int_value", _i), ("double_value", pa.float64()),
                             ("string_value", _s), ("bool_value", _i)]),
}


def empty_table(name: str) -> pa.Table:
    """An empty staging table with the schema of ``name``."""
    return STAGING_SCHEMAS[name].empty_table()


@dataclass
class Batch:
    """Rows read from one store in one ingest.

    ``full``: the batch holds the whole store, so it replaces every row of the source.
    Otherwise it is a delta: node rows (artifacts, executions, contexts) are the changed
    nodes with *all* their properties; edge rows are inserted where absent.
    ``store_rows`` counts the MLMD rows read (all tables), for rows/s figures.
    """

    full: bool
    tables: dict[str, pa.Table]
    watermark: dict
    schema_version: int | None
    store_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> pa.Table:
        return self.tables.get(name) or empty_table(name)
