"""Ingest the real TFX stores: counts equal what the ml_metadata API reports; pushes match ground truth."""

from __future__ import annotations

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from provenance import ingest
from provenance.warehouse import connect

STORES = ("penguin_prod", "penguin_minimal")


def _api_counts(path) -> dict[str, int]:
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(cfg)
    executions = store.get_executions()
    contexts = store.get_contexts()
    return {
        "artifacts": len(store.get_artifacts()),
        "executions": len(executions),
        "contexts": len(contexts),
        "events": len(store.get_events_by_execution_ids([e.id for e in executions])),
        "attributions": sum(len(store.get_artifacts_by_context(c.id)) for c in contexts),
        "associations": sum(len(store.get_executions_by_context(c.id)) for c in contexts),
        "parent_contexts": sum(len(store.get_parent_contexts_by_context(c.id)) for c in contexts),
        "types": len(store.get_artifact_types()) + len(store.get_execution_types()) + len(store.get_context_types()),
    }


@pytest.mark.parametrize("name", STORES)
@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_counts_equal_ml_metadata_api(name, via, tfx_store, tmp_path):
    path = tfx_store(name)
    report = ingest([path], tmp_path / "w.duckdb", via=via, progress=False)
    assert report.sources[0].source_id == name
    assert report.issues == 0
    expected = _api_counts(path)
    con = connect(tmp_path / "w.duckdb", read_only=True)
    for table, n in expected.items():
        assert con.execute(f"SELECT COUNT(*) FROM {table} WHERE source_id = ?", [name]).fetchall()[0][0] == n, table


@pytest.mark.parametrize("name", STORES)
@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_pushed_flags_and_states_equal_ground_truth(name, via, tfx_store, tfx_ground_truth, tmp_path):
    path = tfx_store(name)
    ingest([path], tmp_path / "w.duckdb", via=via, progress=False)
    con = connect(tmp_path / "w.duckdb", read_only=True)
    pushed = dict(con.execute("""
        SELECT e.execution_id, p.int_value
        FROM artifacts a
        JOIN properties p ON p.source_id = a.source_id AND p.entity = 'artifact'
             AND p.entity_id = a.artifact_id AND p.name = 'pushed' AND p.is_custom
        JOIN events e ON e.source_id = a.source_id AND e.artifact_id = a.artifact_id AND e.type = 'OUTPUT'
        WHERE a.type_name = 'PushedModel'
    """).fetchall())
    states = dict(con.execute("SELECT execution_id, state FROM executions").fetchall())
    types = dict(con.execute("SELECT execution_id, type_name FROM executions").fetchall())
    runs = tfx_ground_truth(name)["runs"]
    assert runs
    n_pushers = 0
    for run in runs:
        for node in run["nodes"].values():
            if "execution_id" not in node:
                continue
            xid = node["execution_id"]
            assert states[xid] == node["mlmd_execution_state"], (run["run_index"], xid)
            assert types[xid] == node["mlmd_execution_type"]
        pusher = run["nodes"]["Pusher"]
        assert pushed[pusher["execution_id"]] == pusher["pushed_property_mlmd"], run["run_index"]
        n_pushers += 1
    assert n_pushers == len(pushed)


@pytest.mark.parametrize("name", STORES)
def test_api_and_sqlite_paths_give_identical_tables(name, tfx_store, tmp_path, assert_same_warehouse, dump):
    path = tfx_store(name)
    ingest([path], tmp_path / "fast.duckdb", via="sqlite", progress=False)
    ingest([path], tmp_path / "api.duckdb", via="api", progress=False)
    assert_same_warehouse(tmp_path / "fast.duckdb", tmp_path / "api.duckdb")
    tables = dump(tmp_path / "fast.duckdb")
    assert len(tables["properties"]) > 80 and len(tables["events"]) >= 24
