"""The staging batch: what a reader hands to the warehouse loader.

Readers emit MLMD rows nearly as stored (integer enums, epoch milliseconds, raw event path
steps) in fixed Arrow schemas; :mod:`provenance.warehouse` turns them into warehouse rows
with one set of SQL statements. Keeping every transformation in that one place is what
makes the API reader and the SQLite reader produce identical tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

__all__ = ["STAGING_SCHEMAS", "Batch", "empty_table", "rows_table", "event_tables"]

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


def rows_table(name: str, rows: list[tuple]) -> pa.Table:
    """A staging table of ``name`` from Python row tuples (in the schema's column order)."""
    schema = STAGING_SCHEMAS[name]
    cols = list(zip(*rows)) if rows else [()] * len(schema)
    return pa.Table.from_arrays([pa.array(list(c), f.type) for c, f in zip(cols, schema)], schema=schema)


def event_tables(events: list[tuple]) -> tuple[pa.Table, pa.Table]:
    """The ``events`` and ``event_steps`` tables of events given as (artifact_id, execution_id,
    type, milliseconds, steps), each step (is_index, index, key); event keys are positions."""
    rows, steps = [], []
    for key, (artifact_id, execution_id, etype, ms, path) in enumerate(events):
        rows.append((key, artifact_id, execution_id, etype, ms))
        steps.extend((key, seq, is_index, index, step_key) for seq, (is_index, index, step_key) in enumerate(path))
    return rows_table("events", rows), rows_table("event_steps", steps)


@dataclass
class Batch:
    """Rows read from one store in one ingest.

    ``full``: the batch holds the whole store, so it replaces every row of the source.
    Otherwise it is a delta: node rows (artifacts, executions, contexts) are the changed
    nodes with *all* their properties; edge rows are inserted where absent.
    ``store_rows`` counts the MLMD rows read (all tables), for rows/s figures. A read may come
    in several batches, loaded in order (provenance.warehouse.load_parts; see
    provenance.readers.sqlite_reader): each carries the type tables, and together they are the read.
    """

    full: bool
    tables: dict[str, pa.Table]
    watermark: dict
    schema_version: int | None
    store_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> pa.Table:
        return self.tables.get(name) or empty_table(name)


def event_paths(steps: pa.Table) -> pa.Table:
    """Per event_key: ``path`` (steps joined by '/', index steps as decimal) and ``path_key``.

    ``path_key`` is the first key step. Vectorised with Arrow: sort the steps, cut them into
    one list per event and join each list, which is much faster than an ordered string
    aggregate in SQL.
    """
    import numpy as np
    import pyarrow.compute as pc

    out_schema = pa.schema([("event_key", pa.int64()), ("path", pa.string()), ("path_key", pa.string())])
    if steps.num_rows == 0:
        return out_schema.empty_table()
    steps = steps.take(pc.sort_indices(steps, [("event_key", "ascending"), ("seq", "ascending")]))
    is_index = pc.not_equal(steps["is_index"], 0).combine_chunks()
    text = pc.if_else(is_index, pc.cast(steps["step_index"], pa.string()), steps["step_key"]).combine_chunks()
    keys = steps["event_key"].to_numpy()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    offsets = pa.array(np.r_[starts, len(keys)].astype(np.int32))
    paths = pc.binary_join(pa.ListArray.from_arrays(offsets, text), "/")
    key_rows = np.flatnonzero(~is_index.to_numpy(zero_copy_only=False))
    first_key = np.full(len(starts), -1, dtype=np.int64)
    if len(key_rows):
        group_of = np.searchsorted(starts, key_rows, side="right") - 1
        firsts = np.flatnonzero(np.r_[True, group_of[1:] != group_of[:-1]])
        first_key[group_of[firsts]] = key_rows[firsts]
    has_key = first_key >= 0
    path_key = pc.if_else(pa.array(has_key), text.take(pa.array(np.where(has_key, first_key, 0))),
                          pa.nulls(len(starts), pa.string()))
    return pa.Table.from_arrays([pa.array(keys[starts]), paths, path_key], schema=out_schema)
