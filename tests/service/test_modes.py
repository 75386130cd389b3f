"""Modes, shadow, exploration and the audit on a real `frugal serve` over the simulated corpus.

Every figure the service reports is checked against the ledger (the `decisions` table) read
independently: the warehouse file opened with DuckDB once the service has stopped.
"""

from __future__ import annotations

import json
import time

import duckdb
import pytest

from frugal.cli import main as cli

from .runs import append_run


def _pipelines(s) -> list[str]:
    return [r[0] for r in s.sql("SELECT DISTINCT pipeline FROM graphlets ORDER BY 1")]


def _ledger(warehouse, query: str, params=()) -> list:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(query, list(params)).fetchall()
    finally:
        con.close()


def test_shadow_runs_every_training_and_reports_what_pruning_would_have_done(store_copy, tmp_path, serve, capsys):
    store, warehouse = store_copy(), tmp_path / "w.duckdb"
    s = serve([store], warehouse, extra=["--source-id", "prod", "--ingest-every", "3600", "--mode", "shadow"])
    answers = {p: s.decide(p) for p in _pipelines(s)}
    assert {(d["action"], d["mode"], d["explored"]) for d in answers.values()} == {("run", "shadow", False)}
    would = sorted(p for p, d in answers.items() if d["would_prune"])
    assert would, "the policy prunes some pipelines of this corpus in enforce mode: shadow must say so"
    for p, d in answers.items():
        assert d["reasons"][0] == ("shadow mode: would prune, ran" if d["would_prune"] else
                                   "shadow mode: would run, ran")
        assert len(d["reasons"]) > 1     # the policy's own reasons follow
    # two more trainings of a would-prune pipeline, each after a decision of its own: the first
    # pushes, the second too; a third pipeline's training does not push
    target = would[0]
    first = s.decide(target)    # (the decision above is matched to nothing: its slot ends here)
    append_run(store, target, started_at=time.time(), pushed=True)
    time.sleep(1.0)
    second = s.decide(target)
    append_run(store, target, started_at=time.time(), pushed=True)
    assert first["would_prune"] and second["would_prune"]
    if len(would) > 1:
        s.decide(would[1])
        append_run(store, would[1], started_at=time.time(), pushed=False)
    s.post("/api/v1/ingest").raise_for_status()
    report = {(r["pipeline"], r["source"]): r for r in s.get("/api/v1/shadow").json()["pipelines"]}
    single = s.get("/api/v1/shadow", params={"pipeline": target}).json()["pipelines"]
    assert single == [report[(target, "prod")]]
    assert main_json(["prune", "shadow", "--url", s.url, "--format", "json"], capsys)["pipelines"] == \
        list(report.values())
    # the pipeline's page shows the same figures (its view JSON carries them under "shadow")
    assert s.get(f"/api/v1/pipelines/{target}/view").json()["shadow"] == [report[(target, "prod")]]
    page = s.get(f"/pipelines/{target}").text
    assert 'id="shadow"' in page and 'data-key="shadow.0.decisions" data-kind="int">3<' in page
    assert 'data-key="shadow.0.pushes_lost" data-kind="int">2<' in page
    assert 'data-key="shadow.0.added_age_h2"' in page
    s.stop()

    # the ledger, read independently
    counts = {(p, src): (n, w, lost) for p, src, n, w, lost in _ledger(warehouse, """
        SELECT pipeline, source_id, count(*), count(*) FILTER (WHERE would_prune),
               count(*) FILTER (WHERE would_prune AND outcome = 'ran' AND outcome_pushed)
        FROM decisions WHERE mode = 'shadow' GROUP BY 1, 2""")}
    assert set(report) == set(counts) == {(p, "prod") for p in answers}
    for key, r in report.items():
        assert (r["decisions"], r["would_prune"], r["pushes_lost"]) == counts[key], key
    assert report[(target, "prod")]["pushes_lost"] == 2 and report[(target, "prod")]["decisions"] == 3
    # compute saved: each matched would-be prune's trainer, evaluator and pusher (3 + 1 + 0.5 s,
    # as append_run records them); a decision matched to nothing and closed by a later one: 0
    for key, r in report.items():
        [[matched, pending_cost]] = _ledger(warehouse, """
            SELECT count(*) FILTER (WHERE outcome = 'ran'),
                   coalesce(sum(cost_s) FILTER (WHERE outcome = 'pending'), 0)
            FROM decisions WHERE mode = 'shadow' AND would_prune AND pipeline = ? AND source_id = ?""", key)
        assert r["compute_saved_s"] == pytest.approx(4.5 * matched + pending_cost, abs=1e-3), key
    # added age (h^2): without the two new pushes, the model of the lane's last kept push stays
    # deployed: older by (its training to the first new one's) from the first new push to the
    # second, and after the second until the lane's newest training ended (the second itself: 0)
    rows = _ledger(warehouse, """
        SELECT g.graphlet_id, g.ended_at, e.update_time, d.decision_id IS NOT NULL
        FROM graphlets g JOIN executions e ON e.source_id = g.source_id AND e.execution_id = g.trainer_execution_id
        LEFT JOIN decisions d ON d.outcome_graphlet_id = g.graphlet_id AND d.would_prune AND d.mode = 'shadow'
        WHERE g.pipeline = ? AND g.pushed ORDER BY g.ended_at""", [target])
    removed = [r for r in rows if r[3]]
    assert len(removed) == 2 and rows[-2:] == removed
    kept = rows[-3]
    hours = lambda a, b: (b - a).total_seconds() / 3600  # noqa: E731
    expected = hours(kept[2], removed[0][2]) * hours(removed[0][1], removed[1][1])
    r = report[(target, "prod")]
    assert expected > 0 and r["added_age_h2"] == pytest.approx(expected, rel=1e-6)
    assert r["compute_saved_s"] >= 9.0
    [[since, end]] = _ledger(warehouse, "SELECT (SELECT min(decided_at) FROM decisions WHERE pipeline = $1), "
                                        "(SELECT max(ended_at) FROM graphlets WHERE pipeline = $1)", [target])
    assert r["added_age_h"] == pytest.approx(expected / hours(since, end), rel=1e-6)
    # the same report from the warehouse file, with the service stopped
    assert main_json(["prune", "shadow", "--warehouse", str(warehouse), "--format", "json"], capsys) == \
        {"pipelines": list(report.values())}
    assert cli(["prune", "shadow", "--warehouse", str(warehouse)]) == 0
    table = capsys.readouterr().out
    assert "would prune" in table and target in table


