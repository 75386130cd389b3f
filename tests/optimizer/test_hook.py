"""Pre-run hook: a decision for the next training of a pipeline, with probability and reasons."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import analysis
from frugal.cli import main
from optimizer.errors import OptimizerError
from optimizer.pruning.features import build_features
from optimizer.pruning.policy import PolicyConfig
from optimizer.pruning.hook import _last_graphlet, decide
from optimizer.pruning.upcoming import NEXT_PREFIX, upcoming_extension
from provenance.ingest import ingest
from provenance.warehouse import connect


@pytest.fixture
def tfx_warehouse(tfx_store, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    ingest([str(tfx_store("penguin_prod")), str(tfx_store("penguin_minimal"))], str(warehouse))
    analysis.analyze(str(warehouse))
    return warehouse


def test_real_tfx_stores_fall_back_to_running(tfx_warehouse):
    for pipeline in ("penguin_prod", "penguin_minimal"):
        d = decide(tfx_warehouse, pipeline)
        assert d.action == "run" and d.probability is None
        assert "too little history" in d.fallback and d.reasons == (d.fallback,)


def test_unknown_pipeline_names_the_known_ones(tfx_warehouse):
    with pytest.raises(OptimizerError, match="penguin_prod"):
        decide(tfx_warehouse, "no_such_pipeline")


def test_next_training_continues_the_lane(tfx_warehouse):
    con = connect(str(tfx_warehouse), read_only=True)
    last = _last_graphlet(con, "penguin_prod")
    at = pd.Timestamp(last[3]) + pd.Timedelta(hours=1)
    chosen: list = []
    fs = build_features(con, pipeline="penguin_prod", extend=upcoming_extension(at=at.to_pydatetime(),
                                                                                 selected=chosen))
    f = fs.frame.set_index("graphlet_id")
    [next_id] = chosen[0]["next_id"]        # one lane: one upcoming training, after the last one
    assert next_id.startswith(NEXT_PREFIX) and chosen[0]["gid"].iloc[0] == last[0]
    nxt, prev = f.loc[next_id], f.loc[last[0]]
    assert nxt["lane"] == prev["lane"]
    assert nxt["h_trainings_before"] == prev["h_trainings_before"] + 1
    assert nxt["started_at"] == at
    # same data and configuration as the previous training: nothing new, nothing changed
    assert nxt["o_input_jaccard"] == 1.0 and nxt["o_new_inputs"] == 0
    assert nxt["x.Trainer.custom_config.changed"] == 0
    assert nxt["h_hours_since_push"] > prev["h_hours_since_push"]


def test_decision_on_a_simulated_corpus(prune_sim, capsys):
    con = connect(str(prune_sim.warehouse), read_only=True)
    pipeline = con.execute("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
    d = decide(con, pipeline)
    assert d.fallback is None and 0.0 < d.probability < 1.0 and d.threshold is not None
    assert d.action in ("prune", "run")
    guarded = any(r.startswith("cadence guard") for r in d.reasons)
    # the default objective, freshness: ranked by expected added age per second of waste saved
    assert d.added_age > 0 and d.cost_s > 0
    assert d.key == pytest.approx(d.added_age / ((1 - d.probability) * d.cost_s))
    assert d.action == ("prune" if d.key < d.key_threshold and not guarded else "run")
    assert 1 <= len(d.contributions) <= 3 and len(d.reasons) == 1 + len(d.contributions)
    assert d == decide(con, pipeline)                       # deterministic
    # the learned policy is kept per warehouse state: other pipelines reuse it
    from optimizer.pruning import hook

    learned = [v for k, v in hook._CACHE.items() if k[0] == str(prune_sim.warehouse.resolve())]
    assert len(learned) == 1
    other = con.execute("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1 OFFSET 1").fetchone()[0]
    decide(con, other)
    assert [v for k, v in hook._CACHE.items() if k[0] == str(prune_sim.warehouse.resolve())] == learned
    assert main(["prune", "decide", "--warehouse", str(prune_sim.warehouse), "--pipeline", pipeline,
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["action"] == d.action and data["probability"] == pytest.approx(d.probability)
    assert main(["prune", "decide", "--warehouse", str(prune_sim.warehouse), "--pipeline", "nope"]) == 2
    # under the pushes objective: ranked by expected pushes lost per second of waste saved
    dp = decide(con, pipeline, config=PolicyConfig(objective="pushes"))
    guarded = any(r.startswith("cadence guard") for r in dp.reasons)
    assert dp.added_age is None and dp.probability == pytest.approx(d.probability)
    if dp.key is not None:
        assert dp.key == pytest.approx(dp.probability / ((1 - dp.probability) * dp.cost_s))
        assert dp.action == ("prune" if dp.key < dp.key_threshold and not guarded else "run")
    else:
        assert dp.action == ("prune" if dp.probability < dp.threshold and not guarded else "run")
    assert "has no trainings" in capsys.readouterr().err
