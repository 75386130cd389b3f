"""Reuse planner: choose compute, load or prune for every node of a pipeline DAG.

This is Helix's OPT-EXEC-PLAN. Every node ``v`` has a compute cost ``c(v)`` (run it; its
parents must then be computed or loaded) and a load cost ``l(v)`` (read a materialized result;
``math.inf`` when nothing is materialized). The requested outputs must be computed or loaded,
and the total cost is minimised. The problem is a *project selection* (minimum-weight
closure) problem and is solved exactly by one minimum s-t cut:

* each node gets a variable ``a(v)`` "available" (computed or loaded); a node that has a
  finite load cost cheaper than computing it and whose compute is useful gets a second
  variable ``b(v)`` "computed", with ``b(v) => a(v)``;
* the cost is ``l(v) a(v) + (c(v) - l(v)) b(v)`` (or ``c(v) a(v)`` when ``v`` can only be
  computed, ``l(v) a(v)`` when loading dominates computing);
* ``computed(v) => a(p)`` for every parent ``p``, and ``a(o)`` holds for every output ``o``.

Implications are infinite-capacity edges, positive weights edges to the sink, negative
weights edges from the source; the source side of a minimum cut is an optimal closure. Only
nodes that an output may need are put into the flow network, and a node whose load cost is at
most its compute cost never pulls in its ancestors, so typical graphs stay small. The flow is
solved with Boykov-Kolmogorov, the fastest of networkx's algorithms on these shallow,
wide networks (see ``benchmarks/planner.py``).

Preconditions: ``dag`` is a directed acyclic networkx graph; every node carries
``compute_cost`` (float >= 0, ``math.inf`` when it cannot be recomputed) and optionally
``load_cost`` (float >= 0, ``math.inf`` or absent when not materialized).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping

import networkx as nx
from networkx.algorithms.flow import boykov_kolmogorov

from optimizer.plan import COMPUTE, LOAD, PRUNE, ExecutionPlan, PlanError

__all__ = [
    "plan_execution",
    "execution_plan",
    "plan_cost",
    "check_plan",
    "node_costs",
]

_INF = math.inf


def plan_execution(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> dict[Hashable, str]:
    """Return ``"compute"``, ``"load"`` or ``"prune"`` for every node of ``dag``.

    The decisions minimise the sum of compute costs of computed nodes and load costs of
    loaded nodes such that every node of ``outputs`` is computed or loaded and every computed
    node has each parent computed or loaded. Raises :class:`PlanError` when the graph has a
    cycle, a cost is invalid, or an output can be neither computed nor loaded.
    """
    return dict(execution_plan(dag, outputs).decisions)


def node_costs(dag: nx.DiGraph) -> dict[Hashable, tuple[float, float]]:
    """Validated ``(compute_cost, load_cost)`` of every node; absent load cost means infinite."""
    costs: dict[Hashable, tuple[float, float]] = {}
    for node, data in dag.nodes(data=True):
        if "compute_cost" not in data:
            raise PlanError(
                f"node {node!r} has no 'compute_cost'; set it on every node (seconds, >= 0), "
                "e.g. with optimizer.costs.annotate_costs"
            )
        c = _cost(node, "compute_cost", data["compute_cost"])
        raw = data.get("load_cost", _INF)
        l = _INF if raw is None else _cost(node, "load_cost", raw)
        costs[node] = (c, l)
    return costs


def _cost(node: Hashable, name: str, value: object) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PlanError(f"node {node!r} has {name}={value!r}; give a number >= 0") from None
    if math.isnan(x) or x < 0:
        raise PlanError(f"node {node!r} has {name}={value!r}; give a number >= 0 (or math.inf)")
    return x


def _topological_order(dag: nx.DiGraph) -> list[Hashable]:
    if not isinstance(dag, nx.DiGraph):
        raise PlanError(
            f"expected a networkx DiGraph, got {type(dag).__name__}; build the pipeline as nx.DiGraph"
        )
    try:
        return list(nx.topological_sort(dag))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(dag)
        raise PlanError(
            f"the pipeline graph has a cycle {cycle!r}; a plan needs a DAG, remove the edge "
            "that closes it"
        ) from None


def _output_list(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> list[Hashable]:
    if isinstance(outputs, (str, bytes)):
        outputs = [outputs]
    out = list(dict.fromkeys(outputs))
    missing = [o for o in out if o not in dag]
    if missing:
        raise PlanError(
            f"requested outputs {missing!r} are not nodes of the graph; "
            "ask only for nodes of the pipeline DAG"
        )
    return out


def execution_plan(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> ExecutionPlan:
    """Like :func:`plan_execution`, returning an :class:`ExecutionPlan` with its total cost."""
    order = _topological_order(dag)
    outs = _output_list(dag, outputs)
    costs = node_costs(dag)
    pred = dag.pred

    # 1. Nodes an output may need: walk up from the outputs, but not past a node that will
    #    never be computed (loading dominates, or it cannot be computed).
    def computable(v: Hashable) -> bool:
        c, l = costs[v]
        return c < l  # c finite and cheaper than loading; c == l prefers the load

    relevant: set[Hashable] = set(outs)
    stack = list(outs)
    while stack:
        v = stack.pop()
        if computable(v):
            for p in pred[v]:
                if p not in relevant:
                    relevant.add(p)
                    stack.append(p)

    # 2. Which relevant nodes can be produced at all, and which can be computed.
    obtainable: dict[Hashable, bool] = {}
    can_compute: dict[Hashable, bool] = {}
    for v in order:
        if v not in relevant:
            continue
        c, l = costs[v]
        cc = computable(v) and all(obtainable[p] for p in pred[v])
        can_compute[v] = cc
        obtainable[v] = cc or l < _INF
    for o in outs:
        if not obtainable[o]:
            raise PlanError(_infeasible_message(dag, o, costs, obtainable))

    # 3. Variables: a(v) "available" for every relevant obtainable node, b(v) "computed" for
    #    a node that may be computed or loaded. Kinds: "c" compute only, "l" load only, "b" both.
    kind: dict[Hashable, str] = {}
    for v in order:
        if v in relevant and obtainable[v]:
            c, l = costs[v]
            kind[v] = ("b" if l < _INF else "c") if can_compute[v] else "l"

    # 4. Forced part: outputs are available, and so is every parent of a node that must be
    #    available and can only be computed. Those variables sit on the source side of every
    #    finite cut, so they leave the network and their cost is a constant.
    forced: set[Hashable] = set(outs)
    stack = list(outs)
    while stack:
        v = stack.pop()
        if kind[v] == "c":
            for p in pred[v]:
                if p not in forced:
                    forced.add(p)
                    stack.append(p)

    # 5. Free part: what choosing b(v) for a "both" node pulls in. Variable ids: a(v) = 2i,
    #    b(v) = 2i + 1, source -1, sink -2.
    S, T = -1, -2
    index: dict[Hashable, int] = {}
    finite_edges: list[tuple[int, int, float]] = []
    inf_edges: list[tuple[int, int]] = []

    def var_a(v: Hashable) -> int:
        i = index.get(v)
        if i is None:
            i = index[v] = len(index)
            stack.append(v)
        return 2 * i

    both = [v for v in order if kind.get(v) == "b"]
    for v in both:
        index[v] = len(index)
    for v in both:
        c, l = costs[v]
        b = 2 * index[v] + 1
        finite_edges.append((S, b, l - c))  # weight c - l < 0
        if v not in forced:
            inf_edges.append((b, 2 * index[v]))
            if l > 0:
                finite_edges.append((2 * index[v], T, l))
        for p in pred[v]:
            if p not in forced:
                inf_edges.append((b, var_a(p)))
    while stack:
        v = stack.pop()
        if v in forced or kind[v] == "b":
            continue  # a "b" node's a(v) was wired above
        a = 2 * index[v]
        c, l = costs[v]
        w = c if kind[v] == "c" else l
        if w > 0:
            finite_edges.append((a, T, w))
        if kind[v] == "c":
            for p in pred[v]:
                if p not in forced:
                    inf_edges.append((a, var_a(p)))

    chosen = _min_cut_source_side(S, T, finite_edges, inf_edges)

    decisions: dict[Hashable, str] = {}
    total = 0.0
    for v in dag:
        k = kind.get(v)
        if k is None or (v not in forced and (v not in index or 2 * index[v] not in chosen)):
            decisions[v] = PRUNE
            continue
        c, l = costs[v]
        if k == "c" or (k == "b" and 2 * index[v] + 1 in chosen):
            decisions[v] = COMPUTE
            total += c
        else:
            decisions[v] = LOAD
            total += l
    return ExecutionPlan(decisions=decisions, cost=total)


def _min_cut_source_side(
    s: int, t: int, finite_edges: list[tuple[int, int, float]], inf_edges: list[tuple[int, int]]
) -> set[int]:
    """Source side (smallest one) of a minimum s-t cut of the given network."""
    if not finite_edges and not inf_edges:
        return set()
    total = sum(w for _, _, w in finite_edges)
    big = 3.0 * total + 1.0
    R = nx.DiGraph()
    R.__networkx_cache__ = None  # type: ignore[attr-defined]  # the flow mutates R in place
    R.add_node(s)
    R.add_node(t)
    caps: dict[tuple[int, int], float] = {}
    for u, v, w in finite_edges:
        if w > 0:
            caps[(u, v)] = caps.get((u, v), 0.0) + w
    for u, v in inf_edges:
        caps[(u, v)] = big
    R.add_edges_from((u, v, {"capacity": w}) for (u, v), w in caps.items())
    R.add_edges_from(
        (v, u, {"capacity": 0.0}) for (u, v) in caps if (v, u) not in caps
    )
    R.graph["inf"] = big
    boykov_kolmogorov(R, s, t, residual=R)
    # The flow never reaches `big / 3` because every output is obtainable at a finite cost.
    tol = 1e-12 * max(total, 1.0)
    succ = R.succ
    seen = {s}
    queue = deque([s])
    while queue:
        u = queue.popleft()
        for v, attr in succ[u].items():
            if v not in seen and attr["capacity"] - attr["flow"] > tol:
                seen.add(v)
                queue.append(v)
    seen.discard(s)
    return seen


def _infeasible_message(
    dag: nx.DiGraph,
    output: Hashable,
    costs: Mapping[Hashable, tuple[float, float]],
    obtainable: Mapping[Hashable, bool],
) -> str:
    # Find an unobtainable ancestor with no unobtainable parent: the root cause.
    v = output
    while True:
        bad = [p for p in dag.pred[v] if not obtainable.get(p, True)]
        if not bad:
            break
        v = bad[0]
    c, l = costs[v]
    why = "its compute cost is infinite" if c == _INF else "it cannot be computed"
    return (
        f"output {output!r} can be neither computed nor loaded: node {v!r} has no "
        f"materialized result (load_cost=inf) and {why}; materialize {v!r} or give it a "
        "finite compute_cost"
    )


def plan_cost(dag: nx.DiGraph, decisions: Mapping[Hashable, str]) -> float:
    """Total cost of ``decisions``: compute costs of computed nodes plus load costs of loaded ones."""
    costs = node_costs(dag)
    total = 0.0
    for v, d in decisions.items():
        c, l = costs[v]
        if d == COMPUTE:
            total += c
        elif d == LOAD:
            total += l
    return total


def check_plan(
    dag: nx.DiGraph, outputs: Iterable[Hashable], decisions: Mapping[Hashable, str]
) -> None:
    """Raise :class:`PlanError` unless ``decisions`` is a feasible plan for ``outputs``.

    Feasible: a decision for every node; outputs computed or loaded; parents of computed
    nodes computed or loaded; loaded nodes have a finite load cost, computed nodes a finite
    compute cost. A runner calls this before it applies a plan it did not make itself.
    """
    costs = node_costs(dag)
    missing = [v for v in dag if v not in decisions]
    if missing:
        raise PlanError(f"the plan has no decision for nodes {missing[:5]!r}; decide every node")
    for v, d in decisions.items():
        if v not in dag:
            raise PlanError(f"the plan decides {v!r}, which is not a node of the graph")
        if d not in (COMPUTE, LOAD, PRUNE):
            raise PlanError(f"node {v!r} has decision {d!r}; use compute, load or prune")
        c, l = costs[v]
        if d == LOAD and l == _INF:
            raise PlanError(f"node {v!r} is loaded but has no materialized result")
        if d == COMPUTE:
            if c == _INF:
                raise PlanError(f"node {v!r} is computed but cannot be computed")
            for p in dag.pred[v]:
                if decisions[p] == PRUNE:
                    raise PlanError(f"node {v!r} is computed but its parent {p!r} is pruned")
    for o in _output_list(dag, outputs):
        if decisions[o] == PRUNE:
            raise PlanError(f"output {o!r} is pruned; outputs must be computed or loaded")
