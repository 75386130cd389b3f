"""Record a frugal pipeline run into an MLMD store the way TFX does, through the ml_metadata API.

Structure written per run: contexts ``pipeline`` (one per pipeline name), ``pipeline_run``
(child of the pipeline context) and ``node`` (``<pipeline>.<component>``); one execution per
component, COMPLETE when it computed and CACHED when its output was loaded or not needed;
output artifacts keyed by their fingerprint (a cached execution emits an OUTPUT event to the
existing artifact of the same fingerprint, as TFX does); INPUT/OUTPUT events with paths
(the input or output name); a push is a ``PushedModel`` with custom property ``pushed`` 1/0.

What the cost model reads back (``provenance.run_history``): a step that runs on its own
is put RUNNING when it starts and COMPLETE when it ends (:class:`RunWriter`), so MLMD's own
create/update stamps measure it, as TFX's do; a step run fused inside one Beam pipeline (or
loaded, or pruned) has no stamps of its own and carries its measured seconds as the custom
property ``duration_s``; ``write_s`` when it stored its output; each artifact's ``size_bytes``; the run context's ``startup_s``
(the engine's start-up, measured); :func:`update_artifacts` later sets an artifact's
``recreation_s`` or marks it ``DELETED``. Every write goes through the ml_metadata API, so any
backend works (a SQLite path, ``mysql://...`` or ``postgresql://...``).

Callers pass plain Python values (:class:`RunRecord`); no protobuf leaves this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from provenance.errors import ProvenanceError

__all__ = ["ArtifactRecord", "ExecutionRecord", "RunRecord", "RunWriter", "open_writable", "record_run",
           "update_artifacts"]

log = logging.getLogger(__name__)

Scalar = int | float | str | bool


@dataclass(frozen=True)
class ArtifactRecord:
    """An artifact: ``key`` (its fingerprint) identifies it across runs."""

    key: str
    type_name: str
    uri: str = ""
    properties: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionRecord:
    """One component's execution in a run. ``state``: COMPLETE, CACHED or FAILED."""

    node: str
    type_name: str
    state: str
    duration_s: float
    inputs: Mapping[str, ArtifactRecord] = field(default_factory=dict)
    outputs: Mapping[str, ArtifactRecord] = field(default_factory=dict)
    properties: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """A whole pipeline run, executions in topological order.

    ``started_at`` (seconds since epoch) is informational: MLMD stamps create and update times
    itself, so measured seconds travel as each execution's ``duration_s``. ``properties`` go on
    the run's ``pipeline_run`` context (``startup_s`` ...).
    """

    pipeline: str
    run_id: str
    started_at: float
    executions: Sequence[ExecutionRecord]
    properties: Mapping[str, Scalar] = field(default_factory=dict)


