"""Fixtures of the provenance tests: compare warehouses table by table."""

from __future__ import annotations

import pytest

from provenance.schema import TABLES
from provenance.warehouse import connect

# Columns of `sources` that legitimately differ between two equal ingests.
VOLATILE = {"sources": ("last_ingested_at", "watermark")}


def dump_warehouse(path, source_id: str | None = None) -> dict[str, list[tuple]]:
    """Every table of a warehouse as sorted row lists (volatile `sources` columns left out)."""
    con = connect(path, read_only=True)
    try:
        out = {}
        for table in TABLES:
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in VOLATILE.get(table, ())]
            where = " WHERE source_id = ?" if source_id else ""
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}{where}", [source_id] if source_id else []).fetchall()
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def duplicate_keys(path) -> dict[str, int]:
    """Per table, how many key values occur more than once (should be none)."""
    from provenance.schema import KEYS

    con = connect(path, read_only=True)
    try:
        out = {}
        for table, key in KEYS.items():
            cols = ", ".join(key)
            out[table] = con.execute(
                f"SELECT COUNT(*) FROM (SELECT {cols} FROM {table} GROUP BY ALL HAVING COUNT(*) > 1)"
            ).fetchall()[0][0]
        return out
    finally:
        con.close()


@pytest.fixture
def assert_keys_unique():
    """Assert that every table's key (provenance.schema.KEYS) is unique."""

    def check(path) -> None:
        dups = duplicate_keys(path)
        assert not any(dups.values()), dups

    return check


@pytest.fixture
def dump():
    """Return dump_warehouse(path, source_id=None) -> {table: sorted rows}."""
    return dump_warehouse


@pytest.fixture
def assert_same_warehouse():
    """Assert that two warehouses hold identical rows in every table."""

    def check(a, b, source_id: str | None = None) -> None:
        da, db = dump_warehouse(a, source_id), dump_warehouse(b, source_id)
        for table in TABLES:
            assert da[table] == db[table], f"table {table} differs"

    return check


# --- MLMD stores written with the real ml_metadata API -------------------------------------

UNICODE = "naïve 模型 🚀 Ωμέγα \u2028 \"quoted\" \\ back"
PORTABLE_UNICODE = "naïve 模型 🚀 Ωμέγα \"quoted\" 'single'"
HUGE_LEN = 3 * 1024 * 1024


def sqlite_config(path):
    from ml_metadata.proto import metadata_store_pb2 as pb

    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return cfg


def open_store(config):
    from ml_metadata.metadata_store import metadata_store

    return metadata_store.MetadataStore(config)


