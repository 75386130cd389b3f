"""`frugal serve` as a real subprocess on a free port: decisions, ledger, rules, SQL sandbox, growth."""

from __future__ import annotations

import time

import httpx
import pytest

from analysis import analyze
from optimizer.pruning.hook import decide as batch_decide
from provenance.ingest import ingest
from provenance.warehouse import connect

from .runs import append_run


@pytest.fixture(scope="module")
def served(sim_corpus, tmp_path_factory, frugal_serve):
    """One service over a private copy of the simulated store, and a batch warehouse of the same copy."""
    import shutil

    work = tmp_path_factory.mktemp("svc")
    store = work / "prod.sqlite"
    shutil.copyfile(sim_corpus, store)
    batch = work / "batch.duckdb"
    ingest([str(store)], str(batch), source_ids=["prod"])
    analyze(str(batch))
    # --explore 0: the answers are compared with the batch decision's action, so no model prune may
    # be run anyway to explore (the default 0.05 would, at random)
    s = frugal_serve([store], work / "w.duckdb", extra=["--source-id", "prod", "--ingest-every", "3600",
                                                         "--explore", "0"])
    s.store, s.batch = store, batch
    yield s
    s.stop()


def _busiest(served) -> str:
    return served.sql("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")[0][0]


def test_health_and_readiness(served):
    assert served.get("/healthz").json() == {"status": "ok"}
    ready = served.get("/readyz").json()
    assert ready["ready"] is True and ready["sources"] == {"prod": "ok"}
    assert ready["fallback"] is None and ready["upcoming_trainings"] >= 12
    assert served.get("/openapi.json").json()["paths"]["/api/v1/decisions"]["post"]


def test_decision_is_the_batch_decision_by_lookup(served):
    """The service's answer equals the batch path's (which learns from scratch) for every pipeline."""
    pipelines = [r[0] for r in served.sql("SELECT DISTINCT pipeline FROM graphlets ORDER BY 1")]
    con = connect(str(served.batch), read_only=True)
    try:
        for pipeline in pipelines[:4]:
            d = served.decide(pipeline, run_id=f"run-{pipeline}")
            b = batch_decide(con, pipeline)
            assert d["lane"] == b.lane.rsplit("/", 1)[-1]
            assert d["probability"] == pytest.approx(b.probability, rel=1e-9)
            assert d["threshold"] == pytest.approx(b.threshold, rel=1e-9)
            # the batch decision has no ledger: no running budget, and no catch-up raising the threshold
            if not any(r.startswith(("below the threshold, but the lost-push budget",
                                     "threshold raised from the learned one")) for r in d["reasons"]):
                assert d["action"] == b.action
            assert d["fallback"] is None and d["policy_version"] and len(d["decision_id"]) == 32
            # written to the ledger before it was answered
            [[action, prob, run_id, version]] = served.sql(
                f"SELECT action, probability, run_id, policy_version FROM decisions "
                f"WHERE decision_id = '{d['decision_id']}'")
            assert (action, run_id, version) == (d["action"], f"run-{pipeline}", d["policy_version"])
            assert prob == pytest.approx(d["probability"])
    finally:
        con.close()
    metrics = served.get("/metrics").text
    assert 'frugal_decisions_total{action=' in metrics and "frugal_http_request_seconds_bucket" in metrics
    # collections pause every thread: the learning at startup ran full (generation 2) ones, each timed
    from prometheus_client.parser import text_string_to_metric_families
    gc_counts = {s.labels["generation"]: s.value for f in text_string_to_metric_families(metrics)
                 if f.name == "frugal_gc_pause_seconds" for s in f.samples if s.name.endswith("_count")}
    assert gc_counts.get("2", 0) >= 1 and gc_counts.get("0", 0) > gc_counts["2"]


