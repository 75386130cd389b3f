"""Rule: reuse exact matches, as TFX and most pipeline caches do.

A needed node whose exact fingerprint is stored (finite ``load_cost``) is loaded; any other
needed node is computed and pulls in its parents. Nothing is weighed: a stored output is
loaded even when recomputing it would be cheaper, and a changed node recomputes everything
below the nearest stored ancestors. Acts only when ``config.strategy == "exact"``.
"""

from __future__ import annotations

import math

import networkx as nx

from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.plan import COMPUTE, LOAD, PRUNE, Plan

__all__ = ["reuse_exact_matches"]

RULE = "reuse_exact_matches"


def reuse_exact_matches(plan: Plan, dag: nx.DiGraph, costs: PipelineCosts, config: OptimizerConfig) -> Plan:
    """Load every needed node that is stored, compute the rest (parents first)."""
    if not config.reuse or config.strategy != "exact":
        return plan.note(RULE, "skipped: the strategy is not exact-match reuse")
    decisions = {n: PRUNE for n in dag}
    stack = list(plan.outputs)
    while stack:
        n = stack.pop()
        if decisions[n] != PRUNE:
            continue
        if math.isfinite(dag.nodes[n].get("load_cost", math.inf)):
            decisions[n] = LOAD
        else:
            decisions[n] = COMPUTE
            stack.extend(dag.predecessors(n))
    loaded = sorted(str(n) for n, d in decisions.items() if d == LOAD)
    return plan.replace(decisions=decisions).note(RULE, f"loads the stored {loaded}")
