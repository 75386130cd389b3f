"""Ask before training: which components a prune decision skips, and the pipeline without them.

frugal's runner asks a decision source (the frugal service through ``frugal_client``, see
``frugal run --hook``) once before it plans the run. A ``prune`` skips every training
component (role ``trainer`` by the role table, e.g. ``type_name="Trainer"``) and everything
downstream of one (evaluation, push): they need the model. What feeds the training (data
ingestion, validation, features) still runs, as under a TFX ``Cond``. The skipped
components get no execution in MLMD; the run's context carries the decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import networkx as nx

from pipelines.api import Pipeline
from pipelines.errors import PipelineError

__all__ = ["GateDecision", "Gate", "training_components", "skipped_by_prune", "without", "run_properties"]


class GateDecision(Protocol):
    """What the runner reads of a decision (``frugal_client.Decision`` has it all)."""

    action: str
    decision_id: str | None
    probability: float | None
    reasons: tuple[str, ...]
    fallback: str | None


Gate = Callable[[str, str], GateDecision]
"""``gate(pipeline_name, run_id) -> decision``; it must fail open (answer ``run``) by itself."""


def training_components(pipeline: Pipeline, roles=None) -> tuple[str, ...]:
    """The components whose ``type_name`` has the role ``trainer`` (default role table)."""
    from analysis.roles import default_roles

    roles = roles or default_roles()
    return tuple(c.name for c in pipeline.components if roles.role_of("execution", c.type_name)[0] == "trainer")


def skipped_by_prune(pipeline: Pipeline, roles=None) -> tuple[str, ...]:
    """Training components and all their descendants, in topological order."""
    trainers = training_components(pipeline, roles)
    if not trainers:
        raise PipelineError(
            f"pipeline {pipeline.name!r} has no training component, so a pre-run decision has nothing to "
            "skip: give the training step type_name='Trainer' (python_step(..., type_name='Trainer')) "
            "or run without --hook")
    g = pipeline.graph()
    skipped = set(trainers).union(*(nx.descendants(g, t) for t in trainers))
    return tuple(n for n in pipeline.topological_order() if n in skipped)


def without(pipeline: Pipeline, names: Iterable[str]) -> Pipeline:
    """``pipeline`` without ``names`` (closed under descendants); outputs: the remaining declared
    outputs, else the remaining sinks."""
    drop = set(names)
    kept = tuple(c for c in pipeline.components if c.name not in drop)
    bad = [c.name for c in kept if any(p in drop for p in c.inputs.values())]
    if bad:
        raise PipelineError(f"cannot skip {sorted(drop)} alone: {bad} need them")
    outputs = tuple(o for o in pipeline.outputs if o not in drop)
    return Pipeline(pipeline.name, kept, outputs)


def run_properties(decision: GateDecision) -> dict[str, Any]:
    """Custom properties of the run's MLMD context that record the decision."""
    props: dict[str, Any] = {"frugal_action": decision.action,
                             "frugal_decision_id": decision.decision_id or "",
                             "frugal_reasons": json.dumps(list(decision.reasons))}
    if decision.fallback:
        props["frugal_fallback"] = decision.fallback
    if decision.probability is not None:
        props["frugal_probability"] = float(decision.probability)
    return props
