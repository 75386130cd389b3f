"""Write genuine MLMD SQLite stores fast: empty schema through the API, rows through sqlite3.

The ml_metadata API writes about 7,000 executions/s in batches, far too slow for corpora of
millions of executions. ``BulkStoreWriter`` therefore lets ml_metadata create an empty store
(schema version 10, its own DDL and system types) and register every type through the API,
then appends rows straight into the MLMD tables with ``executemany`` on a temporary file
(journal off, indexes dropped during the load and rebuilt with their original DDL) that is
renamed into place on ``close()``: a reader never sees a half-written store.

Rows are plain tuples in MLMD's own units (ids, enum numbers, milliseconds since the epoch), so
callers need no protobufs. Three shortcuts keep the Python side small:

* events carry their path (one key step and one index step, as TFX writes them); the path
  rows are derived in SQL;
* attributions are derived in SQL, as TFX records them: an artifact is attributed to every
  context of each execution that read or wrote it, and to an ``execution_cache`` context only
  through an OUTPUT event;
* execution and artifact properties that repeat (the same configuration on every run) are
  registered once as a *template* and attached by id.

Tests read stores written here back through the ml_metadata API and compare every entity,
property, event path, association and attribution with the rows written (``keep_rows``).
"""

from __future__ import annotations

import base64
import itertools
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provenance.errors import ProvenanceError

__all__ = [
    "TypeSpec",
    "BulkStoreWriter",
    "struct_value",
    "create_empty_store",
    "MLMD_SCHEMA_VERSION",
    "ARTIFACT_KIND",
    "EXECUTION_KIND",
    "CONTEXT_KIND",
    "DATA_TYPES",
]

log = logging.getLogger(__name__)

MLMD_SCHEMA_VERSION = 10
EXECUTION_KIND, ARTIFACT_KIND, CONTEXT_KIND = 0, 1, 2
DATA_TYPES = {"INT": 1, "DOUBLE": 2, "STRING": 3, "STRUCT": 4, "PROTO": 5, "BOOLEAN": 6}
_OUTPUT = 4
_SLOT = "CASE o.k WHEN 0 THEN a.c1 WHEN 1 THEN a.c2 WHEN 2 THEN a.c3 ELSE a.cache END"

# Property rows: (entity_id, name, is_custom, int_value, string_value); double/bytes/proto/bool
# are never written by the simulator and stay NULL.
PropertyRow = tuple[int, str, int, "int | None", "str | None"]


@dataclass(frozen=True)
class TypeSpec:
    """One MLMD type: kind (``artifact``/``execution``/``context``), declared properties
    (name -> ``INT``/``STRING``/...), and an optional system base type (``DATASET``, ``TRAIN``...)."""

    kind: str
    name: str
    properties: tuple[tuple[str, str], ...] = ()
    base_type: str | None = None


def struct_value(fields: dict[str, float]) -> str:
    """Encode a flat dict of numbers as TFX does for struct-valued custom properties
    (``mlmd-struct::`` + base64 of a serialized ``google.protobuf.Struct``)."""
    from google.protobuf import struct_pb2

    msg = struct_pb2.Struct()
    for key, value in fields.items():
        msg.fields[key].number_value = float(value)
    return "mlmd-struct::" + base64.b64encode(msg.SerializeToString()).decode("ascii")


def _connection_config(path: Path):
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return config


