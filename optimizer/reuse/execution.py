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
most its compute cost never pulls in its ancestors, so typical graphs stay small. The maximum
flow is networkx's preflow-push (``networkx.algorithms.flow.preflow_push``) through its public
interface; ``benchmarks/planner.py`` times it.

Preconditions: ``dag`` is a directed acyclic networkx graph; every node carries
``compute_cost`` (float >= 0, ``math.inf`` when it cannot be recomputed) and optionally
``load_cost`` (float >= 0, ``math.inf`` or absent when not materialized).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from types import MappingProxyType

import networkx as nx
from networkx.algorithms.flow import preflow_push

from optimizer.reuse.dag import node_costs, output_list, topological_order
from optimizer.reuse.plan import COMPUTE, LOAD, PRUNE, ExecutionPlan, PlanError

__all__ = [
    "plan_execution",
    "execution_plan",
    "plan_cost",
    "check_plan",
    "node_costs",
    "min_weight_closure",
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


def execution_plan(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> ExecutionPlan:
    """Like :func:`plan_execution`, returning an :class:`ExecutionPlan` with its total cost."""
    order = topological_order(dag)
    outs = output_list(dag, outputs)
    costs = node_costs(dag)
    n = len(order)
    pos = {v: i for i, v in enumerate(order)}  # node i's parents all have indexes < i
    pred = dag.pred
    parents = [[pos[p] for p in pred[v]] for v in order]
    C = [costs[v][0] for v in order]
    L = [costs[v][1] for v in order]
    out_ix = [pos[o] for o in outs]

    # 1. Nodes an output may need: walk up from the outputs, but not past a node that will
    #    never be computed (loading is no dearer than computing, or it cannot be computed).
    computable = [C[i] < L[i] for i in range(n)]  # on a tie, prefer the load
    relevant = [False] * n
    stack = list(out_ix)
    for i in out_ix:
        relevant[i] = True
    while stack:
        i = stack.pop()
        if computable[i]:
            for p in parents[i]:
                if not relevant[p]:
                    relevant[p] = True
                    stack.append(p)

    # 2. Kinds of relevant nodes that can be produced at all: "c" compute only, "l" load
    #    only, "b" both (compute or load); None for the rest.
    kind: list[str | None] = [None] * n
    for i in range(n):
        if relevant[i]:
            cc = computable[i] and all(kind[p] is not None for p in parents[i])
            if cc:
                kind[i] = "b" if L[i] < _INF else "c"
            elif L[i] < _INF:
                kind[i] = "l"
    for o, i in zip(outs, out_ix):
        if kind[i] is None:
            raise PlanError(_infeasible_message(dag, o, costs, {v: kind[pos[v]] is not None for v in order if relevant[pos[v]]}))

    # 3. Forced part: outputs are available, and so is every parent of a node that must be
    #    available and can only be computed. Their variables a(v) sit on the source side of
    #    every finite cut, so they leave the network and their cost is a constant.
    forced = [False] * n
    for i in out_ix:
        forced[i] = True
    stack = list(out_ix)

    def propagate() -> None:
        while stack:
            i = stack.pop()
            if kind[i] == "c":
                for p in parents[i]:
                    if not forced[p]:
                        forced[p] = True
                        stack.append(p)

    propagate()
    # A forced node that can be computed or loaded is surely computed when loading it costs
    # at least c(v) plus an upper bound on making its parents available (exchange argument);
    # it then forces its parents too. The bounds shrink as more is forced: repeat.
    candidates = [i for i in range(n) if kind[i] == "b"]
    live = [i for i in range(n) if kind[i] is not None]
    ub = [0.0] * n
    while candidates:
        for i in live:
            if forced[i]:
                ub[i] = 0.0  # available anyway
        live = [i for i in live if not forced[i]]
        for i in live:
            k = kind[i]
            if k == "l":
                ub[i] = L[i]
            else:
                x = C[i]
                for p in parents[i]:
                    x += ub[p]
                ub[i] = x if k == "c" or x < L[i] else L[i]
        for i in candidates:
            if forced[i] and L[i] - C[i] >= sum(ub[p] for p in parents[i]):
                kind[i] = "c"
                stack.append(i)
        if not stack:
            break
        propagate()
        candidates = [i for i in candidates if kind[i] == "b"]

    # 4. Free part: what choosing b(v) for a "both" node pulls in. Variables a(v) = 2i and
    #    b(v) = 2i + 1 with weights (their costs) and implications x => y.
    weight: dict[int, float] = {}
    implies: list[tuple[int, int]] = []
    stack = []
    for i in range(n):
        if kind[i] != "b":
            continue
        b = 2 * i + 1
        weight[b] = C[i] - L[i]  # < 0: computing instead of loading saves
        if not forced[i]:
            weight[b - 1] = L[i]
            implies.append((b, b - 1))
        for p in parents[i]:
            if not forced[p]:
                implies.append((b, 2 * p))
                stack.append(p)
    while stack:
        i = stack.pop()
        if 2 * i in weight or kind[i] == "b":
            continue  # seen, or a "b" node's a(v), wired above
        k = kind[i]
        weight[2 * i] = C[i] if k == "c" else L[i]
        if k == "c":
            for p in parents[i]:
                if not forced[p]:
                    implies.append((2 * i, 2 * p))
                    stack.append(p)

    chosen = min_weight_closure(weight, implies)

    decisions: dict[Hashable, str] = {}
    total = 0.0
    for i, v in enumerate(order):
        k = kind[i]
        if k is None or not (forced[i] or 2 * i in chosen):
            decisions[v] = PRUNE
        elif k == "c" or (k == "b" and 2 * i + 1 in chosen):
            decisions[v] = COMPUTE
            total += C[i]
        else:
            decisions[v] = LOAD
            total += L[i]
    return ExecutionPlan(decisions=MappingProxyType(decisions), cost=total)


def min_weight_closure(
    weight: Mapping[int, float], implies: Iterable[tuple[int, int]], *, reduce: bool = True
) -> set[int]:
    """A minimum-weight set of variables closed under ``x => y`` implications (smallest on ties).

    First shrinks the problem with exact rules: a variable of weight >= 0 that nothing
    implies is never chosen; one of weight < 0 that implies nothing is always chosen; one of
    weight >= 0 implied by a single variable is chosen exactly with it; one of weight < 0
    implying a single variable exactly with that one (both merge). What remains is solved as a
    minimum s-t cut (positive weights to the sink, negative from the source, implications of
    infinite capacity). ``reduce=False`` skips the rules (to test the cut on its own).
    """
    w: dict[int, float] = dict(weight)
    out: dict[int, set[int]] = {x: set() for x in w}
    inn: dict[int, set[int]] = {x: set() for x in w}
    for x, y in implies:
        if x != y:
            out[x].add(y)
            inn[y].add(x)
    fixed: dict[int, bool] = {}
    merged: dict[int, int] = {}
    work = list(w) if reduce else []
    while work:
        x = work.pop()
        if x not in w:
            continue
        wx = w[x]
        if wx >= 0 and not inn[x]:
            fixed[x] = False
            for z in out[x]:
                inn[z].discard(x)
                work.append(z)
        elif wx < 0 and not out[x]:
            fixed[x] = True
            for y in inn[x]:
                out[y].discard(x)
                work.append(y)
        elif wx >= 0 and len(inn[x]) == 1:
            (y,) = inn[x]
            merged[x] = y
            w[y] += wx
            out[y].discard(x)
            for z in out[x]:
                inn[z].discard(x)
                if z != y:
                    out[y].add(z)
                    inn[z].add(y)
                work.append(z)
            work.append(y)
        elif wx < 0 and len(out[x]) == 1:
            (z,) = out[x]
            merged[x] = z
            w[z] += wx
            inn[z].discard(x)
            for y in inn[x]:
                out[y].discard(x)
                if y != z:
                    out[y].add(z)
                    inn[z].add(y)
                work.append(y)
            work.append(z)
        else:
            continue
        del w[x], out[x], inn[x]
    chosen = _min_cut_source_side(w, out)

    def selected(x: int) -> bool:
        path = []
        while x in merged:
            path.append(x)
            x = merged[x]
        value = fixed[x] if x in fixed else x in chosen
        for y in path:
            fixed[y] = value
            del merged[y]
        fixed[x] = value
        return value

    return {x for x in weight if selected(x)}


def _min_cut_source_side(w: Mapping[int, float], out: Mapping[int, set[int]]) -> set[int]:
    """Source side (smallest one) of a minimum s-t cut of the closure network.

    Positive weights are edges to the sink, negative ones edges from the source, implications
    edges without a capacity (infinite, as networkx reads a missing capacity). The maximum
    flow is networkx's preflow-push; the smallest source side is what the source still
    reaches in the residual network it returns (documented ``capacity``/``flow`` attributes).
    """
    if not w:
        return set()
    s, t = -1, -2
    total = sum(abs(x) for x in w.values())
    # Capacities below the float resolution of the total are noise (and upset preflow-push's
    # relabelling); dropping them changes the cut value by less than n * tol.
    tol = 1e-12 * max(total, 1.0)
    G = nx.DiGraph()
    G.add_nodes_from((s, t))
    G.add_nodes_from(w)
    for x, wx in w.items():
        if wx > tol:
            G.add_edge(x, t, capacity=wx)
        elif wx < -tol:
            G.add_edge(s, x, capacity=-wx)
        G.add_edges_from((x, y) for y in out[x])
    R = preflow_push(G, s, t)
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
    for o in output_list(dag, outputs):
        if decisions[o] == PRUNE:
            raise PlanError(f"output {o!r} is pruned; outputs must be computed or loaded")