def test_bad_requests_get_clear_json_errors(served):
    r = served.post("/api/v1/decisions", json={"pipeline": "no_such_pipeline"})
    assert r.status_code == 404 and "unknown pipeline 'no_such_pipeline'" in r.json()["detail"]
    assert _busiest(served) in r.json()["detail"] or "known pipelines include" in r.json()["detail"]
    r = served.post("/api/v1/decisions", json={"pipeline": _busiest(served), "lane": "NoSuchTrainer"})
    assert r.status_code == 404 and "no trainer node 'NoSuchTrainer'" in r.json()["detail"]
    r = served.post("/api/v1/decisions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = served.post("/api/v1/decisions", json={"pipeline": "x", "surprise": 1})
    assert r.status_code == 422 and "surprise" in r.json()["detail"]
    r = served.post("/api/v1/decisions", content=b"{" + b" " * 2_000_000 + b"}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over" in r.json()["detail"]
    r = served.get("/api/v1/pipelines/no_such_pipeline")
    assert r.status_code == 404 and "no trainings" in r.json()["detail"]
    r = served.post("/api/v1/decisions", json={"pipeline": "p\u00e9\u4e2d" * 100})
    assert r.status_code == 404 and "\u4e2d" in r.json()["detail"]


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '/etc/passwd'",
    "COPY decisions TO '/tmp/frugal-leak.csv'",
    "ATTACH '/tmp/frugal-other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET threads = 1",
    "EXPORT DATABASE '/tmp/frugal-export'",
    "SELECT 1; DROP TABLE decisions",
    "DELETE FROM decisions",
    "CREATE TABLE evil AS SELECT 1",
    "SELECT * FROM query('DELETE FROM decisions')",
])
def test_sql_cannot_escape_the_sandbox(served, query):
    before = served.sql("SELECT count(*) FROM decisions")[0][0]
    r = served.post("/api/v1/sql", json={"query": query})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] and "Traceback" not in r.text
    assert served.sql("SELECT count(*) FROM decisions")[0][0] == before
    assert served.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'evil'")[0][0] == 0


def test_sql_answers_with_a_row_cap(served):
    r = served.post("/api/v1/sql", json={"query": "SELECT range AS i FROM range(50)", "max_rows": 7})
    body = r.json()
    assert r.status_code == 200 and body["columns"] == ["i"] and body["rows"] == [[i] for i in range(7)]
    assert body["truncated"] is True
    n = served.sql("SELECT count(*) FROM graphlets")[0][0]
    assert n == connect(str(served.batch), read_only=True).execute("SELECT count(*) FROM graphlets").fetchone()[0]


def test_operator_rules_win_and_persist(served):
    pipeline = _busiest(served)
    r = served.post("/api/v1/rules", json={"pipeline": pipeline, "action": "prune", "reason": "data incident 4711"})
    assert r.status_code == 201 and r.json()["action"] == "prune"
    d = served.decide(pipeline)
    assert d["action"] == "prune" and d["reasons"] == ["operator rule: prune (data incident 4711)"]
    assert served.sql(f"SELECT rule FROM decisions WHERE decision_id = '{d['decision_id']}'") == [["data incident 4711"]]
    rules = served.get("/api/v1/rules").json()["rules"]
    assert [(x["pipeline"], x["action"], x["active"]) for x in rules] == [(pipeline, "prune", True)]
    assert served.sql("SELECT pipeline, action FROM rules") == [[pipeline, "prune"]]
    r = served.post("/api/v1/rules", json={"pipeline": pipeline, "action": "prune", "reason": "x",
                                           "expires_at": "2000-01-01T00:00:00Z"})
    assert r.status_code == 422 and "in the past" in r.json()["detail"]
    assert served.http.delete(f"/api/v1/rules/{pipeline}").status_code == 200
    d = served.decide(pipeline)
    assert not any(x.startswith("operator rule") for x in d["reasons"]) and d["probability"] is not None
    r = served.http.delete(f"/api/v1/rules/{pipeline}")
    assert r.status_code == 404 and "no rule" in r.json()["detail"]
    r = served.post("/api/v1/rules", json={"pipeline": pipeline, "action": "maybe", "reason": "x"})
    assert r.status_code == 422