def create_empty_store(path: str | Path, types: Sequence[TypeSpec]) -> dict[tuple[str, str], int]:
    """Create an MLMD SQLite store at ``path`` through ml_metadata and register ``types``.

    Returns ``{(kind, name): type_id}``. The file must not exist yet.
    """
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    path = Path(path)
    if path.exists():
        raise ProvenanceError(f"{path} already exists; remove it or choose another output path")
    store = metadata_store.MetadataStore(_connection_config(path))
    ids: dict[tuple[str, str], int] = {}
    for spec in types:
        props = {name: DATA_TYPES[dt] for name, dt in spec.properties}
        if spec.kind == "artifact":
            t = pb.ArtifactType(name=spec.name, properties=props)
            if spec.base_type:
                t.base_type = getattr(pb.ArtifactType, spec.base_type)
            ids[(spec.kind, spec.name)] = store.put_artifact_type(t)
        elif spec.kind == "execution":
            t = pb.ExecutionType(name=spec.name, properties=props)
            if spec.base_type:
                t.base_type = getattr(pb.ExecutionType, spec.base_type)
            ids[(spec.kind, spec.name)] = store.put_execution_type(t)
        elif spec.kind == "context":
            ids[(spec.kind, spec.name)] = store.put_context_type(pb.ContextType(name=spec.name, properties=props))
        else:
            raise ProvenanceError(f"unknown type kind {spec.kind!r}; use artifact, execution or context")
    del store
    return ids


_STAGING_DDL = (
    "CREATE TEMP TABLE stage_event (id INTEGER, artifact_id INTEGER, execution_id INTEGER, "
    "type INTEGER, ms INTEGER, step_key TEXT, step_index INTEGER)",
    "CREATE TEMP TABLE stage_assoc (execution_id INTEGER, c1 INTEGER, c2 INTEGER, c3 INTEGER, cache INTEGER)",
    "CREATE TEMP TABLE stage_template (execution_or_artifact_id INTEGER, template_id INTEGER, kind INTEGER)",
    "CREATE TEMP TABLE templates (template_id INTEGER, name TEXT, is_custom INTEGER, "
    "int_value INTEGER, string_value TEXT)",
    "CREATE INDEX temp.stage_assoc_exec ON stage_assoc(execution_id)",
    "CREATE TEMP TABLE slots (k INTEGER PRIMARY KEY)",
    "INSERT INTO temp.slots VALUES (0), (1), (2), (3)",
    "CREATE INDEX temp.templates_id ON templates(template_id)",
)


@dataclass
class _Chunk:
    artifacts: list = field(default_factory=list)
    executions: list = field(default_factory=list)
    contexts: list = field(default_factory=list)
    parent_contexts: list = field(default_factory=list)
    events: list = field(default_factory=list)
    event_paths: list = field(default_factory=list)
    associations: list = field(default_factory=list)
    artifact_props: list = field(default_factory=list)
    execution_props: list = field(default_factory=list)
    context_props: list = field(default_factory=list)
    templates: list = field(default_factory=list)

    def size(self) -> int:
        return (len(self.artifacts) + len(self.executions) + len(self.events) + len(self.associations)
                + len(self.artifact_props) + len(self.execution_props) + len(self.templates))