def main_json(args: list[str], capsys) -> dict:
    capsys.readouterr()
    assert cli(args) == 0
    return json.loads(capsys.readouterr().out)


def test_exploration_runs_a_share_of_model_prunes_and_the_audit_estimates_their_cost(store_copy, tmp_path, serve,
                                                                                     capsys):
    """explore = 0.5: of the would-be prunes about half run anyway (explored), the rest prune; each
    explored training is recorded, matched, and the audit's estimate is the hand count's."""
    store, warehouse = store_copy(), tmp_path / "w.duckdb"
    s = serve([store], warehouse, extra=["--source-id", "prod", "--ingest-every", "3600", "--explore", "0.5",
                                          "--explore-seed", "11"])
    pipelines = _pipelines(s)
    answers, n = [], 0
    for _ in range(14):
        for p in pipelines:
            d = s.decide(p)
            answers.append(d)
            assert d["mode"] == "enforce"
            if d["explored"]:
                # the explored training runs: it pushes every other time
                n += 1
                append_run(store, p, started_at=time.time(), pushed=n % 2 == 0)
    would = [d for d in answers if d["would_prune"]]
    explored = [d for d in would if d["explored"]]
    assert len(would) >= 20
    assert 0.25 <= len(explored) / len(would) <= 0.75, (len(explored), len(would))
    assert all(d["action"] == "run" and d["reasons"][0] == "explored: ran to measure what pruning costs"
               for d in explored)
    assert all(d["action"] == "prune" for d in would if not d["explored"])
    assert not any(d["explored"] for d in answers if not d["would_prune"])
    s.post("/api/v1/ingest").raise_for_status()
    audit = s.get("/api/v1/audit").json()
    assert main_json(["prune", "audit", "--url", s.url, "--format", "json"], capsys) == audit
    s.stop()

    [[n_would, n_explored, matched, pushes, enforced, predicted, predicted_age]] = _ledger(warehouse, """
        SELECT count(*), count(*) FILTER (WHERE explored),
               count(*) FILTER (WHERE explored AND outcome = 'ran'),
               count(*) FILTER (WHERE explored AND outcome = 'ran' AND outcome_pushed),
               count(*) FILTER (WHERE action = 'prune'),
               sum(probability) FILTER (WHERE action = 'prune'), sum(added_age) FILTER (WHERE action = 'prune')
        FROM decisions WHERE mode = 'enforce' AND would_prune AND rule IS NULL AND propensity = 0.5""")
    assert (n_would, n_explored, enforced) == (len(would), len(explored), len(would) - len(explored))
    assert matched == len(explored) and pushes == len(explored) // 2
    assert (audit["would_prune"], audit["explored"], audit["explored_matched"], audit["explored_pushes"],
            audit["enforced_prunes"]) == (n_would, n_explored, matched, pushes, enforced)
    # each explored push stands for (1 - 0.5) / 0.5 = 1 push among the prunes enforced;
    # standard error sqrt(pushes x 0.5 / 0.25)
    assert audit["estimated_pushes_lost"] == pytest.approx(pushes)
    se = (pushes * 0.5 / 0.25) ** 0.5
    assert audit["pushes_lost_ci95"] == pytest.approx([max(0.0, pushes - 1.96 * se), pushes + 1.96 * se], abs=0.01)
    assert audit["predicted_pushes_lost"] == pytest.approx(predicted)
    assert audit["predicted_added_age_h2"] == pytest.approx(predicted_age)
    assert audit["estimated_added_age_h2"] >= 0
    assert sum(p["enforced_prunes"] for p in audit["pipelines"]) == enforced
    assert main_json(["prune", "audit", "--warehouse", str(warehouse), "--format", "json"], capsys) == audit
    assert cli(["prune", "audit", "--warehouse", str(warehouse)]) == 0
    assert "estimated" in capsys.readouterr().out


