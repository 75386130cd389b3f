"""The simulator's stores are genuine MLMD: the ml_metadata API reads back exactly the rows written.

Rows are captured from the bulk writer (``keep_rows``) and every entity, property, event path,
association, attribution and parent context is compared with what the API returns.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from pipelines.simulator.corpus import write_store


def _job(tmp: Path, style: str, mode: str, pipelines: int = 8, days: int = 12, seed: int = 5) -> dict:
    return dict(path=str(tmp / "mlmd.sqlite"), gt_path=str(tmp / "mlmd.ground_truth.json"), store=0, stores=1,
                seed=seed, pipelines=pipelines, days=days, style=style, mode=mode)


def _open(path: str):
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = path
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(cfg)


def _value(v: pb.Value):
    kind = v.WhichOneof("value")
    if kind == "int_value":
        return (v.int_value, None)
    if kind == "string_value":
        return (None, v.string_value)
    if kind == "struct_value":
        return (None, ("struct", dict(sorted((k, f.number_value) for k, f in v.struct_value.fields.items()))))
    raise AssertionError(f"unexpected value kind {kind}")


def _expected_value(iv, sv):
    if isinstance(sv, str) and sv.startswith("mlmd-struct::"):
        msg = struct_pb2.Struct()
        msg.ParseFromString(base64.b64decode(sv[len("mlmd-struct::"):]))
        return (None, ("struct", dict(sorted((k, f.number_value) for k, f in msg.fields.items()))))
    return (iv, sv)


def _props(entity) -> dict:
    out = {}
    for name, v in entity.properties.items():
        out[(name, 0)] = _value(v)
    for name, v in entity.custom_properties.items():
        out[(name, 1)] = _value(v)
    return out


@pytest.fixture(scope="module", params=[("current", "mixed"), ("legacy", "sync")], ids=["current-mixed", "legacy"])
def written(request, tmp_path_factory):
    style, mode = request.param
    tmp = tmp_path_factory.mktemp(f"rt-{style}")
    captured = {}

    def hook(writer):
        captured["chunks"] = list(writer.kept) + [writer.rows]
        captured["templates"] = writer.templates
        captured["type_ids"] = dict(writer.type_ids)

    totals = write_store(_job(tmp, style, mode), writer_hook=hook)
    return style, tmp / "mlmd.sqlite", captured, totals


def _collect(captured):
    chunks, templates = captured["chunks"], captured["templates"]
    exp = {k: {} for k in ("art", "exe", "ctx")}
    props = {k: {} for k in ("art", "exe", "ctx")}
    events, paths, assoc, parents = {}, {}, set(), set()
    cache_ctx = set()
    for c in chunks:
        for (aid, tid, uri, state, name, ct, ut) in c.artifacts:
            exp["art"][aid] = (tid, uri, state, ct, ut)
        for (xid, tid, state, name, ct, ut) in c.executions:
            exp["exe"][xid] = (tid, state, name, ct, ut)
        for (cid, tid, name, ct, ut) in c.contexts:
            exp["ctx"][cid] = (tid, name, ct, ut)
        for kind, rows in (("art", c.artifact_props), ("exe", c.execution_props), ("ctx", c.context_props)):
            for (eid, name, custom, iv, sv) in rows:
                props[kind].setdefault(eid, {})[(name, custom)] = _expected_value(iv, sv)
        for (eid, tpl, kind) in c.templates:
            for (name, custom, iv, sv) in templates[tpl]:
                props["exe" if kind == 0 else "art"].setdefault(eid, {})[(name, custom)] = _expected_value(iv, sv)
        for (eid, aid, xid, etype, ms, key, idx) in c.events:
            events[eid] = (aid, xid, etype, ms)
            if key is not None:
                paths[eid] = [("key", key), ("index", idx)]
        for (eid, is_idx, idx, key) in c.event_paths:
            paths.setdefault(eid, []).append(("index", idx) if is_idx else ("key", key))
        for (xid, *ctx_ids, cache) in c.associations:
            assoc.update((cid, xid) for cid in ctx_ids if cid is not None)
            if cache is not None:
                assoc.add((cache, xid))
                cache_ctx.add(cache)
        parents.update(c.parent_contexts)
    return exp, props, events, paths, assoc, parents, cache_ctx


def test_every_entity_reads_back_exactly(written):
    style, path, captured, totals = written
    exp, props, events, paths, assoc, parents, cache_ctx = _collect(captured)
    store = _open(str(path))
    arts = store.get_artifacts()
    exes = store.get_executions()
    ctxs = store.get_contexts()
    assert len(arts) == len(exp["art"]) == totals["artifacts"] > 100
    assert len(exes) == len(exp["exe"]) == totals["executions"] > 100
    assert len(ctxs) == len(exp["ctx"]) == totals["contexts"]
    for a in arts:
        assert (a.type_id, a.uri, a.state, a.create_time_since_epoch, a.last_update_time_since_epoch) == exp["art"][a.id]
        assert _props(a) == props["art"].get(a.id, {}), a.id
    for x in exes:
        state = x.last_known_state if x.HasField("last_known_state") else None
        name = x.name if x.HasField("name") else None
        assert (x.type_id, state, name, x.create_time_since_epoch, x.last_update_time_since_epoch) == exp["exe"][x.id]
        assert _props(x) == props["exe"].get(x.id, {}), x.id
    for c in ctxs:
        assert (c.type_id, c.name, c.create_time_since_epoch, c.last_update_time_since_epoch) == exp["ctx"][c.id]
        assert _props(c) == props["ctx"].get(c.id, {})
    got_events = store.get_events_by_execution_ids([x.id for x in exes])
    assert len(got_events) == len(events)
    seen = set()
    for e in got_events:
        key = (e.artifact_id, e.execution_id, e.type, e.milliseconds_since_epoch)
        eid = next(i for i, v in _index(events).get(key, []))
        seen.add(eid)
        got_path = [("key", s.key) if s.HasField("key") else ("index", s.index) for s in e.path.steps]
        assert got_path == paths[eid]
    assert len(seen) == len(events)
    # associations, attributions (TFX's rule) and parent contexts, through the API
    by_ctx_exec, by_ctx_art = {}, {}
    for c in ctxs:
        by_ctx_exec[c.id] = {x.id for x in store.get_executions_by_context(c.id)}
        by_ctx_art[c.id] = {a.id for a in store.get_artifacts_by_context(c.id)}
    assert {(c, x) for c, xs in by_ctx_exec.items() for x in xs} == assoc
    ctx_of_exec = {}
    for c, x in assoc:
        ctx_of_exec.setdefault(x, set()).add(c)
    expected_attr = {(c, aid) for (aid, xid, etype, ms) in events.values() for c in ctx_of_exec.get(xid, ())
                     if c not in cache_ctx or etype == pb.Event.OUTPUT}
    assert {(c, a) for c, arts_ in by_ctx_art.items() for a in arts_} == expected_attr
    got_parents = {(c.id, p.id) for c in ctxs for p in store.get_parent_contexts_by_context(c.id)}
    assert got_parents == parents
    if style == "current":
        assert parents, "pipeline_run contexts have the pipeline context as parent"


_INDEX_CACHE: dict[int, dict] = {}


def _index(events: dict) -> dict:
    cached = _INDEX_CACHE.get(id(events))
    if cached is None:
        cached = {}
        for eid, v in events.items():
            cached.setdefault(v, []).append((eid, v))
        _INDEX_CACHE[id(events)] = cached
    return cached


def test_types_are_registered_through_the_api(written):
    style, path, captured, _ = written
    store = _open(str(path))
    names = {t.name for t in store.get_execution_types()}
    if style == "current":
        assert "tfx.components.trainer.component.Trainer" in names
        assert "tfx.dsl.components.common.resolver.Resolver" in names
        trainer = store.get_execution_type("tfx.components.trainer.component.Trainer")
        assert trainer.base_type == pb.ExecutionType.TRAIN
        examples = store.get_artifact_type("Examples")
        assert dict(examples.properties) == {"span": pb.INT, "split_names": pb.STRING, "version": pb.INT}
        assert {t.name for t in store.get_context_types()} == {"pipeline", "pipeline_run", "node", "execution_cache"}
    else:
        assert {"Trainer", "Pusher", "ModelValidator"} <= names
        assert store.get_execution_type("Trainer").properties["state"] == pb.STRING
        assert {t.name for t in store.get_context_types()} == {"run", "component_run"}
        assert "pushed_model_id" not in store.get_artifact_type("ModelPushPath").properties
