"""Read one run's inputs from an MLMD store: the given artifacts and what is known about them.

A pre-run decision from a run's ``inputs`` needs only a handful of records, not the store's
newest delta: the given artifacts, the executions that wrote them, and the executions that
read them before the trainer (statistics, validators: two hops, as the feature SQL's
siblings) with what those wrote; each with its properties and events. This reader returns
exactly those as a staging ``Batch`` (a delta: ``full`` False), read by id from a SQLite store
or through the ml_metadata API, so that a decision costs a few indexed lookups at any store size.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence

from provenance.connections import StoreSpec, check_supported, readonly_uri, sqlite_schema_version
from provenance.errors import ProvenanceError
from provenance.readers.staging import Batch, event_tables, rows_table

__all__ = ["read_inputs", "MissingInputs", "SIBLING_HOPS"]

SIBLING_HOPS = 2      # statistics -> validator, as optimizer.pruning.features runs _SIBLING_SQL twice
_INPUT, _OUTPUT = 3, 4


class MissingInputs(ProvenanceError):
    """Some of the given artifact ids are not in the store."""

    def __init__(self, missing: list[int], uri: str):
        self.missing = missing
        super().__init__(f"artifacts {missing} are not in the MLMD store {uri}: pass ids of artifacts this run "
                         "recorded in that store")


def _closure(artifacts: list[int], events_of_artifacts: Callable, events_of_executions: Callable):
    """(executions, artifacts, events) around ``artifacts``: their writers and two hops of readers.

    ``events_of_*`` return events as staging.event_tables takes them (artifact_id,
    execution_id, type, milliseconds, steps).
    """
    events: dict[tuple, tuple] = {}
    seen_x: set[int] = set()
    seen_a = set(artifacts)
    frontier = list(artifacts)
    for hop in range(SIBLING_HOPS + 1):
        rows = events_of_artifacts(frontier) if frontier else []
        # hop 0: the writers and readers of the inputs; later hops: readers of what readers wrote
        new_x = sorted({ev[1] for ev in rows if ev[2] == _INPUT or (hop == 0 and ev[2] == _OUTPUT)} - seen_x)
        seen_x.update(new_x)
        out = events_of_executions(new_x) if new_x else []
        for ev in rows + out:
            events[ev[:3]] = ev
        frontier = sorted({ev[0] for ev in out if ev[2] == _OUTPUT} - seen_a)
        seen_a.update(frontier)
    return sorted(seen_x), sorted(seen_a), list(events.values())


def read_inputs(spec: StoreSpec, artifact_ids: Sequence[int]) -> Batch:
    """The records around one run's input artifacts (see the module docstring), as a delta batch."""
    ids = sorted({int(a) for a in artifact_ids})
    if not ids:
        raise ProvenanceError("no input artifact ids given")
    if spec.kind == "sqlite":
        return _read_sqlite(spec, ids)
    return _read_api(spec, ids)


def _in(ids: Iterable[int]) -> str:
    return ", ".join(str(int(i)) for i in ids) or "NULL"


def _read_sqlite(spec: StoreSpec, ids: list[int]) -> Batch:
    from provenance.readers import sqlite_reader as sr

    version = sqlite_schema_version(spec.path)
    check_supported(version, str(spec.path))
    uri = readonly_uri(spec.path)
    con = sqlite3.connect(uri, uri=True)
    try:
        con.execute("BEGIN")   # one snapshot for the ids and the events
        have = {r[0] for r in con.execute(f"SELECT id FROM Artifact WHERE id IN ({_in(ids)})")}
        missing = [a for a in ids if a not in have]
        if missing:
            raise MissingInputs(missing, spec.uri)

        def events(column: str, keys: list[int]) -> list[tuple]:
            rows = con.execute(f"SELECT id, artifact_id, execution_id, type, milliseconds_since_epoch FROM Event "
                               f"WHERE {column} IN ({_in(keys)})").fetchall()
            steps: dict[int, list] = {}
            for event_id, is_index, index, key in con.execute(
                    f"SELECT event_id, is_index_step, step_index, step_key FROM EventPath "
                    f"WHERE event_id IN ({_in(r[0] for r in rows)}) ORDER BY event_id, rowid"):
                steps.setdefault(event_id, []).append((is_index, index, key))
            return [(*r[1:], steps.get(r[0], [])) for r in rows]

        executions, artifacts, evs = _closure(ids, lambda a: events("artifact_id", a),
                                              lambda x: events("execution_id", x))
    finally:
        con.rollback()
        con.close()
    # the nodes and their properties as a full read gets them (Arrow, special values decoded)
    tables = sr._run_jobs(uri, sr._type_jobs() + [
        ("artifacts", sr._node_sql("artifacts", f"id IN ({_in(artifacts)})")),
        ("executions", sr._node_sql("executions", f"id IN ({_in(executions)})")),
        ("properties:artifacts", sr._property_sql("artifacts", f"artifact_id IN ({_in(artifacts)})")),
        ("properties:executions", sr._property_sql("executions", f"execution_id IN ({_in(executions)})"))],
        threads=1, on_table=None)
    tables["events"], tables["event_steps"] = event_tables(evs)
    return Batch(full=False, tables=tables, watermark={}, schema_version=version,
                 store_rows=sum(t.num_rows for t in tables.values()))


def _read_api(spec: StoreSpec, ids: list[int]) -> Batch:
    from provenance.connections import SUPPORTED_SCHEMA_VERSIONS, open_metadata_store
    from provenance.readers import api_reader as ar

    store = open_metadata_store(spec)
    found = store.get_artifacts_by_id(ids)
    missing = sorted(set(ids) - {a.id for a in found})
    if missing:
        raise MissingInputs(missing, spec.uri)
    executions, artifacts, evs = _closure(
        ids, lambda a: [ar.event_row(ev) for ev in store.get_events_by_artifact_ids(a)],
        lambda x: [ar.event_row(ev) for ev in store.get_events_by_execution_ids(x)])
    arts = store.get_artifacts_by_id(artifacts)
    execs = store.get_executions_by_id(executions) if executions else []
    props: list[tuple] = []
    ar._properties("artifact", arts, props)
    ar._properties("execution", execs, props)
    types, type_props = ar.type_rows(store)
    tables = {name: rows_table(name, rows) for name, rows in (
        ("types", types), ("type_properties", type_props), ("artifacts", [ar.artifact_row(a) for a in arts]),
        ("executions", [ar.execution_row(x) for x in execs]), ("properties", props))}
    tables["events"], tables["event_steps"] = event_tables(evs)
    return Batch(full=False, tables=tables, watermark={}, schema_version=SUPPORTED_SCHEMA_VERSIONS[-1],
                 store_rows=sum(t.num_rows for t in tables.values()))