class BulkStoreWriter:
    """Append MLMD rows to a new store at ``path``; the store appears only on ``close()``.

    Callers allocate ids themselves (``next_*_id`` help), append tuples to the row lists of
    ``rows`` and call ``flush()`` now and then (``maybe_flush`` does it by size). Row shapes:

    * ``artifacts``: (id, type_id, uri, state, name, create_ms, update_ms)
    * ``executions``: (id, type_id, last_known_state, name, create_ms, update_ms)
    * ``contexts``: (id, type_id, name, create_ms, update_ms); ``parent_contexts``: (child, parent)
    * ``events``: (id, artifact_id, execution_id, type, ms, step_key, step_index); an event whose
      path has several steps has step_key None and its steps in ``event_paths`` as
      (event_id, is_index_step, step_index, step_key) rows, in order
    * ``associations``: (execution_id, context, context, context, execution_cache context), one
      row per execution in association order, None where absent
    * ``*_props``: (entity_id, name, is_custom, int_value, string_value)
    * ``templates``: (entity_id, template_id, 0 for execution / 1 for artifact)

    ``keep_rows=True`` keeps every flushed chunk in ``kept`` (for round-trip tests).
    """

    def __init__(self, path: str | Path, types: Sequence[TypeSpec], *, flush_rows: int = 400_000,
                 keep_rows: bool = False, cache_mib: int = 1024):
        self.path = Path(path)
        if self.path.exists():
            raise ProvenanceError(f"{self.path} already exists; remove it or choose another --out folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        if self._tmp.exists():
            self._tmp.unlink()
        self.type_ids = create_empty_store(self._tmp, types)
        self._db = sqlite3.connect(self._tmp, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA temp_store=MEMORY")
        # a large page cache (and mmap reads) keeps the UNIQUE indexes MLMD's DDL declares, which
        # cannot be dropped during the load, from thrashing on random keys (uuids, digests)
        self._db.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
        self._db.execute(f"PRAGMA mmap_size={cache_mib * 2 * 1024 * 1024}")
        self._indexes = [
            (name, sql)
            for name, sql in self._db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
            )
        ]
        for name, _ in self._indexes:
            self._db.execute(f"DROP INDEX `{name}`")
        for ddl in _STAGING_DDL:
            self._db.execute(ddl)
        self._db.execute("BEGIN")
        self.rows = _Chunk()
        self._flush_rows = flush_rows
        self._templates: dict[tuple, int] = {}
        # id counters; ``next(writer.event_ids)`` is the fast path for hot loops
        self.artifact_ids, self.execution_ids = itertools.count(1), itertools.count(1)
        self.context_ids, self.event_ids = itertools.count(1), itertools.count(1)
        self._ids = {"artifact": self.artifact_ids, "execution": self.execution_ids,
                     "context": self.context_ids, "event": self.event_ids}
        self.counts = {"artifacts": 0, "executions": 0, "contexts": 0, "events": 0, "rows": 0}
        self._closed = False
        # keep_rows: every flushed chunk and template is kept (tests compare them with API reads)
        self.kept: list[_Chunk] | None = [] if keep_rows else None

    @property
    def templates(self) -> dict[int, tuple]:
        """Registered property templates: id -> ((name, is_custom, int_value, string_value), ...)."""
        return {tid: rows for rows, tid in self._templates.items()}

    # ids -------------------------------------------------------------------------------
    def next_id(self, kind: str) -> int:
        """Allocate the next id of ``kind`` (artifact, execution, context, event)."""
        return next(self._ids[kind])

    def template(self, rows: Iterable[tuple[str, int, int | None, str | None]]) -> int:
        """Register a property set (name, is_custom, int_value, string_value) once; return its id."""
        key = tuple(rows)
        tid = self._templates.get(key)
        if tid is None:
            tid = len(self._templates) + 1
            self._templates[key] = tid
            self._db.executemany(
                "INSERT INTO temp.templates VALUES (?,?,?,?,?)", [(tid, *row) for row in key]
            )
        return tid

    # writing ---------------------------------------------------------------------------
    def maybe_flush(self) -> None:
        """Flush when the buffered rows exceed the configured chunk size."""
        if self.rows.size() >= self._flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows into the MLMD tables (one transaction stays open)."""
        r, db = self.rows, self._db
        written = 0

        def put(sql: str, rows=None) -> None:  # into an MLMD table: count what lands there
            nonlocal written
            cur = db.execute(sql) if rows is None else db.executemany(sql, rows)
            written += max(cur.rowcount, 0)

        put(
            "INSERT INTO Artifact(id, type_id, uri, state, name, create_time_since_epoch, "
            "last_update_time_since_epoch) VALUES (?,?,?,?,?,?,?)", r.artifacts)
        put(
            "INSERT INTO Execution(id, type_id, last_known_state, name, create_time_since_epoch, "
            "last_update_time_since_epoch) VALUES (?,?,?,?,?,?)", r.executions)
        put(
            "INSERT INTO Context(id, type_id, name, create_time_since_epoch, "
            "last_update_time_since_epoch) VALUES (?,?,?,?,?)", r.contexts)
        put("INSERT INTO ParentContext(context_id, parent_context_id) VALUES (?,?)",
                       r.parent_contexts)
        for table, key, rows in (("ArtifactProperty", "artifact_id", r.artifact_props),
                                 ("ExecutionProperty", "execution_id", r.execution_props),
                                 ("ContextProperty", "context_id", r.context_props)):
            put(f"INSERT INTO {table}({key}, name, is_custom_property, int_value, string_value) "
                "VALUES (?,?,?,?,?)", rows)
        if r.templates:
            db.executemany("INSERT INTO temp.stage_template VALUES (?,?,?)", r.templates)
            for kind, table, key in ((0, "ExecutionProperty", "execution_id"),
                                     (1, "ArtifactProperty", "artifact_id")):
                put(
                    f"INSERT INTO {table}({key}, name, is_custom_property, int_value, string_value) "
                    "SELECT s.execution_or_artifact_id, t.name, t.is_custom, t.int_value, t.string_value "
                    "FROM temp.stage_template s JOIN temp.templates t ON t.template_id = s.template_id "
                    f"WHERE s.kind = {kind}")
            db.execute("DELETE FROM temp.stage_template")
        db.executemany("INSERT INTO temp.stage_event VALUES (?,?,?,?,?,?,?)", r.events)
        db.executemany("INSERT INTO temp.stage_assoc VALUES (?,?,?,?,?)", r.associations)
        put(
            "INSERT INTO Event(id, artifact_id, execution_id, type, milliseconds_since_epoch) "
            "SELECT id, artifact_id, execution_id, type, ms FROM temp.stage_event")
        # TFX writes each path as [key step, index step]; key rows first keeps that order.
        put("INSERT INTO EventPath(event_id, is_index_step, step_index, step_key) "
                   "SELECT id, 0, NULL, step_key FROM temp.stage_event WHERE step_key IS NOT NULL")
        put("INSERT INTO EventPath(event_id, is_index_step, step_index, step_key) "
                   "SELECT id, 1, step_index, NULL FROM temp.stage_event WHERE step_key IS NOT NULL")
        # events with several steps (one artifact under two keys) come in their own order
        put("INSERT INTO EventPath(event_id, is_index_step, step_index, step_key) VALUES (?,?,?,?)",
            r.event_paths)
        # CROSS JOIN fixes the loop order (events/executions outer, context slot inner), so the
        # rows come out in TFX's order without a sort.
        put(
            "INSERT INTO Association(context_id, execution_id) SELECT ctx, execution_id FROM ("
            f"SELECT {_SLOT} AS ctx, a.execution_id FROM temp.stage_assoc a CROSS JOIN temp.slots o"
            ") WHERE ctx IS NOT NULL")
        # Attribution as TFX records it: every context of the execution, the cache only via OUTPUT.
        put(
            "INSERT OR IGNORE INTO Attribution(context_id, artifact_id) SELECT ctx, artifact_id FROM ("
            f"SELECT {_SLOT} AS ctx, e.artifact_id FROM temp.stage_event e CROSS JOIN temp.stage_assoc a "
            f"CROSS JOIN temp.slots o WHERE a.execution_id = e.execution_id AND (o.k < 3 OR e.type = {_OUTPUT})"
            ") WHERE ctx IS NOT NULL")
        db.execute("DELETE FROM temp.stage_event")
        db.execute("DELETE FROM temp.stage_assoc")
        self.counts["artifacts"] += len(r.artifacts)
        self.counts["executions"] += len(r.executions)
        self.counts["contexts"] += len(r.contexts)
        self.counts["events"] += len(r.events)
        self.counts["rows"] += written
        if self.kept is not None:
            self.kept.append(r)
        self.rows = _Chunk()

    def close(self) -> Path:
        """Flush, rebuild the indexes, and move the finished store into place (atomic rename)."""
        if self._closed:
            return self.path
        self.flush()
        db = self._db
        db.execute("COMMIT")
        for name, sql in self._indexes:
            db.execute(sql)
        for table in ("stage_event", "stage_assoc", "stage_template", "templates", "slots"):
            db.execute(f"DROP TABLE temp.{table}")
        db.close()
        os.replace(self._tmp, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard the partial store (nothing appears at ``path``)."""
        if self._closed:
            return
        try:
            self._db.close()
        finally:
            self._closed = True
            if self._tmp.exists():
                self._tmp.unlink()

    def __enter__(self) -> BulkStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
