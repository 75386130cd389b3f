"""Record a frugal pipeline run into an MLMD store the way TFX does.

Structure written per run: contexts ``pipeline`` (one per pipeline name), ``pipeline_run``
(child of the pipeline context) and ``node`` (``<pipeline>.<component>``); one execution per
component, COMPLETE when it computed and CACHED when its output was loaded or not needed;
output artifacts keyed by their fingerprint (a cached execution emits an OUTPUT event to the
existing artifact of the same fingerprint, as TFX does); INPUT/OUTPUT events with paths
(the input or output name); a push is a ``PushedModel`` with custom property ``pushed`` 1/0.

Callers pass plain Python values (:class:`RunRecord`); no protobuf leaves this module.
Durations: MLMD sets create/update times itself, so for SQLite stores the measured node times
are written into the execution's create/update columns after the execution is put (start
times laid out from the run's start in topological order).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provenance.errors import ProvenanceError

__all__ = ["ArtifactRecord", "ExecutionRecord", "RunRecord", "record_run"]

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
    """A whole pipeline run, executions in topological order; times in seconds since epoch."""

    pipeline: str
    run_id: str
    started_at: float
    executions: Sequence[ExecutionRecord]
    properties: Mapping[str, Scalar] = field(default_factory=dict)  # custom properties of the run context


def _connect(path: str | os.PathLike):
    from ml_metadata import errors as mlmd_errors
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    path = Path(path)
    if path.exists() and path.is_dir():
        raise ProvenanceError(f"MLMD store path {path} is a folder: pass a SQLite file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    try:
        return metadata_store.MetadataStore(cfg), pb, mlmd_errors
    except Exception as e:  # the C++ layer raises its own status errors
        raise ProvenanceError(f"cannot open MLMD store {path}: {e}; pass a writable SQLite file") from e


def _set(props, key: str, value: Scalar) -> None:
    if isinstance(value, bool):
        props[key].int_value = int(value)
    elif isinstance(value, int):
        props[key].int_value = value
    elif isinstance(value, float):
        props[key].double_value = value
    else:
        props[key].string_value = str(value)


def record_run(store_path: str | os.PathLike, run: RunRecord) -> dict[str, int]:
    """Write ``run`` into the SQLite MLMD store at ``store_path``; returns execution ids by node."""
    store, pb, mlmd_errors = _connect(store_path)
    states = {"COMPLETE": pb.Execution.COMPLETE, "CACHED": pb.Execution.CACHED,
              "FAILED": pb.Execution.FAILED, "RUNNING": pb.Execution.RUNNING}
    type_ids: dict[tuple[str, str], int] = {}

    def type_id(kind: str, name: str, props: Mapping[str, int] | None = None) -> int:
        key = (kind, name)
        if key not in type_ids:
            cls = {"artifact": pb.ArtifactType, "execution": pb.ExecutionType, "context": pb.ContextType}[kind]
            t = cls(name=name)
            for p, v in (props or {}).items():
                t.properties[p] = v
            put = {"artifact": store.put_artifact_type, "execution": store.put_execution_type,
                   "context": store.put_context_type}[kind]
            type_ids[key] = put(t, can_add_fields=True, can_omit_fields=True)  # a store of another writer
        return type_ids[key]

    def context(type_name: str, name: str) -> int:
        found = store.get_context_by_type_and_name(type_name, name)
        if found is not None:
            return found.id
        c = pb.Context(type_id=type_id("context", type_name), name=name)
        return store.put_contexts([c])[0]

    string = pb.STRING
    pipeline_ctx = context("pipeline", run.pipeline)
    if store.get_context_by_type_and_name("pipeline_run", run.run_id) is not None:
        raise ProvenanceError(f"run id {run.run_id!r} is already recorded in {store_path}: use a new run id")
    run_ctx = context("pipeline_run", run.run_id)
    if run.properties:
        [ctx] = store.get_contexts_by_id([run_ctx])
        for k, v in run.properties.items():
            _set(ctx.custom_properties, k, v)
        store.put_contexts([ctx])
    store.put_parent_contexts([pb.ParentContext(child_id=run_ctx, parent_id=pipeline_ctx)])

    artifact_ids: dict[str, int] = {}

    def artifact(rec: ArtifactRecord) -> int:
        """The id of the artifact of this fingerprint and type, created when first seen."""
        if rec.key in artifact_ids:
            return artifact_ids[rec.key]
        tid = type_id("artifact", rec.type_name, {"fingerprint": string})
        name = rec.key
        existing = store.get_artifact_by_type_and_name(rec.type_name, name)
        if existing is not None:
            artifact_ids[rec.key] = existing.id
            return existing.id
        a = pb.Artifact(type_id=tid, uri=rec.uri, name=name, state=pb.Artifact.LIVE)
        a.properties["fingerprint"].string_value = rec.key
        for k, v in rec.properties.items():
            _set(a.custom_properties, k, v)
        artifact_ids[rec.key] = store.put_artifacts([a])[0]
        return artifact_ids[rec.key]

    ids: dict[str, int] = {}
    timings: list[tuple[int, int, int]] = []
    clock = run.started_at
    for ex in run.executions:
        if ex.state not in states:
            raise ProvenanceError(f"execution state {ex.state!r} of {ex.node!r} is not one of {sorted(states)}")
        node_ctx = context("node", f"{run.pipeline}.{ex.node}")
        tid = type_id("execution", ex.type_name)
        e = pb.Execution(type_id=tid, last_known_state=states[ex.state], name=f"{run.run_id}.{ex.node}")
        for k, v in ex.properties.items():
            _set(e.custom_properties, k, v)
        events = []
        for path_name, rec in ex.inputs.items():
            ev = pb.Event(artifact_id=artifact(rec), type=pb.Event.INPUT)
            ev.path.steps.add().key = path_name
            ev.path.steps.add().index = 0
            events.append(ev)
        for path_name, rec in ex.outputs.items():
            ev = pb.Event(artifact_id=artifact(rec), type=pb.Event.OUTPUT)
            ev.path.steps.add().key = path_name
            ev.path.steps.add().index = 0
            events.append(ev)
        pairs = []
        for ev in events:
            [a] = store.get_artifacts_by_id([ev.artifact_id])
            pairs.append((a, ev))
        contexts = store.get_contexts_by_id([pipeline_ctx, run_ctx, node_ctx])  # as TFX associates them
        eid, _, _ = store.put_execution(e, pairs, contexts, reuse_context_if_already_exist=True)
        ids[ex.node] = eid
        start_ms = int(clock * 1000)
        end_ms = start_ms + max(0, int(round(ex.duration_s * 1000)))
        timings.append((start_ms, end_ms, eid))
        clock += max(0.0, ex.duration_s)
    _write_times(store_path, timings)
    return ids


def _write_times(store_path: str | os.PathLike, timings: Sequence[tuple[int, int, int]]) -> None:
    """Set measured create/update times (MLMD stamps them itself; SQLite stores only)."""
    if not timings:
        return
    con = sqlite3.connect(str(store_path))
    try:
        with con:
            con.executemany(
                "UPDATE Execution SET create_time_since_epoch = ?, last_update_time_since_epoch = ? WHERE id = ?",
                timings,
            )
    except sqlite3.Error as e:
        log.warning("could not write execution times into %s: %s", store_path, e)
    finally:
        con.close()
