"""MLMD written by frugal runs: readable by the ml_metadata API, TFX-like structure, and
ingestible into the warehouse with the expected executions and events."""

from __future__ import annotations

import duckdb
import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

import apache_beam as beam

from pipelines.api import Pipeline, beam_step, python_step, source
from pipelines.runner import RunOptions, run_pipeline
from provenance.errors import ProvenanceError
from provenance.run_recorder import ArtifactRecord, ExecutionRecord, RunRecord, record_run


def open_store(path) -> metadata_store.MetadataStore:
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(cfg)


# ---- record_run with plain values -------------------------------------------------------------
EXAMPLES = ArtifactRecord("aa" * 32, "Examples", "/store/aa", {"component": "gen"})
MODEL = ArtifactRecord("bb" * 32, "Model", "/store/bb")
PUSHED = ArtifactRecord("cc" * 32, "PushedModel", "", {"pushed": 1})


def run_record(run_id: str, state: str, started: float) -> RunRecord:
    return RunRecord("demo", run_id, started, [
        ExecutionRecord("gen", "ExampleGen", state, 1.5, outputs={"examples": EXAMPLES}),
        ExecutionRecord("train", "Trainer", state, 2.25, inputs={"examples": EXAMPLES}, outputs={"model": MODEL},
                        properties={"epochs": 3, "fingerprint": "bb" * 32}),
        ExecutionRecord("push", "Pusher", state, 0.5, inputs={"model": MODEL}, outputs={"pushed_model": PUSHED}),
    ])


def test_record_run_writes_tfx_like_structure(tmp_path):
    path = tmp_path / "mlmd.sqlite"
    ids1 = record_run(path, run_record("run-1", "COMPLETE", 1_800_000_000.0))
    ids2 = record_run(path, run_record("run-2", "CACHED", 1_800_000_100.0))
    store = open_store(path)

    [pipeline_ctx] = store.get_contexts_by_type("pipeline")
    runs = store.get_contexts_by_type("pipeline_run")
    nodes = store.get_contexts_by_type("node")
    assert pipeline_ctx.name == "demo"
    assert sorted(c.name for c in runs) == ["run-1", "run-2"]
    assert sorted(c.name for c in nodes) == ["demo.gen", "demo.push", "demo.train"]
    for run in runs:
        assert [p.id for p in store.get_parent_contexts_by_context(run.id)] == [pipeline_ctx.id]

    execs = store.get_executions_by_id(list(ids1.values()) + list(ids2.values()))
    states = [pb.Execution.State.Name(e.last_known_state) for e in execs]
    assert states == ["COMPLETE"] * 3 + ["CACHED"] * 3
    # measured seconds are a property (MLMD stamps its own times, through the API only)
    durations = {e.name: e.custom_properties["duration_s"].double_value for e in execs}
    assert durations["run-1.train"] == 2.25 and durations["run-2.gen"] == 1.5

    # cached executions point at the same artifacts (by fingerprint), as TFX does
    assert len(store.get_artifacts()) == 3
    [model] = store.get_artifacts_by_type("Model")
    assert model.properties["fingerprint"].string_value == "bb" * 32
    [pushed] = store.get_artifacts_by_type("PushedModel")
    assert pushed.custom_properties["pushed"].int_value == 1
    events = store.get_events_by_artifact_ids([model.id])
    kinds = sorted(pb.Event.Type.Name(e.type) for e in events)
    assert kinds == ["INPUT", "INPUT", "OUTPUT", "OUTPUT"]
    assert {e.path.steps[0].key for e in events} == {"model"}
    run1_execs = store.get_executions_by_context(runs[0].id if runs[0].name == "run-1" else runs[1].id)
    assert len(run1_execs) == 3
    assert store.get_executions_by_id([ids1["train"]])[0].custom_properties["epochs"].int_value == 3


