"""General path: read any MLMD store (SQLite, MySQL, PostgreSQL) through the ml_metadata API.

Produces the same staging batch as the SQLite reader, so both give identical warehouse rows.
Attributions and associations come from lineage queries of 100 nodes each (the API has no
bulk call for them). Incremental reads ask for nodes whose ``last_update_time_since_epoch``
reached the watermark (or with new ids) and for the edges of those nodes: events of changed
executions, attributions and associations of changed nodes and contexts, parents of changed
contexts. The API has no
row ids for edges, so an edge added later between two unchanged nodes (rare: MLMD writes
edges together with their nodes) is picked up by the next full read; the API also cannot
see deletions. The SQLite reader has neither limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import pyarrow as pa

from provenance.connections import SUPPORTED_SCHEMA_VERSIONS, StoreSpec, open_metadata_store
from provenance.readers.staging import Batch, event_tables, rows_table
from provenance.values import any_json, struct_json

__all__ = ["read_api", "type_rows", "artifact_row", "execution_row", "event_row"]

log = logging.getLogger(__name__)

_CHUNK = 5000


def _opt(msg, field: str):
    return getattr(msg, field) if msg.HasField(field) else None


def artifact_row(a) -> tuple:
    """The staging row of an ``Artifact`` message."""
    return (a.id, a.type_id, _opt(a, "uri"), _opt(a, "state"), _opt(a, "name"), _opt(a, "external_id"),
            _opt(a, "create_time_since_epoch"), _opt(a, "last_update_time_since_epoch"))


def execution_row(x) -> tuple:
    """The staging row of an ``Execution`` message."""
    return (x.id, x.type_id, _opt(x, "last_known_state"), _opt(x, "name"), _opt(x, "external_id"),
            _opt(x, "create_time_since_epoch"), _opt(x, "last_update_time_since_epoch"))


def event_row(ev) -> tuple:
    """An ``Event`` message as staging.event_tables takes it."""
    return (ev.artifact_id, ev.execution_id, ev.type, _opt(ev, "milliseconds_since_epoch"),
            [(1, s.index, None) if s.WhichOneof("value") == "index" else (0, None, s.key) for s in ev.path.steps])


def _value(value) -> tuple:
    """(value_type, int, double, string, bool) of an MLMD ``Value``."""
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return "int", value.int_value, None, None, None
    if kind == "double_value":
        return "double", None, value.double_value, None, None
    if kind == "string_value":
        return "string", None, None, value.string_value, None
    if kind == "struct_value":
        return "struct", None, None, struct_json(value.struct_value), None
    if kind == "proto_value":
        return "proto", None, None, any_json(value.proto_value), None
    if kind == "bool_value":
        return "bool", None, None, None, int(value.bool_value)
    return None, None, None, None, None


def _properties(entity: str, nodes: Iterable, out: list[tuple]) -> None:
    for node in nodes:
        for custom, props in ((0, node.properties), (1, node.custom_properties)):
            for name, value in props.items():
                out.append((entity, node.id, name, custom, *_value(value)))


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def _id_ranges(ids: list[int], size: int = 100) -> Iterable[tuple[int, int]]:
    """(first, last) of consecutive slices of ``size`` sorted ids."""
    for i in range(0, len(ids), size):
        chunk = ids[i:i + size]
        yield chunk[0], chunk[-1]


def _lineage_query(field: str, bounds: tuple[int, int]):
    from ml_metadata.proto import metadata_store_pb2 as pb

    query = pb.LineageSubgraphQueryOptions(max_num_hops=0)
    getattr(query, field).filter_query = f"id >= {bounds[0]} AND id <= {bounds[1]}"
    return query


def type_rows(store) -> tuple[list[tuple], list[tuple]]:
    """The staging rows of ``types`` and ``type_properties`` of an open store."""
    types, type_props = [], []
    for kind, listed in (
        ("artifact", store.get_artifact_types()),
        ("execution", store.get_execution_types()),
        ("context", store.get_context_types()),
    ):
        for t in listed:
            base = None
            if kind != "context" and t.HasField("base_type") and t.base_type != 0:
                base = type(t).SystemDefinedBaseType.Name(t.base_type)
            types.append((t.id, kind, t.name, _opt(t, "version"), _opt(t, "description"), base))
            type_props.extend((t.id, name, int(dt)) for name, dt in t.properties.items())
    return types, type_props


def _marks(nodes: list, prev: dict | None) -> dict:
    upd = max((n.last_update_time_since_epoch for n in nodes), default=None)
    mid = max((n.id for n in nodes), default=None)
    if prev:
        upd = max(x for x in (upd, prev.get("update_ms")) if x is not None) if (upd or prev.get("update_ms")) else None
        mid = max(x for x in (mid, prev.get("max_id")) if x is not None) if (mid or prev.get("max_id")) else None
    return {"update_ms": upd, "max_id": mid}


def read_api(
    spec: StoreSpec,
    watermark: dict | None = None,
    *,
    on_table: Callable[[str, int], None] | None = None,
) -> Batch:
    """Read an MLMD store through the ml_metadata API: in full, or the delta since ``watermark``."""
    from ml_metadata.metadata_store import metadata_store

    store = open_metadata_store(spec)
    full = not (watermark and watermark.get("via") == "api" and watermark.get("marks"))
    prev = {} if full else watermark["marks"]
    tables: dict[str, pa.Table] = {}

    def put(name: str, rows: list[tuple] | pa.Table) -> None:
        tables[name] = rows if isinstance(rows, pa.Table) else rows_table(name, rows)
        if on_table:
            on_table(name, tables[name].num_rows)

    types, type_props = type_rows(store)
    put("types", types)
    put("type_properties", type_props)

    def changed(getter, key: str) -> list:
        if full:
            return getter()
        mark = prev.get(key) or {}
        query = (f"last_update_time_since_epoch >= {int(mark.get('update_ms') or 0)} "
                 f"OR id > {int(mark.get('max_id') or 0)}")
        return getter(list_options=metadata_store.ListOptions(filter_query=query))

    artifacts = changed(store.get_artifacts, "artifacts")
    put("artifacts", [artifact_row(a) for a in artifacts])
    executions = changed(store.get_executions, "executions")
    put("executions", [execution_row(x) for x in executions])
    contexts = changed(store.get_contexts, "contexts")
    put("contexts", [
        (c.id, c.type_id, _opt(c, "name"), _opt(c, "external_id"),
         _opt(c, "create_time_since_epoch"), _opt(c, "last_update_time_since_epoch"))
        for c in contexts
    ])
    props: list[tuple] = []
    _properties("artifact", artifacts, props)
    _properties("execution", executions, props)
    _properties("context", contexts, props)
    put("properties", props)

    events, steps = event_tables([event_row(ev) for ids in _chunks([x.id for x in executions])
                                  for ev in store.get_events_by_execution_ids(ids)])
    put("events", events)
    put("event_steps", steps)

    attributions: set[tuple[int, int]] = set()
    associations: set[tuple[int, int]] = set()
    parents: set[tuple[int, int]] = set()
    # Edges of nodes, 100 nodes per call (the most a lineage query starts from).
    for ids in _id_ranges(sorted(a.id for a in artifacts)):
        graph = store.get_lineage_subgraph(_lineage_query("starting_artifacts", ids), ["attributions"])
        attributions.update((r.context_id, r.artifact_id) for r in graph.attributions)
    for ids in _id_ranges(sorted(x.id for x in executions)):
        graph = store.get_lineage_subgraph(_lineage_query("starting_executions", ids), ["associations"])
        associations.update((r.context_id, r.execution_id) for r in graph.associations)
    for c in contexts:
        parents.update((c.id, p.id) for p in store.get_parent_contexts_by_context(c.id))
        if not full:  # a new context may group nodes that did not change (a cached run)
            attributions.update((c.id, a.id) for a in store.get_artifacts_by_context(c.id))
            associations.update((c.id, x.id) for x in store.get_executions_by_context(c.id))
    put("attributions", sorted(attributions))
    put("associations", sorted(associations))
    put("parent_contexts", sorted(parents))

    marks = {
        "artifacts": _marks(artifacts, prev.get("artifacts")),
        "executions": _marks(executions, prev.get("executions")),
        "contexts": _marks(contexts, prev.get("contexts")),
    }
    return Batch(
        full=full,
        tables=tables,
        watermark={"via": "api", "schema_version": SUPPORTED_SCHEMA_VERSIONS[-1], "marks": marks},
        schema_version=SUPPORTED_SCHEMA_VERSIONS[-1],
        store_rows=sum(t.num_rows for t in tables.values()),
    )