def test_rules_switch_a_pipelines_mode_and_new_pipelines_start_in_shadow(store_copy, tmp_path, serve):
    store, warehouse = store_copy(), tmp_path / "w.duckdb"
    extra = ["--source-id", "prod", "--ingest-every", "3600", "--explore", "0"]
    s = serve([store], warehouse, extra=extra)
    pipelines = _pipelines(s)
    # pipelines in the stores when the service first loaded them: enforce (the default mode)
    modes = s.get("/api/v1/modes").json()
    assert {m["pipeline"]: m["mode"] for m in modes["modes"]} == {p: "enforce" for p in pipelines}
    pick = next(p for p in pipelines if s.decide(p)["would_prune"])
    assert s.decide(pick)["action"] == "prune"
    r = s.http.put(f"/api/v1/rules/{pick}", json={"mode": "shadow", "reason": "trial of the new policy"})
    assert r.status_code == 200 and r.json()["mode"] == "shadow" and r.json()["action"] is None
    d = s.decide(pick)
    assert (d["action"], d["mode"], d["would_prune"], d["explored"]) == ("run", "shadow", True, False)
    assert d["reasons"][0] == "shadow mode: would prune, ran"
    s.http.put(f"/api/v1/rules/{pick}", json={"mode": "off", "reason": "incident"}).raise_for_status()
    d = s.decide(pick)
    assert (d["action"], d["mode"], d["would_prune"]) == ("run", "off", False) and "off" in d["reasons"][0]
    # a prune rule in shadow: recorded as would prune, the training runs; enforced: pruned
    s.http.put(f"/api/v1/rules/{pick}", json={"mode": "shadow", "action": "prune", "reason": "freeze"})
    d = s.decide(pick)
    assert (d["action"], d["would_prune"]) == ("run", True) and d["reasons"][1] == "operator rule: prune (freeze)"
    s.http.put(f"/api/v1/rules/{pick}", json={"mode": "enforce", "action": "prune", "reason": "freeze"})
    d = s.decide(pick)
    assert (d["action"], d["mode"], d["would_prune"]) == ("prune", "enforce", True)
    # a model-age SLO on a rule holds the training back
    s.http.put(f"/api/v1/rules/{pick}", json={"max_model_age_h": 0.001, "reason": "fresh models only"})
    d = s.decide(pick)
    assert d["action"] == "run" and d["mode"] == "enforce" and any(x.startswith("model-age SLO") for x in d["reasons"])
    rules = s.get("/api/v1/rules").json()["rules"]
    assert [(x["pipeline"], x["action"], x["mode"], x["max_model_age_h"]) for x in rules] == \
        [(pick, None, None, 0.001)]
    for body, message in (({"reason": "x"}, "needs an"), ({"mode": "maybe", "reason": "x"}, "mode"),
                          ({"max_model_age_h": -1, "reason": "x"}, "max_model_age_h")):
        r = s.http.put(f"/api/v1/rules/{pick}", json=body)
        assert r.status_code == 422 and message in r.json()["detail"], r.text
    ledger = s.sql(f"SELECT mode, would_prune, action FROM decisions WHERE pipeline = '{pick}' ORDER BY decided_at")
    assert [row[0] for row in ledger] == ["enforce", "enforce", "shadow", "off", "shadow", "enforce", "enforce"]
    s.http.delete(f"/api/v1/rules/{pick}").raise_for_status()

    # a pipeline first seen by a later ingest is new to frugal: shadow (new_pipeline_mode)
    append_run(store, "brand_new", started_at=time.time() - 60, pushed=True)
    s.post("/api/v1/ingest").raise_for_status()
    d = s.decide("brand_new")
    assert (d["action"], d["mode"]) == ("run", "shadow")
    # restarted: the modes persist
    s.stop()
    assert _ledger(warehouse, "SELECT mode FROM pipeline_modes WHERE pipeline = 'brand_new'") == [("shadow",)]
    s.start()
    assert s.decide("brand_new")["mode"] == "shadow"
    assert s.decide(pick)["mode"] == "enforce"
