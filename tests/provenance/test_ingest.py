"""Ingest API-written stores: values of every type, identical read paths, incremental, idempotent."""

from __future__ import annotations

import json
import sqlite3

import pytest

from provenance import ingest
from provenance.errors import ProvenanceError
from provenance.warehouse import connect


def _props(path) -> dict:
    con = connect(path, read_only=True)
    rows = con.execute(
        "SELECT entity, entity_id, name, is_custom, value_type, int_value, double_value, string_value, bool_value "
        "FROM properties"
    ).fetchall()
    return {(r[0], r[1], r[2], r[3]): r[4:] for r in rows}


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_every_value_type_is_ingested(rich_store, via, tmp_path, mlmd_api):
    path, ids = rich_store
    report = ingest([path], tmp_path / "w.duckdb", via=via, progress=False)
    assert report.issues == 0 and report.sources[0].full
    props = _props(tmp_path / "w.duckdb")
    ex = ids["examples"]
    assert props[("artifact", ex, "span", False)][:2] == ("int", -(2 ** 62))
    # MLMD itself writes doubles into SQL with 6 decimals
    assert props[("artifact", ex, "ratio", False)][2] == pytest.approx(0.1 + 0.2, abs=1e-6)
    assert props[("artifact", ex, "note", False)] == ("string", None, None, mlmd_api.UNICODE, None)
    assert json.loads(props[("artifact", ex, "meta", False)][3]) == {
        "train": 1.0, "eval": 0.0, "nested": {"ok": True, "names": ["a", "ß"]}, "none": None}
    assert props[("artifact", ex, "meta", False)][0] == "struct"
    spec = json.loads(props[("artifact", ex, "spec", False)][3])
    assert spec["@type"].endswith("ml_metadata.Artifact") and spec["uri"] == "packed://inside"
    opaque = json.loads(props[("artifact", ex, "opaque", True)][3])
    assert opaque == {"@type": "type.googleapis.com/unknown.Message", "value": "CAESA2FiYw=="}
    assert props[("artifact", ex, "ok", False)] == ("bool", None, None, None, True)
    assert props[("artifact", ex, "flag", True)] == ("bool", None, None, None, False)
    assert len(props[("artifact", ex, "huge", True)][3]) == mlmd_api.HUGE_LEN
    assert props[("artifact", ex, "empty", True)][3] == ""
    assert props[("artifact", ex, "looks_like_struct", True)][:1] == ("string",)
    assert props[("context", ids["pipeline"], "owner", True)][3] == mlmd_api.UNICODE

    con = connect(tmp_path / "w.duckdb", read_only=True)
    events = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT execution_id, type, artifact_id, path, path_key FROM events").fetchall()}
    assert events[(ids["gen"], "OUTPUT")] == (ex, "examples/0", "examples")
    assert events[(ids["trainer"], "INPUT")] == (ex, "examples/0/extra/slash", "examples")
    assert events[(ids["trainer"], "DECLARED_OUTPUT")] == (ids["model"], None, None)
    x = dict(con.execute("SELECT execution_id, state FROM executions").fetchall())
    assert x == {ids["gen"]: "COMPLETE", ids["trainer"]: "RUNNING"}
    assert con.execute("SELECT duration_s IS NULL FROM executions WHERE execution_id = ?",
                       [ids["trainer"]]).fetchall() == [(True,)]
    types = {r[0]: r[1:] for r in con.execute("SELECT name, kind, version, description, base_type FROM types").fetchall()}
    assert types["Examples"] == ("artifact", "1.0", "training examples", "DATASET")
    assert types["Trainer"] == ("execution", None, None, "TRAIN")
    assert types["pipeline"] == ("context", None, None, None)
    assert "mlmd.Dataset" not in types
    assert con.execute("SELECT data_type FROM type_properties WHERE name = 'meta'").fetchall() == [("STRUCT",)]
    assert con.execute("SELECT COUNT(*) FROM parent_contexts").fetchall() == [(1,)]
    assert con.execute("SELECT COUNT(*) FROM attributions").fetchall() == [(4,)]
    assert con.execute("SELECT COUNT(*) FROM associations").fetchall() == [(4,)]


