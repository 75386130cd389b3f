"""Seeded random MLMD stores written with the API: both readers agree, and every written value
comes back (strings byte for byte, structs as equal JSON, event paths step by step)."""

from __future__ import annotations

import json
import random

import pytest
from google.protobuf import struct_pb2
from ml_metadata.proto import metadata_store_pb2 as pb

from provenance import ingest
from provenance.warehouse import connect

CHARS = "abcXYZ019 _-./:'\"\\\n\tåßçñ模型数据🚀💾Ωμ\u2028\u200b€"


def _text(rng: random.Random, n: int | None = None) -> str:
    return "".join(rng.choice(CHARS) for _ in range(n if n is not None else rng.randint(0, 40)))


def _json_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["num", "str", "bool", "none", "list", "dict"] if depth < 2 else ["num", "str", "bool"])
    if kind == "num":
        return float(rng.randint(-1000, 1000)) / 4
    if kind == "str":
        return _text(rng, 8)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "list":
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_text(rng, 5) or "k": _json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _set_random_value(rng: random.Random, value, expected: dict, key) -> None:
    kind = rng.choice(["int", "double", "string", "struct", "bool"])
    if kind == "int":
        v = rng.randint(-(2 ** 40), 2 ** 40)
        value.int_value = v
        expected[key] = ("int", v)
    elif kind == "double":
        v = rng.uniform(-1e6, 1e6)
        value.double_value = v
        expected[key] = ("double", v)
    elif kind == "string":
        v = _text(rng)
        value.string_value = v
        expected[key] = ("string", v)
    elif kind == "struct":
        v = {_text(rng, 6) or "k": _json_value(rng) for _ in range(rng.randint(0, 4))}
        s = struct_pb2.Struct()
        s.update(v)
        value.struct_value.CopyFrom(s)
        expected[key] = ("struct", json.loads(json.dumps(v)))
    else:
        v = rng.random() < 0.5
        value.bool_value = v
        expected[key] = ("bool", v)


def _write_random_store(store, rng: random.Random) -> tuple[dict, dict]:
    """Write random types, nodes, properties, events and contexts; return what was written."""
    a_types = [store.put_artifact_type(pb.ArtifactType(name=f"A{i}_{_text(rng, 4)}")) for i in range(3)]
    x_types = [store.put_execution_type(pb.ExecutionType(name=f"X{i}")) for i in range(2)]
    c_type = store.put_context_type(pb.ContextType(name="group"))
    props: dict = {}
    artifacts = []
    for i in range(40):
        a = pb.Artifact(type_id=rng.choice(a_types), uri=_text(rng), state=rng.randint(0, 6))
        if rng.random() < 0.5:
            a.name = f"a{i}-{_text(rng, 5)}"
        for _ in range(rng.randint(0, 4)):
            _set_random_value(rng, a.custom_properties[f"p{rng.randint(0, 9)}"], props, None)
        artifacts.append(a)
    artifact_ids = store.put_artifacts(artifacts)
    for aid, a in zip(artifact_ids, artifacts):
        for name in a.custom_properties:
            _set_random_value(rng, a.custom_properties[name], props, ("artifact", aid, name))
    for aid, a in zip(artifact_ids, artifacts):
        a.id = aid
    store.put_artifacts(artifacts)  # rewrite with the values recorded under their final keys
    contexts = store.put_contexts([pb.Context(type_id=c_type, name=f"g{i}") for i in range(5)])
    store.put_parent_contexts([pb.ParentContext(child_id=contexts[i], parent_id=contexts[0]) for i in range(1, 5)])
    paths: dict = {}
    for i in range(30):
        x = pb.Execution(type_id=rng.choice(x_types), last_known_state=rng.randint(1, 6))
        for _ in range(rng.randint(0, 3)):
            name = f"q{rng.randint(0, 5)}"
            x.custom_properties[name].string_value = ""
        chosen = rng.sample(range(len(artifact_ids)), rng.randint(0, 4))
        pairs = []
        for j in chosen:
            ev = pb.Event(type=rng.choice([pb.Event.INPUT, pb.Event.OUTPUT, pb.Event.DECLARED_INPUT]))
            steps = []
            for _ in range(rng.randint(0, 3)):
                if rng.random() < 0.5:
                    k = _text(rng, 5) or "k"
                    ev.path.steps.add().key = k
                    steps.append(k)
                else:
                    n = rng.randint(0, 12)
                    ev.path.steps.add().index = n
                    steps.append(str(n))
            artifact = store.get_artifacts_by_id([artifact_ids[j]])[0]  # as stored: put_execution upserts it
            pairs.append((artifact, ev, steps))
        ctx = store.get_contexts_by_id(rng.sample(contexts, rng.randint(0, 2)))
        xid = store.put_execution(x, [(a, e) for a, e, _ in pairs], ctx, reuse_context_if_already_exist=True)[0]
        x.id = xid
        for name in x.custom_properties:
            _set_random_value(rng, x.custom_properties[name], props, ("execution", xid, name))
        store.put_executions([x])
        for a, e, steps in pairs:
            paths[(xid, a.id, pb.Event.Type.Name(e.type))] = "/".join(steps) if steps else None
    props.pop(None, None)
    return props, paths


@pytest.mark.parametrize("seed", [1, 2])
def test_random_store_round_trips_through_both_readers(seed, tmp_path, mlmd_api, assert_same_warehouse):
    rng = random.Random(seed)
    path = tmp_path / "random.sqlite"
    props, paths = _write_random_store(mlmd_api.open_store(mlmd_api.sqlite_config(path)), rng)
    ingest([path], tmp_path / "fast.duckdb", via="sqlite", progress=False)
    ingest([path], tmp_path / "api.duckdb", via="api", progress=False)
    assert_same_warehouse(tmp_path / "fast.duckdb", tmp_path / "api.duckdb")

    con = connect(tmp_path / "fast.duckdb", read_only=True)
    got = {(r[0], r[1], r[2]): r[3:] for r in con.execute(
        "SELECT entity, entity_id, name, value_type, int_value, double_value, string_value, bool_value "
        "FROM properties WHERE is_custom").fetchall()}
    assert set(got) == set(props)
    for key, (kind, value) in props.items():
        vtype, i, d, s, b = got[key]
        assert vtype == kind, key
        if kind == "int":
            assert i == value
        elif kind == "double":
            assert d == pytest.approx(value, abs=1e-6)  # MLMD's SQL writes doubles with 6 decimals
        elif kind == "string":
            assert s == value
        elif kind == "struct":
            assert json.loads(s) == value
        else:
            assert b is value
    events = {(r[0], r[1], r[2]): r[3] for r in con.execute(
        "SELECT execution_id, artifact_id, type, path FROM events").fetchall()}
    assert events == paths
