"""A decision from a run's inputs, described on a pipeline's slice with its inputs read from MLMD
by id, equals the one described over the whole warehouse (optimizer.pruning.pipeline_slice,
provenance.readers.inputs)."""

from __future__ import annotations

import duckdb
import pytest

from optimizer.pruning import live
from optimizer.pruning.pipeline_slice import cut_slice, describe_with_inputs, describe_with_sql
from optimizer.pruning.training_set import training_frame
from provenance.connections import parse_store
from provenance.readers.inputs import MissingInputs, _read_api, read_inputs


@pytest.fixture(scope="module")
def corpus(simulated_warehouse, tmp_path_factory):
    result, path, _ = simulated_warehouse(tmp_path_factory.mktemp("slice"), pipelines=8, days=30, seed=41)
    con = duckdb.connect(str(path), read_only=True)
    frame, cols, keys, _ = training_frame(con)
    return result, con, live.learn(frame, cols, keys)


def _lanes(con, n: int):
    """(source, pipeline, lane, input artifact ids of the lane's newest trainer) for ``n`` lanes."""
    ups = live.lanes_unscored(con)
    out = []
    for lane, up in sorted(ups.items())[:n]:
        trainer = con.execute(
            "SELECT trainer_execution_id FROM graphlets WHERE source_id = ? AND pipeline = ? ORDER BY started_at DESC, "
            "graphlet_id DESC LIMIT 1", [up.source_id, up.pipeline]).fetchone()[0]
        inputs = [r[0] for r in con.execute(
            "SELECT DISTINCT artifact_id FROM events WHERE source_id = ? AND execution_id = ? AND type = 'INPUT' "
            "ORDER BY 1", [up.source_id, trainer]).fetchall()]
        out.append((up.source_id, up.pipeline, lane, inputs))
    return out


def _same(a: live.Upcoming, b: live.Upcoming) -> None:
    assert a.inputs == b.inputs and a.values and a.probability is not None
    assert repr(a) == repr(b)     # every feature, the score, the age terms and the guard


def test_a_slice_describes_a_run_from_its_inputs_as_the_warehouse_does(corpus):
    result, con, learned = corpus
    stores = {parse_store(p).source_id: parse_store(p) for p in result.store_paths}
    lanes = _lanes(con, 6)
    assert len(lanes) == 6
    for source, pipeline, lane, inputs in lanes:
        assert inputs, lane
        whole = live.describe_upcoming(con, learned, pipeline=pipeline, lanes=[lane], inputs=inputs,
                                       sources=[source])[lane]
        sl = cut_slice(con, source, pipeline)
        counts = {t: sl.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("executions", "events")}
        batch = read_inputs(stores[source], inputs)
        # the inputs, their writer, and what read them (statistics, validators) came from the store
        assert set(inputs) <= set(batch.table("artifacts").column("artifact_id").to_pylist())
        assert batch.table("executions").num_rows >= 1
        on_slice = describe_with_inputs(sl, learned, lane, batch, inputs)
        _same(on_slice, whole)
        # the slice is as it was cut, and much smaller than the warehouse
        assert counts == {t: sl.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts}
        total = con.execute("SELECT count(*) FROM events WHERE source_id = ?", [source]).fetchone()[0]
        assert counts["events"] < total / 3
        sl.close()


def test_every_lane_is_described_from_its_warm_state_as_the_feature_sql_describes_it(corpus):
    """A decision from inputs reads its lane's warm state (optimizer.pruning.online) and the run's
    upstream by lookups, not the feature SQL: on every lane of the corpus it describes what the
    feature SQL describes on the same slice, the same records loaded; a new policy prepares the
    lanes again."""
    import dataclasses

    result, con, learned = corpus
    stores = {parse_store(p).source_id: parse_store(p) for p in result.store_paths}
    lanes = _lanes(con, 1000)
    assert len(lanes) >= 10
    for source, pipeline, lane, inputs in lanes:
        sl = cut_slice(con, source, pipeline)
        batch = read_inputs(stores[source], inputs)
        online = describe_with_inputs(sl, learned, lane, batch, inputs)
        assert lane in sl.lanes and sl.lanes_for == learned.version     # described from the lane's state
        assert repr(describe_with_inputs(sl, learned, lane, batch, inputs)) == repr(online)   # the lookups kept
        _same(online, describe_with_sql(sl, learned, lane, batch, inputs))
        sl.close()
    renewed = dataclasses.replace(learned, version="another")
    sl = cut_slice(con, source, pipeline)
    sl.prepare(learned)
    again = describe_with_inputs(sl, renewed, lane, batch, inputs)
    assert sl.lanes_for == "another" and repr(again.values) == repr(online.values)


def test_unknown_inputs_are_named(corpus):
    result, con, _ = corpus
    spec = parse_store(result.store_paths[0])
    top = con.execute("SELECT max(artifact_id) FROM artifacts WHERE source_id = ?", [spec.source_id]).fetchone()[0]
    for read in (read_inputs, _read_api):
        with pytest.raises(MissingInputs, match=str(top + 7)) as err:
            read(spec, [1, top + 7])
        assert err.value.missing == [top + 7]


