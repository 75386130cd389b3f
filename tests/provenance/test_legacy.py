"""Pre-2020 TFX stores: no last_known_state, the state lives in the execution property `state`."""

from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from provenance import ingest
from provenance.warehouse import connect


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_effective_state_and_duration_of_legacy_executions(tmp_path, mlmd_api, via):
    path = tmp_path / "legacy.sqlite"
    store = mlmd_api.open_store(mlmd_api.sqlite_config(path))
    trainer_t = pb.ExecutionType(name="Trainer")
    trainer_t.properties["state"] = pb.STRING
    trainer_t.properties["pipeline_name"] = pb.STRING
    tid = store.put_execution_type(trainer_t)
    push_t = pb.ArtifactType(name="ModelPushPath")
    push_t.properties["pushed_model_id"] = pb.INT
    store.put_artifact_type(push_t)
    runs = {}
    for value in ("complete", "new", "cached", "Cancelled", "running", "failed"):
        x = pb.Execution(type_id=tid)
        x.properties["state"].string_value = value
        x.properties["pipeline_name"].string_value = "legacy"
        runs[value] = store.put_executions([x])[0]
    custom = pb.Execution(type_id=tid)  # state recorded as a custom property only
    custom.custom_properties["state"].string_value = "complete"
    runs["custom"] = store.put_executions([custom])[0]
    modern = pb.Execution(type_id=tid, last_known_state=pb.Execution.FAILED)
    modern.properties["state"].string_value = "complete"  # last_known_state wins
    runs["modern"] = store.put_executions([modern])[0]
    bare = pb.Execution(type_id=tid)  # no state at all
    runs["bare"] = store.put_executions([bare])[0]
    del store

    ingest([path], tmp_path / "w.duckdb", via=via, progress=False)
    con = connect(tmp_path / "w.duckdb", read_only=True)
    got = {r[0]: r[1:] for r in con.execute(
        "SELECT execution_id, state, last_known_state, duration_s IS NOT NULL FROM executions").fetchall()}
    expected = {
        "complete": ("COMPLETE", None, True), "new": ("NEW", None, False), "cached": ("CACHED", None, True),
        "Cancelled": ("CANCELED", None, True), "running": ("RUNNING", None, False),
        "failed": ("FAILED", None, True), "custom": ("COMPLETE", None, True),
        "modern": ("FAILED", "FAILED", True), "bare": (None, None, False),
    }
    assert {k: got[v] for k, v in runs.items()} == expected
    assert con.execute("SELECT MIN(duration_s) >= 0 FROM executions").fetchall() == [(True,)]
