"""Property tests: random provenance histories (real MLMD stores) keep the analysis invariants.

Invariants: every trainer that did work is in exactly one graphlet; a graphlet is pushed
exactly when its model was deployed; an execution leads to deployment exactly when a pushed
deployment is reachable from it (checked against networkx over the recorded events); wasted
or undetermined exactly when it spent compute and leads nowhere; attributed compute sums to
the total over graphlet members, each member attributed once.
"""

from __future__ import annotations

import itertools

import duckdb
import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analysis
from provenance.ingest import ingest

trainer_plan = st.fixed_dictionaries({
    "state": st.sampled_from(["COMPLETE", "COMPLETE", "FAILED", "CACHED"]),
    "evaluate": st.booleans(),
    "blessed": st.booleans(),
    "push": st.booleans(),
    "rerun_downstream": st.booleans(),
})
run_plan = st.fixed_dictionaries({
    "new_data": st.booleans(),
    "trainers": st.lists(trainer_plan, min_size=1, max_size=2),
})
history = st.fixed_dictionaries({
    "legacy": st.booleans(),
    "async": st.booleans(),
    "runs": st.lists(run_plan, min_size=1, max_size=5),
})

_counter = itertools.count()


def oracle_leads(record: dict) -> set[int]:
    """Executions from which a pushed deployment is reachable, by the documented rules,
    computed independently of the SQL: networkx over the recorded events (producer = first
    non-cached, non-resolver OUTPUT; baseline inputs make no edge)."""
    ex = record["executions"]
    producer: dict[int, int] = {}
    for eid, aid, typ, _ in sorted(record["events"]):
        if typ == "OUTPUT" and ex[eid]["state"] != "CACHED" and ex[eid]["kind"] != "resolver":
            producer.setdefault(aid, eid)
    g = nx.DiGraph()
    g.add_nodes_from(ex)
    inputs: dict[int, list[int]] = {}
    for eid, aid, typ, key in record["events"]:
        if typ == "INPUT" and key != "baseline_model":
            inputs.setdefault(eid, []).append(aid)
    for eid, arts in inputs.items():
        models = [a for a in arts if record["artifacts"][a]["kind"] == "model"]
        newest = max(models) if models else None
        for a in arts:
            if a in producer and (record["artifacts"][a]["kind"] != "model" or a == newest):
                g.add_edge(producer[a], eid)
    deployers = {producer[a] for a, art in record["artifacts"].items()
                 if art["kind"] == "pushed" and art.get("pushed") and a in producer}
    leads = set(deployers)
    for d in deployers:
        leads |= nx.ancestors(g, d)
    return leads


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=history)
def test_random_histories_keep_invariants(tmp_path, mlmd_history, plan):
    n = next(_counter)
    store = tmp_path / f"h{n}.sqlite"
    record = mlmd_history(store, plan)
    wh = tmp_path / f"h{n}.duckdb"
    ingest([store], wh, source_ids=["h"], progress=False)
    analysis.analyze(wh)
    con = duckdb.connect(str(wh), read_only=True)
    try:
        ex = record["executions"]
        working = {e for e, v in ex.items() if v["kind"] == "trainer" and v["state"] in ("COMPLETE", "FAILED")}
        rows = con.execute("SELECT trainer_execution_id, pushed, compute_s, lineage_compute_s FROM graphlets").fetchall()
        assert sorted(r[0] for r in rows) == sorted(working)
        as_trainer = con.execute(
            "SELECT entity_id, count(*) FROM graphlet_members WHERE position = 'trainer' AND entity = 'execution' GROUP BY 1").fetchall()
        assert dict(as_trainer) == {t: 1 for t in working}

        # pushed exactly when the trainer's model was deployed (by any later pusher run)
        deployed = {m for m, flag in record["pushes"] if flag}
        expected_pushed = {t: record["model_of"].get(t) in deployed for t in working}
        assert {r[0]: r[1] for r in rows} == expected_pushed

        # waste = reachability
        leads = oracle_leads(record)
        waste = con.execute(
            "SELECT execution_id, leads_to_deployment, wasted, undetermined, state FROM execution_waste").fetchall()
        spent = {e for e, v in ex.items() if v["state"] in ("COMPLETE", "FAILED")}
        assert {w[0] for w in waste} == spent
        for eid, lead, wasted, undetermined, _ in waste:
            assert lead == (eid in leads), (eid, ex[eid])
            assert (wasted or undetermined) == (not lead)
            assert not (wasted and undetermined)

        # attribution: every execution member attributed exactly once; sums agree
        once = con.execute(
            """SELECT entity_id, count(*) FILTER (WHERE attributed) FROM graphlet_members
               WHERE entity = 'execution' GROUP BY 1""").fetchall()
        assert all(c == 1 for _, c in once)
        total = con.execute(
            """SELECT coalesce(sum(duration_s), 0) FROM executions WHERE execution_id IN
               (SELECT entity_id FROM graphlet_members WHERE entity = 'execution')""").fetchone()[0]
        assert sum(r[2] for r in rows) == pytest.approx(total)
        assert all(r[3] >= r[2] - 1e-9 for r in rows)
    finally:
        con.close()


def test_component_reading_its_own_history_does_not_grow_graphlets(tmp_path, mlmd_history):
    """Incremental ingestion reads its previous output: every graphlet still holds one
    ingestion upstream, while reachability (waste) follows the whole chain."""
    good = {"state": "COMPLETE", "evaluate": False, "blessed": False, "push": True, "rerun_downstream": False}
    bad = {**good, "push": False}
    plan = {"legacy": False, "async": False, "chain_data": True,
            "runs": [{"new_data": True, "trainers": [t]} for t in (good, bad, bad, good, bad)]}
    record = mlmd_history(tmp_path / "s.sqlite", plan)
    wh = tmp_path / "w.duckdb"
    ingest([tmp_path / "s.sqlite"], wh, source_ids=["h"], progress=False)
    analysis.analyze(wh)
    con = duckdb.connect(str(wh), read_only=True)
    try:
        per = con.execute(
            """SELECT graphlet_id, count(*) FROM graphlet_members
               WHERE entity = 'execution' AND role = 'data-ingest' GROUP BY 1""").fetchall()
        assert len(per) == 5 and all(n == 1 for _, n in per)
        leads = oracle_leads(record)
        gens = [e for e, v in record["executions"].items() if v["kind"] == "gen"]
        got = dict(con.execute(
            f"SELECT execution_id, leads_to_deployment FROM execution_waste WHERE execution_id IN ({','.join(map(str, gens))})"
        ).fetchall())
        assert got == {g: g in leads for g in gens}
        assert sum(got.values()) == 4  # runs 1-4 feed the push of run 4 through the chain
    finally:
        con.close()
