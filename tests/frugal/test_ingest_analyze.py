"""`frugal ingest` refreshes the analysis of the sources it changed (unless --no-analyze)."""

from __future__ import annotations

import duckdb

from frugal.cli import main


def _executed_trainers(ground_truth: dict) -> set[int]:
    return {
        run["nodes"]["Trainer"]["execution_id"]
        for run in ground_truth["runs"]
        if run["nodes"]["Trainer"]["status"] == "executed"
    }


def test_ingest_builds_graphlets_of_every_executed_trainer(tmp_path, tfx_store, tfx_ground_truth):
    warehouse = tmp_path / "w.duckdb"
    assert main(["ingest", str(tfx_store("penguin_prod")), "-w", str(warehouse), "-q"]) == 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        got = {r[0] for r in con.execute("SELECT trainer_execution_id FROM graphlets").fetchall()}
    assert got == _executed_trainers(tfx_ground_truth("penguin_prod"))


def test_no_analyze_leaves_graphlets_of_a_new_source_unbuilt(tmp_path, tfx_store, tfx_ground_truth):
    warehouse = tmp_path / "w.duckdb"
    assert main(["ingest", str(tfx_store("penguin_prod")), "-w", str(warehouse), "-q"]) == 0
    assert main(["ingest", str(tfx_store("penguin_minimal")), "-w", str(warehouse), "-q", "--no-analyze"]) == 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        per_source = dict(con.execute("SELECT source_id, count(*) FROM graphlets GROUP BY 1").fetchall())
    assert per_source == {"penguin_prod": len(_executed_trainers(tfx_ground_truth("penguin_prod")))}
    assert main(["analyze", "-w", str(warehouse)]) == 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM graphlets WHERE source_id = 'penguin_minimal'").fetchone()[0]
    assert n == len(_executed_trainers(tfx_ground_truth("penguin_minimal")))
