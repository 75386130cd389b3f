"""Every query of docs/sql.md runs and returns the right answer on the real TFX stores (and,
for redundant and failed runs, on a simulated legacy corpus that has them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"


def doc_queries() -> dict[str, str]:
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    out = {}
    for block in blocks:
        m = re.match(r"-- name: (\w+)\n", block)
        assert m, f"every sql block in docs/sql.md starts with '-- name: ...': {block[:60]}"
        out[m.group(1)] = block
    return out


def rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def legacy_warehouse(simulated_warehouse, tmp_path_factory):
    result, wh, _ = simulated_warehouse(tmp_path_factory.mktemp("legacy"), pipelines=4, days=10, seed=5,
                                        style="legacy", mode="sync")
    truth = json.loads(Path(result.ground_truth_paths[0]).read_text())
    return wh, truth


def test_at_least_ten_documented_queries():
    assert len(doc_queries()) >= 10


def test_queries_on_real_tfx_stores(tfx_con, tfx_ground_truth):
    q = doc_queries()
    trainer_wasted = tfx_con.execute(
        "SELECT sum(duration_s) FROM executions WHERE source_id = 'penguin_prod' AND execution_id IN (38, 62, 94)"
    ).fetchone()[0]

    r = {row["component_type"]: row for row in rows(tfx_con, q["wasted_by_component_type"])}
    t = r["tfx.components.trainer.component.Trainer"]
    assert t["wasted_runs"] == 3 and t["wasted_s"] == pytest.approx(round(trainer_wasted, 1), abs=0.05)
    assert r["tfx.components.example_validator.component.ExampleValidator"]["wasted_share"] == 1.0

    r = rows(tfx_con, q["top_wasteful_pipelines"])
    assert r[0]["pipeline"] == "penguin_prod" and r[0]["wasted_trainings"] == 3
    assert {x["pipeline"]: x["wasted_trainings"] for x in r}["penguin_minimal"] == 0

    r = rows(tfx_con, q["push_rate_per_day"])
    assert sum(x["trainings"] for x in r) == 11 and sum(x["pushed"] for x in r) == 8

    r = rows(tfx_con, q["pipelines_by_push_rate"])
    assert [(x["pipeline"], x["trainings"], x["pushed"]) for x in r] == [
        ("penguin_prod", 8, 5), ("penguin_minimal", 3, 3)]

    # caching was on for every identical re-run: nothing redundant in these stores
    assert rows(tfx_con, q["redundant_reruns"]) == []

    r = {(x["pipeline"], x["component"]): x for x in rows(tfx_con, q["cache_hits_per_component"])}
    gt = tfx_ground_truth("penguin_prod")["runs"]
    tr = r[("penguin_prod", "Trainer")]
    assert tr["executed"] == sum(run["nodes"]["Trainer"]["status"] == "executed" for run in gt)
    assert tr["cached"] == sum(run["nodes"]["Trainer"]["status"] == "cached" for run in gt)

    r = rows(tfx_con, q["graphlet_shapes"])
    assert sum(x["graphlets"] for x in r) == 11
    assert {x["shape"]: (x["graphlets"], x["pushed"]) for x in r}["data-ingest > trainer > pusher"] == (3, 3)

    r = rows(tfx_con, q["data_to_deployment"])
    assert len(r) == 8 and all(x["seconds_to_deploy"] > 0 for x in r)

    r = rows(tfx_con, q["shared_upstream"])
    assert {x["graphlet_id"] for x in r} == {"penguin_prod:38", "penguin_prod:54", "penguin_prod:62",
                                             "penguin_minimal:8"}

    r = {x["pipeline"]: x for x in rows(tfx_con, q["push_intervals"])}
    assert r["penguin_prod"]["pushes"] == 5 and r["penguin_minimal"]["pushes"] == 3
    assert r["penguin_prod"]["longest_gap_s"] >= r["penguin_prod"]["median_gap_s"] > 0

    r = rows(tfx_con, q["undetermined_by_pipeline"])
    assert {(x["pipeline"], x["component"]) for x in r} == {
        ("penguin_prod", "CsvExampleGen"), ("penguin_prod", "StatisticsGen"), ("penguin_prod", "SchemaGen")}

    r = rows(tfx_con, q["graphlet_members_of_one"])
    ex = {(x["position"], x["entity_id"]) for x in r if x["entity"] == "execution"}
    assert ex == {("upstream", 25), ("upstream", 27), ("upstream", 28), ("trainer", 30),
                  ("downstream", 31), ("downstream", 32)}

    assert rows(tfx_con, q["failed_trainings"]) == []
    assert rows(tfx_con, q["unmapped_types"]) == []


def test_redundant_and_failed_queries_on_legacy_corpus(legacy_warehouse):
    wh, truth = legacy_warehouse
    q = doc_queries()
    con = duckdb.connect(str(wh), read_only=True)
    try:
        r = rows(con, q["redundant_reruns"])
        n = con.execute("SELECT count(*) FROM component_runs WHERE redundant").fetchone()[0]
        assert n > 0 and sum(x["redundant_runs"] for x in r) == n
        r = rows(con, q["failed_trainings"])
        failed = sum(t["state"] == "FAILED" for t in truth["trainers"])
        assert sum(x["failed"] for x in r) == failed
        hits = rows(con, q["cache_hits_per_component"])
        assert sum(x["cached"] for x in hits) == con.execute(
            "SELECT count(*) FROM executions WHERE state = 'CACHED'").fetchone()[0]
    finally:
        con.close()


def test_readme_states_the_number_of_documented_queries():
    readme = (DOC.parents[1] / "README.md").read_text()
    m = re.search(r"docs/sql\.md has (\d+) queries", readme)
    assert m and int(m.group(1)) == len(doc_queries())