def open_writable(store: str | os.PathLike):
    """(MetadataStore, metadata_store_pb2) for writing: a SQLite path (created when missing) or
    a ``mysql://`` / ``postgresql://`` address."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from provenance.connections import connection_config, parse_store

    spec = parse_store(store)
    if spec.kind == "sqlite":
        assert spec.path is not None
        if spec.path.exists() and spec.path.is_dir():
            raise ProvenanceError(f"MLMD store path {spec.path} is a folder: pass a SQLite file path")
        spec.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return metadata_store.MetadataStore(connection_config(spec, writable=True)), pb
    except Exception as e:  # the C++ layer raises its own status errors
        raise ProvenanceError(f"cannot open MLMD store {spec.uri}: {e}; pass a writable SQLite file "
                              "or a reachable server store") from e


def _set(props, key: str, value: Scalar) -> None:
    if isinstance(value, bool):
        props[key].int_value = int(value)
    elif isinstance(value, int):
        props[key].int_value = value
    elif isinstance(value, float):
        props[key].double_value = value
    else:
        props[key].string_value = str(value)


class RunWriter:
    """Writes one run into an MLMD store, execution by execution, through the ml_metadata API.

    :meth:`start` puts an execution RUNNING (with its input events) when a step begins on its
    own, and :meth:`finish` puts it again when it ends (its state, properties and output
    events): MLMD stamps both times itself, so the stamps measure the step. :meth:`put` writes
    a finished execution in one call (steps fused in one Beam pipeline, loads, prunes), with
    its measured seconds as the property ``duration_s``. The run's contexts are created on the
    first write; a run id already recorded is refused.
    """

    def __init__(self, store_path: str | os.PathLike, pipeline: str, run_id: str,
                 properties: Mapping[str, Scalar] | None = None) -> None:
        self.store, self.pb = open_writable(store_path)
        self.where = store_path
        self.pipeline, self.run_id = pipeline, run_id
        self.properties = dict(properties or {})
        self._types: dict[tuple[str, str], int] = {}
        self._artifacts: dict[str, int] = {}
        self._run_ctx: int | None = None
        self._pipeline_ctx: int | None = None
        if self.store.get_context_by_type_and_name("pipeline_run", run_id) is not None:
            raise ProvenanceError(f"run id {run_id!r} is already recorded in {store_path}: use a new run id")

    def _type_id(self, kind: str, name: str, props: Mapping[str, int] | None = None) -> int:
        pb = self.pb
        key = (kind, name)
        if key not in self._types:
            cls = {"artifact": pb.ArtifactType, "execution": pb.ExecutionType, "context": pb.ContextType}[kind]
            t = cls(name=name)
            for p, v in (props or {}).items():
                t.properties[p] = v
            put = {"artifact": self.store.put_artifact_type, "execution": self.store.put_execution_type,
                   "context": self.store.put_context_type}[kind]
            self._types[key] = put(t, can_add_fields=True, can_omit_fields=True)  # a store of another writer
        return self._types[key]

    def _context(self, type_name: str, name: str) -> int:
        found = self.store.get_context_by_type_and_name(type_name, name)
        if found is not None:
            return found.id
        c = self.pb.Context(type_id=self._type_id("context", type_name), name=name)
        return self.store.put_contexts([c])[0]

    def _contexts(self, node: str) -> list:
        if self._run_ctx is None:
            pb = self.pb
            self._pipeline_ctx = self._context("pipeline", self.pipeline)
            self._run_ctx = self._context("pipeline_run", self.run_id)
            if self.properties:
                self.set_run_properties(self.properties)
            self.store.put_parent_contexts([pb.ParentContext(child_id=self._run_ctx, parent_id=self._pipeline_ctx)])
        node_ctx = self._context("node", f"{self.pipeline}.{node}")
        return self.store.get_contexts_by_id([self._pipeline_ctx, self._run_ctx, node_ctx])  # as TFX associates them

    def set_run_properties(self, properties: Mapping[str, Scalar]) -> None:
        """Set custom properties of the run's ``pipeline_run`` context (``startup_s`` ...)."""
        self.properties.update(properties)
        if self._run_ctx is None or not properties:
            return
        [ctx] = self.store.get_contexts_by_id([self._run_ctx])
        for k, v in properties.items():
            _set(ctx.custom_properties, k, v)
        self.store.put_contexts([ctx])

    def _artifact(self, rec: ArtifactRecord) -> int:
        """The id of the artifact of this fingerprint and type, created when first seen; a
        stored artifact written again (after an eviction) is LIVE again, and properties it
        lacks are added."""
        pb, store = self.pb, self.store
        if rec.key in self._artifacts:
            return self._artifacts[rec.key]
        tid = self._type_id("artifact", rec.type_name, {"fingerprint": pb.STRING})
        existing = store.get_artifact_by_type_and_name(rec.type_name, rec.key)
        if existing is not None:
            missing = {k: v for k, v in rec.properties.items() if k not in existing.custom_properties}
            revived = bool(rec.uri) and (existing.state != pb.Artifact.LIVE or existing.uri != rec.uri)
            if revived or missing:
                if revived:
                    existing.state = pb.Artifact.LIVE
                    existing.uri = rec.uri
                for k, v in (rec.properties if revived else missing).items():
                    _set(existing.custom_properties, k, v)
                store.put_artifacts([existing])
            self._artifacts[rec.key] = existing.id
            return existing.id
        a = pb.Artifact(type_id=tid, uri=rec.uri, name=rec.key, state=pb.Artifact.LIVE)
        a.properties["fingerprint"].string_value = rec.key
        for k, v in rec.properties.items():
            _set(a.custom_properties, k, v)
        self._artifacts[rec.key] = store.put_artifacts([a])[0]
        return self._artifacts[rec.key]

    def _events(self, records: Mapping[str, ArtifactRecord], kind) -> list:
        pairs = []
        for path_name, rec in records.items():
            ev = self.pb.Event(artifact_id=self._artifact(rec), type=kind)
            ev.path.steps.add().key = path_name
            ev.path.steps.add().index = 0
            [a] = self.store.get_artifacts_by_id([ev.artifact_id])
            pairs.append((a, ev))
        return pairs

    def _state(self, ex: ExecutionRecord) -> int:
        states = {"COMPLETE": self.pb.Execution.COMPLETE, "CACHED": self.pb.Execution.CACHED,
                  "FAILED": self.pb.Execution.FAILED, "RUNNING": self.pb.Execution.RUNNING}
        if ex.state not in states:
            raise ProvenanceError(f"execution state {ex.state!r} of {ex.node!r} is not one of {sorted(states)}")
        return states[ex.state]

    def start(self, node: str, type_name: str, inputs: Mapping[str, ArtifactRecord]) -> int:
        """Put the execution of ``node`` RUNNING with its input events; returns its id."""
        contexts = self._contexts(node)
        e = self.pb.Execution(type_id=self._type_id("execution", type_name), last_known_state=self.pb.Execution.RUNNING,
                              name=f"{self.run_id}.{node}")
        eid, _, _ = self.store.put_execution(e, self._events(inputs, self.pb.Event.INPUT), contexts,
                                             reuse_context_if_already_exist=True)
        return eid

    def finish(self, execution_id: int, ex: ExecutionRecord) -> int:
        """Put a started execution again, finished: state, properties and output events (its
        measured seconds are MLMD's stamps: no ``duration_s`` property)."""
        [e] = self.store.get_executions_by_id([execution_id])
        e.last_known_state = self._state(ex)
        for k, v in ex.properties.items():
            _set(e.custom_properties, k, v)
        eid, _, _ = self.store.put_execution(e, self._events(ex.outputs, self.pb.Event.OUTPUT), self._contexts(ex.node),
                                             reuse_context_if_already_exist=True)
        return eid

    def put(self, ex: ExecutionRecord) -> int:
        """Write a finished execution in one call, its seconds as the property ``duration_s``."""
        state = self._state(ex)
        contexts = self._contexts(ex.node)
        e = self.pb.Execution(type_id=self._type_id("execution", ex.type_name), last_known_state=state,
                              name=f"{self.run_id}.{ex.node}")
        for k, v in ex.properties.items():
            _set(e.custom_properties, k, v)
        e.custom_properties["duration_s"].double_value = max(0.0, float(ex.duration_s))
        pairs = self._events(ex.inputs, self.pb.Event.INPUT) + self._events(ex.outputs, self.pb.Event.OUTPUT)
        eid, _, _ = self.store.put_execution(e, pairs, contexts, reuse_context_if_already_exist=True)
        return eid