def test_api_and_sqlite_paths_identical_on_rich_store(rich_store, tmp_path, assert_same_warehouse):
    path, _ = rich_store
    ingest([path], tmp_path / "a.duckdb", via="api", progress=False)
    ingest([path], tmp_path / "s.duckdb", via="sqlite", progress=False)
    assert_same_warehouse(tmp_path / "a.duckdb", tmp_path / "s.duckdb")


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_incremental_ingest_applies_updates_and_inserts(rich_store, via, tmp_path, mlmd_api, assert_same_warehouse,
                                                       assert_keys_unique):
    path, ids = rich_store
    wh = tmp_path / "w.duckdb"
    first = ingest([path], wh, via=via, progress=False)
    new = mlmd_api.update_store(mlmd_api.open_store(mlmd_api.sqlite_config(path)), ids)
    second = ingest([path], wh, via=via, progress=False)
    assert not second.sources[0].full
    assert second.store_rows < first.store_rows
    con = connect(wh, read_only=True)
    assert con.execute("SELECT state, duration_s >= 0 FROM executions WHERE execution_id = ?",
                       [ids["trainer"]]).fetchall() == [("COMPLETE", True)]
    assert con.execute("SELECT string_value FROM properties WHERE entity = 'execution' AND entity_id = ? "
                       "AND name = 'added_later'", [ids["trainer"]]).fetchall() == [("yes ✓",)]
    assert con.execute("SELECT int_value FROM properties WHERE entity = 'artifact' AND entity_id = ? "
                       "AND name = 'pushed'", [ids["model"]]).fetchall() == [(1,)]
    assert con.execute("SELECT state FROM artifacts WHERE artifact_id = ?", [ids["model"]]).fetchall() == [("LIVE",)]
    assert con.execute("SELECT state FROM executions WHERE execution_id = ?", [new["gen2"]]).fetchall() == [("CACHED",)]
    assert con.execute("SELECT COUNT(*) FROM associations WHERE context_id = ?", [new["run2"]]).fetchall() == [(1,)]
    assert con.execute("SELECT COUNT(*) FROM attributions WHERE context_id = ?", [new["run2"]]).fetchall() == [(1,)]
    con.close()
    # The incremental result equals a full ingest of the updated store, by either path.
    ingest([path], tmp_path / "full.duckdb", via="sqlite", progress=False)
    assert_same_warehouse(wh, tmp_path / "full.duckdb")
    assert_keys_unique(wh)
    ingest([path], wh, via=via, progress=False)  # and again: still no duplicate keys
    assert_keys_unique(wh)


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_reingest_of_unchanged_store_is_idempotent(rich_store, via, tmp_path, dump):
    path, _ = rich_store
    wh = tmp_path / "w.duckdb"
    ingest([path], wh, via=via, progress=False)
    before = dump(wh)
    again = ingest([path], wh, via=via, progress=False)
    assert not again.sources[0].full
    assert dump(wh) == before


def test_switching_reader_rereads_in_full_and_keeps_tables(rich_store, tmp_path, dump):
    path, _ = rich_store
    wh = tmp_path / "w.duckdb"
    ingest([path], wh, via="sqlite", progress=False)
    before = dump(wh)
    report = ingest([path], wh, via="api", progress=False)
    assert report.sources[0].full
    assert dump(wh) == before


def test_deleted_rows_trigger_a_full_reread(rich_store, tmp_path, dump):
    path, ids = rich_store
    wh = tmp_path / "w.duckdb"
    ingest([path], wh, progress=False)
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM Attribution WHERE context_id = ?", [ids["run"]])
    report = ingest([path], wh, progress=False)
    assert report.sources[0].full
    ingest([path], tmp_path / "fresh.duckdb", progress=False)
    assert dump(wh) == dump(tmp_path / "fresh.duckdb")


def test_many_sources_in_one_warehouse_keep_their_own_rows(rich_store, tfx_store, tmp_path):
    path, _ = rich_store
    wh = tmp_path / "w.duckdb"
    ingest([path, tfx_store("penguin_minimal")], wh, progress=False)
    ingest([path], wh, source_ids=["rich_copy"], progress=False)
    con = connect(wh, read_only=True)
    counts = dict(con.execute("SELECT source_id, COUNT(*) FROM executions GROUP BY 1").fetchall())
    assert counts == {"rich": 2, "rich_copy": 2, "penguin_minimal": 12}
    assert sorted(r[0] for r in con.execute("SELECT source_id FROM sources").fetchall()) == [
        "penguin_minimal", "rich", "rich_copy"]


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_store_path_with_odd_characters(tfx_store, tmp_path, via):
    odd = tmp_path / "my stores #1?&%20" / "pénguin 100%.sqlite"
    odd.parent.mkdir()
    tfx_store("penguin_minimal").rename(odd)
    report = ingest([odd], tmp_path / "w.duckdb", via=via, progress=False)
    assert report.sources[0].source_id == "pénguin 100%"
    assert report.sources[0].rows["executions"] == 12


def test_paths_identical_on_a_store_with_thousands_of_nodes(tmp_path, assert_same_warehouse, dump):
    from provenance.synthetic_store import write_synthetic_store

    path = tmp_path / "many.sqlite"
    counts = write_synthetic_store(path, runs=200, seed=3)  # 1,200 artifacts: many lineage pages
    fast = ingest([path], tmp_path / "fast.duckdb", via="sqlite", progress=False)
    api = ingest([path], tmp_path / "api.duckdb", via="api", progress=False)
    assert fast.store_rows == api.store_rows
    assert_same_warehouse(tmp_path / "fast.duckdb", tmp_path / "api.duckdb")
    tables = dump(tmp_path / "fast.duckdb")
    assert len(tables["attributions"]) == counts["Attribution"]
    assert len(tables["events"]) == counts["Event"]
    assert len(tables["properties"]) == counts["ArtifactProperty"] + counts["ExecutionProperty"] + counts["ContextProperty"]


