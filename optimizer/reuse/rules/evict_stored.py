"""Rule: which stored artifacts to delete so that the store fits its byte budget.

The store's entries (``costs.store``, keyed by fingerprint) include outputs of earlier
versions of the pipeline. Entries of this pipeline's current nodes are valued at what
recreating them would cost from what else stays stored (their unstored ancestors' compute,
the stored frontier's loads and the engine start-up when recreating needs it); the plan
records those values (``plan.recreation_s``) so that a later run, to which they are old
versions, values them as they were. Other entries keep the recreation cost given. Eviction
``"policy"`` ranks by the materialization policy's value per byte and spares ``plan.keep``;
``"lru"`` deletes least recently used first. Entries the run has not written yet count at
their estimated size. Declines without a budget, without a store or without reuse.
"""

from __future__ import annotations

import dataclasses

import networkx as nx

from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.materialize import choose_evictions, recreation_costs
from optimizer.reuse.plan import Plan, StoreEntry

__all__ = ["evict_stored"]

RULE = "evict_stored"


def evict_stored(plan: Plan, dag: nx.DiGraph, costs: PipelineCosts, config: OptimizerConfig) -> Plan:
    """Set ``plan.evict`` (and ``plan.recreation_s`` for this pipeline's stored outputs)."""
    if not config.reuse or not config.store or config.budget_bytes is None:
        return plan.note(RULE, "skipped: no reuse, no store or no budget")
    fp = {n: dag.nodes[n].get("fingerprint", n) for n in dag}
    entries = {e.key: e for e in costs.store}
    stored = {n for n in dag if dag.nodes[n].get("materialized") or fp[n] in entries or n in plan.write}
    recreation: dict = {}
    for n in stored:
        recreation[fp[n]] = recreation_costs(dag, stored - {n}, startup_cost=costs.startup_s)[n]
    rows = []
    for key, e in entries.items():
        rows.append(dataclasses.replace(e, recreation_cost=recreation.get(key, e.recreation_cost)))
    last = max((e.last_used for e in rows), default=0.0) + 1.0
    for n in plan.write:
        if fp[n] not in entries:
            data = dag.nodes[n]
            rows.append(StoreEntry(key=fp[n], size_bytes=int(data["size_bytes"]), recreation_cost=recreation[fp[n]],
                                   load_cost=float(data["est_load_cost"]),
                                   recurrence=float(data.get("recurrence", 0.5)), last_used=last))
    if config.eviction == "lru":
        evict = choose_evictions(rows, config.budget_bytes, policy="all")
    else:
        protect = {fp[n] for n in plan.keep}
        policy = config.policy if config.policy != "none" else "all"
        evict = choose_evictions(rows, config.budget_bytes, policy=policy, protect=protect,
                                 config=config.materialization)
    plan = plan.replace(evict=tuple(evict), recreation_s=recreation)
    return plan.note(RULE, f"evicts {len(evict)} of {len(rows)} entries to fit {config.budget_bytes} bytes")
