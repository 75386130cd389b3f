"""Plan values shared by the reuse and materialization planners.

Plans are plain immutable values: the planners are pure functions that take a networkx DAG
and return one of these, so a runner (``pipelines``) can apply a plan without importing
anything else from ``optimizer``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from optimizer.errors import OptimizerError

__all__ = [
    "COMPUTE",
    "LOAD",
    "PRUNE",
    "DECISIONS",
    "PlanError",
    "ExecutionPlan",
    "Plan",
    "StoreEntry",
]

COMPUTE = "compute"
LOAD = "load"
PRUNE = "prune"
DECISIONS = (COMPUTE, LOAD, PRUNE)


class PlanError(OptimizerError):
    """A planner cannot work with the DAG or costs it was given (cycle, bad cost, no plan)."""


@dataclass(frozen=True)
class ExecutionPlan:
    """One decision per node, with the total cost that the decisions incur.

    ``decisions`` maps every node of the DAG to ``"compute"``, ``"load"`` or ``"prune"``;
    ``cost`` is the sum of compute costs of computed nodes and load costs of loaded nodes.
    """

    decisions: Mapping[Hashable, str]
    cost: float

    @property
    def computed(self) -> frozenset[Hashable]:
        return frozenset(n for n, d in self.decisions.items() if d == COMPUTE)

    @property
    def loaded(self) -> frozenset[Hashable]:
        return frozenset(n for n, d in self.decisions.items() if d == LOAD)

    @property
    def pruned(self) -> frozenset[Hashable]:
        return frozenset(n for n, d in self.decisions.items() if d == PRUNE)

    def __getitem__(self, node: Hashable) -> str:
        return self.decisions[node]

    def __hash__(self) -> int:
        return hash((frozenset(self.decisions.items()), self.cost))


@dataclass(frozen=True)
class StoreEntry:
    """What the eviction planner knows about one materialized artifact in a store.

    ``recreation_cost`` is the cost to recompute the artifact when it is gone (its compute
    cost plus that of the ancestors it shadows), ``load_cost`` the cost to read it back,
    ``recurrence`` the probability (0..1) that a future run asks for this fingerprint again,
    ``frequency`` how many runs used it so far, ``last_used`` a monotone clock (run index or
    epoch seconds) of its last use, ``potential`` the quality of the best model downstream
    (0..1, Experiment Graph), ``pinned`` entries are never evicted.
    """

    key: Hashable
    size_bytes: int
    recreation_cost: float = 0.0
    load_cost: float = 0.0
    recurrence: float = 0.5
    frequency: float = 1.0
    last_used: float = 0.0
    potential: float = 0.0
    pinned: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.size_bytes, (int, float)) or self.size_bytes < 0 or math.isnan(
            self.size_bytes
        ):
            raise PlanError(
                f"store entry {self.key!r} has size_bytes={self.size_bytes!r}; "
                "give the artifact's size in bytes as a number >= 0"
            )
        for name in ("recreation_cost", "load_cost", "frequency", "potential"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise PlanError(
                    f"store entry {self.key!r} has {name}={value!r}; give a number >= 0"
                )
        if not 0.0 <= self.recurrence <= 1.0:
            raise PlanError(
                f"store entry {self.key!r} has recurrence={self.recurrence!r}; "
                "give a probability between 0 and 1"
            )

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> StoreEntry:
        """Build an entry from a plain row (dict, DataFrame record); unknown keys go to ``extra``."""
        if "key" not in row or "size_bytes" not in row:
            raise PlanError(
                f"store entry row {dict(row)!r} lacks 'key' or 'size_bytes'; "
                "every entry needs its key and its size in bytes"
            )
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in row.items() if k in known}
        extra = {k: v for k, v in row.items() if k not in known}
        return cls(**kwargs, extra=extra)


@dataclass(frozen=True)
class Plan:
    """What one run of a pipeline does: the value every rule of :mod:`optimizer.reuse.optimize` maps
    to a new one.

    ``outputs``: the nodes the run must produce. ``decisions``: compute, load or prune per
    node. ``write``: computed nodes whose output the run also stores. ``keep``: nodes the
    materialization policy wants stored after the run (eviction spares them). ``evict``:
    store keys (fingerprints) to delete to fit the budget, least valuable first.
    ``recreation_s``: per stored key of this pipeline, what recreating it would cost were it
    evicted (recorded, so later runs value old versions). ``notes``: one line per rule that
    acted or declined, saying why.
    """

    outputs: tuple[Hashable, ...]
    decisions: Mapping[Hashable, str] = field(default_factory=dict)
    write: frozenset[Hashable] = frozenset()
    keep: frozenset[Hashable] = frozenset()
    evict: tuple[Hashable, ...] = ()
    recreation_s: Mapping[Hashable, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "decisions", MappingProxyType(dict(self.decisions)))
        object.__setattr__(self, "write", frozenset(self.write))
        object.__setattr__(self, "keep", frozenset(self.keep))
        object.__setattr__(self, "evict", tuple(self.evict))
        object.__setattr__(self, "recreation_s", MappingProxyType(dict(self.recreation_s)))
        bad = {d for d in self.decisions.values() if d not in DECISIONS}
        if bad:
            raise PlanError(f"plan decisions {sorted(bad)!r} are not among {DECISIONS}")

    def replace(self, **changes: Any) -> Plan:
        """A copy with ``changes`` (the plan itself never changes)."""
        return dataclasses.replace(self, **changes)

    def note(self, rule: str, text: str) -> Plan:
        """A copy with one more note ``rule: text``."""
        return self.replace(notes=(*self.notes, f"{rule}: {text}"))

    def nodes(self, decision: str) -> frozenset[Hashable]:
        """The nodes with ``decision`` (compute, load or prune)."""
        return frozenset(n for n, d in self.decisions.items() if d == decision)

    @property
    def computes(self) -> bool:
        """True when the run computes anything at all."""
        return any(d == COMPUTE for d in self.decisions.values())

    def cost(self, dag: Any) -> float:
        """Compute costs of computed nodes plus load costs of loaded ones, as ``dag`` annotates."""
        total = 0.0
        for n, d in self.decisions.items():
            if d == COMPUTE:
                total += float(dag.nodes[n]["compute_cost"])
            elif d == LOAD:
                total += float(dag.nodes[n]["load_cost"])
        return total

    def __hash__(self) -> int:
        return hash((self.outputs, frozenset(self.decisions.items()), self.write, self.keep, self.evict))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return (self.outputs, dict(self.decisions), self.write, self.keep, self.evict, dict(self.recreation_s)) == (
            other.outputs, dict(other.decisions), other.write, other.keep, other.evict, dict(other.recreation_s))


def needed_nodes(dag: Any, outputs: Iterable[Hashable]) -> set[Hashable]:
    """The outputs and all their ancestors: what a run without reuse computes."""
    import networkx as nx

    need: set[Hashable] = set()
    for o in outputs:
        need.add(o)
        need |= nx.ancestors(dag, o)
    return need
