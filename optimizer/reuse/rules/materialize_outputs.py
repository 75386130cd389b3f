"""Rule: choose which outputs the run stores, under the byte budget (OPT-MAT-PLAN).

The materialization policy (``config.policy``, see :mod:`optimizer.reuse.materialize`) picks the
outputs that should be in the store after the run among those the run produces; the run
writes the chosen ones it computes and does not hold yet, and eviction spares all chosen ones
(``plan.keep``). Recreating a node that needs the engine counts the measured start-up
(``costs.startup_s``) for every policy. Declines without reuse, without a store, or with the
policy ``"none"``.
"""

from __future__ import annotations

import dataclasses

import networkx as nx

from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.materialize import choose_materializations
from optimizer.reuse.plan import COMPUTE, Plan

__all__ = ["materialize_outputs"]

RULE = "materialize_outputs"


def materialize_outputs(plan: Plan, dag: nx.DiGraph, costs: PipelineCosts, config: OptimizerConfig) -> Plan:
    """Add the policy's choice to ``plan.write`` (what must be written) and ``plan.keep``."""
    if not config.reuse or not config.store or config.policy == "none":
        return plan.note(RULE, "skipped: no reuse, no store or the policy 'none'")
    mat = dataclasses.replace(config.materialization, startup_cost=costs.startup_s)
    chosen = choose_materializations(dag, config.budget, policy=config.policy, plan=plan.decisions,
                                     outputs=plan.outputs, config=mat)
    write = {n for n in chosen if plan.decisions.get(n) == COMPUTE and not dag.nodes[n].get("materialized")}
    return plan.replace(write=plan.write | write, keep=plan.keep | chosen).note(
        RULE, f"policy {config.policy} keeps {sorted(map(str, chosen))}, writes {sorted(map(str, write))}")
