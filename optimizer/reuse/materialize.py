"""Materialization planner: which node outputs to keep in the artifact store, under a byte budget.

Helix's OPT-MAT-PLAN is NP-hard; every policy here is a heuristic over the same node
attributes, so they can be compared on equal terms (``benchmarks/planner.py``):

``"frugal"`` (default, ours)
    Provenance-informed expected savings per byte. ``P(reuse)`` of a node is how often its
    component's fingerprint recurred in past runs (``recurrence`` attribute, or estimated from
    ``history``), clamped to at most ``1 - own_change_rate`` times its least recurrent
    parent's (a parent's change changes the child, which may also change on its own). A stored output
    saves ``recreation cost - load cost`` each time it is needed *and* unchanged; it is not
    needed when a stored descendant that is also unchanged shadows it. Expected savings minus
    the one-off write cost, divided by size, ranks candidates; a lazy greedy knapsack fills
    the budget and re-evaluates shadowing and recreation costs after every pick. Recreation
    costs include the engine start-up (``startup_cost``) when recreating needs it.
``"helix"``
    Helix's rule: in topological order, persist a node when its recreation cost (from the
    nearest materialized ancestors) exceeds twice its load cost, while it fits the budget.
``"experiment_graph"``
    Derakhshan et al.'s utility ``alpha * potential + (1 - alpha) * frequency *
    recreation_cost / size`` (recreation from scratch, the ratio normalised to [0, 1]),
    greedy by utility while it fits.
``"all"``
    Everything that fits, in topological order.
``"none"``
    Nothing.

Node attributes read: ``compute_cost`` (required), ``load_cost`` (finite when already
materialized), ``est_load_cost`` (load cost were it materialized; else estimated from
``size_bytes``), ``write_cost`` (else estimated from ``size_bytes``), ``size_bytes``
(required), and optionally ``recurrence`` (0..1), ``frequency``, ``potential`` (0..1),
``component`` (stable name across runs, for ``history``) and ``fingerprint``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from optimizer.reuse.costs import CostModel, frequency_from_history, recurrence_from_history
from optimizer.reuse.plan import COMPUTE, LOAD, PlanError, StoreEntry
from optimizer.reuse.dag import node_costs, output_list, topological_order

__all__ = [
    "POLICIES",
    "DEFAULT_POLICY",
    "MaterializationConfig",
    "choose_materializations",
    "choose_evictions",
    "recreation_costs",
    "estimate_recurrence",
]

POLICIES = ("frugal", "helix", "experiment_graph", "all", "none")
DEFAULT_POLICY = "frugal"


@dataclass(frozen=True)
class MaterializationConfig:
    """Knobs of the policies; the defaults are the published values or neutral priors.

    ``helix_factor``: Helix persists when recreation cost > factor x load cost (2 in the paper).
    ``alpha``: Experiment Graph weight of model potential against the cost term (0.5).
    ``own_change_rate``: prior probability that a run changes one given step's own code,
    parameters or data; ``None`` means ``1 / number of nodes`` (a run changes about one
    step). A node with no history then recurs with ``(1 - rate) ** (ancestors + 1)``, and no
    node recurs more than ``1 - rate`` times as often as its least recurrent parent (0 takes
    ``recurrence`` attributes as given, clamped only to the parents').
    ``horizon_runs``: how many future runs a stored output may serve (its expected uses are
    ``sum(r**k for k < horizon_runs)`` for recurrence ``r``).
    ``startup_cost``: seconds paid once per run when any node with the ``needs_startup``
    attribute is computed (starting a Beam pipeline). A node's recreation includes it once
    when it computes such a node and loading the node instead would let a reader run without
    the engine (a reader without ``needs_startup``, or the node is an output): a stored
    training split that lets a new hyperparameter train without Beam is worth the start-up;
    a stored raw table read only by Beam steps is not.
    """

    helix_factor: float = 2.0
    alpha: float = 0.5
    own_change_rate: float | None = None
    horizon_runs: int = 10
    startup_cost: float = 0.0
    cost_model: CostModel = CostModel()

    def __post_init__(self) -> None:
        if self.helix_factor < 0 or not 0 <= self.alpha <= 1:
            raise PlanError("helix_factor must be >= 0 and alpha between 0 and 1")
        if self.own_change_rate is not None and not 0 <= self.own_change_rate <= 1:
            raise PlanError("own_change_rate must be a probability between 0 and 1 (or None)")
        if self.horizon_runs < 1:
            raise PlanError("horizon_runs must be at least 1 (the next run)")
        if not self.startup_cost >= 0:
            raise PlanError(f"startup_cost must be seconds >= 0, got {self.startup_cost!r}")


def _expected_uses(r: float, horizon: int) -> float:
    if r >= 1.0:
        return float(horizon)
    return (1.0 - r**horizon) / (1.0 - r)


def _recurrences(
    dag: nx.DiGraph, order: list[Hashable], parents: list[list[int]], history: Any,
    config: MaterializationConfig,
) -> list[float]:
    """P(reuse) per node (topological index): the ``recurrence`` attribute, else history
    smoothed by a structural prior, else that prior; never above a parent's."""
    q = config.own_change_rate
    if q is None:
        q = 1.0 / max(len(order), 1)
    anc = [0] * len(order)
    for i in range(len(order)):
        for p in parents[i]:
            anc[i] |= anc[p] | (1 << p)
    prior = {v: (1.0 - q) ** (anc[i].bit_count() + 1) for i, v in enumerate(order)}
    fp_rec = recurrence_from_history(dag, history, prior=prior) if history is not None else prior
    rec: list[float] = []
    for i, v in enumerate(order):
        r = dag.nodes[v].get("recurrence")
        try:
            r = float(r) if r is not None else fp_rec[v]
        except (TypeError, ValueError):
            r = math.nan
        if not 0 <= r <= 1:
            raise PlanError(f"node {v!r} has recurrence={dag.nodes[v].get('recurrence')!r}; "
                            "give a probability between 0 and 1")
        # A parent's new fingerprint changes the child's, and the child can also change on
        # its own: it recurs at most (1 - q) times as often as its least recurrent parent.
        for p in parents[i]:
            r = min(r, rec[p] * (1.0 - q))
        rec.append(r)
    return rec


def estimate_recurrence(
    dag: nx.DiGraph, history: Any = None, *, config: MaterializationConfig | None = None
) -> dict[Hashable, float]:
    """P(reuse) of every node as the frugal policy sees it (for store entries, reports).

    The node's ``recurrence`` attribute, else its component's fingerprint recurrence in
    ``history`` (rows ``(run, component, fingerprint)``) smoothed by the structural prior
    ``(1 - own_change_rate) ** (ancestors + 1)``, else that prior; then at most
    ``1 - own_change_rate`` times its least recurrent parent's.
    """
    config = config or MaterializationConfig()
    order = topological_order(dag)
    pos = {v: i for i, v in enumerate(order)}
    parents = [[pos[p] for p in dag.pred[v]] for v in order]
    rec = _recurrences(dag, order, parents, history, config)
    return {v: rec[i] for i, v in enumerate(order)}


class _Graph:
    """Index-based view of the DAG with validated costs, for the policies below."""

    def __init__(
        self,
        dag: nx.DiGraph,
        config: MaterializationConfig,
        history: Any,
        outputs: Iterable[Hashable] | None,
    ) -> None:
        order = topological_order(dag)
        costs = node_costs(dag)
        self.nodes = order
        self.pos = {v: i for i, v in enumerate(order)}
        self.parents = [[self.pos[p] for p in dag.pred[v]] for v in order]
        self.children = [[self.pos[w] for w in dag.succ[v]] for v in order]
        self.compute = [costs[v][0] for v in order]
        self.stored = [costs[v][1] < math.inf for v in order]
        model = config.cost_model
        self.size: list[int] = []
        self.load: list[float] = []
        self.write: list[float] = []
        for v in order:
            data = dag.nodes[v]
            if "size_bytes" not in data:
                raise PlanError(
                    f"node {v!r} has no 'size_bytes'; set the expected output size on every node, "
                    "e.g. with optimizer.reuse.costs.annotate_costs"
                )
            size = data["size_bytes"]
            if not isinstance(size, (int, float)) or math.isnan(size) or size < 0:
                raise PlanError(f"node {v!r} has size_bytes={size!r}; give a number of bytes >= 0")
            self.size.append(int(size))
            c, l = costs[v]
            if l == math.inf:
                l = float(data.get("est_load_cost", model.load_cost(size)))
            self.load.append(l)
            self.write.append(0.0 if costs[v][1] < math.inf else float(data.get("write_cost", model.write_cost(size))))
        if outputs is None:
            self.outputs = {i for i, ch in enumerate(self.children) if not ch}
        else:
            self.outputs = {self.pos[o] for o in output_list(dag, outputs)}
        self.recurrence = _recurrences(dag, order, self.parents, history, config)
        freq = frequency_from_history(dag, history) if history is not None else {}
        self.frequency = [float(dag.nodes[v].get("frequency", freq.get(v, 1.0))) for v in order]
        self.potential = [float(dag.nodes[v].get("potential", 0.0)) for v in order]
        self.startup_cost = config.startup_cost
        self.startup_mask = 0
        needs = [bool(dag.nodes[v].get("needs_startup", False)) for v in order]
        if config.startup_cost > 0:
            for i in range(len(order)):
                if needs[i]:
                    self.startup_mask |= 1 << i
        # Loading a node spares the start-up only if something that reads it can then run
        # without the engine (or it is itself an output); a node read only by engine steps
        # saves no start-up, as those steps start the engine anyway.
        self.startup_spared = [not self.children[i] or any(not needs[w] for w in self.children[i])
                               for i in range(len(order))]

    def recreation(self, materialized: set[int]) -> list[float]:
        """Cost to recreate every node from its nearest materialized (or source) ancestors.

        Ancestors shared by several paths are counted once (bit sets of node indexes).
        """
        n = len(self.nodes)
        comp = [0] * n
        load = [0] * n
        for i in range(n):
            cm = 1 << i
            lm = 0
            for p in self.parents[i]:
                if p in materialized:
                    lm |= 1 << p
                else:
                    cm |= comp[p]
                    lm |= load[p]
            comp[i] = cm
            load[i] = lm
        ca, la = np.asarray(self.compute), np.asarray(self.load)
        return [_bits_sum(comp[i], self.compute, ca) + _bits_sum(load[i], self.load, la) + self.startup(i, comp[i])
                for i in range(n)]

    def startup(self, i: int, computed_mask: int) -> float:
        """The engine start-up that recreating node ``i`` (computing ``computed_mask``) costs
        beyond loading it: paid when the computed set needs the engine and loading ``i``
        would let its readers run without it."""
        return self.startup_cost if computed_mask & self.startup_mask and self.startup_spared[i] else 0.0

    def recreation_of(self, i: int, materialized: set[int]) -> float:
        """:meth:`recreation` of one node, by a walk up its unmaterialized ancestors."""
        seen = {i}
        stack = [i]
        total = 0.0
        computed = 0
        while stack:
            x = stack.pop()
            if x != i and x in materialized:
                total += self.load[x]
                continue
            total += self.compute[x]
            computed |= 1 << x
            for p in self.parents[x]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return total + self.startup(i, computed)

    def need_of(self, i: int, materialized: set[int]) -> float:
        """:meth:`need` of one node, by the same recurrence over its descendants only."""
        below = {i}
        stack = [i]
        while stack:
            x = stack.pop()
            for w in self.children[x]:
                if w not in below:
                    below.add(w)
                    stack.append(w)
        need: dict[int, float] = {}
        for x in sorted(below, reverse=True):  # indexes are a topological order
            p = 1.0 if x in self.outputs else 0.0
            for w in self.children[x]:
                comp = min(need[w], 1.0 - self.recurrence[w]) if w in materialized else need[w]
                if comp > p:
                    p = comp
            need[x] = max(p, 0.0)
        return need[i]

    def need(self, materialized: set[int]) -> list[float]:
        """P(node must be produced next run) given stored nodes that recur shadow their ancestors.

        Modelled as nested events: a node's fingerprint recurs only if its ancestors' do, so
        "x changed" events along a path are nested and their intersections are minima.
        """
        n = len(self.nodes)
        need = [0.0] * n
        for i in range(n - 1, -1, -1):
            p = 1.0 if i in self.outputs else 0.0
            for w in self.children[i]:
                # w is computed when needed and changed; "changed" events nest along paths
                comp = min(need[w], 1.0 - self.recurrence[w]) if w in materialized else need[w]
                if comp > p:
                    p = comp
            need[i] = max(p, 0.0)
        return need


def _bits_sum(mask: int, values: list[float], array: np.ndarray | None = None) -> float:
    """Sum of ``values[i]`` over the set bits ``i`` of ``mask``."""
    if array is not None and mask.bit_count() > 32:
        bits = np.unpackbits(
            np.frombuffer(mask.to_bytes((len(values) + 7) // 8, "little"), dtype=np.uint8),
            bitorder="little",
        )[: len(values)]
        return float(array[bits.astype(bool)].sum())
    total = 0.0
    while mask:
        low = mask & -mask
        total += values[low.bit_length() - 1]
        mask ^= low
    return total


def choose_materializations(
    dag: nx.DiGraph,
    budget_bytes: int,
    *,
    policy: str = DEFAULT_POLICY,
    history: Any = None,
    plan: Mapping[Hashable, str] | None = None,
    outputs: Iterable[Hashable] | None = None,
    config: MaterializationConfig | None = None,
) -> frozenset[Hashable]:
    """Nodes whose outputs should be in the store after this run, within ``budget_bytes``.

    Candidates are nodes the run produces (``plan`` decision compute or load; every node when
    no plan is given). Already materialized nodes (finite ``load_cost``) cost nothing to keep;
    the runner writes the others and lets :func:`choose_evictions` make room. ``history``:
    rows ``(run, component, fingerprint)`` of past runs (see :mod:`optimizer.reuse.costs`);
    ``outputs``: the nodes a run asks for (default: the sinks).
    """
    if policy not in POLICIES:
        raise PlanError(f"unknown materialization policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not isinstance(budget_bytes, (int, float)) or budget_bytes < 0:
        raise PlanError(f"budget_bytes={budget_bytes!r}; give the store budget in bytes (>= 0)")
    config = config or MaterializationConfig()
    g = _Graph(dag, config, history, outputs)
    n = len(g.nodes)
    if plan is None:
        candidates = list(range(n))
    else:
        candidates = [i for i, v in enumerate(g.nodes) if plan.get(v) in (COMPUTE, LOAD)]
    candidates = [i for i in candidates if g.size[i] <= budget_bytes]
    if policy == "none" or not candidates:
        chosen: set[int] = set()
    elif policy == "all":
        chosen = _fill(candidates, g.size, budget_bytes)
    elif policy == "helix":
        chosen = _helix(g, candidates, budget_bytes, config)
    elif policy == "experiment_graph":
        chosen = _experiment_graph(g, candidates, budget_bytes, config)
    else:
        chosen = _frugal(g, candidates, budget_bytes, config)
    return frozenset(g.nodes[i] for i in chosen)


def _fill(order: Iterable[int], size: list[int], budget: float) -> set[int]:
    chosen: set[int] = set()
    used = 0
    for i in order:
        if used + size[i] <= budget:
            chosen.add(i)
            used += size[i]
    return chosen


def _helix(g: _Graph, candidates: list[int], budget: float, config: MaterializationConfig) -> set[int]:
    # A node's recreation cost depends only on its ancestors, which come earlier in the
    # topological order: one pass decides every node with the final stored set above it.
    materialized = {i for i in range(len(g.nodes)) if g.stored[i]}
    is_candidate = set(candidates)
    chosen: set[int] = set()
    used = 0
    n = len(g.nodes)
    comp = [0] * n
    load = [0] * n
    ca, la = np.asarray(g.compute), np.asarray(g.load)
    for i in range(n):
        cm, lm = 1 << i, 0
        for p in g.parents[i]:
            if p in materialized:
                lm |= 1 << p
            else:
                cm |= comp[p]
                lm |= load[p]
        comp[i], load[i] = cm, lm
        if i not in is_candidate or used + g.size[i] > budget:
            continue
        rc = _bits_sum(cm, g.compute, ca) + _bits_sum(lm, g.load, la) + g.startup(i, cm)
        if rc > config.helix_factor * g.load[i]:
            chosen.add(i)
            materialized.add(i)
            used += g.size[i]
    return chosen


def _experiment_graph(g: _Graph, candidates: list[int], budget: float, config: MaterializationConfig) -> set[int]:
    scratch = g.recreation(set())
    ratio = {i: g.frequency[i] * scratch[i] / max(g.size[i], 1) for i in candidates}
    top = max((r for r in ratio.values() if r < math.inf), default=0.0) or 1.0
    utility = {
        i: config.alpha * g.potential[i] + (1 - config.alpha) * min(ratio[i] / top, 1.0)
        for i in candidates
    }
    # outputs that cannot be recreated (infinite cost) first, then by utility
    key = lambda i: (scratch[i] < math.inf, -utility[i], i)  # noqa: E731
    return _fill(sorted(candidates, key=key), g.size, budget)


def _frugal(g: _Graph, candidates: list[int], budget: float, config: MaterializationConfig) -> set[int]:
    materialized = {i for i in range(len(g.nodes)) if g.stored[i]}
    uses = [_expected_uses(r, config.horizon_runs) for r in g.recurrence]

    def gain(i: int, rc: float, need: float) -> float:
        p_use = max(0.0, g.recurrence[i] + need - 1.0)
        if p_use == 0.0:
            return -g.write[i]  # (also avoids 0 x inf for outputs that cannot be recreated)
        return p_use * uses[i] * (rc - g.load[i]) - g.write[i]

    # Values only fall as the stored set grows (recreation costs and needs both shrink), so
    # a lazy greedy is exact: re-evaluate the best candidate, take it if it still leads.
    rc_all = g.recreation(materialized)
    need_all = g.need(materialized)
    heap = []
    for i in candidates:
        v = gain(i, rc_all[i], need_all[i])
        if v > 0:
            heap.append((-v / max(g.size[i], 1), i))
    heapq.heapify(heap)
    chosen: set[int] = set()
    fresh: set[int] = set(i for _, i in heap)  # values computed with the current set
    used = 0
    while heap:
        _, i = heapq.heappop(heap)
        if used + g.size[i] > budget:
            continue
        if i not in fresh:
            v = gain(i, g.recreation_of(i, materialized), g.need_of(i, materialized))
            if v <= 0:
                continue
            fresh.add(i)
            heapq.heappush(heap, (-v / max(g.size[i], 1), i))
            continue
        chosen.add(i)
        materialized.add(i)
        used += g.size[i]
        fresh.clear()
    return chosen


def recreation_costs(dag: nx.DiGraph, materialized: Iterable[Hashable] = (), *,
                     startup_cost: float = 0.0) -> dict[Hashable, float]:
    """Cost to recreate every node from its nearest materialized or source ancestors.

    A node's own compute cost plus that of every ancestor reached without passing a
    materialized node (each counted once), plus the load costs of the materialized frontier,
    plus ``startup_cost`` once when one of the computed nodes has ``needs_startup`` and
    loading the node would spare it (see ``MaterializationConfig.startup_cost``).
    """
    config = MaterializationConfig(startup_cost=startup_cost)
    g = _Graph(_with_sizes(dag), config, None, None)
    m = {g.pos[v] for v in materialized}
    rc = g.recreation(m)
    return {v: rc[i] for i, v in enumerate(g.nodes)}


def _with_sizes(dag: nx.DiGraph) -> nx.DiGraph:
    if all("size_bytes" in d for _, d in dag.nodes(data=True)):
        return dag
    h = dag.copy()
    for _, d in h.nodes(data=True):
        d.setdefault("size_bytes", 0)
    return h


def _entry(e: Any) -> StoreEntry:
    """A StoreEntry from itself, a mapping, or any object with the same attribute names."""
    if isinstance(e, StoreEntry):
        return e
    if isinstance(e, Mapping):
        return StoreEntry.from_mapping(e)
    fields = [f for f in StoreEntry.__dataclass_fields__ if f != "extra"]
    return StoreEntry.from_mapping({f: getattr(e, f) for f in fields if hasattr(e, f)})


def choose_evictions(
    entries: Iterable[StoreEntry | Mapping[str, Any]],
    budget_bytes: int,
    *,
    policy: str = DEFAULT_POLICY,
    protect: Iterable[Hashable] = (),
    config: MaterializationConfig | None = None,
) -> list[Hashable]:
    """Keys to evict, least valuable first, so the remaining entries fit in ``budget_bytes``.

    Uses the policy's own utility: ``"frugal"`` expected savings per byte (recurrence x
    expected uses x (recreation - load) / size), ``"experiment_graph"`` its utility, and
    ``"helix"``/``"all"`` least recently used first; ``"none"`` evicts every entry. Pinned
    entries and ``protect`` keys (e.g. what the current run just chose) are never evicted; if
    they alone exceed the budget, every other entry is returned and the store stays over.
    ``entries`` are :class:`StoreEntry` values, plain rows, or objects with the same
    attribute names (missing ones take StoreEntry's defaults).
    """
    if policy not in POLICIES:
        raise PlanError(f"unknown eviction policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not isinstance(budget_bytes, (int, float)) or budget_bytes < 0:
        raise PlanError(f"budget_bytes={budget_bytes!r}; give the store budget in bytes (>= 0)")
    config = config or MaterializationConfig()
    rows = [_entry(e) for e in entries]
    keep = set(protect)
    evictable = [e for e in rows if not e.pinned and e.key not in keep]
    if policy == "none":
        return [e.key for e in evictable]
    total = sum(e.size_bytes for e in rows)
    if total <= budget_bytes:
        return []
    if policy == "frugal":
        def key(e: StoreEntry) -> tuple:
            gain = e.recurrence * _expected_uses(e.recurrence, config.horizon_runs) * (
                e.recreation_cost - e.load_cost
            )
            return (gain / max(e.size_bytes, 1), e.last_used)
    elif policy == "experiment_graph":
        top = max((e.frequency * e.recreation_cost / max(e.size_bytes, 1) for e in evictable), default=0.0) or 1.0

        def key(e: StoreEntry) -> tuple:
            u = config.alpha * e.potential + (1 - config.alpha) * (
                e.frequency * e.recreation_cost / max(e.size_bytes, 1) / top
            )
            return (u, e.last_used)
    else:
        def key(e: StoreEntry) -> tuple:
            return (e.last_used,)
    out: list[Hashable] = []
    for e in sorted(evictable, key=key):
        if total <= budget_bytes:
            break
        out.append(e.key)
        total -= e.size_bytes
    return out
