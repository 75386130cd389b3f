"""Reuse planner: min-cut plans equal brute force on every small DAG, and are feasible."""

from __future__ import annotations

import itertools
import math
import random

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.reuse.plan import PlanError
from optimizer.reuse.execution import check_plan, execution_plan, min_weight_closure, plan_cost, plan_execution

INF = math.inf


def brute_force(dag: nx.DiGraph, outputs) -> float:
    """Cheapest feasible plan by enumerating every computed set.

    Given the computed set C, the cheapest completion loads exactly the nodes that are needed
    (outputs and parents of C) but not computed, so this enumerates every optimal plan.
    """
    nodes = list(dag)
    best = INF
    for mask in range(1 << len(nodes)):
        computed = {nodes[i] for i in range(len(nodes)) if mask >> i & 1}
        cost = sum(dag.nodes[v]["compute_cost"] for v in computed)
        needed = set(outputs) | {p for v in computed for p in dag.pred[v]}
        cost += sum(dag.nodes[v].get("load_cost", INF) for v in needed - computed)
        best = min(best, cost)
    return best


def graph(n: int, edges, compute, load) -> nx.DiGraph:
    g = nx.DiGraph()
    for v in range(n):
        g.add_node(v, compute_cost=compute[v], load_cost=load[v])
    g.add_edges_from(edges)
    return g


def assert_optimal(g: nx.DiGraph, outputs) -> None:
    best = brute_force(g, outputs)
    if best == INF:
        with pytest.raises(PlanError, match="neither computed nor loaded"):
            plan_execution(g, outputs)
        return
    plan = execution_plan(g, outputs)
    check_plan(g, outputs, plan.decisions)
    assert set(plan.decisions) == set(g)
    assert plan.cost == pytest.approx(best, rel=1e-9, abs=1e-9)
    assert plan_cost(g, plan.decisions) == pytest.approx(plan.cost)


costs = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 3.0]),
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
)


@st.composite
def small_dags(draw):
    n = draw(st.integers(min_value=1, max_value=7))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    edges = [e for e in pairs if draw(st.booleans())]
    compute = [draw(st.one_of(costs, st.just(INF))) if draw(st.integers(0, 9)) == 0 else draw(costs) for _ in range(n)]
    load = [draw(st.one_of(st.just(INF), costs)) for _ in range(n)]
    outputs = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    return graph(n, edges, compute, load), outputs