def test_decision_sees_an_anomaly_recorded_one_second_earlier(served):
    """A gate passes this run's upstream ids: the service reads the store first, then decides."""
    pipeline = _busiest(served)
    for blessed in (0, 1):
        ids = append_run(served.store, pipeline, started_at=time.time() - 1.0, anomalies_blessed=blessed, train=False)
        time.sleep(1.0)
        inputs = [ids["Examples"], ids["ExampleStatistics"], ids["Schema"], ids["ExampleAnomalies"]]
        d = served.decide(pipeline, inputs=inputs, explain=True)
        assert d["features"]["a.ExampleAnomalies.blessed.min"] == blessed
        assert d["features"]["a.ExampleAnomalies.blessed.max"] == blessed
        assert d["inputs"] == inputs
        assert served.sql(f"SELECT inputs FROM decisions WHERE decision_id = '{d['decision_id']}'")[0][0] == \
            str(inputs)
    r = served.post("/api/v1/decisions", json={"pipeline": pipeline, "inputs": [987654321]})
    assert r.status_code == 422 and "987654321" in r.json()["detail"]


def test_store_grows_and_decisions_are_matched_with_what_happened(served):
    pipeline = _busiest(served)
    before = {x["source"]: x for x in served.get(f"/api/v1/pipelines/{pipeline}").json()["sources"]}["prod"]
    d = served.decide(pipeline, run_id="grows-1")
    append_run(served.store, pipeline, started_at=time.time() + 1.0, pushed=True)
    did = served.post("/api/v1/ingest").json()
    assert did["changed_sources"] == ["prod"] and "prod" in did["analyzed"]
    # where the refresh went, step by step: a changed source is analysed, described, checkpointed
    assert {"ingest", "analysis", "describe", "checkpoint"} <= set(did["phases"])
    assert sum(did["phases"].values()) <= did["seconds"] + 0.01
    info = served.get(f"/api/v1/pipelines/{pipeline}").json()
    after = {x["source"]: x for x in info["sources"]}["prod"]
    assert after["trainings"] == before["trainings"] + 1 and after["pushes"] == before["pushes"] + 1
    [[outcome, gid, pushed]] = served.sql(
        f"SELECT outcome, outcome_graphlet_id, outcome_pushed FROM decisions WHERE decision_id = '{d['decision_id']}'")
    newest = info["graphlets"][0]
    assert (outcome, gid, pushed) == ("ran", newest["graphlet_id"], True)
    assert any(x["decision_id"] == d["decision_id"] for x in info["decisions"])
    assert info["ledger"]["ran"] >= 1


def test_decisions_from_inputs_reuse_the_pipelines_slice_until_it_trains_again(served):
    """A gate's decisions read their inputs from the store and describe them on the pipeline's
    slice: cut at the first (which the feature SQL answers; the slice's lanes are prepared
    after it, for the next ones to read), reused while the pipeline has no new training, cut
    again by the refresh that brought one (not by the next decision)."""
    names = [r[0] for r in served.sql("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC")]
    pipeline = names[1]     # not the pipeline other tests grow
    slices = lambda: served.get("/api/v1/sources").json()["progress"]["slices"]  # noqa: E731
    before = slices()["cuts"]
    for blessed in (1, 0):
        ids = append_run(served.store, pipeline, started_at=time.time() - 1.0, anomalies_blessed=blessed, train=False)
        inputs = [ids["Examples"], ids["ExampleStatistics"], ids["Schema"], ids["ExampleAnomalies"]]
        d = served.decide(pipeline, inputs=inputs, explain=True)
        assert d["features"]["a.ExampleAnomalies.blessed.min"] == blessed and d["probability"] is not None
        deadline = time.monotonic() + 30
        while slices()["prepared"] < 1 and time.monotonic() < deadline:    # in the background
            time.sleep(0.05)
        assert slices()["prepared"] >= 1
    assert slices()["cuts"] == before + 1
    append_run(served.store, pipeline, started_at=time.time(), pushed=True)
    assert "prod" in served.post("/api/v1/ingest").json()["changed_sources"]
    assert slices()["cuts"] == before + 2          # the refresh cut the stale slice again
    ids = append_run(served.store, pipeline, started_at=time.time() + 1.0, anomalies_blessed=1, train=False)
    served.decide(pipeline, inputs=[ids["Examples"], ids["ExampleAnomalies"]])
    assert slices()["cuts"] == before + 2 and slices()["kept"] >= 1