@pytest.mark.parametrize("blessed,via", [(0, "sqlite"), (1, "api")])
def test_a_run_the_warehouse_has_not_read_is_described_from_the_store(corpus, tmp_path, blessed, via):
    """A gate's run written to the store after the last ingest: the slice reads its inputs by id
    and describes what the whole warehouse describes once it has ingested the store."""
    import shutil
    import time

    from provenance.ingest import ingest
    from tests.service.runs import append_run

    result, con, learned = corpus
    source, pipeline, lane, earlier = _lanes(con, 1)[0]
    original = next(p for p in result.store_paths if parse_store(p).source_id == source)
    store = tmp_path / original.name
    shutil.copyfile(original, store)
    newest = con.execute("SELECT max(create_time) FROM executions WHERE source_id = ?", [source]).fetchone()[0]
    ids = append_run(store, pipeline, started_at=newest.timestamp() + 3600, anomalies_blessed=blessed, train=False)
    inputs = [ids["Examples"], ids["ExampleStatistics"], ids["Schema"], ids["ExampleAnomalies"]]
    assert con.execute(f"SELECT count(*) FROM artifacts WHERE source_id = ? AND artifact_id IN "
                       f"({', '.join(map(str, inputs))})", [source]).fetchone()[0] == 0

    t0 = time.perf_counter()
    sl = cut_slice(con, source, pipeline)
    spec = parse_store(store)
    # a decision from the newest training's inputs first: the slice keeps its answers by id, and
    # the run's records (some of them read before) must not be answered from those
    describe_with_inputs(sl, learned, lane, read_inputs(spec, earlier), earlier)
    batch = read_inputs(spec, inputs) if via == "sqlite" else _read_api(spec, inputs)   # MySQL, PostgreSQL
    on_slice = describe_with_inputs(sl, learned, lane, batch, inputs)
    assert time.perf_counter() - t0 < 30
    features = on_slice.features(learned.columns)
    assert features.get("a.ExampleAnomalies.blessed.min") == blessed

    ingested = tmp_path / "w.duckdb"       # the way of before: ingest the store, describe on everything
    shutil.copyfile(con.execute("SELECT file FROM pragma_database_list WHERE name = current_database()")
                    .fetchone()[0], ingested)
    moved = duckdb.connect(str(ingested))      # the copy of the store stands for the original
    moved.execute("UPDATE sources SET uri = ? WHERE source_id = ?", [str(store), source])
    moved.close()
    assert not ingest([store], ingested, source_ids=[source], progress=False).sources[0].full
    whole_con = duckdb.connect(str(ingested), read_only=True)
    whole = live.describe_upcoming(whole_con, learned, pipeline=pipeline, lanes=[lane], inputs=inputs,
                                   sources=[source])[lane]
    whole_con.close()
    _same(on_slice, whole)


def test_a_runs_records_are_read_as_loading_them_would_write_them(corpus):
    """A decision reads a run's records in the warehouse's rows without writing them anywhere
    (warehouse.batch_rows): the rows equal those load_rows writes into an empty warehouse."""
    from provenance.schema import create_schema
    from provenance.warehouse import batch_rows, load_rows

    result, con, _ = corpus
    stores = {parse_store(p).source_id: parse_store(p) for p in result.store_paths}
    tables = ("artifacts", "executions", "events", "properties")
    for source, _pipeline, _lane, inputs in _lanes(con, 3):
        batch = read_inputs(stores[source], inputs)
        read = batch_rows(duckdb.connect(), source, batch, tables)
        empty = duckdb.connect()
        create_schema(empty)
        load_rows(empty, source, batch, tables=tables)
        for table in tables:
            written = empty.sql(f"SELECT * FROM {table}").to_arrow_table()
            assert read[table].column_names == written.column_names
            assert sorted(map(repr, read[table].to_pylist())) == sorted(map(repr, written.to_pylist())), table
        assert read["executions"].num_rows == batch.table("executions").num_rows >= 1
        assert set(inputs) <= set(read["artifacts"].column("artifact_id").to_pylist())
        assert {"INPUT", "OUTPUT"} <= set(read["events"].column("type").to_pylist())


@pytest.mark.parametrize("name", ["penguin_prod", "penguin_minimal"])
def test_a_real_tfx_runs_inputs_are_described_online_as_the_feature_sql_does(corpus, tfx_store, tmp_path, name):
    """On a real TFX store (its own property shapes: TFX's execution results, structured
    fingerprints), the lane's warm state describes the newest training's inputs as the feature
    SQL does on the slice and over the whole warehouse."""
    import analysis
    from provenance.ingest import ingest

    _, _, learned = corpus
    store = tfx_store(name)
    warehouse = tmp_path / "w.duckdb"
    ingest([str(store)], str(warehouse), progress=False)
    analysis.analyze(str(warehouse))
    con = duckdb.connect(str(warehouse), read_only=True)
    [(source, pipeline, lane, inputs)] = _lanes(con, 10)
    assert inputs
    sl = cut_slice(con, source, pipeline)
    batch = read_inputs(parse_store(store), inputs)
    online = describe_with_inputs(sl, learned, lane, batch, inputs)
    assert lane in sl.lanes      # from the lane's state, not the feature SQL
    _same(online, describe_with_sql(sl, learned, lane, batch, inputs))
    _same(online, live.describe_upcoming(con, learned, pipeline=pipeline, lanes=[lane], inputs=inputs,
                                         sources=[source])[lane])
