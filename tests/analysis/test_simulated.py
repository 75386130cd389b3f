"""Graphlets and pushed flags on simulated corpora (current, legacy, asynchronous TFX) equal the
simulator's ground truth; legacy stores (no cache) show redundant re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest



@pytest.mark.parametrize("style,mode", [("current", "sync"), ("legacy", "sync"), ("current", "mixed")])
def test_graphlets_equal_simulator_ground_truth(simulated_warehouse, tmp_path, style, mode):
    result, wh, summary = simulated_warehouse(tmp_path, pipelines=5, days=12, seed=11, style=style, mode=mode)
    con = duckdb.connect(str(wh), read_only=True)
    try:
        for store, truth_path in zip(result.store_paths, result.ground_truth_paths):
            truth = json.loads(Path(truth_path).read_text())
            sid = Path(store).stem
            expected = {t["execution_id"]: t["pushed"] for t in truth["trainers"]
                        if t["state"] in ("COMPLETE", "FAILED")}
            got = dict(con.execute(
                "SELECT trainer_execution_id, pushed FROM graphlets WHERE source_id = ?", [sid]).fetchall())
            assert got == expected
            # the pipeline of each graphlet is the simulator's pipeline
            pipes = {t["execution_id"]: t["pipeline"] for t in truth["trainers"]}
            for tid, pipe in con.execute(
                    "SELECT trainer_execution_id, pipeline FROM graphlets WHERE source_id = ?", [sid]).fetchall():
                assert pipe == pipes[tid]
        assert con.execute("SELECT count(*) FROM unmapped_types").fetchone()[0] == 0
        if style == "legacy":
            # legacy TFX had no cache: unchanged components re-ran on every run
            assert summary.redundant_runs > 0
            bad = con.execute(
                """SELECT count(*) FROM component_runs r JOIN component_runs f
                     ON f.source_id = r.source_id AND f.execution_id = r.redundant_of
                   WHERE r.redundant AND (f.state <> 'COMPLETE' OR f.component <> r.component
                                          OR f.started_at >= r.started_at)""").fetchone()[0]
            assert bad == 0
    finally:
        con.close()
