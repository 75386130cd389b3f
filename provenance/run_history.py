"""Read a pipeline's run history back from an MLMD store, through the ml_metadata API.

The cost model (``optimizer.reuse.costs``) needs, per execution: its component, run, fingerprint,
state, what the runner did (``action``), its measured seconds and the sizes of its outputs;
per artifact: its name, state, size and recorded recreation cost; per run: the measured
engine start-up. frugal's runner records all of these (``provenance.run_recorder``); a TFX
store has the same contexts (``node``, ``pipeline_run``) and MLMD's own create/update stamps,
which stand in for a missing ``duration_s`` property. Returns plain values only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from provenance.errors import ProvenanceError

__all__ = ["ArtifactRow", "ExecutionRow", "RunHistory", "RunRow", "read_run_history"]

_FINISHED = ("COMPLETE", "CACHED", "FAILED", "CANCELED")


@dataclass(frozen=True)
class ExecutionRow:
    """One execution. ``duration_s``: the recorded property, else update - create stamps of a
    finished execution, else None. ``fingerprint``: the recorded ``fingerprint`` property, else
    the name of TFX's ``execution_cache`` context (its cache key). ``action``: compute / load /
    prune as frugal's runner recorded it (None for other producers). ``size_bytes``: sum over OUTPUT artifacts that
    carry a ``size_bytes`` property (None when none does)."""

    execution_id: int
    component: str
    run: str
    state: str
    pipeline: str | None
    fingerprint: str | None
    action: str | None
    duration_s: float | None
    write_s: float | None
    size_bytes: float | None
    create_time_s: float
    outputs: tuple[int, ...] = ()
    inputs: tuple[int, ...] = ()
    type_name: str = ""


@dataclass(frozen=True)
class ArtifactRow:
    """One artifact with the properties the cost model and the collector read."""

    artifact_id: int
    name: str
    type_name: str
    uri: str
    state: str
    size_bytes: float | None
    recreation_s: float | None
    create_time_s: float
    update_time_s: float
    properties: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunRow:
    """One ``pipeline_run`` context: its name, creation time and measured ``startup_s``."""

    name: str
    pipeline: str | None
    create_time_s: float
    startup_s: float | None


@dataclass(frozen=True)
class RunHistory:
    """Executions oldest first, artifacts by id, runs oldest first."""

    executions: tuple[ExecutionRow, ...] = ()
    artifacts: dict[int, ArtifactRow] = field(default_factory=dict)
    runs: tuple[RunRow, ...] = ()


def _value(v):
    kind = v.WhichOneof("value")
    if kind in ("int_value", "double_value", "string_value", "bool_value"):
        return getattr(v, kind)
    return None


def _props(entity) -> dict:
    out = {k: _value(v) for k, v in entity.properties.items()}
    out.update({k: _value(v) for k, v in entity.custom_properties.items()})
    return out


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 else None


def read_run_history(store: str | os.PathLike, *, pipeline: str | None = None) -> RunHistory:
    """The run history of ``store`` (a SQLite path or a server address); an absent SQLite file
    is an empty history. ``pipeline`` keeps only executions of that pipeline's node contexts
    (``<pipeline>.<node>``, or TFX's node contexts whose pipeline context is ``pipeline``)."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from provenance.connections import connection_config, parse_store

    spec = parse_store(store)
    if spec.kind == "sqlite" and not Path(str(spec.path)).exists():
        return RunHistory()
    try:
        ms = metadata_store.MetadataStore(connection_config(spec))
    except Exception as e:
        raise ProvenanceError(f"cannot read the MLMD store {spec.uri}: {e}; pass an MLMD store") from e
    types = {t.id: t.name for t in ms.get_artifact_types()}
    artifacts: dict[int, ArtifactRow] = {}
    for a in ms.get_artifacts():
        p = _props(a)
        artifacts[a.id] = ArtifactRow(
            a.id, a.name, types.get(a.type_id, ""), a.uri, pb.Artifact.State.Name(a.state),
            _number(p.get("size_bytes")), _number(p.get("recreation_s")),
            a.create_time_since_epoch / 1000.0, a.last_update_time_since_epoch / 1000.0, p)
    contexts = ms.get_contexts()
    ctx_type = {t.id: t.name for t in ms.get_context_types()}
    by_id = {c.id: c for c in contexts}
    node_of: dict[int, str] = {}
    run_of: dict[int, str] = {}
    runs: list[RunRow] = []
    keep_nodes: set[int] = set()
    cache_of: dict[int, str] = {}
    pipeline_of: dict[int, str] = {}
    for c in contexts:
        kind = ctx_type.get(c.type_id)
        if kind not in ("node", "pipeline_run", "execution_cache"):
            continue
        if kind == "execution_cache":
            for e in ms.get_executions_by_context(c.id):
                cache_of[e.id] = c.name
            continue
        parents = [by_id[p.id].name for p in ms.get_parent_contexts_by_context(c.id) if p.id in by_id]
        owner = parents[0] if parents else None
        if kind == "pipeline_run":
            runs.append(RunRow(c.name, owner, c.create_time_since_epoch / 1000.0,
                               _number(_props(c).get("startup_s"))))
        for e in ms.get_executions_by_context(c.id):
            if owner is not None:
                pipeline_of.setdefault(e.id, owner)
            if kind == "node":
                node_of[e.id] = c.name
                if pipeline is None or c.name.startswith(f"{pipeline}.") or owner == pipeline:
                    keep_nodes.add(e.id)
            else:
                run_of[e.id] = c.name
    execs = sorted(ms.get_executions(), key=lambda e: (e.create_time_since_epoch, e.id))
    exec_types = {t.id: t.name for t in ms.get_execution_types()}
    events = ms.get_events_by_execution_ids([e.id for e in execs]) if execs else []
    outs: dict[int, list[int]] = {}
    ins: dict[int, list[int]] = {}
    for ev in events:
        if ev.type == pb.Event.OUTPUT:
            outs.setdefault(ev.execution_id, []).append(ev.artifact_id)
        elif ev.type in (pb.Event.INPUT, pb.Event.DECLARED_INPUT):
            ins.setdefault(ev.execution_id, []).append(ev.artifact_id)
    rows = []
    for e in execs:
        if pipeline is not None and e.id not in keep_nodes:
            continue
        p = _props(e)
        state = pb.Execution.State.Name(e.last_known_state)
        duration = _number(p.get("duration_s"))
        if duration is None and state in _FINISHED and e.create_time_since_epoch and e.last_update_time_since_epoch:
            duration = max(0.0, (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0)
        sizes = [artifacts[a].size_bytes for a in outs.get(e.id, ()) if a in artifacts]
        sizes = [s for s in sizes if s is not None]
        fp = p.get("fingerprint", cache_of.get(e.id))
        rows.append(ExecutionRow(
            e.id, node_of.get(e.id) or exec_types.get(e.type_id, ""), run_of.get(e.id) or f"execution:{e.id}",
            state, pipeline_of.get(e.id), str(fp) if fp is not None else None, p.get("action") if isinstance(p.get("action"), str) else None,
            duration, _number(p.get("write_s")), float(sum(sizes)) if sizes else None,
            e.create_time_since_epoch / 1000.0, tuple(outs.get(e.id, ())), tuple(ins.get(e.id, ())),
            exec_types.get(e.type_id, "")))
    runs.sort(key=lambda r: (r.create_time_s, r.name))
    return RunHistory(tuple(rows), artifacts, tuple(runs))
