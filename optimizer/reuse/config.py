"""How to optimize one run: the configuration every reuse rule reads.

A module of its own so that the rules (``optimizer.reuse.rules``) and the chain that runs them
(``optimizer.reuse.optimize``) both import it, and no rule imports the chain.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

from optimizer.reuse.materialize import POLICIES, MaterializationConfig
from optimizer.reuse.plan import PlanError

__all__ = ["OptimizerConfig", "STRATEGIES", "EVICTIONS"]

STRATEGIES = ("optimal", "exact")
EVICTIONS = ("policy", "lru")


@dataclass(frozen=True)
class OptimizerConfig:
    """How to optimize one run.

    ``outputs``: the nodes the run must produce. ``reuse`` False turns every rule off (the
    plan of a run without optimizer). ``strategy``: ``"optimal"`` (minimum cut) or
    ``"exact"`` (TFX-style exact matches). ``policy``: the materialization policy
    (``optimizer.reuse.materialize.POLICIES``). ``store``: an artifact store exists to write to.
    ``budget_bytes``: its byte budget (None: unlimited). ``eviction``: ``"policy"`` (the
    policy's own value per byte) or ``"lru"``. ``materialization``: the policies' knobs (its
    ``startup_cost`` is replaced by the measured ``costs.startup_s``).
    """

    outputs: tuple[Hashable, ...]
    reuse: bool = True
    strategy: str = "optimal"
    policy: str = "frugal"
    store: bool = True
    budget_bytes: int | None = None
    eviction: str = "policy"
    materialization: MaterializationConfig = field(default_factory=MaterializationConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if self.strategy not in STRATEGIES:
            raise PlanError(f"unknown reuse strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        if self.policy not in POLICIES:
            raise PlanError(f"unknown materialization policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        if self.eviction not in EVICTIONS:
            raise PlanError(f"unknown eviction {self.eviction!r}: use one of {', '.join(EVICTIONS)}")
        if self.budget_bytes is not None and not self.budget_bytes >= 0:
            raise PlanError(f"budget_bytes={self.budget_bytes!r}; give the store budget in bytes (>= 0) or None")

    @property
    def budget(self) -> float:
        """The byte budget as a number (infinite when unlimited)."""
        return math.inf if self.budget_bytes is None else float(self.budget_bytes)