def test_command_line_talks_to_the_service(served, capsys):
    from frugal.cli import main

    pipeline = _busiest(served)
    assert main(["sql", "--url", served.url, "SELECT count(*) AS n FROM graphlets WHERE pipeline = '" + pipeline + "'",
                 "--format", "json"]) == 0
    import json

    [row] = json.loads(capsys.readouterr().out)
    assert row["n"] == served.sql(f"SELECT count(*) FROM graphlets WHERE pipeline = '{pipeline}'")[0][0]
    assert main(["prune", "decide", "--url", served.url, "--pipeline", pipeline, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert served.sql(f"SELECT pipeline FROM decisions WHERE decision_id = '{data['decision_id']}'") == [[pipeline]]
    assert main(["sql", "--url", served.url, "DELETE FROM decisions"]) == 2
    assert "only SELECT" in capsys.readouterr().err
    assert main(["prune", "decide", "--url", "http://127.0.0.1:9", "--pipeline", pipeline]) == 2
    assert "cannot reach the frugal service" in capsys.readouterr().err


def test_report_is_served_with_the_ledger(served):
    deadline = time.monotonic() + 120
    while served.get("/readyz").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.5)
    r = served.get("/api/v1/report")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "Decisions of the pre-run hook" in r.text
    summary = served.get("/api/v1/report/summary.json").json()
    # drawn after the first refresh: the trainings then, the ledger then (both only grow)
    assert 0 < summary["overview"]["trainings"] <= served.sql("SELECT count(*) FROM graphlets")[0][0]
    assert summary["decisions"]["decisions"] <= served.sql("SELECT count(*) FROM decisions")[0][0]
    assert served.get("/api/v1/report/..%2Fw.duckdb").status_code == 404


def test_refit_on_demand_saves_a_new_policy_beside_the_warehouse(served):
    from optimizer.pruning.live import load

    before = served.get("/api/v1/policy").json()["policy"]
    saved = served.batch.parent / "w.duckdb.policy"
    assert load(saved).version == before["version"]
    did = served.post("/api/v1/policy/refit").json()
    assert did["refit"] is True and did["policy"]["version"] != before["version"]
    assert did["policy"]["trainings"] == served.sql("SELECT count(*) FROM graphlets")[0][0]
    assert load(saved).version == did["policy"]["version"]
    assert served.get("/readyz").json()["policy_version"] == did["policy"]["version"]
    assert served.decide(_busiest(served))["policy_version"] == did["policy"]["version"]
    # learned in a child process, from a snapshot that is gone once the policy is in use
    log = served.log.read_text()
    assert f"policy {did['policy']['version']} learned from" in log
    assert "in a child process" in log and "refit in a child process failed" not in log
    assert not list(served.batch.parent.glob(".w.duckdb.refit-*"))


def test_refresher_runs_at_a_lower_cpu_priority_than_the_requests(served):
    """The refresher thread is reniced (background_nice = 10; threads it starts inherit it); the
    event loop's thread keeps 0, and so does the ledger writer beside it."""
    from pathlib import Path

    def nice(task: Path) -> int:
        stat = (task / "stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[16])   # field 19: nice

    tasks = {int(t.name): nice(t) for t in Path(f"/proc/{served.pid}/task").iterdir()}
    assert tasks[served.pid] == 0
    assert set(tasks.values()) == {0, 10}
    assert list(tasks.values()).count(0) >= 2          # the event loop and the ledger writer at least
