"""The bounded training set (optimizer.pruning.training_set) against replay_frame and the full feature build."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from optimizer.pruning import live
from optimizer.pruning.replay import replay_frame
from optimizer.pruning.training_set import MIN_RECENT, rows_for, training_frame


@pytest.fixture(scope="module")
def warehouse(simulated_warehouse, tmp_path_factory):
    _, path, _ = simulated_warehouse(tmp_path_factory.mktemp("ts"), pipelines=10, days=30, seed=31)
    return path


def test_unbounded_is_the_replay_frame(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    full, columns, keys = replay_frame(con, with_keys=True)
    frame, columns2, keys2, plan = training_frame(con)
    assert not plan.bounded and plan.total == len(full) and "sample_weight" not in frame.columns
    assert tuple(columns2) == tuple(columns) and list(keys2) == list(keys)
    pd.testing.assert_frame_equal(frame, full)


def test_bounded_set_newest_in_full_older_sampled_and_weighted(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    full, columns, _ = replay_frame(con, with_keys=True)
    frame, cols, _, plan = training_frame(con, max_rows=300)
    assert plan.bounded and plan.recent == 150 and plan.sampled == 150 and plan.total == len(full)
    # a few more than the budget at most: every stratum keeps at least one
    assert 300 <= len(frame) <= 300 + 2 * full["pipeline"].nunique()
    newest = full.sort_values(["started_at", "graphlet_id"]).tail(plan.recent)["graphlet_id"]
    kept = frame.set_index("graphlet_id")
    assert (kept.loc[newest, "sample_weight"] == 1.0).all()
    # the weights stand for every training: in total, and per pipeline and outcome
    assert frame["sample_weight"].sum() == pytest.approx(len(full))
    by = frame.groupby(["pipeline", "pushed"])["sample_weight"].sum()
    truth = full.groupby(["pipeline", "pushed"]).size()
    pd.testing.assert_series_equal(by.sort_index(), truth.sort_index().astype(float), check_names=False)
    # a kept training's features are those of the full build (its lane's predecessors were read)
    a = full.set_index("graphlet_id").loc[frame["graphlet_id"], list(cols)].to_numpy(dtype=float)
    b = kept.loc[frame["graphlet_id"], list(cols)].to_numpy(dtype=float)
    assert np.allclose(a, b, equal_nan=True)
    # the same sample at every refit while the warehouse is the same
    again = training_frame(con, max_rows=300)[0]
    assert list(again["graphlet_id"]) == list(frame["graphlet_id"])
    # the policy learns from the weighted sample
    assert live.learn(frame, cols, []).policy.predictor is not None


def test_rows_for_memory():
    assert rows_for(None) is None
    assert rows_for(1) == MIN_RECENT
    assert 50_000 < rows_for(6 * 1000 ** 3 * 0.3) < 60_000      # 1.8 GB / (260 x 8 bytes x 16)


def test_describe_reads_only_the_lanes_latest_trainings(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    frame, cols, keys, _ = training_frame(con)
    learned = live.learn(frame, cols, keys)
    bounded = live.describe_upcoming(con, learned)
    import optimizer.pruning.live as module

    build = module.build_features
    try:   # the same lanes described from every training's features
        module.build_features = lambda *a, keep=None, **kw: build(*a, **kw)
        everything = live.describe_upcoming(con, learned)
    finally:
        module.build_features = build
    assert bounded.keys() == everything.keys() and bounded
    assert all(repr(bounded[k]) == repr(everything[k]) for k in everything)
    unscored = live.lanes_unscored(con)
    assert unscored.keys() == everything.keys()
    assert all(u.probability is None for u in unscored.values())


def test_explored_trainings_are_weighted_by_their_inverse_propensity(warehouse, tmp_path):
    """A refit learns from what ran: an explored training (a would-be prune run anyway with
    probability 0.25, matched to its graphlet in the ledger) weighs 4, every other training 1,
    also on top of a bounded set's sampling weight."""
    import shutil

    from optimizer.pruning.ledger import create_ledger_tables, record_decision

    copy = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, copy)
    con = duckdb.connect(str(copy))
    newest = con.execute("SELECT graphlet_id, source_id, pipeline FROM graphlets "
                         "ORDER BY started_at DESC, graphlet_id LIMIT 3").fetchall()
    create_ledger_tables(con)
    for k, (gid, source, pipeline) in enumerate(newest):
        record_decision(con, {"decision_id": f"d{k}", "decided_at": pd.Timestamp("2020-01-01").to_pydatetime(),
                              "source_id": source, "pipeline": pipeline, "action": "run",
                              "explored": k < 2, "would_prune": True, "propensity": 0.25, "mode": "enforce"})
        con.execute("UPDATE decisions SET outcome = 'ran', outcome_graphlet_id = ? WHERE decision_id = ?",
                    [gid, f"d{k}"])
    frame, _, _, plan = training_frame(con)
    weights = frame.set_index("graphlet_id")["sample_weight"]
    assert weights.loc[newest[0][0]] == weights.loc[newest[1][0]] == 4.0
    assert weights.loc[newest[2][0]] == 1.0 and (weights.drop([newest[0][0], newest[1][0]]) == 1.0).all()
    bounded, _, _, _ = training_frame(con, max_rows=200)
    b = bounded.set_index("graphlet_id")["sample_weight"]
    assert b.loc[newest[0][0]] == 4.0           # the newest trainings are kept in full (weight 1) x 4