def test_same_stem_stores_get_folder_stem_ids_and_a_warehouse_keeps_its_ids(tfx_store, tmp_path):
    stores = {}
    for folder, name in (("a", "penguin_prod"), ("b", "penguin_minimal"), ("c", "penguin_minimal")):
        (tmp_path / folder).mkdir()
        stores[folder] = tfx_store(name).rename(tmp_path / folder / "metadata.sqlite")
    wh = tmp_path / "w.duckdb"

    first = ingest([stores["a"]], wh, progress=False)          # alone: the file stem, as always
    assert [s.source_id for s in first.sources] == ["metadata"] and first.notes == ()
    # a keeps the id the warehouse gives it; b, which collides with it, gets folder/stem
    second = ingest([stores["a"], stores["b"]], wh, progress=False)
    assert [s.source_id for s in second.sources] == ["metadata", "b/metadata"]
    assert second.notes == (f"2 stores share the default source id 'metadata': using metadata for {stores['a']}, "
                            f"b/metadata for {stores['b']} (choose others with --source-id)",)
    third = ingest([stores["b"], stores["c"]], wh, progress=False)
    assert [s.source_id for s in third.sources] == ["b/metadata", "c/metadata"]
    # alone, later: the id the warehouse knows it by, not the file stem (which names a)
    fourth = ingest([stores["c"]], wh, progress=False)
    assert [s.source_id for s in fourth.sources] == ["c/metadata"] and fourth.notes == ()
    con = connect(wh, read_only=True)
    try:
        assert con.execute("SELECT source_id, uri FROM sources ORDER BY 1").fetchall() == [
            ("b/metadata", str(stores["b"])), ("c/metadata", str(stores["c"])), ("metadata", str(stores["a"]))]
        assert dict(con.execute("SELECT source_id, count(*) FROM executions GROUP BY 1").fetchall()) == {
            "metadata": 96, "b/metadata": 12, "c/metadata": 12}
    finally:
        con.close()
    # ids given with --source-id are never changed, and a collision between them is refused
    with pytest.raises(ProvenanceError, match="two stores would get the source id 'x'"):
        ingest([stores["b"], stores["c"]], wh, source_ids=["x", "x"], progress=False)


@pytest.mark.parametrize("part_ids", [1, 37])
def test_a_first_read_in_parts_equals_the_whole_read(tmp_path, rich_store, part_ids, assert_same_warehouse, dump):
    """A full read of a SQLite store is loaded a few ids of each table at a time (bounded
    memory on a store of any size); the warehouse is the one a single read gives, and the next
    ingest continues incrementally from the same watermark."""
    from provenance.synthetic_store import write_synthetic_store

    path = tmp_path / "many.sqlite"
    counts = write_synthetic_store(path, runs=60, seed=5)
    rich, ids = rich_store
    with sqlite3.connect(rich) as con:   # issues are recorded once, over all the parts
        con.execute("DELETE FROM Artifact WHERE id = ?", [ids["model"]])       # its events now dangle
        con.execute("UPDATE Execution SET type_id = 999 WHERE id = ?", [ids["gen"]])  # a type nobody defines
    whole = ingest([path, rich], tmp_path / "whole.duckdb", progress=False)
    parted = ingest([path, rich], tmp_path / "parted.duckdb", progress=False, part_ids=part_ids)
    tables = [counts[t] for t in ("Artifact", "Execution", "Context", "Event", "Attribution", "Association")]
    assert whole.sources[0].parts == sum(1 for n in tables if n)   # one part per table at the default size
    expected_parts = sum(-(-n // part_ids) for n in tables)         # ids are dense in this store
    assert parted.sources[0].parts == expected_parts
    assert parted.sources[0].store_rows == whole.sources[0].store_rows
    assert parted.sources[1].issue_counts == whole.sources[1].issue_counts == {"dangling_event": 1,
                                                                               "unknown_type": 1}
    assert_same_warehouse(tmp_path / "parted.duckdb", tmp_path / "whole.duckdb")
    assert dump(tmp_path / "parted.duckdb") == dump(tmp_path / "whole.duckdb")
    again = ingest([path], tmp_path / "parted.duckdb", progress=False, part_ids=part_ids)
    assert not again.sources[0].full and again.sources[0].parts == 1
    assert dump(tmp_path / "parted.duckdb") == dump(tmp_path / "whole.duckdb")