def record_run(store_path: str | os.PathLike, run: RunRecord) -> dict[str, int]:
    """Write ``run`` into the MLMD store at ``store_path`` in one go (every execution with its
    measured ``duration_s``); returns execution ids by node."""
    writer = RunWriter(store_path, run.pipeline, run.run_id, run.properties)
    return {ex.node: writer.put(ex) for ex in run.executions}


def update_artifacts(store_path: str | os.PathLike, updates: Mapping[str, Mapping[str, Scalar]], *,
                     deleted: Sequence[str] = ()) -> int:
    """Set custom properties of artifacts named by fingerprint, and mark ``deleted`` ones DELETED.

    ``updates`` maps an artifact name (frugal names artifacts by fingerprint) to properties;
    names not in the store are skipped. One ``put_artifacts`` per artifact, so each update is
    atomic. Returns how many artifacts changed.
    """
    from ml_metadata import metadata_store

    names = set(updates) | set(deleted)
    if not names:
        return 0
    store, pb = open_writable(store_path)
    changed = 0
    for name in sorted(names):
        quoted = name.replace("'", "''")
        found = store.get_artifacts(list_options=metadata_store.ListOptions(filter_query=f"name = '{quoted}'"))
        for a in found:
            for k, v in updates.get(name, {}).items():
                _set(a.custom_properties, k, v)
            if name in deleted:
                a.state = pb.Artifact.DELETED
            store.put_artifacts([a])
            changed += 1
    return changed
