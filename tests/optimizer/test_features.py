"""Pre-start features: no leakage from anything recorded after a trainer started; real stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import analysis
from optimizer.pruning.features import FeatureConfig, build_features, graphlet_outcomes
from provenance.ingest import ingest
from provenance.warehouse import connect

ALL_KEYS = FeatureConfig(min_coverage=0.0)


def _runs(n: int) -> list[dict]:
    return [{"span": 1 + i // 2, "anomalies_ok": i % 3 != 1, "lr": 0.01 * (1 + i % 2),
             "blessed": i % 4 != 2, "pushed": i % 4 != 2} for i in range(n)]


def _features(store, tmp_path, name):
    warehouse = tmp_path / f"{name}.duckdb"
    ingest([str(store)], str(warehouse))
    analysis.analyze(str(warehouse))
    con = connect(str(warehouse), read_only=True)
    fs = build_features(con, ALL_KEYS)
    con.close()
    return fs.frame.set_index("trainer_execution_id"), fs.columns


def test_changing_records_after_a_trainer_started_changes_none_of_its_features(mlmd_history, tmp_path):
    history = mlmd_history(_runs(8))
    base, columns = _features(history.path, tmp_path, "base")
    assert len(base) == 8
    cut = 5
    trainer = history.ids[cut]["trainer"]
    mutated = history.copy(tmp_path / "mutated" / history.path.name)
    # everything below was recorded after trainer `cut` started
    mutated.set_custom("artifact", history.ids[cut]["pushed_model"], "pushed", 0)
    mutated.set_custom("artifact", history.ids[cut]["blessing"], "blessed", 0)
    mutated.set_custom("execution", history.ids[cut]["evaluator"], "threshold", 0.9)
    # what an orchestrator writes on the trainer itself when it ends (TFX, pre-2020 TFX)
    mutated.set_custom("execution", trainer, "__execution_result__", '{"code": 1, "message": "OOM"}')
    mutated.set_custom("execution", trainer, "state", "failed")
    for later in history.ids[cut + 1:]:
        mutated.set_custom("artifact", later["anomalies"], "blessed", '{"train": 0, "eval": 0}')
        mutated.set_custom("artifact", later["examples"], "span", 99)
        mutated.set_custom("artifact", later["pushed_model"], "pushed", 1)
        mutated.set_custom("execution", later["trainer"], "custom_config", '{"lr": 0.5}')
        mutated.set_custom("execution", later["gen"], "input_base", "/elsewhere")
    mlmd_history.write_runs(mutated, _runs(3))
    after, columns_after = _features(mutated.path, tmp_path, "mutated")

    assert set(columns) <= set(columns_after)
    early = base.index[base["started_at"] <= base.loc[trainer, "started_at"]]
    assert trainer in early and len(early) == cut + 1
    pd.testing.assert_frame_equal(base.loc[early, list(columns)], after.loc[early, list(columns)],
                                  check_exact=True)
    # the mutations are visible to later trainings: the test can fail
    later = base.index.difference(early)
    assert not base.loc[later, list(columns)].equals(after.loc[later, list(columns)])
    assert (after.loc[later, "a.Examples.span.max"] == 99).all()
    assert (after.loc[later, "a.ExampleAnomalies.blessed.max"] == 0).all()


def test_features_follow_the_recorded_history(mlmd_history, tmp_path):
    runs = _runs(8)
    history = mlmd_history(runs)
    frame, columns = _features(history.path, tmp_path, "h")
    frame = frame.loc[[ids["trainer"] for ids in history.ids]]
    assert frame["h_trainings_before"].tolist() == list(range(8))
    pushed = [r["pushed"] for r in runs]
    # every earlier run ended (pushed) before the next trainer started
    assert frame["h_pushes_before"].tolist() == [sum(pushed[:i]) for i in range(8)]
    assert frame["a.Examples.span.max"].tolist() == [r["span"] for r in runs]
    # validation outcome of the same run (ExampleValidator does not feed the trainer); the
    # per-split struct reads as its smallest number
    assert frame["a.ExampleAnomalies.blessed.max"].tolist() == [float(r["anomalies_ok"]) for r in runs]
    lr_changed = [np.nan] + [float(runs[i]["lr"] != runs[i - 1]["lr"]) for i in range(1, 8)]
    np.testing.assert_array_equal(frame["x.Trainer.custom_config.changed"].to_numpy(), lr_changed)
    since = [np.nan] + [0.0 if pushed[i - 1] else 1.0 for i in range(1, 8)]
    np.testing.assert_array_equal(frame["h_trainings_since_push"].to_numpy(), since)


def test_real_tfx_store_outcomes_and_features(tfx_store, tfx_ground_truth, tmp_path):
    store = tfx_store("penguin_prod")
    warehouse = tmp_path / "w.duckdb"
    ingest([str(store)], str(warehouse))
    analysis.analyze(str(warehouse))
    con = connect(str(warehouse), read_only=True)
    truth = tfx_ground_truth("penguin_prod")
    trainers = {n["Trainer"]["execution_id"] for n in (r["nodes"] for r in truth["runs"])
                if n["Trainer"]["status"] == "executed"}
    fs = build_features(con)
    assert set(fs.frame["trainer_execution_id"]) == trainers
    assert fs.frame["lane"].nunique() == 1
    out = graphlet_outcomes(con)
    assert len(out) == len(trainers)
    unpushed = out[~out["pushed"] & out["determined"]]
    assert len(unpushed) > 0
    np.testing.assert_allclose(unpushed["skippable_wasted_s"], unpushed["skippable_s"])
    assert (out.loc[out["pushed"], "skippable_wasted_s"] == 0).all()
    assert (out["skippable_s"] <= out["compute_s"] + 1e-9).all()


def test_build_features_rejects_a_warehouse_without_graphlets(tmp_path):
    from optimizer.errors import OptimizerError

    con = connect(str(tmp_path / "empty.duckdb"))
    with pytest.raises(OptimizerError, match="frugal analyze"):
        build_features(con)



def test_cost_of_a_training_is_the_median_of_what_the_lanes_last_ended_trainings_cost(prune_sim):
    con = connect(str(prune_sim.warehouse), read_only=True)
    fs = build_features(con)
    out = graphlet_outcomes(con).set_index("graphlet_id")
    frame = fs.frame.set_index("graphlet_id").join(out[["skippable_s", "ended_at"]])
    # the ground truth from the outcome table, computed independently: the trainings of the
    # same lane that ended before this one started, the last five of them by end, their median
    expected = pd.Series(np.nan, index=frame.index)
    for _, lane in frame.groupby("lane"):
        for gid, row in lane.iterrows():
            done = lane[lane["ended_at"] < row["started_at"]].sort_values("ended_at")
            if len(done):
                expected[gid] = done["skippable_s"].iloc[-5:].median()
    np.testing.assert_allclose(frame["h_skippable_s_median"].to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert expected.notna().mean() > 0.9 and expected.nunique() > 100
    assert "h_skippable_s_median" in fs.columns


def test_newest_value_of_a_window_is_the_newest_spans_validation(prune_sim):
    """A trainer that reads a window of spans sees one ExampleAnomalies per span; the outcome
    depends on the newest span's (docs/simulator.md), which ``.latest`` gives and ``.min`` and
    ``.max`` (any span, every span) do not. Checked against the simulator's own record of it."""
    import json

    con = connect(str(prune_sim.warehouse), read_only=True)
    frame = build_features(con).frame
    sources = dict(con.execute("SELECT source_id, uri FROM sources").fetchall())
    con.close()
    rows = []
    for path in prune_sim.ground_truth:
        truth = json.loads(open(path).read())
        sid = next(s for s, uri in sources.items() if str(uri).endswith(truth["store"]))
        rows += [(sid, t["execution_id"], bool(t["drivers"]["anomaly"])) for t in truth["trainers"] if t.get("drivers")]
    truth = pd.DataFrame(rows, columns=["source_id", "trainer_execution_id", "anomaly"])
    both = frame.merge(truth, on=["source_id", "trainer_execution_id"])
    latest = both["a.ExampleAnomalies.blessed.latest"]
    assert len(both) > 500 and latest.notna().mean() > 0.95
    seen = both[latest.notna()]
    # the struct reads as its smallest number: 0 when any split is anomalous
    assert ((seen["a.ExampleAnomalies.blessed.latest"] == 0) == seen["anomaly"]).all()
    # windows of several spans are where the newest differs from the extremes
    multi = seen[seen["a.ExampleAnomalies.blessed.distinct"] > 1]
    assert len(multi) > 20
    assert not ((multi["a.ExampleAnomalies.blessed.min"] == 0) == multi["anomaly"]).all()
