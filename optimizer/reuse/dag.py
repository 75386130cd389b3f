"""DAG helpers shared by the planners: validated node costs, a topological order, outputs.

Preconditions of every planner in ``optimizer``: the pipeline is a directed acyclic networkx
graph whose nodes carry ``compute_cost`` (seconds >= 0, ``math.inf`` when it cannot be
recomputed) and optionally ``load_cost`` (``math.inf`` or absent when not materialized).
These functions check that and say how to fix what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

import networkx as nx

from optimizer.reuse.plan import PlanError

__all__ = ["node_costs", "output_list", "topological_order"]


def node_costs(dag: nx.DiGraph) -> dict[Hashable, tuple[float, float]]:
    """Validated ``(compute_cost, load_cost)`` of every node; absent load cost means infinite."""
    costs: dict[Hashable, tuple[float, float]] = {}
    for node, data in dag.nodes(data=True):
        if "compute_cost" not in data:
            raise PlanError(
                f"node {node!r} has no 'compute_cost'; set it on every node (seconds, >= 0), "
                "e.g. with optimizer.reuse.costs.annotate_costs"
            )
        c = _cost(node, "compute_cost", data["compute_cost"])
        raw = data.get("load_cost", math.inf)
        l = math.inf if raw is None else _cost(node, "load_cost", raw)
        costs[node] = (c, l)
    return costs


def _cost(node: Hashable, name: str, value: object) -> float:
    if type(value) is float and value >= 0:  # fast path (NaN fails the comparison)
        return value
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PlanError(f"node {node!r} has {name}={value!r}; give a number >= 0") from None
    if math.isnan(x) or x < 0:
        raise PlanError(f"node {node!r} has {name}={value!r}; give a number >= 0 (or math.inf)")
    return x


def topological_order(dag: nx.DiGraph) -> list[Hashable]:
    """Nodes parents first (Kahn's algorithm over the adjacency dicts; raises on a cycle)."""
    if not isinstance(dag, nx.DiGraph):
        raise PlanError(
            f"expected a networkx DiGraph, got {type(dag).__name__}; build the pipeline as nx.DiGraph"
        )
    indegree = {v: len(p) for v, p in dag.pred.items()}
    order = [v for v, d in indegree.items() if d == 0]
    succ = dag.succ
    for v in order:  # grows while iterating
        for w in succ[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                order.append(w)
    if len(order) < len(indegree):
        cycle = nx.find_cycle(dag.subgraph(v for v, d in indegree.items() if d > 0))
        raise PlanError(
            f"the pipeline graph has a cycle {cycle!r}; a plan needs a DAG, remove the edge "
            "that closes it"
        )
    return order


def output_list(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> list[Hashable]:
    """The requested outputs as a list without duplicates (one node may be given bare);
    raises :class:`PlanError` for a node not in ``dag``."""
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
