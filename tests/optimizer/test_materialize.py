"""Materialization policies on a hand-made pipeline with answers worked out by hand."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from optimizer.reuse.materialize import (
    MaterializationConfig,
    choose_evictions,
    choose_materializations,
    recreation_costs,
)
from optimizer.reuse.plan import PlanError, StoreEntry

COMPUTE = {"raw": 1.0, "clean": 20.0, "feat": 10.0, "train": 50.0, "eval": 2.0}
SIZE = {"raw": 100, "clean": 100, "feat": 50, "train": 10, "eval": 1}


@pytest.fixture
def chain() -> nx.DiGraph:
    """raw -> clean -> feat -> train -> eval; load and write cost = size / 100."""
    g = nx.DiGraph([("raw", "clean"), ("clean", "feat"), ("feat", "train"), ("train", "eval")])
    for v in g:
        g.nodes[v].update(
            compute_cost=COMPUTE[v],
            size_bytes=SIZE[v],
            est_load_cost=SIZE[v] / 100,
            write_cost=SIZE[v] / 100,
        )
    return g


class TestRecreationCosts:
    def test_from_scratch_and_from_materialized_frontier(self, chain):
        assert recreation_costs(chain) == {"raw": 1, "clean": 21, "feat": 31, "train": 81, "eval": 83}
        chain.nodes["clean"]["load_cost"] = 1.0
        # feat = its compute 10 + loading clean 1
        assert recreation_costs(chain, {"clean"})["feat"] == 11.0
        assert recreation_costs(chain, {"clean"})["eval"] == 63.0

    def test_engine_startup_paid_once_when_recreation_needs_it(self, chain):
        for v in ("raw", "clean", "feat"):  # the data steps run on an engine that takes 5 s to start
            chain.nodes[v]["needs_startup"] = True
        scratch = recreation_costs(chain, startup_cost=5.0)
        assert scratch["eval"] == 83.0 + 5.0  # three steps need the engine: started once
        # with feat stored, train and eval recreate without the engine: no start-up
        assert recreation_costs(chain, {"feat"}, startup_cost=5.0)["eval"] == 50.0 + 0.5 + 2.0
        # loading feat lets train run without the engine: recreating feat costs the start-up
        assert recreation_costs(chain, {"clean"}, startup_cost=5.0)["feat"] == 10.0 + 1.0 + 5.0
        # clean is read only by feat, an engine step: loading it spares no start-up
        assert scratch["clean"] == 21.0 and scratch["raw"] == 1.0

    def test_shared_ancestor_counted_once(self):
        g = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        assert recreation_costs(g)["d"] == 4.0


class TestHelix:
    def test_budget_60(self, chain):
        # raw: rc 1 <= 2 x 1; clean: 100 B does not fit; feat: 31 > 1 (50 B); train: 50.5 > 0.2
        # (60 B); eval no longer fits.
        assert choose_materializations(chain, 60, policy="helix") == {"feat", "train"}

    def test_budget_large(self, chain):
        assert choose_materializations(chain, 1000, policy="helix") == {"clean", "feat", "train", "eval"}

    def test_recreation_counts_new_materializations(self, chain):
        # with a cheap clean already stored, feat's recreation 10 + 1 = 11 still > 2 x 0.5
        chain.nodes["feat"]["est_load_cost"] = 6.0
        chain.nodes["clean"]["load_cost"] = 1.0
        # feat: rc 11 <= 12 -> not persisted; clean is kept (rc 21 > 2)
        assert "feat" not in choose_materializations(chain, 1000, policy="helix")


class TestExperimentGraph:
    def test_utility_order(self, chain):
        # recreation/size: eval 83, train 8.1, feat 0.62, clean 0.21, raw 0.01
        assert choose_materializations(chain, 60, policy="experiment_graph") == {"eval", "train"}
        assert choose_materializations(chain, 1000, policy="experiment_graph") == set(chain)

    def test_potential_weighs_in(self, chain):
        chain.nodes["feat"]["potential"] = 1.0
        chain.nodes["eval"]["potential"] = 0.0
        cfg = MaterializationConfig(alpha=0.9)
        assert choose_materializations(chain, 55, policy="experiment_graph", config=cfg) == {"feat", "eval"}


class TestAllAndNone:
    def test_all_fills_in_topological_order(self, chain):
        assert choose_materializations(chain, 60, policy="all") == {"feat", "train"}
        assert choose_materializations(chain, 10**6, policy="all") == set(chain)

    def test_none(self, chain):
        assert choose_materializations(chain, 10**6, policy="none") == frozenset()


class TestFrugal:
    def test_prefers_what_recurs(self, chain):
        # Training and evaluation change often, data preparation rarely.
        rec = {"raw": 1.0, "clean": 0.9, "feat": 0.9, "train": 0.2, "eval": 0.1}
        nx.set_node_attributes(chain, rec, "recurrence")
        # eval: density 9.2/B first; then feat (0.8 x 6.5 uses x 30.5 s over 50 B) beats train,
        # whose value eval now shadows; nothing else fits. (own_change_rate=0: the
        # recurrences are taken as given.)
        exact = MaterializationConfig(own_change_rate=0.0)
        assert choose_materializations(chain, 60, config=exact) == {"eval", "feat"}

    def test_nothing_when_nothing_recurs(self, chain):
        nx.set_node_attributes(chain, 0.0, "recurrence")
        assert choose_materializations(chain, 10**6, policy="frugal") == frozenset()
        assert choose_materializations(chain, 10**6, policy="helix") != frozenset()

    def test_shadowed_ancestors_are_not_stored(self, chain):
        # Everything always recurs: storing the output alone serves every future run.
        nx.set_node_attributes(chain, 1.0, "recurrence")
        exact = MaterializationConfig(own_change_rate=0.0)
        assert choose_materializations(chain, 10**6, config=exact) == {"eval"}

    def test_equal_recurrences_still_store_the_expensive_middle(self, chain):
        # Uninformative equal recurrences: every step may still change on its own, so the
        # trainer (81 s to recreate) is worth keeping beside the evaluation.
        nx.set_node_attributes(chain, 0.5, "recurrence")
        assert {"eval", "train"} <= choose_materializations(chain, 10**6)

    def test_not_worth_its_write(self, chain):
        nx.set_node_attributes(chain, 0.5, "recurrence")
        for v in chain:
            chain.nodes[v]["write_cost"] = 1000.0
        assert choose_materializations(chain, 10**6) == frozenset()

    def test_history_drives_recurrence(self, chain):
        # feat's fingerprint recurs in every run, train's and eval's never do.
        history = []
        for run in range(6):
            for v in chain:
                fp = f"{v}-v0" if v in ("raw", "clean", "feat") else f"{v}-v{run}"
                history.append((run, v, fp))
        # Without history the structural prior favours train (81 s over 10 B); with it, feat.
        assert choose_materializations(chain, 60) == {"eval", "train"}
        assert choose_materializations(chain, 60, history=history) == {"eval", "feat"}

    def test_only_what_the_run_produces(self, chain):
        nx.set_node_attributes(chain, 0.9, "recurrence")
        plan = {"raw": "prune", "clean": "prune", "feat": "load", "train": "compute", "eval": "compute"}
        chosen = choose_materializations(chain, 10**6, plan=plan)
        assert chosen <= {"feat", "train", "eval"}
        assert "eval" in chosen

    def test_already_stored_is_kept_for_free(self, chain):
        rec = {"raw": 1.0, "clean": 0.9, "feat": 0.9, "train": 0.1, "eval": 0.1}
        nx.set_node_attributes(chain, rec, "recurrence")
        chain.nodes["feat"]["load_cost"] = 0.5
        for v in chain:
            chain.nodes[v]["write_cost"] = 1000.0  # no new write pays off
        assert choose_materializations(chain, 60) == {"feat"}


class TestIrreplaceable:
    @pytest.mark.parametrize("policy", ["frugal", "helix", "experiment_graph", "all"])
    def test_stored_source_that_cannot_be_recomputed_is_kept_first(self, chain, policy):
        chain.nodes["raw"].update(compute_cost=math.inf, load_cost=1.0)
        nx.set_node_attributes(chain, 0.8, "recurrence")
        assert "raw" in choose_materializations(chain, 100, policy=policy)


class TestErrors:
    def test_unknown_policy(self, chain):
        with pytest.raises(PlanError, match="choose one of frugal, helix"):
            choose_materializations(chain, 10, policy="lru")

    def test_negative_budget(self, chain):
        with pytest.raises(PlanError, match="budget"):
            choose_materializations(chain, -1)

    def test_missing_size(self, chain):
        del chain.nodes["feat"]["size_bytes"]
        with pytest.raises(PlanError, match="size_bytes"):
            choose_materializations(chain, 10)

    def test_unknown_output(self, chain):
        with pytest.raises(PlanError, match="not nodes of the graph"):
            choose_materializations(chain, 10, outputs=["nope"])

    def test_bad_recurrence(self, chain):
        chain.nodes["feat"]["recurrence"] = 2.0
        with pytest.raises(PlanError, match="recurrence"):
            choose_materializations(chain, 10)


class TestEvictions:
    ENTRIES = [
        StoreEntry("old-model", 100, recreation_cost=80, load_cost=1, recurrence=0.05, last_used=9),
        StoreEntry("features", 100, recreation_cost=30, load_cost=1, recurrence=0.9, last_used=1),
        StoreEntry("eval", 10, recreation_cost=5, load_cost=0.1, recurrence=0.5, last_used=5),
    ]

    def test_fits_already(self):
        assert choose_evictions(self.ENTRIES, 1000) == []

    def test_frugal_evicts_least_expected_savings_per_byte(self):
        # old-model: 0.05 x 1.05 x 79 / 100 = 0.04; features 0.9 x 6.5 x 29 / 100 = 1.7
        assert choose_evictions(self.ENTRIES, 120) == ["old-model"]
        assert choose_evictions(self.ENTRIES, 100) == ["old-model", "eval"]

    def test_lru_for_helix(self):
        assert choose_evictions(self.ENTRIES, 120, policy="helix") == ["features"]

    def test_experiment_graph_utility(self):
        # recreation/size: old-model 0.8, features 0.3, eval 0.5
        assert choose_evictions(self.ENTRIES, 120, policy="experiment_graph") == ["features"]

    def test_protect_and_pin(self):
        entries = [*self.ENTRIES[:2], StoreEntry("eval", 10, pinned=True)]
        assert choose_evictions(entries, 0, protect={"features"}) == ["old-model"]

    def test_plain_rows(self):
        rows = [{"key": "a", "size_bytes": 5, "recurrence": 0.1, "recreation_cost": 1.0},
                {"key": "b", "size_bytes": 5, "recurrence": 0.9, "recreation_cost": 1.0}]
        assert choose_evictions(rows, 5) == ["a"]

    def test_bad_row(self):
        with pytest.raises(PlanError, match="size_bytes"):
            choose_evictions([{"key": "a"}], 5)
        with pytest.raises(PlanError, match="recurrence"):
            choose_evictions([{"key": "a", "size_bytes": 1, "recurrence": math.inf}], 5)

    def test_objects_with_the_same_attributes(self):
        from types import SimpleNamespace

        rows = [SimpleNamespace(key="a", size_bytes=5, last_used=2.0, node="x"),
                SimpleNamespace(key="b", size_bytes=5, last_used=1.0, node="y")]
        assert choose_evictions(rows, 5, policy="helix") == ["b"]


class TestEstimateRecurrence:
    def test_structural_prior_and_clamp(self, chain):
        from optimizer.reuse.materialize import estimate_recurrence

        r = estimate_recurrence(chain, config=MaterializationConfig(own_change_rate=0.1))
        assert r["raw"] == pytest.approx(0.9)
        assert r["eval"] == pytest.approx(0.9**5)
        chain.nodes["train"]["recurrence"] = 1.0  # at most (1 - 0.1) x its parent feat (0.9^3)
        assert estimate_recurrence(chain, config=MaterializationConfig(own_change_rate=0.1))["train"] == pytest.approx(0.9**4)
        exact = MaterializationConfig(own_change_rate=0.0)
        assert estimate_recurrence(chain, config=exact)["train"] == 1.0