def write_rich_store(store, portable: bool = False, huge_len: int = HUGE_LEN) -> dict:
    """Write a small pipeline with every property type, unicode, a huge value and edges.

    ``portable`` avoids what MLMD's own server backends cannot store: 64-bit ints (MySQL keeps
    int_value in a 32-bit INT) and backslashes (MLMD's PostgreSQL escaping breaks on them).
    ``huge_len``: length of the huge string (MLMD's PostgreSQL indexes string values, so it
    cannot store values over ~8 KB). Returns the ids it wrote, for assertions and for later in-place updates.
    """
    from google.protobuf import struct_pb2
    from ml_metadata.proto import metadata_store_pb2 as pb

    examples_t = pb.ArtifactType(name="Examples", base_type=pb.ArtifactType.DATASET, version="1.0",
                                 description="training examples")
    for name, dt in (("span", pb.INT), ("ratio", pb.DOUBLE), ("note", pb.STRING), ("meta", pb.STRUCT),
                     ("spec", pb.PROTO), ("ok", pb.BOOLEAN)):
        examples_t.properties[name] = dt
    examples_tid = store.put_artifact_type(examples_t)
    model_tid = store.put_artifact_type(pb.ArtifactType(name="Model", base_type=pb.ArtifactType.MODEL))
    trainer_t = pb.ExecutionType(name="Trainer", base_type=pb.ExecutionType.TRAIN)
    trainer_t.properties["lr"] = pb.DOUBLE
    trainer_tid = store.put_execution_type(trainer_t)
    gen_tid = store.put_execution_type(pb.ExecutionType(name="ExampleGen"))
    pipe_tid = store.put_context_type(pb.ContextType(name="pipeline"))
    run_tid = store.put_context_type(pb.ContextType(name="pipeline_run"))

    ex = pb.Artifact(type_id=examples_tid, uri="/data/ünïcode/examples", name="examples-1",
                     state=pb.Artifact.LIVE, external_id="ext-ex-1")
    ex.properties["span"].int_value = -(2 ** 31) if portable else -(2 ** 62)
    text = PORTABLE_UNICODE if portable else UNICODE
    ex.properties["ratio"].double_value = 0.1 + 0.2
    ex.properties["note"].string_value = text
    meta = struct_pb2.Struct()
    meta.update({"train": 1.0, "eval": 0.0, "nested": {"ok": True, "names": ["a", "ß"]}, "none": None})
    ex.properties["meta"].struct_value.CopyFrom(meta)
    spec_msg = pb.Artifact(uri="packed://inside", name="packed")  # a known proto type
    ex.properties["spec"].proto_value.Pack(spec_msg)
    ex.properties["ok"].bool_value = True
    ex.custom_properties["huge"].string_value = "x" * huge_len
    ex.custom_properties["empty"].string_value = ""
    ex.custom_properties["flag"].bool_value = False
    ex.custom_properties["opaque"].proto_value.type_url = "type.googleapis.com/unknown.Message"
    ex.custom_properties["opaque"].proto_value.value = b"\x08\x01\x12\x03abc"
    ex.custom_properties["looks_like_struct"].string_value = "mlmd-struct: not really"
    model = pb.Artifact(type_id=model_tid, uri="/models/1", state=pb.Artifact.PENDING)
    model.custom_properties["pushed"].int_value = 0

    pipeline = pb.Context(type_id=pipe_tid, name="my_pipeline")
    pipeline.custom_properties["owner"].string_value = text
    run = pb.Context(type_id=run_tid, name="run-1")
    pipe_id, run_id = store.put_contexts([pipeline, run])
    store.put_parent_contexts([pb.ParentContext(child_id=run_id, parent_id=pipe_id)])

    gen = pb.Execution(type_id=gen_tid, last_known_state=pb.Execution.COMPLETE, name="gen-1")
    out_ev = pb.Event(type=pb.Event.OUTPUT)
    out_ev.path.steps.add().key = "examples"
    out_ev.path.steps.add().index = 0
    ctxs = store.get_contexts_by_id([pipe_id, run_id])
    gen_id, (ex_id,), _ = store.put_execution(gen, [(ex, out_ev)], ctxs)

    trainer = pb.Execution(type_id=trainer_tid, last_known_state=pb.Execution.RUNNING, name="train-1")
    trainer.properties["lr"].double_value = 1e-3
    in_ev = pb.Event(type=pb.Event.INPUT)
    in_ev.path.steps.add().key = "examples"
    in_ev.path.steps.add().index = 0
    in_ev.path.steps.add().key = "extra/slash"
    pending_ev = pb.Event(type=pb.Event.DECLARED_OUTPUT)  # no path steps
    ex_ref = store.get_artifacts_by_id([ex_id])[0]
    trainer_id, (_, model_id), _ = store.put_execution(trainer, [(ex_ref, in_ev), (model, pending_ev)], ctxs)
    return {
        "examples_type": examples_tid, "model_type": model_tid, "trainer_type": trainer_tid,
        "pipeline": pipe_id, "run": run_id, "gen": gen_id, "trainer": trainer_id,
        "examples": ex_id, "model": model_id,
    }


def update_store(store, ids) -> dict:
    """In-place updates and inserts, as a running pipeline makes them."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    trainer = store.get_executions_by_id([ids["trainer"]])[0]
    trainer.last_known_state = pb.Execution.COMPLETE
    trainer.custom_properties["added_later"].string_value = "yes ✓"
    model = store.get_artifacts_by_id([ids["model"]])[0]
    model.state = pb.Artifact.LIVE
    model.custom_properties["pushed"].int_value = 1
    out_ev = pb.Event(type=pb.Event.OUTPUT)
    out_ev.path.steps.add().key = "model"
    store.put_execution(trainer, [(model, out_ev)], store.get_contexts_by_id([ids["run"]]))
    # a new run: new context, execution, artifact, events
    run2 = store.put_contexts([pb.Context(type_id=store.get_context_type("pipeline_run").id, name="run-2")])[0]
    gen = pb.Execution(type_id=store.get_execution_type("ExampleGen").id, last_known_state=pb.Execution.CACHED)
    ex = store.get_artifacts_by_id([ids["examples"]])[0]
    ev = pb.Event(type=pb.Event.OUTPUT)
    ev.path.steps.add().key = "examples"
    gen_id, _, _ = store.put_execution(gen, [(ex, ev)], store.get_contexts_by_id([ids["pipeline"], run2]))
    return {"run2": run2, "gen2": gen_id}


@pytest.fixture
def rich_store(tmp_path):
    """A fresh SQLite MLMD store written with the API; returns (path, ids)."""
    path = tmp_path / "rich.sqlite"
    store = open_store(sqlite_config(path))
    ids = write_rich_store(store)
    del store
    return path, ids


@pytest.fixture
def mlmd_api():
    """Helpers to open and write MLMD stores with the ml_metadata API."""
    import types

    return types.SimpleNamespace(sqlite_config=sqlite_config, open_store=open_store, write_rich_store=write_rich_store,
                                 update_store=update_store,
                                 UNICODE=UNICODE, HUGE_LEN=HUGE_LEN)
