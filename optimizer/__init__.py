"""Decisions from provenance: pruning wasted runs, reuse plans and materialization plans."""

from __future__ import annotations

from optimizer.errors import OptimizerError
from optimizer.hook import Decision, decide
from optimizer.materialize import choose_evictions, choose_materializations
from optimizer.replay import ReplayResult, evaluate
from optimizer.reuse import plan_execution

__all__ = ["OptimizerError", "plan_execution", "choose_materializations", "choose_evictions",
           "decide", "Decision", "evaluate", "ReplayResult"]
