"""Graphlets, pushed flags and waste on the real TFX stores equal their ground truth."""

from __future__ import annotations

import pytest

STORES = ("penguin_prod", "penguin_minimal")


@pytest.mark.parametrize("store", STORES)
def test_one_graphlet_per_executed_trainer(tfx_con, tfx_ground_truth, truth, store):
    expected = truth(tfx_ground_truth(store))
    rows = tfx_con.execute(
        "SELECT trainer_execution_id, pushed FROM graphlets WHERE source_id = ? ORDER BY 1", [store]
    ).fetchall()
    assert [r[0] for r in rows] == sorted(expected)
    assert {r[0]: r[1] for r in rows} == {k: v["pushed"] for k, v in expected.items()}


@pytest.mark.parametrize("store", STORES)
def test_cached_trainers_make_no_graphlet(tfx_con, tfx_ground_truth, store):
    cached = [run["nodes"]["Trainer"]["execution_id"] for run in tfx_ground_truth(store)["runs"]
              if run["nodes"]["Trainer"]["status"] == "cached"]
    assert cached, "the store has cached trainer runs"
    hit = tfx_con.execute(
        f"SELECT count(*) FROM graphlets WHERE source_id = ? AND trainer_execution_id IN ({','.join(map(str, cached))})",
        [store],
    ).fetchone()[0]
    assert hit == 0
    # and no cached execution is a member of any graphlet
    members = tfx_con.execute(
        """SELECT count(*) FROM graphlet_members m JOIN executions x
             ON x.source_id = m.source_id AND x.execution_id = m.entity_id
           WHERE m.entity = 'execution' AND x.state = 'CACHED' AND m.source_id = ?""", [store]
    ).fetchone()[0]
    assert members == 0


def test_blessed_flags_match_ground_truth(tfx_con, tfx_ground_truth, truth):
    expected = truth(tfx_ground_truth("penguin_prod"))
    rows = dict(tfx_con.execute(
        "SELECT trainer_execution_id, blessed FROM graphlets WHERE source_id = 'penguin_prod'"
    ).fetchall())
    assert rows == {k: v["blessed"] for k, v in expected.items()}


def test_reevaluation_after_cached_trainer_belongs_to_the_reused_model(tfx_con, tfx_ground_truth):
    # Run 2 reuses trainer 6 from cache; its Evaluator and Pusher re-run against the new
    # baseline and push model 6 again: both belong to graphlet of trainer 6.
    run2 = tfx_ground_truth("penguin_prod")["runs"][1]
    ev, pu = run2["nodes"]["Evaluator"]["execution_id"], run2["nodes"]["Pusher"]["execution_id"]
    owner = dict(tfx_con.execute(
        """SELECT entity_id, graphlet_id FROM graphlet_members
           WHERE source_id = 'penguin_prod' AND entity = 'execution' AND position = 'downstream'
             AND entity_id IN (?, ?)""", [ev, pu]).fetchall())
    assert owner == {ev: "penguin_prod:6", pu: "penguin_prod:6"}


def test_baseline_model_does_not_pull_the_evaluator_into_the_old_graphlet(tfx_con):
    # Evaluator 31 compares model 17 (trainer 30) against baseline model 6 (trainer 6).
    owners = [r[0] for r in tfx_con.execute(
        """SELECT graphlet_id FROM graphlet_members
           WHERE source_id = 'penguin_prod' AND entity = 'execution' AND entity_id = 31""").fetchall()]
    assert owners == ["penguin_prod:30"]


def test_attributed_compute_sums_to_member_total(tfx_con):
    total, attributed = tfx_con.execute(
        """SELECT (SELECT sum(x.duration_s) FROM executions x
                   WHERE (x.source_id, x.execution_id) IN
                         (SELECT (source_id, entity_id) FROM graphlet_members WHERE entity = 'execution')),
                  (SELECT sum(compute_s) FROM graphlets)"""
    ).fetchone()
    assert attributed == pytest.approx(total)
    # shared upstream: trainer 38 reused the examples of run 4, so its lineage exceeds its share
    c, lc = tfx_con.execute(
        "SELECT compute_s, lineage_compute_s FROM graphlets WHERE graphlet_id = 'penguin_prod:38'"
    ).fetchone()
    assert lc > c > 0


def test_waste_matches_pushes(tfx_con, tfx_ground_truth, truth):
    expected = truth(tfx_ground_truth("penguin_prod"))
    rows = dict(tfx_con.execute(
        """SELECT g.trainer_execution_id, w.wasted FROM graphlets g
           JOIN execution_waste w ON w.source_id = g.source_id AND w.execution_id = g.trainer_execution_id
           WHERE g.source_id = 'penguin_prod'""").fetchall())
    assert rows == {k: not v["pushed"] for k, v in expected.items()}
    # the data of the last run is still inside the censoring window
    und = {r[0] for r in tfx_con.execute(
        "SELECT component FROM execution_waste WHERE source_id = 'penguin_prod' AND undetermined").fetchall()}
    assert und == {"CsvExampleGen", "StatisticsGen", "SchemaGen"}


def test_cached_pusher_reemission_is_not_a_deployment(tfx_con, tfx_ground_truth):
    # Run 3 is fully cached: its Pusher re-emits PushedModel 12 (pushed = 1) without pushing.
    run3 = tfx_ground_truth("penguin_prod")["runs"][2]
    pusher = run3["nodes"]["Pusher"]["execution_id"]
    producer = tfx_con.execute(
        "SELECT producer_id FROM analysis_artifacts WHERE source_id = 'penguin_prod' AND artifact_id = 12"
    ).fetchone()[0]
    assert producer != pusher
    assert producer == tfx_ground_truth("penguin_prod")["runs"][1]["nodes"]["Pusher"]["execution_id"]