def test_duplicate_run_id_and_bad_state_are_rejected(tmp_path):
    path = tmp_path / "mlmd.sqlite"
    record_run(path, run_record("run-1", "COMPLETE", 1_800_000_000.0))
    with pytest.raises(ProvenanceError, match="already recorded"):
        record_run(path, run_record("run-1", "COMPLETE", 1_800_000_000.0))
    with pytest.raises(ProvenanceError, match="execution state"):
        record_run(path, run_record("run-3", "DONE", 1_800_000_000.0))
    with pytest.raises(ProvenanceError, match="is a folder"):
        record_run(tmp_path, run_record("run-4", "COMPLETE", 1_800_000_000.0))


# ---- a real Beam pipeline run recorded and ingested -------------------------------------------
def double(raw):
    return raw | "Double" >> beam.Map(lambda r: {"x": r["x"] * 2})


def fit(rows, bias=0):
    return {"total": sum(r["x"] for r in rows) + bias}


def deploy(model, limit=10):
    return {"pushed": model["total"] > limit}


def tiny(data, bias=0) -> Pipeline:
    return Pipeline("tiny", (
        source("raw", str(data)),
        beam_step("double", double, {"raw": "raw"}, type_name="Transform"),
        python_step("train", fit, {"rows": "double"}, type_name="Trainer", output_type="Model", bias=bias),
        python_step("push", deploy, {"model": "train"}, type_name="Pusher", output_type="PushedModel"),
    ))


