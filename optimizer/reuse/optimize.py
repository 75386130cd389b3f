"""The optimizer: a list of rules, each a pure function from one :class:`Plan` to the next.

``optimize(dag, costs, config)`` starts from the plan of a run without any optimizer (compute
every output and its ancestors, store nothing) and passes it through :data:`RULES` in order:

1. :func:`~optimizer.reuse.rules.reuse_exact_matches.reuse_exact_matches` (TFX-style caching),
2. :func:`~optimizer.reuse.rules.reuse_minimum_cut.reuse_minimum_cut` (Helix's OPT-EXEC-PLAN),
3. :func:`~optimizer.reuse.rules.skip_engine_startup.skip_engine_startup`,
4. :func:`~optimizer.reuse.rules.materialize_outputs.materialize_outputs` (OPT-MAT-PLAN under the budget),
5. :func:`~optimizer.reuse.rules.explore_unmeasured.explore_unmeasured`,
6. :func:`~optimizer.reuse.rules.evict_stored.evict_stored`.

Every rule has the signature ``rule(plan, dag, costs, config) -> Plan``, never mutates its
arguments, and when it declines to act returns its input with a note saying why. The DAG it
receives is annotated by :func:`annotate`: each node carries ``compute_cost``, ``load_cost``
(finite when stored), ``est_load_cost``, ``write_cost``, ``size_bytes``, ``recurrence`` and
``measured`` from ``costs``, besides what the caller put there (``materialized``,
``needs_startup``, ``fingerprint``). A runner applies the resulting plan and nothing else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable

import networkx as nx

from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.dag import output_list
from optimizer.reuse.rules.evict_stored import evict_stored
from optimizer.reuse.rules.explore_unmeasured import explore_unmeasured
from optimizer.reuse.rules.materialize_outputs import materialize_outputs
from optimizer.reuse.plan import COMPUTE, PRUNE, Plan, PlanError, needed_nodes
from optimizer.reuse.rules.reuse_exact_matches import reuse_exact_matches
from optimizer.reuse.rules.reuse_minimum_cut import reuse_minimum_cut
from optimizer.reuse.rules.skip_engine_startup import skip_engine_startup

__all__ = ["RULES", "Rule", "annotate", "initial_plan", "optimize"]

log = logging.getLogger(__name__)

Rule = Callable[[Plan, nx.DiGraph, PipelineCosts, OptimizerConfig], Plan]

RULES: tuple[Rule, ...] = (
    reuse_exact_matches,
    reuse_minimum_cut,
    skip_engine_startup,
    materialize_outputs,
    explore_unmeasured,
    evict_stored,
)


def annotate(dag: nx.DiGraph, costs: PipelineCosts) -> nx.DiGraph:
    """A copy of ``dag`` with the cost attributes every rule reads (see the module docstring).

    A node is stored when its ``materialized`` attribute is true; its ``load_cost`` is then
    the estimate of ``costs``, else infinite.
    """
    missing = [v for v in dag if v not in costs.nodes]
    if missing:
        raise PlanError(f"no cost for nodes {missing[:5]!r}; estimate them with optimizer.reuse.costs")
    out = dag.copy()
    for v, data in out.nodes(data=True):
        c = costs.nodes[v]
        stored = bool(data.get("materialized", False))
        data.update(
            compute_cost=c.compute_cost,
            est_load_cost=c.load_cost,
            load_cost=c.load_cost if stored else math.inf,
            write_cost=c.write_cost,
            size_bytes=c.size_bytes,
            frequency=c.frequency,
            measured=c.measured,
            materialized=stored,
        )
        if c.recurrence is not None:
            data["recurrence"] = c.recurrence
    return out


def initial_plan(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> Plan:
    """The plan of a run without optimizer: compute every output and its ancestors."""
    outs = output_list(dag, outputs)
    need = needed_nodes(dag, outs)
    return Plan(outputs=tuple(outs), decisions={n: COMPUTE if n in need else PRUNE for n in dag})


def optimize(dag: nx.DiGraph, costs: PipelineCosts, config: OptimizerConfig,
             rules: Iterable[Rule] = RULES) -> Plan:
    """The plan for one run: :func:`initial_plan` passed through ``rules`` in order."""
    g = annotate(dag, costs)
    plan = initial_plan(g, config.outputs)
    for rule in rules:
        plan = rule(plan, g, costs, config)
    for line in plan.notes:
        log.debug("%s", line)
    return plan