class TestPlanExecution:
    @settings(max_examples=300, deadline=None)
    @given(small_dags())
    def test_equals_brute_force_on_random_small_dags(self, case):
        g, outputs = case
        assert_optimal(g, outputs)

    @settings(max_examples=100, deadline=None)
    @given(small_dags(), st.floats(min_value=0.0, max_value=1.0))
    def test_deterministic_and_monotone_in_load_costs(self, case, factor):
        """Planning twice gives the same plan; cheaper loads never make the plan dearer."""
        g, outputs = case
        try:
            plan = execution_plan(g, outputs)
        except PlanError:
            return
        assert execution_plan(g, outputs) == plan
        cheaper = g.copy()
        for v in cheaper:
            if cheaper.nodes[v]["load_cost"] < INF:
                cheaper.nodes[v]["load_cost"] *= factor
        assert execution_plan(cheaper, outputs).cost <= plan.cost + 1e-9

    def test_every_dag_on_four_nodes(self):
        """All 64 DAGs on 4 labelled nodes (topologically ordered), every output set."""
        rng = random.Random(6)
        pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
        for mask in range(1 << len(pairs)):
            edges = [e for k, e in enumerate(pairs) if mask >> k & 1]
            for r in range(1, 5):
                for outputs in itertools.combinations(range(4), r):
                    compute = [rng.choice([0.0, 1.0, 4.0, rng.uniform(0, 5)]) for _ in range(4)]
                    load = [rng.choice([INF, 0.5, 2.0, rng.uniform(0, 5)]) for _ in range(4)]
                    assert_optimal(graph(4, edges, compute, load), list(outputs))

    def test_chain_loads_the_materialized_middle(self):
        # source -> clean -> train: clean is materialized and cheap to load.
        g = nx.DiGraph([("source", "clean"), ("clean", "train")])
        nx.set_node_attributes(g, {"source": 5.0, "clean": 10.0, "train": 3.0}, "compute_cost")
        nx.set_node_attributes(g, {"source": INF, "clean": 1.0, "train": INF}, "load_cost")
        assert plan_execution(g, ["train"]) == {"source": "prune", "clean": "load", "train": "compute"}

    def test_expensive_load_recomputes(self):
        g = nx.DiGraph([("source", "clean"), ("clean", "train")])
        nx.set_node_attributes(g, {"source": 1.0, "clean": 1.0, "train": 3.0}, "compute_cost")
        nx.set_node_attributes(g, {"source": INF, "clean": 5.0, "train": INF}, "load_cost")
        assert plan_execution(g, ["train"]) == {"source": "compute", "clean": "compute", "train": "compute"}

    def test_shared_ancestor_is_paid_once(self):
        # Loading b and c separately costs 6; computing both from a costs 1 + 2 + 2 = 5.
        g = nx.DiGraph([("a", "b"), ("a", "c")])
        nx.set_node_attributes(g, {"a": 1.0, "b": 2.0, "c": 2.0}, "compute_cost")
        nx.set_node_attributes(g, {"a": INF, "b": 3.0, "c": 3.0}, "load_cost")
        plan = execution_plan(g, ["b", "c"])
        assert dict(plan.decisions) == {"a": "compute", "b": "compute", "c": "compute"}
        assert plan.cost == 5.0

    def test_output_that_is_loaded_and_unneeded_nodes_pruned(self):
        g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "d")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        g.nodes["c"]["load_cost"] = 0.1
        assert plan_execution(g, ["c"]) == {"a": "prune", "b": "prune", "c": "load", "d": "prune"}
        assert plan_execution(g, ["c", "d"]) == {"a": "compute", "b": "prune", "c": "load", "d": "compute"}

    def test_missing_load_cost_means_not_materialized(self):
        g = nx.DiGraph([("a", "b")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        assert plan_execution(g, ["b"]) == {"a": "compute", "b": "compute"}

    def test_zero_cost_unneeded_node_is_pruned(self):
        g = nx.DiGraph([("a", "b")])
        g.add_node("c")
        nx.set_node_attributes(g, 0.0, "compute_cost")
        assert plan_execution(g, ["b"])["c"] == "prune"

    def test_plan_is_idempotent_after_materializing_outputs(self):
        g = nx.gn_graph(30, seed=3).reverse()  # a random tree, edges towards the root
        rng = random.Random(3)
        for v in g:
            g.nodes[v]["compute_cost"] = rng.uniform(1, 10)
        sinks = [v for v in g if g.out_degree(v) == 0]
        first = plan_execution(g, sinks)
        assert set(first.values()) == {"compute"}
        for v in sinks:
            g.nodes[v]["load_cost"] = 0.01
        assert {v for v, d in plan_execution(g, sinks).items() if d != "prune"} == set(sinks)


class TestErrors:
    def test_cycle(self):
        g = nx.DiGraph([("a", "b"), ("b", "a")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        with pytest.raises(PlanError, match="cycle"):
            plan_execution(g, ["a"])

    def test_unknown_output(self):
        g = nx.DiGraph([("a", "b")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        with pytest.raises(PlanError, match="not nodes of the graph"):
            plan_execution(g, ["z"])

    @pytest.mark.parametrize("bad", [-1.0, math.nan, "fast", None])
    def test_bad_compute_cost(self, bad):
        g = nx.DiGraph([("a", "b")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        g.nodes["a"]["compute_cost"] = bad
        with pytest.raises(PlanError, match="compute_cost"):
            plan_execution(g, ["b"])

    def test_missing_compute_cost(self):
        g = nx.DiGraph([("a", "b")])
        g.nodes["b"]["compute_cost"] = 1.0
        with pytest.raises(PlanError, match="no 'compute_cost'"):
            plan_execution(g, ["b"])

    def test_infeasible_names_the_root_cause(self):
        g = nx.DiGraph([("raw", "clean"), ("clean", "train")])
        nx.set_node_attributes(g, {"raw": INF, "clean": 1.0, "train": 1.0}, "compute_cost")
        with pytest.raises(PlanError, match="node 'raw'"):
            plan_execution(g, ["train"])

    def test_check_plan_rejects_pruned_parent(self):
        g = nx.DiGraph([("a", "b")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        with pytest.raises(PlanError, match="parent 'a' is pruned"):
            check_plan(g, ["b"], {"a": "prune", "b": "compute"})


class TestMinWeightClosure:
    @pytest.mark.parametrize("reduce", [True, False], ids=["reduced", "cut-only"])
    @settings(max_examples=200, deadline=None)
    @given(
        case=st.integers(min_value=1, max_value=8).flatmap(
            lambda n: st.tuples(
                st.lists(
                    st.one_of(st.sampled_from([-3.0, -1.0, 0.0, 1.0, 2.5]),
                              st.floats(min_value=-10, max_value=10, allow_nan=False)),
                    min_size=n, max_size=n,
                ),
                st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n),
            )
        )
    )
    def test_equals_brute_force(self, case, reduce):
        weights, pairs = case
        implies = [(x, y) for x, y in pairs if x < y]  # acyclic, like the planner's
        weight = dict(enumerate(weights))
        chosen = min_weight_closure(weight, implies, reduce=reduce)
        assert all(y in chosen for x, y in implies if x in chosen)
        best = min(
            sum(weights[i] for i in range(len(weights)) if m >> i & 1)
            for m in range(1 << len(weights))
            if all(m >> y & 1 for x, y in implies if m >> x & 1)
        )
        scale = max([1.0, *map(abs, weights)])
        assert sum(weight[x] for x in chosen) == pytest.approx(best, abs=1e-9 * scale)


def textbook_plan_cost(dag: nx.DiGraph, outputs) -> float:
    """The project-selection network without any reduction, through networkx.minimum_cut."""
    f = nx.DiGraph()
    f.add_nodes_from(("s", "t"))
    const = 0.0
    for v, d in dag.nodes(data=True):
        c, l = d["compute_cost"], d.get("load_cost", INF)
        a, b = ("a", v), ("b", v)
        f.add_edge(a, "t", capacity=c if l == INF else l)
        if l == INF:
            f.add_edges_from((a, ("a", p)) for p in dag.pred[v])
        else:
            f.add_edge(b, a)
            if c < l:
                f.add_edge("s", b, capacity=l - c)
                const += c - l
            else:
                f.add_edge(b, "t", capacity=c - l)
            f.add_edges_from((b, ("a", p)) for p in dag.pred[v])
    f.add_edges_from(("s", ("a", o)) for o in outputs)
    return nx.minimum_cut(f, "s", "t")[0] + const


class TestLargerDags:
    @pytest.mark.parametrize("seed", range(6))
    def test_equals_the_textbook_cut_on_300_nodes(self, seed):
        """Larger DAGs leave a real network after the reductions; costs must still agree."""
        rng = random.Random(seed)
        g = nx.DiGraph()
        for v in range(300):
            stored = rng.random() < 0.8
            g.add_node(v, compute_cost=rng.lognormvariate(0, 1.5),
                       load_cost=rng.lognormvariate(0.5, 1.5) if stored else INF)
            if v:
                g.add_edges_from((rng.randrange(max(0, v - 30), v), v) for _ in range(rng.choice((1, 2, 3))))
        outputs = [v for v in g if g.out_degree(v) == 0] if seed % 2 else rng.sample(range(300), 10)
        plan = execution_plan(g, outputs)
        check_plan(g, outputs, plan.decisions)
        assert plan.cost == pytest.approx(textbook_plan_cost(g, outputs), rel=1e-9)


class TestExecutionPlanValue:
    def test_immutable_hashable_and_sets(self):
        g = nx.DiGraph([("a", "b"), ("c", "b")])
        nx.set_node_attributes(g, 1.0, "compute_cost")
        g.nodes["c"]["load_cost"] = 0.5
        g.add_node("d", compute_cost=1.0)
        plan = execution_plan(g, ["b"])
        assert (plan.computed, plan.loaded, plan.pruned) == ({"a", "b"}, {"c"}, {"d"})
        assert plan["c"] == "load" and plan.cost == 2.5
        assert hash(plan) == hash(execution_plan(g, ["b"]))
        with pytest.raises(TypeError):
            plan.decisions["d"] = "compute"  # type: ignore[index]