def test_runs_record_mlmd_that_ingests_into_the_warehouse(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x\n" + "\n".join(str(i) for i in range(10)) + "\n")
    mlmd = tmp_path / "runs.sqlite"
    opts = RunOptions(artifacts=tmp_path / "art", mlmd_store=mlmd, policy="all")
    r1 = run_pipeline(tiny(data), opts)
    r2 = run_pipeline(tiny(data), opts)  # unchanged: cached
    r3 = run_pipeline(tiny(data, bias=-200), opts)  # new trainer parameter: not pushed
    assert r1.outputs["push"] == {"pushed": True} and r3.outputs["push"] == {"pushed": False}

    store = open_store(mlmd)
    execs = store.get_executions()
    assert len(execs) == 12
    by_run = {}
    for run in store.get_contexts_by_type("pipeline_run"):
        by_run[run.name] = {e.name.rsplit(".", 1)[1]: pb.Execution.State.Name(e.last_known_state)
                            for e in store.get_executions_by_context(run.id)}
    assert by_run[r1.run_id] == dict.fromkeys(["raw", "double", "train", "push"], "COMPLETE")
    assert by_run[r2.run_id] == dict.fromkeys(["raw", "double", "train", "push"], "CACHED")
    assert by_run[r3.run_id]["train"] == by_run[r3.run_id]["push"] == "COMPLETE"
    for r in (r1, r2, r3):  # COMPLETE exactly where the plan computed
        assert by_run[r.run_id] == {n: "COMPLETE" if a == "compute" else "CACHED" for n, a in r.actions().items()}
    pushed = {a.properties["fingerprint"].string_value: a.custom_properties["pushed"].int_value
              for a in store.get_artifacts_by_type("PushedModel")}
    assert sorted(pushed.values()) == [0, 1]
    assert r1.mlmd_execution_ids["train"] in {e.id for e in execs}

    from provenance.ingest import ingest

    wh = tmp_path / "wh.duckdb"
    ingest([mlmd], wh, progress=False)
    con = duckdb.connect(str(wh), read_only=True)
    counts = dict(con.execute("SELECT state, count(*) FROM executions GROUP BY state").fetchall())
    computed = sum(a == "compute" for r in (r1, r2, r3) for a in r.actions().values())
    assert counts == {"COMPLETE": computed, "CACHED": 12 - computed} and computed >= 6
    n_events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    # per run: raw 1 out, double 1 in + 1 out, train 1 in + 1 out, push 1 in + 1 out = 7
    assert n_events == 21
    assert con.execute("SELECT count(*) FROM events WHERE type = 'OUTPUT'").fetchone()[0] == 12
    contexts = dict(con.execute("SELECT type_name, count(*) FROM contexts GROUP BY type_name").fetchall())
    assert contexts == {"pipeline": 1, "pipeline_run": 3, "node": 4}
    assert con.execute("SELECT count(*) FROM executions WHERE duration_s IS NULL").fetchone()[0] == 0


PIPELINE_FILE = '''
import apache_beam as beam
from pipelines.api import Pipeline, beam_step, python_step, source


def double(raw):
    return raw | "Double" >> beam.Map(lambda r: {"x": r["x"] * 2})


def fit(rows):
    return {"total": sum(r["x"] for r in rows)}


def deploy(model):
    return {"pushed": model["total"] > 10}


pipeline = Pipeline("cli", (
    source("raw", DATA),
    beam_step("double", double, {"raw": "raw"}),
    python_step("train", fit, {"rows": "double"}, type_name="Trainer", output_type="Model"),
    python_step("push", deploy, {"model": "train"}, type_name="Pusher", output_type="PushedModel"),
))
'''


def test_frugal_run_command_records_and_reuses(tmp_path, capsys):
    import json

    from frugal.cli import main

    data = tmp_path / "data.csv"
    data.write_text("x\n1\n2\n3\n4\n5\n")
    f = tmp_path / "pipe.py"
    f.write_text(PIPELINE_FILE.replace("DATA", repr(str(data))))
    args = ["run", str(f), "--store", str(tmp_path / "m.sqlite"), "--artifacts", str(tmp_path / "art"),
            "--budget", "10MB", "--json", "--", "--direct_num_workers=1"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["beam_used"] and first["outputs"]["push"] == {"pushed": True}
    assert {n["action"] for n in first["nodes"].values()} == {"compute"}
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not second["beam_used"] and second["nodes"]["push"]["action"] == "load"
    assert second["outputs"] == first["outputs"]
    assert len(open_store(tmp_path / "m.sqlite").get_contexts_by_type("pipeline_run")) == 2
    assert main(["run", str(f), "--budget", "lots"]) == 2
    assert "not a size" in capsys.readouterr().err


def test_artifact_updates_and_the_history_read_back(tmp_path):
    from provenance.run_history import read_run_history
    from provenance.run_recorder import update_artifacts

    path = tmp_path / "mlmd.sqlite"
    record_run(path, RunRecord("demo", "run-1", 1_800_000_000.0, run_record("x", "COMPLETE", 0).executions,
                               {"startup_s": 1.75}))
    assert update_artifacts(path, {"bb" * 32: {"recreation_s": 4.5}}, deleted=["aa" * 32, "zz" * 32]) == 2
    store = open_store(path)
    [examples] = store.get_artifacts_by_type("Examples")
    [model] = store.get_artifacts_by_type("Model")
    assert pb.Artifact.State.Name(examples.state) == "DELETED" and pb.Artifact.State.Name(model.state) == "LIVE"
    history = read_run_history(path)
    assert [(r.name, r.startup_s) for r in history.runs] == [("run-1", 1.75)]
    assert [(e.component, e.duration_s) for e in history.executions] == [
        ("demo.gen", 1.5), ("demo.train", 2.25), ("demo.push", 0.5)]
    assert {a.name: a.recreation_s for a in history.artifacts.values()}["bb" * 32] == 4.5
    assert read_run_history(tmp_path / "absent.sqlite").executions == ()


def test_history_of_a_real_tfx_store_uses_its_stamps():
    from pathlib import Path

    from provenance.run_history import read_run_history

    store = Path(__file__).resolve().parents[1] / "data" / "tfx" / "penguin_minimal.sqlite"
    history = read_run_history(store)
    ms = open_store(store)
    by_id = {e.id: e for e in ms.get_executions()}
    trainers = [e for e in history.executions if e.component.endswith("Trainer") and e.state == "COMPLETE"]
    cache_keys = {e.id: c.name for c in ms.get_contexts_by_type("execution_cache")
                  for e in ms.get_executions_by_context(c.id)}
    # a TFX execution's fingerprint is its cache key (the execution_cache context's name)
    assert trainers and all(e.fingerprint == cache_keys[e.execution_id] and e.action is None for e in trainers)
    for e in trainers:
        raw = by_id[e.execution_id]
        assert e.duration_s == (raw.last_update_time_since_epoch - raw.create_time_since_epoch) / 1000.0
        assert e.duration_s > 0.5  # a real Keras training
    assert {r.name for r in history.runs} == {c.name for c in ms.get_contexts_by_type("pipeline_run")}
