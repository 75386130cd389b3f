"""Rule: store what the run computes for the first time, so that its costs become known.

A node whose component was never measured has only default costs, so no policy can judge it
yet. Helix decides once a node's cost is observed: this rule writes every computed node
without measurements (whatever its estimated size) while the budget is not zero; eviction
after the run brings the store back within the budget, valuing the node at its measured
costs. Declines without reuse, without a store, with the policy ``"none"`` or a zero budget.
"""

from __future__ import annotations


import networkx as nx

from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.plan import COMPUTE, Plan

__all__ = ["explore_unmeasured"]

RULE = "explore_unmeasured"


def explore_unmeasured(plan: Plan, dag: nx.DiGraph, costs: PipelineCosts, config: OptimizerConfig) -> Plan:
    """Add every computed, unmeasured, unstored node to ``plan.write``."""
    if not config.reuse or not config.store or config.policy == "none" or config.budget <= 0:
        return plan.note(RULE, "skipped: no reuse, no store, the policy 'none' or a zero budget")
    new = {n for n, d in plan.decisions.items()
           if d == COMPUTE and not dag.nodes[n].get("measured", True) and not dag.nodes[n].get("materialized")}
    if not new:
        return plan.note(RULE, "skipped: every computed node is measured")
    return plan.replace(write=plan.write | new).note(RULE, f"writes the unmeasured {sorted(map(str, new))}")
