"""Rule: the cheapest compute / load / prune decisions (Helix's OPT-EXEC-PLAN).

The decisions minimise the sum of compute costs of computed nodes and load costs of loaded
ones such that every output is produced and every computed node has its parents computed or
loaded: one minimum s-t cut (:func:`optimizer.reuse.execution.execution_plan`). The engine start-up is
not part of this cost; :mod:`optimizer.reuse.rules.skip_engine_startup` weighs it. Acts only when
``config.strategy == "optimal"``.
"""

from __future__ import annotations


import networkx as nx

from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.execution import execution_plan
from optimizer.reuse.plan import Plan

__all__ = ["reuse_minimum_cut"]

RULE = "reuse_minimum_cut"


def reuse_minimum_cut(plan: Plan, dag: nx.DiGraph, costs: PipelineCosts, config: OptimizerConfig) -> Plan:
    """Replace the decisions by the minimum-cut plan for ``plan.outputs``."""
    if not config.reuse or config.strategy != "optimal":
        return plan.note(RULE, "skipped: the strategy is not minimum-cut reuse")
    best = execution_plan(dag, plan.outputs)
    return plan.replace(decisions=best.decisions).note(RULE, f"cost {best.cost:.3f} s without the start-up")
