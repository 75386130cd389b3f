"""Cost model: estimates from past runs, defaults for new nodes, history from a real warehouse."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import duckdb
import networkx as nx
import pandas as pd
import pytest

from optimizer.reuse.costs import (
    CostModel,
    RunRecord,
    annotate_costs,
    estimate_costs,
    frequency_from_history,
    recurrence_from_history,
    records_from_warehouse,
)
from optimizer.reuse.plan import PlanError
from optimizer.reuse.execution import plan_execution
from provenance.schema import create_schema

MODEL = CostModel(default_compute_s=7.0, default_size_bytes=1000, read_bytes_per_s=100.0,
                  write_bytes_per_s=50.0, load_overhead_s=0.5, write_overhead_s=1.0)


def pipeline() -> nx.DiGraph:
    """Nodes keyed by fingerprint, with a stable component name."""
    g = nx.DiGraph([("fp-clean-2", "fp-train-9"), ("fp-new-src", "fp-train-9")])
    g.nodes["fp-clean-2"]["component"] = "clean"
    g.nodes["fp-train-9"]["component"] = "train"
    g.nodes["fp-new-src"]["component"] = "never-seen"
    return g


RECORDS = [
    RunRecord("fp-clean-1", 10.0, 400, "clean", run=1),
    RunRecord("fp-clean-2", 4.0, 200, "clean", run=2),
    RunRecord("fp-clean-2", 6.0, 200, "clean", run=3),
    RunRecord("fp-clean-2", 0.3, None, "clean", state="CACHED", run=4),
    RunRecord("fp-train-1", 30.0, 50, "train", run=1),
    RunRecord("fp-train-2", 50.0, 70, "train", run=2),
]


class TestEstimateCosts:
    def test_fingerprint_then_component_then_history(self):
        costs = estimate_costs(pipeline(), RECORDS, MODEL)
        clean, train, new = costs["fp-clean-2"], costs["fp-train-9"], costs["fp-new-src"]
        assert (clean.compute_cost, clean.size_bytes, clean.basis) == (5.0, 200, "fingerprint")
        assert clean.load_cost == 0.3  # observed load of the same fingerprint
        assert (train.compute_cost, train.size_bytes, train.basis) == (40.0, 60, "component")
        assert train.load_cost == pytest.approx(0.5 + 60 / 100)
        assert train.write_cost == pytest.approx(1.0 + 60 / 50)
        # never seen: the median of all computed durations (10, 4, 6, 30, 50) and sizes
        assert (new.compute_cost, new.basis) == (10.0, "history")
        assert new.size_bytes == 200

    def test_defaults_without_history(self):
        costs = estimate_costs(pipeline(), [], MODEL)
        assert {c.compute_cost for c in costs.values()} == {7.0}
        assert {c.basis for c in costs.values()} == {"default"}
        assert costs["fp-train-9"].size_bytes == 1000

    def test_dataframe_and_tuples(self):
        df = pd.DataFrame([r.__dict__ for r in RECORDS])
        tuples = [(r.fingerprint, r.duration_s, r.size_bytes, r.component, r.state, r.run) for r in RECORDS]
        expected = estimate_costs(pipeline(), RECORDS, MODEL)
        assert estimate_costs(pipeline(), df, MODEL) == expected
        assert estimate_costs(pipeline(), tuples, MODEL) == expected

    def test_bad_record(self):
        with pytest.raises(PlanError, match="duration_s"):
            estimate_costs(pipeline(), [RunRecord("x", -1.0)], MODEL)

    def test_annotate_feeds_the_planner(self):
        g = annotate_costs(pipeline(), estimate_costs(pipeline(), RECORDS, MODEL), {"fp-clean-2"})
        assert g.nodes["fp-clean-2"]["load_cost"] == 0.3
        assert g.nodes["fp-train-9"]["load_cost"] == math.inf
        assert plan_execution(g, ["fp-train-9"]) == {
            "fp-clean-2": "load", "fp-new-src": "compute", "fp-train-9": "compute",
        }


class TestRecurrence:
    def test_hits_over_trials_with_prior(self):
        g = nx.DiGraph([("a", "b")])
        history = [
            (1, "a", "a1"), (1, "b", "b1"),
            (2, "a", "a1"), (2, "b", "b2"),
            (3, "a", "a1"), (3, "b", "b1"),  # b reverted to b1: a hit
            (4, "a", "a2"), (4, "b", "b3"),
        ]
        r = recurrence_from_history(g, history, prior=0.5)
        assert r["a"] == pytest.approx((2 + 1) / (3 + 2))
        assert r["b"] == pytest.approx((1 + 1) / (3 + 2))
        assert frequency_from_history(nx.DiGraph([("a1", "b1")]), history) == {"a1": 3.0, "b1": 2.0}

    def test_no_history_gives_prior(self):
        g = nx.DiGraph([("a", "b")])
        assert recurrence_from_history(g, [], prior={"a": 0.9, "b": 0.2}) == {"a": 0.9, "b": 0.2}

    def test_bad_history_row(self):
        with pytest.raises(PlanError, match="run, component"):
            recurrence_from_history(nx.DiGraph([("a", "b")]), [{"run": 1}])


class TestWarehouse:
    def test_records_from_a_duckdb_warehouse(self, tmp_path):
        con = duckdb.connect(str(tmp_path / "w.duckdb"))
        create_schema(con)
        t0 = datetime(2026, 1, 1)
        contexts: set[int] = set()
        execs = [  # id, state, duration, run, component, fingerprint, output size
            (1, "COMPLETE", 12.0, "run-1", "p.Transform", "fpT1", 300),
            (2, "COMPLETE", 40.0, "run-1", "p.Trainer", "fpM1", 20),
            (3, "CACHED", 0.5, "run-2", "p.Transform", "fpT1", 300),
            (4, "COMPLETE", 44.0, "run-2", "p.Trainer", "fpM2", 22),
            (5, "RUNNING", None, "run-3", "p.Trainer", "fpM3", None),
        ]
        for i, (eid, state, dur, run, comp, fp, size) in enumerate(execs):
            start = t0 + timedelta(minutes=i)
            con.execute(
                "INSERT INTO executions (source_id, execution_id, type_name, state, create_time, update_time, duration_s)"
                " VALUES ('s', ?, 'Step', ?, ?, ?, ?)",
                [eid, state, start, start + timedelta(seconds=dur or 0), dur],
            )
            con.execute("INSERT INTO properties (source_id, entity, entity_id, name, is_custom, string_value)"
                        " VALUES ('s', 'execution', ?, 'fingerprint', true, ?)", [eid, fp])
            for cid, ctype, name in ((100 + eid, "node", comp), (200 + int(run[-1]), "pipeline_run", run)):
                if cid not in contexts:
                    contexts.add(cid)
                    con.execute("INSERT INTO contexts (source_id, context_id, type_name, name) VALUES ('s', ?, ?, ?)",
                                [cid, ctype, name])
                con.execute("INSERT INTO associations VALUES ('s', ?, ?)", [cid, eid])
            if size is not None:
                con.execute("INSERT INTO artifacts (source_id, artifact_id, type_name) VALUES ('s', ?, 'Examples')", [eid])
                con.execute("INSERT INTO events (source_id, event_id, artifact_id, execution_id, type) VALUES ('s', ?, ?, ?, 'OUTPUT')",
                            [eid, eid, eid])
                con.execute("INSERT INTO properties (source_id, entity, entity_id, name, is_custom, int_value)"
                            " VALUES ('s', 'artifact', ?, 'size_bytes', true, ?)", [eid, size])
        rows = records_from_warehouse(con)
        assert [(r.fingerprint, r.duration_s, r.size_bytes, r.component, r.state, r.run) for r in rows] == [
            ("fpT1", 12.0, 300.0, "p.Transform", "COMPLETE", "run-1"),
            ("fpM1", 40.0, 20.0, "p.Trainer", "COMPLETE", "run-1"),
            ("fpT1", 0.5, 300.0, "p.Transform", "CACHED", "run-2"),
            ("fpM2", 44.0, 22.0, "p.Trainer", "COMPLETE", "run-2"),
        ]
        g = nx.DiGraph([("fpT1", "fpM9")])
        g.nodes["fpT1"]["component"] = "p.Transform"
        g.nodes["fpM9"]["component"] = "p.Trainer"
        costs = estimate_costs(g, rows)
        assert (costs["fpT1"].compute_cost, costs["fpT1"].load_cost) == (12.0, 0.5)
        assert costs["fpM9"].compute_cost == 42.0
        assert recurrence_from_history(g, rows)["fpT1"] == pytest.approx((1 + 1) / (1 + 2))

    def test_not_a_warehouse(self, tmp_path):
        con = duckdb.connect(str(tmp_path / "empty.duckdb"))
        with pytest.raises(PlanError, match="frugal ingest"):
            records_from_warehouse(con)


class TestRealTfxStore:
    def test_history_of_a_real_tfx_store(self, tfx_store, tfx_ground_truth, tmp_path):
        """Penguin pipeline run by TFX: states per component match the ground truth, TFX's
        cache key serves as fingerprint, and every cached run reuses an earlier computation."""
        from collections import Counter

        from provenance import ingest

        ingest([tfx_store("penguin_prod")], tmp_path / "w.duckdb", progress=False)
        con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
        rows = records_from_warehouse(con)
        truth = tfx_ground_truth("penguin_prod")
        expected = Counter(
            (f"{truth['pipeline_name']}.{node}", d["mlmd_execution_state"])
            for run in truth["runs"]
            for node, d in run["nodes"].items()
            if d.get("mlmd_execution_state") in ("COMPLETE", "CACHED")
        )
        assert Counter((r.component, r.state) for r in rows) == expected
        computed: dict[str, set] = {}
        for r in rows:
            if r.state == "COMPLETE" and r.fingerprint is not None:
                computed.setdefault(r.component, set()).add(r.fingerprint)
            if r.state == "CACHED":
                assert r.fingerprint in computed.get(r.component, set())
        # costs of the trainer come from its own computed runs, loads from its cached ones
        trainer = "penguin_prod.Trainer"
        g = nx.DiGraph()
        g.add_node("new-trainer-fp", component=trainer)
        est = estimate_costs(g, rows)["new-trainer-fp"]
        durations = sorted(r.duration_s for r in rows if r.component == trainer and r.state == "COMPLETE")
        assert est.basis == "component"
        assert est.compute_cost == pytest.approx(
            durations[len(durations) // 2] if len(durations) % 2 else
            (durations[len(durations) // 2 - 1] + durations[len(durations) // 2]) / 2
        )
        assert est.load_cost < est.compute_cost
