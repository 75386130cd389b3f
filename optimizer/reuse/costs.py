"""Cost model: compute, load and write costs and output sizes of pipeline nodes, from history.

The planners need, per node, what computing it costs, what loading a stored result costs
and how big it is. These come from past runs (plain rows, a DataFrame, or the DuckDB
warehouse via :func:`records_from_warehouse`), matched first by fingerprint (the same
computation ran before), then by component (the same step with other code, parameters or
data), then by the whole history's median, and finally by :class:`CostModel` defaults, so a
node never seen before still gets a sane cost. The same history gives each component's
fingerprint *recurrence*, the materialization planner's estimate of P(reuse).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from optimizer.reuse.plan import PlanError, StoreEntry

__all__ = [
    "CostModel",
    "RunRecord",
    "NodeCost",
    "PipelineCosts",
    "estimate_costs",
    "annotate_costs",
    "recurrence_from_history",
    "frequency_from_history",
    "records_from_warehouse",
    "records_from_history",
    "startup_from_history",
    "pipeline_costs",
]


@dataclass(frozen=True)
class CostModel:
    """Defaults for nodes without history and the storage speeds used to estimate I/O.

    ``default_compute_s`` and ``default_size_bytes`` apply when nothing in history matches
    (not even the history's median); ``default_startup_s`` is the engine start-up before one
    was measured; load and write costs are a fixed overhead plus bytes over throughput,
    measured on a local disk-backed store.
    """

    default_compute_s: float = 1.0
    default_size_bytes: int = 1 << 20
    default_startup_s: float = 2.0
    read_bytes_per_s: float = 200e6
    write_bytes_per_s: float = 100e6
    load_overhead_s: float = 0.05
    write_overhead_s: float = 0.05

    def load_cost(self, size_bytes: float) -> float:
        """Seconds to read and verify a stored output of ``size_bytes``."""
        return self.load_overhead_s + float(size_bytes) / self.read_bytes_per_s

    def write_cost(self, size_bytes: float) -> float:
        """Seconds to write a stored output of ``size_bytes`` atomically."""
        return self.write_overhead_s + float(size_bytes) / self.write_bytes_per_s


@dataclass(frozen=True)
class RunRecord:
    """One past execution of a pipeline node.

    ``state`` is ``"COMPLETE"`` for a computed node and ``"CACHED"`` for one whose output was
    loaded (its ``duration_s`` is then a load time); ``run`` orders runs (oldest first).
    """

    fingerprint: Hashable | None
    duration_s: float | None
    size_bytes: float | None = None
    component: Hashable | None = None
    state: str = "COMPLETE"
    run: Hashable | None = None


@dataclass(frozen=True)
class NodeCost:
    """Estimated costs of one node and where the estimate came from.

    ``basis`` is ``"fingerprint"``, ``"component"``, ``"history"`` or ``"default"``;
    ``recurrence`` the probability that the component's next run meets a fingerprint seen
    before (None: let the planner's structural prior decide); ``frequency`` how many past
    runs used this fingerprint.
    """

    compute_cost: float
    load_cost: float
    write_cost: float
    size_bytes: int
    basis: str
    recurrence: float | None = None
    frequency: float = 1.0

    @property
    def measured(self) -> bool:
        """True when the compute cost was measured for this node's component (not a default)."""
        return self.basis in ("fingerprint", "component")


@dataclass(frozen=True)
class PipelineCosts:
    """Everything the optimizer's rules know about costs, for one pipeline run.

    ``nodes``: a :class:`NodeCost` per node of the pipeline DAG. ``startup_s``: seconds of
    starting and finishing the engine (one Beam pipeline), paid once when a node with the
    ``needs_startup`` attribute is computed. ``store``: the entries of the artifact store
    (``optimizer.reuse.plan.StoreEntry``, keyed by fingerprint), what eviction chooses from.
    """

    nodes: Mapping[Hashable, NodeCost]
    startup_s: float = 0.0
    store: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not self.startup_s >= 0:
            raise PlanError(f"startup_s={self.startup_s!r}; give the engine start-up in seconds (>= 0)")


_FIELDS = ("fingerprint", "duration_s", "size_bytes", "component", "state", "run")


def _records(records: Any) -> list[RunRecord]:
    """Accept RunRecords, mappings, tuples in RunRecord field order, or a pandas DataFrame."""
    if records is None:
        return []
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        records = records.to_dict("records")
    out: list[RunRecord] = []
    for row in records:
        if isinstance(row, RunRecord):
            out.append(row)
        elif isinstance(row, Mapping):
            out.append(RunRecord(**{k: _none(row[k]) for k in _FIELDS if k in row}))
        else:
            out.append(RunRecord(*(_none(x) for x in row)))
    for r in out:
        for name in ("duration_s", "size_bytes"):
            x = getattr(r, name)
            if x is not None and (not isinstance(x, (int, float)) or math.isnan(x) or x < 0):
                raise PlanError(
                    f"history record {r!r} has {name}={x!r}; give a number >= 0 or None"
                )
    return out


def _none(x: Any) -> Any:
    """pandas gives NaN/NaT/pd.NA for missing cells; treat them as None."""
    try:
        if x is None or x != x:  # NaN
            return None
    except (TypeError, ValueError):  # pd.NA comparisons raise
        return None
    return x


def _identity(dag: nx.DiGraph, v: Hashable) -> tuple[Hashable, Hashable]:
    data = dag.nodes[v]
    return data.get("fingerprint", v), data.get("component", v)


def estimate_costs(
    dag: nx.DiGraph, records: Any, model: CostModel | None = None
) -> dict[Hashable, NodeCost]:
    """Costs of every node of ``dag`` from past ``records``.

    A node is matched by its ``fingerprint`` attribute (default: the node key), then by its
    ``component`` attribute (default: the node key). Compute cost and size are medians of
    COMPLETE records; load cost is the median of CACHED records of the same fingerprint or
    component, else estimated from the size.
    """
    model = model or CostModel()
    rows = _records(records)
    by_fp: dict[str, dict[Hashable, list[float]]] = {
        k: defaultdict(list) for k in ("compute", "size", "load")
    }
    by_comp: dict[str, dict[Hashable, list[float]]] = {
        k: defaultdict(list) for k in ("compute", "size", "load")
    }
    every: dict[str, list[float]] = {"compute": [], "size": []}
    for r in rows:
        loaded = str(r.state).upper() == "CACHED"
        if r.duration_s is not None:
            kind = "load" if loaded else "compute"
            if r.fingerprint is not None:
                by_fp[kind][r.fingerprint].append(float(r.duration_s))
            if r.component is not None:
                by_comp[kind][r.component].append(float(r.duration_s))
            if not loaded:
                every["compute"].append(float(r.duration_s))
        if r.size_bytes is not None:
            if r.fingerprint is not None:
                by_fp["size"][r.fingerprint].append(float(r.size_bytes))
            if r.component is not None:
                by_comp["size"][r.component].append(float(r.size_bytes))
            every["size"].append(float(r.size_bytes))
    history_compute = statistics.median(every["compute"]) if every["compute"] else None
    history_size = statistics.median(every["size"]) if every["size"] else None

    def pick(kind: str, fp: Hashable, comp: Hashable) -> tuple[float | None, str]:
        if by_fp[kind].get(fp):
            return statistics.median(by_fp[kind][fp]), "fingerprint"
        if by_comp[kind].get(comp):
            return statistics.median(by_comp[kind][comp]), "component"
        return None, "default"

    out: dict[Hashable, NodeCost] = {}
    for v in dag:
        fp, comp = _identity(dag, v)
        compute, basis = pick("compute", fp, comp)
        if compute is None:
            compute = history_compute if history_compute is not None else model.default_compute_s
            basis = "history" if history_compute is not None else "default"
        size, _ = pick("size", fp, comp)
        if size is None:
            size = history_size if history_size is not None else model.default_size_bytes
        load, _ = pick("load", fp, comp)
        if load is None:
            load = model.load_cost(size)
        out[v] = NodeCost(
            compute_cost=float(compute),
            load_cost=float(load),
            write_cost=model.write_cost(size),
            size_bytes=int(size),
            basis=basis,
        )
    return out


def annotate_costs(
    dag: nx.DiGraph,
    costs: Mapping[Hashable, NodeCost],
    materialized: Iterable[Hashable] = (),
) -> nx.DiGraph:
    """A copy of ``dag`` with the attributes the planners read.

    ``compute_cost``, ``size_bytes``, ``write_cost`` and ``est_load_cost`` on every node;
    ``load_cost`` is the estimate for ``materialized`` nodes and ``math.inf`` elsewhere.
    """
    stored = set(materialized)
    missing = [v for v in dag if v not in costs]
    if missing:
        raise PlanError(f"no cost for nodes {missing[:5]!r}; estimate them with estimate_costs")
    out = dag.copy()
    for v, data in out.nodes(data=True):
        c = costs[v]
        data["compute_cost"] = c.compute_cost
        data["est_load_cost"] = c.load_cost
        data["write_cost"] = c.write_cost
        data["size_bytes"] = c.size_bytes
        data["load_cost"] = c.load_cost if v in stored else math.inf
    return out


def _history_runs(history: Any) -> list[tuple[Hashable, Hashable, Hashable]]:
    """History rows ``(run, component, fingerprint)``, in the order given (oldest first)."""
    rows: list[tuple[Hashable, Hashable, Hashable]] = []
    for r in _records_like(history):
        if isinstance(r, RunRecord):
            rows.append((r.run, r.component, r.fingerprint))
        elif isinstance(r, Mapping):
            try:
                rows.append((r["run"], r["component"], r["fingerprint"]))
            except KeyError as e:
                raise PlanError(
                    f"history row {dict(r)!r} lacks {e.args[0]!r}; give rows with run, component "
                    "and fingerprint"
                ) from None
        else:
            run, comp, fp = r
            rows.append((run, comp, fp))
    return rows


def _records_like(history: Any) -> Iterable[Any]:
    if hasattr(history, "to_dict") and hasattr(history, "columns"):
        return history.to_dict("records")
    return history


def _repeats(history: Any) -> tuple[dict[Hashable, int], dict[Hashable, int]]:
    """(hits, trials) per component: every run after the component's first is a trial, and a
    hit when the fingerprint it ran with had been seen in an earlier run."""
    seen: dict[Hashable, set[Hashable]] = defaultdict(set)
    trials: dict[Hashable, int] = defaultdict(int)
    hits: dict[Hashable, int] = defaultdict(int)
    runs_of: dict[Hashable, dict[Hashable, set[Hashable]]] = defaultdict(lambda: defaultdict(set))
    order: list[Hashable] = []
    for run, comp, fp in _history_runs(history):
        if run not in runs_of:
            order.append(run)
        runs_of[run][comp].add(fp)
    for run in order:
        for comp, fps in runs_of[run].items():
            if seen[comp]:
                trials[comp] += 1
                if fps & seen[comp]:
                    hits[comp] += 1
            seen[comp] |= fps
    return hits, trials


def recurrence_from_history(
    dag: nx.DiGraph, history: Any, *, prior: float | Mapping[Hashable, float] = 0.5
) -> dict[Hashable, float]:
    """P(reuse) of every node: how often its component's fingerprint recurred in past runs.

    For each component, every run after its first is a trial and a hit when the fingerprint
    it ran with had been seen in an earlier run (an unchanged re-run, or a revert). The
    estimate is ``(hits + 2 prior) / (trials + 2)``: a Beta prior worth two runs, so a
    component with no history gets ``prior`` (one number, or one per node).
    """
    hits, trials = _repeats(history)
    out = {}
    for v in dag:
        _, comp = _identity(dag, v)
        p = prior[v] if isinstance(prior, Mapping) else prior
        out[v] = (hits[comp] + 2 * p) / (trials[comp] + 2)
    return out


def frequency_from_history(dag: nx.DiGraph, history: Any) -> dict[Hashable, float]:
    """How many past runs used each node's fingerprint (the Experiment Graph's frequency), at least 1."""
    runs: dict[Hashable, set[Hashable]] = defaultdict(set)
    for run, _, fp in _history_runs(history):
        runs[fp].add(run)
    return {v: float(max(1, len(runs.get(_identity(dag, v)[0], ())))) for v in dag}


def records_from_warehouse(
    con: Any,
    *,
    source_id: str | None = None,
    fingerprint_property: str = "fingerprint",
    size_property: str = "size_bytes",
) -> list[RunRecord]:
    """Past executions as :class:`RunRecord` rows, read set-based from the DuckDB warehouse.

    ``con`` is a DuckDB connection to a warehouse (``provenance/schema.py``). The fingerprint
    is the execution property ``fingerprint_property`` (else the name of its TFX
    ``execution_cache`` context, TFX's cache key), the component the name of the
    execution's ``node`` context (else its type name), the size the sum of the
    ``size_property`` of its OUTPUT artifacts, the run its ``pipeline_run`` context (else
    its own id). Only finished executions with a duration are returned, oldest first.
    """
    sql = """
        WITH fp AS (
            SELECT source_id, entity_id AS execution_id,
                   any_value(coalesce(string_value, CAST(int_value AS VARCHAR))) AS fingerprint
            FROM properties WHERE entity = 'execution' AND name = $fp GROUP BY ALL
        ),
        ctx AS (
            SELECT a.source_id, a.execution_id,
                   any_value(c.name) FILTER (WHERE c.type_name = 'node') AS component,
                   any_value(c.name) FILTER (WHERE c.type_name = 'pipeline_run') AS run,
                   any_value(c.name) FILTER (WHERE c.type_name = 'execution_cache') AS cache_key
            FROM associations a JOIN contexts c USING (source_id, context_id)
            GROUP BY ALL
        ),
        size AS (
            SELECT ev.source_id, ev.execution_id,
                   sum(coalesce(p.int_value, p.double_value)) AS size_bytes
            FROM events ev JOIN properties p
              ON p.source_id = ev.source_id AND p.entity = 'artifact'
             AND p.entity_id = ev.artifact_id AND p.name = $size
            WHERE ev.type = 'OUTPUT' GROUP BY ALL
        )
        SELECT e.source_id, e.execution_id, coalesce(fp.fingerprint, ctx.cache_key) AS fingerprint, e.duration_s, size.size_bytes,
               coalesce(ctx.component, e.type_name) AS component, e.state,
               coalesce(ctx.run, e.source_id || ':' || CAST(e.execution_id AS VARCHAR)) AS run
        FROM executions e
        LEFT JOIN fp USING (source_id, execution_id)
        LEFT JOIN ctx USING (source_id, execution_id)
        LEFT JOIN size USING (source_id, execution_id)
        WHERE e.duration_s IS NOT NULL AND e.state IN ('COMPLETE', 'CACHED')
          AND ($source IS NULL OR e.source_id = $source)
        ORDER BY e.create_time, e.source_id, e.execution_id
    """
    try:
        rows = con.execute(
            sql, {"fp": fingerprint_property, "size": size_property, "source": source_id}
        ).fetchall()
    except Exception as e:  # duckdb.CatalogException and friends: not a warehouse
        raise PlanError(
            f"cannot read past runs from the warehouse ({e}); ingest MLMD first with "
            "`frugal ingest` and pass a connection to that DuckDB file"
        ) from e
    return [
        RunRecord(
            fingerprint=fpv,
            duration_s=float(d),
            size_bytes=None if s is None else float(s),
            component=comp,
            state=state,
            run=run,
        )
        for _, _, fpv, d, s, comp, state, run in rows
    ]


def records_from_history(history: Any) -> list[RunRecord]:
    """:class:`RunRecord` rows from a ``provenance.run_history.RunHistory`` (read from MLMD).

    A finished execution that computed is a COMPLETE record of its measured seconds; one that
    loaded its output (frugal's ``action`` ``load``; any other CACHED execution) a CACHED record,
    its seconds a load time; one the runner pruned keeps its fingerprint and size (for
    recurrence and sizes) without a duration. Unfinished and failed executions are skipped.
    """
    out: list[RunRecord] = []
    for e in history.executions:
        if e.state not in ("COMPLETE", "CACHED"):
            continue
        if e.action == "prune":
            state, duration = "PRUNED", None
        elif e.action == "load" or (e.action is None and e.state == "CACHED"):
            state, duration = "CACHED", e.duration_s
        else:
            state, duration = "COMPLETE", e.duration_s
        out.append(RunRecord(fingerprint=e.fingerprint, duration_s=duration, size_bytes=e.size_bytes,
                             component=e.component, state=state, run=e.run))
    return out


def startup_from_history(history: Any, model: CostModel | None = None, *, recent: int = 5) -> float:
    """The engine start-up: median of the last ``recent`` runs that measured one, else the default."""
    model = model or CostModel()
    values = [r.startup_s for r in history.runs if r.startup_s is not None][-recent:]
    return float(statistics.median(values)) if values else model.default_startup_s


def pipeline_costs(
    dag: nx.DiGraph,
    history: Any,
    *,
    stored: Iterable[tuple[Hashable, int, float, Hashable | None]] = (),
    model: CostModel | None = None,
) -> PipelineCosts:
    """What the optimizer's rules need for one run of the pipeline ``dag``, from its MLMD history.

    ``dag`` nodes carry ``fingerprint`` and ``component`` (the key of the component across
    versions, the MLMD node context name). ``history`` is a ``RunHistory``
    (``provenance.run_history.read_run_history``). Per node: compute, load, write seconds and
    size from :func:`estimate_costs` (fingerprint, then component, then the history's median,
    then ``model``'s defaults; a measured write time of the fingerprint replaces the
    estimate), the component's recurrence (:func:`recurrence_from_history`) and the
    fingerprint's frequency. ``stored``: the artifact store's entries ``(key, size_bytes,
    last_used, component or None)``; each becomes a ``StoreEntry`` valued at the recreation
    cost last recorded on its MLMD artifact (``recreation_s``), its measured load time and its
    component's recurrence.
    """
    model = model or CostModel()
    records = records_from_history(history)
    est = estimate_costs(dag, records, model)
    rows = [(r.run, r.component, r.fingerprint) for r in records if r.fingerprint is not None]
    rec = recurrence_from_history(dag, rows)
    freq = frequency_from_history(dag, rows)
    writes: dict[Hashable, list[float]] = defaultdict(list)
    loads: dict[Hashable, list[float]] = defaultdict(list)
    for e in history.executions:
        if e.fingerprint is not None and e.write_s is not None:
            writes[e.fingerprint].append(e.write_s)
    for r in records:
        if r.state == "CACHED" and r.duration_s is not None and r.fingerprint is not None:
            loads[r.fingerprint].append(r.duration_s)
    nodes = {}
    for v in dag:
        fp, _ = _identity(dag, v)
        c = est[v]
        write = statistics.median(writes[fp]) if writes.get(fp) else c.write_cost
        nodes[v] = NodeCost(c.compute_cost, c.load_cost, float(write), c.size_bytes, c.basis,
                            recurrence=rec[v], frequency=freq[v])
    hits, trials = _repeats(rows)
    recreation: dict[Hashable, float] = {}
    for a in sorted(history.artifacts.values(), key=lambda a: a.update_time_s):
        if a.recreation_s is not None:
            recreation[a.name] = a.recreation_s
    runs_with: dict[Hashable, set] = defaultdict(set)
    for run, _, fp in rows:
        runs_with[fp].add(run)
    entries = []
    for key, size, last_used, comp in stored:
        size = max(int(size), 0)
        entries.append(StoreEntry(
            key=key, size_bytes=size,
            recreation_cost=float(recreation.get(key, model.default_compute_s)),
            load_cost=float(statistics.median(loads[key])) if loads.get(key) else model.load_cost(size),
            recurrence=(hits[comp] + 1.0) / (trials[comp] + 2.0) if comp is not None else 0.5,
            frequency=float(max(1, len(runs_with.get(key, ())))),
            last_used=float(last_used)))
    return PipelineCosts(nodes=nodes, startup_s=startup_from_history(history, model), store=tuple(entries))
