"""Rule: run without the engine when loading more is cheaper than starting it.

Starting the engine (a Beam pipeline) costs ``costs.startup_s`` once, paid when a node with
``needs_startup`` (a Beam step or a source) is computed; steps without it (Python training,
evaluation, push) run in-process. The minimum cut is optimal among plans that start the
engine; the best plan that does not is the minimum cut with every ``needs_startup`` node made
impossible to compute (loading what it needs). This rule takes the alternative when it costs
no more than the plan plus the start-up. It declines when the plan starts no engine, when the
strategy is not minimum-cut reuse, or when no plan without the engine exists.
"""

from __future__ import annotations

import math

import networkx as nx

from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.execution import execution_plan
from optimizer.reuse.plan import COMPUTE, Plan, PlanError

__all__ = ["skip_engine_startup"]

RULE = "skip_engine_startup"


def starts_engine(dag: nx.DiGraph, plan: Plan) -> bool:
    """True when ``plan`` computes a node that needs the engine."""
    return any(d == COMPUTE and dag.nodes[n].get("needs_startup", True) for n, d in plan.decisions.items())


def skip_engine_startup(plan: Plan, dag: nx.DiGraph, costs: PipelineCosts, config: OptimizerConfig) -> Plan:
    """The plan without the engine when it is no dearer than ``plan`` plus the start-up."""
    if not config.reuse or config.strategy != "optimal":
        return plan.note(RULE, "skipped: only minimum-cut plans weigh the start-up")
    if not starts_engine(dag, plan):
        return plan.note(RULE, "skipped: the plan starts no engine")
    h = dag.copy()
    for _, data in h.nodes(data=True):
        if data.get("needs_startup", True):
            data["compute_cost"] = math.inf
    try:
        alternative = execution_plan(h, plan.outputs)
    except PlanError:
        return plan.note(RULE, "skipped: an output needs an engine step that nothing stored replaces")
    with_engine = plan.cost(dag) + costs.startup_s
    if alternative.cost <= with_engine:
        return plan.replace(decisions=alternative.decisions).note(
            RULE, f"runs without the engine: {alternative.cost:.3f} s <= {with_engine:.3f} s with it")
    return plan.note(RULE, f"keeps the engine: {alternative.cost:.3f} s without > {with_engine:.3f} s with it")
