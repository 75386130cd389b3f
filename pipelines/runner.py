"""Run a pipeline as ONE Beam pipeline rewritten by the optimizer's plan, and record it.

Steps of :func:`run_pipeline`:

1. fingerprint every component; verify which fingerprints the artifact store holds (a
   corrupt or missing artifact counts as absent, so it is recomputed);
2. annotate the DAG with costs (measured compute and load seconds, sizes and recurrence from
   this store's run history; sane defaults for new nodes) and ask
   ``optimizer.reuse.plan_execution`` for compute / load / prune per node and
   ``optimizer.materialize.choose_materializations`` for what to persist;
3. build one Beam pipeline: loaded nodes become reads of their Parquet parts (checksums checked
   again while reading), pruned nodes disappear, computed nodes run their transforms, and the
   chosen ones also write their output (staged, then published atomically). When nothing needs
   computing no Beam pipeline is started at all, and when only Python steps (training,
   evaluation, push) need computing from stored inputs they run in-process, without Beam;
4. measure each node (Beam's per-transform execution time), evict within the byte budget,
   update the history, and record the run into MLMD (``provenance.run_recorder``).

Runner options (``--runner=FlinkRunner`` ...) pass through to Beam; the artifact folder must
then be on a file system that the workers share.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from pipelines.api import BEAM, PYTHON, SOURCE, Component, Pipeline
from pipelines.artifact_store import (
    ROWS,
    VALUE,
    VALUE_COLUMN,
    ArtifactCorruptError,
    ArtifactStore,
    PartInfo,
    read_part_rows,
    write_part,
)
from pipelines.errors import PipelineError
from pipelines.gate import run_properties, skipped_by_prune, without

__all__ = [
    "CostHistory",
    "NodeReport",
    "RunOptions",
    "RunResult",
    "annotate_dag",
    "exact_match_plan",
    "run_pipeline",
]

log = logging.getLogger(__name__)

COMPUTE, LOAD, PRUNE = "compute", "load", "prune"
DEFAULT_COMPUTE_S = 1.0
DEFAULT_OVERHEAD_S = 2.0
DEFAULT_SIZE_BYTES = 1 << 20
LOAD_BYTES_PER_S = 40e6  # Parquet -> Python rows, conservative
WRITE_BYTES_PER_S = 20e6  # Python rows -> Parquet, conservative
LOAD_FIXED_S = 0.05
WRITE_PREFIX = "__write__"
MEASURE_PREFIX = "__measure__"
RESULT_PREFIX = "__result__"
METRICS_NAMESPACE = "frugal"


@dataclass(frozen=True)
class RunOptions:
    """How to run: where artifacts and MLMD live, the budget and the reuse strategy.

    ``strategy``: ``"optimal"`` (minimum-cut plan), ``"exact"`` (TFX-style: load every
    cached component, compute the rest). ``policy``: the materialization policy passed to
    ``choose_materializations``. ``eviction``: ``"policy"`` (the optimizer chooses) or ``"lru"``.
    ``budget_bytes`` None means unlimited.
    """

    artifacts: str | os.PathLike | None = None
    mlmd_store: str | os.PathLike | None = None
    budget_bytes: int | None = None
    reuse: bool = True
    strategy: str = "optimal"
    policy: str = "frugal"
    eviction: str = "policy"
    beam_args: tuple[str, ...] = ()
    run_id: str | None = None
    gate: Callable[[str, str], Any] | None = None  # asked before planning; see pipelines.gate


@dataclass(frozen=True)
class NodeReport:
    """What happened to one component in a run."""

    name: str
    fingerprint: str
    action: str
    materialized: bool
    seconds: float
    size_bytes: int | None


@dataclass(frozen=True)
class RunResult:
    """Outputs of a run (name -> rows or value) and what each node did."""

    run_id: str
    outputs: Mapping[str, Any]
    nodes: Mapping[str, NodeReport]
    wall_s: float
    beam_used: bool
    evicted: tuple[str, ...] = ()
    store_bytes: int = 0
    mlmd_execution_ids: Mapping[str, int] = field(default_factory=dict)
    decision: Any = None              # the gate's decision (pipelines.gate.GateDecision) when asked
    skipped: tuple[str, ...] = ()     # components a prune decision skipped (no execution recorded)

    def actions(self) -> dict[str, str]:
        """compute / load / prune per component."""
        return {n: r.action for n, r in self.nodes.items()}


# --------------------------------------------------------------------------------------------
# cost history
# --------------------------------------------------------------------------------------------
class CostHistory:
    """Measured costs kept beside the artifacts (``history.json``), written atomically.

    Per fingerprint: compute seconds, load seconds, size in bytes, runs seen. Per component
    name: the latest compute seconds and size (the estimate for a changed fingerprint) and how
    often a run met a fingerprint seen before (its recurrence).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = {"fingerprints": {}, "components": {}, "runner": {}}
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text())
                self.data["fingerprints"].update(loaded.get("fingerprints", {}))
                self.data["components"].update(loaded.get("components", {}))
                self.data["runner"].update(loaded.get("runner", {}))
            except (OSError, ValueError) as e:
                log.warning("ignoring unreadable cost history %s: %s", path, e)

    def fp(self, fp: str) -> dict[str, Any]:
        return self.data["fingerprints"].get(fp, {})

    def comp(self, key: str) -> dict[str, Any]:
        return self.data["components"].get(key, {})

    def compute_s(self, key: str, fp: str) -> float:
        return float(self.fp(fp).get("compute_s") or self.comp(key).get("compute_s") or DEFAULT_COMPUTE_S)

    def size_bytes(self, key: str, fp: str) -> int:
        return int(self.fp(fp).get("size_bytes") or self.comp(key).get("size_bytes") or DEFAULT_SIZE_BYTES)

    def load_s(self, fp: str, size_bytes: int) -> float:
        measured = self.fp(fp).get("load_s")
        return float(measured) if measured else LOAD_FIXED_S + size_bytes / LOAD_BYTES_PER_S

    def overhead_s(self) -> float:
        """Fixed seconds of starting and finishing one Beam pipeline (measured; default 2 s)."""
        return float(self.data.get("runner", {}).get("overhead_s", DEFAULT_OVERHEAD_S))

    def observe_overhead(self, seconds: float) -> None:
        r = self.data.setdefault("runner", {})
        old = r.get("overhead_s")
        r["overhead_s"] = round(seconds if old is None else 0.5 * old + 0.5 * seconds, 4)

    def recreation_s(self, fp: str) -> float:
        """Seconds to recreate ``fp`` as last recorded while it was current (Beam start-up
        included), else its own measured compute, else the default."""
        f = self.fp(fp)
        return float(f.get("recreation_s") or f.get("compute_s") or DEFAULT_COMPUTE_S)

    def observe_recreation(self, fp: str, seconds: float) -> None:
        self.data["fingerprints"].setdefault(fp, {})["recreation_s"] = round(float(seconds), 4)

    def write_s(self, fp: str, size_bytes: int) -> float:
        measured = self.fp(fp).get("write_s")
        return float(measured) if measured else LOAD_FIXED_S + size_bytes / WRITE_BYTES_PER_S

    def recurrence(self, key: str) -> float:
        """P(the component's next run meets a fingerprint seen before): (hits + 1) / (trials + 2)."""
        c = self.comp(key)
        return (c.get("repeats", 0) + 1.0) / (c.get("runs", 0) + 2.0)

    def observe(self, key: str, fp: str, *, compute_s: float | None = None, load_s: float | None = None,
                size_bytes: int | None = None, write_s: float | None = None) -> None:
        f = self.data["fingerprints"].setdefault(fp, {})
        c = self.data["components"].setdefault(key, {})
        if compute_s is not None:
            f["compute_s"] = c["compute_s"] = round(float(compute_s), 4)
        if load_s is not None:
            f["load_s"] = round(float(load_s), 4)
        if write_s is not None:
            f["write_s"] = round(float(write_s), 4)
        if size_bytes is not None:
            f["size_bytes"] = c["size_bytes"] = int(size_bytes)

    def count_run(self, key: str, fp: str) -> None:
        """Count one run of component ``key`` with ``fp``: every run after the component's
        first is a trial, and a hit when ``fp`` was seen before (re-run, revert)."""
        f = self.data["fingerprints"].setdefault(fp, {})
        c = self.data["components"].setdefault(key, {})
        if c.get("first_seen"):
            c["runs"] = c.get("runs", 0) + 1
            if f.get("seen", 0) > 0:
                c["repeats"] = c.get("repeats", 0) + 1
        c["first_seen"] = True
        f["seen"] = f.get("seen", 0) + 1

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.data, sort_keys=True))
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------
def annotate_dag(pipeline: Pipeline, fingerprints: Mapping[str, str], stored: Mapping[str, int],
                 history: CostHistory) -> nx.DiGraph:
    """The pipeline DAG with compute_cost, load_cost, size_bytes, recurrence, fingerprint."""
    g = pipeline.graph()
    for name in g.nodes:
        fp = fingerprints[name]
        key = f"{pipeline.name}.{name}"
        size = stored.get(name) or history.size_bytes(key, fp)
        g.nodes[name].update(
            fingerprint=fp,
            compute_cost=history.compute_s(key, fp),
            load_cost=history.load_s(fp, size) if name in stored else math.inf,
            size_bytes=int(size),
            est_load_cost=history.load_s(fp, size),
            write_cost=history.write_s(fp, size),
            recurrence=history.recurrence(key),
            component=key,
            materialized=name in stored,
            measured=bool(history.comp(key).get("compute_s")),
            needs_startup=pipeline.component(name).kind != PYTHON,
        )
    return g


def exact_match_plan(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> dict[Hashable, str]:
    """TFX-style caching: a needed node is loaded when its exact fingerprint is cached, else
    computed (pulling in its parents); nothing is weighed."""
    plan = {n: PRUNE for n in dag.nodes}
    stack = list(outputs)
    while stack:
        n = stack.pop()
        if plan[n] != PRUNE:
            continue
        if math.isfinite(dag.nodes[n].get("load_cost", math.inf)):
            plan[n] = LOAD
        else:
            plan[n] = COMPUTE
            stack.extend(dag.predecessors(n))
    return plan


def _compute_all_plan(dag: nx.DiGraph, outputs: Iterable[Hashable]) -> dict[Hashable, str]:
    need: set[Hashable] = set()
    for o in outputs:
        need.add(o)
        need |= nx.ancestors(dag, o)
    return {n: COMPUTE if n in need else PRUNE for n in dag.nodes}


def _plan(dag: nx.DiGraph, outputs: Sequence[str], opts: RunOptions, overhead_s: float = 0.0) -> dict[Hashable, str]:
    if not opts.reuse:
        return _compute_all_plan(dag, outputs)
    if opts.strategy == "exact":
        return exact_match_plan(dag, outputs)
    if opts.strategy != "optimal":
        raise PipelineError(f"unknown reuse strategy {opts.strategy!r}: use 'optimal' or 'exact'")
    from optimizer.reuse import plan_execution

    plan = plan_execution(dag, outputs)
    return _without_beam_if_cheaper(dag, plan, outputs, overhead_s)


def _plan_cost(dag: nx.DiGraph, plan: Mapping[Hashable, str]) -> float:
    return sum(dag.nodes[n]["compute_cost"] if a == COMPUTE else dag.nodes[n]["load_cost"]
               for n, a in plan.items() if a != PRUNE)


def _without_beam_if_cheaper(dag: nx.DiGraph, plan: Mapping[Hashable, str], outputs: Sequence[str],
                             overhead_s: float) -> dict[Hashable, str]:
    """Starting a Beam pipeline has a fixed cost, paid when a Beam step or a source is
    computed; Python steps alone run in-process. The minimum cut is optimal among plans that
    start Beam; the best plan that does not is the minimum cut with every Beam step and source
    made impossible to compute (loading what it needs, or everything when nothing computes).
    Take whichever is cheaper once the overhead is counted."""
    plan = dict(plan)
    if not any(a == COMPUTE and dag.nodes[n].get("needs_startup", True) for n, a in plan.items()):
        return plan
    from optimizer.plan import PlanError
    from optimizer.reuse import plan_execution

    h = dag.copy()
    for n, data in h.nodes(data=True):
        if data.get("needs_startup", True):
            data["compute_cost"] = math.inf
    try:
        alternative = plan_execution(h, outputs)
    except PlanError:
        return plan  # some output needs a Beam step that nothing stored can replace
    if _plan_cost(h, alternative) <= _plan_cost(dag, plan) + overhead_s:
        return alternative
    return plan


def _materializations(dag: nx.DiGraph, plan: Mapping[Hashable, str], outputs: Sequence[str],
                      opts: RunOptions, overhead_s: float = 0.0) -> tuple[set[str], frozenset[Hashable]]:
    """(nodes this run writes, the nodes the policy wants stored after the run: protected
    from eviction)."""
    if not opts.reuse or opts.artifacts is None or opts.policy == "none":
        return set(), frozenset()
    from optimizer.materialize import MaterializationConfig, choose_materializations

    budget = math.inf if opts.budget_bytes is None else opts.budget_bytes
    # recreating a Beam step also starts a Beam pipeline: every policy sees that cost
    config = MaterializationConfig(startup_cost=overhead_s)
    chosen = set(choose_materializations(dag, budget, policy=opts.policy, plan=plan, outputs=outputs,
                                         config=config))
    # A component never measured has only default costs, so the policy cannot judge it yet:
    # store it while the budget allows (its real costs are known after this run, and eviction
    # then keeps what the policy values), as Helix decides once a node's cost is observed.
    # Its size is unknown too, so it is written whatever the estimate; eviction after the run
    # brings the store back within the budget.
    explore = {n for n in dag.nodes if plan.get(n) == COMPUTE and not dag.nodes[n]["measured"]} if budget > 0 else set()
    write = {n for n in chosen | explore if plan.get(n) == COMPUTE and not dag.nodes[n]["materialized"]}
    return write, frozenset(chosen)


# --------------------------------------------------------------------------------------------
# Beam building blocks (module level so that they pickle)
# --------------------------------------------------------------------------------------------
def _row_key(row: Mapping[str, Any]) -> tuple:
    return tuple((k, v is None, 0 if v is None else v) for k, v in sorted(row.items()))


def _ordered(rows: list) -> list:
    """Rows in a deterministic order, so training sees the same data order on every runner."""
    try:
        return sorted(rows, key=_row_key)
    except TypeError:
        return sorted(rows, key=repr)


def _read_source(path: str, reader: Callable[..., Iterable[dict]], params: Mapping[str, Any]):
    yield from reader(path, **params)


def _read_part(spec: tuple[str, str]):
    path, sha = spec
    yield from read_part_rows(path, sha)


def _read_value(spec: tuple[str, str]):
    path, sha = spec
    [row] = read_part_rows(path, sha)
    yield pickle.loads(row[VALUE_COLUMN])


def _run_python(_: Any, fn: Callable[..., Any], params: Mapping[str, Any], row_args: frozenset[str],
                **inputs: Any) -> Any:
    args = {k: (_ordered(list(v)) if k in row_args else v) for k, v in inputs.items()}
    return fn(**args, **params)


def _value_to_row(value: Any) -> list[dict]:
    return [{VALUE_COLUMN: pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)}]


def _write_batch(rows: list[dict], staging: str) -> PartInfo:
    return write_part(staging, rows)


def _finalize(parts: list[PartInfo], root: str, fp: str, staging: str, kind: str, node: str) -> str:
    ArtifactStore(root).finalize(fp, staging, parts, kind=kind, node=node)
    return fp


def _apply_user_step(component: Component, inputs: dict):
    import apache_beam as beam

    class _UserStep(beam.PTransform):
        def expand(self, pcolls):
            out = component.fn(**pcolls, **component.params)
            if not isinstance(out, beam.pvalue.PCollection):
                raise PipelineError(
                    f"Beam step {component.name!r} returned {type(out).__name__}, not a PCollection: "
                    "its function must return the PCollection it builds"
                )
            return out

    return inputs | component.name >> _UserStep()


def _measure_fn(node: str):
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    class _Measure(beam.DoFn):
        def __init__(self) -> None:
            self.n = Metrics.counter(METRICS_NAMESPACE, f"{node}:elements")
            self.sampled = Metrics.counter(METRICS_NAMESPACE, f"{node}:sampled")
            self.bytes = Metrics.counter(METRICS_NAMESPACE, f"{node}:sample_bytes")
            self.i = 0

        def process(self, element):
            self.n.inc()
            if self.i % 64 == 0:
                self.sampled.inc()
                self.bytes.inc(len(pickle.dumps(element, protocol=pickle.HIGHEST_PROTOCOL)))
            self.i += 1
            return ()

    return _Measure()


def _write(pcoll, label: str, store: ArtifactStore, fp: str, kind: str, node: str) -> None:
    import apache_beam as beam

    staging = str(store.staging_dir(fp))
    if kind == VALUE:
        batches = pcoll | f"{label}/Encode" >> beam.Map(_value_to_row)
    else:
        batches = pcoll | f"{label}/Batch" >> beam.BatchElements(min_batch_size=2000, max_batch_size=200_000)
    (
        batches
        | f"{label}/WritePart" >> beam.Map(_write_batch, staging)
        | f"{label}/Parts" >> beam.combiners.ToList()
        | f"{label}/Publish" >> beam.Map(_finalize, str(store.root), fp, staging, kind, node)
    )


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
def _node_seconds(result: Any, names: Iterable[str]) -> dict[str, dict[str, float]]:
    """Per node: seconds of compute, load and write from Beam's per-transform timings."""
    out = {n: {"compute": 0.0, "load": 0.0, "write": 0.0} for n in names}
    try:
        from apache_beam.metrics import monitoring_infos as mi

        infos = result.monitoring_infos()
    except Exception:  # runners without Fn API monitoring infos
        return {}
    found = False
    for info in infos:
        if not info.urn.endswith("total_msecs:v1"):
            continue
        label = info.labels.get("PTRANSFORM", "")
        parts = label.split("/")
        try:
            secs = mi.extract_counter_value(info) / 1000.0
        except Exception:
            continue
        if parts[0] == WRITE_PREFIX and len(parts) > 1 and parts[1] in out:
            out[parts[1]]["write"] += secs
        elif parts[0] in out:
            found = True
            out[parts[0]]["load" if len(parts) > 1 and parts[1] == "Load" else "compute"] += secs
    return out if found else {}


def _counters(result: Any) -> dict[str, int]:
    try:
        from apache_beam.metrics.metric import MetricsFilter

        res = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except Exception:
        return {}
    out: dict[str, int] = {}
    for c in res.get("counters", []):
        out[c.key.metric.name] = int(c.committed if c.committed is not None else c.attempted or 0)
    return out


def _beam_options(args: Sequence[str]):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(args)
    if not any(a.startswith("--runner") for a in args):
        args.append("--runner=DirectRunner")
    return PipelineOptions(args)


def _execute(pipeline: Pipeline, plan: Mapping[Hashable, str], fps: Mapping[str, str], write: set[str],
             collect: set[str], store: ArtifactStore | None, results: ArtifactStore, opts: RunOptions
             ) -> tuple[dict[str, dict[str, float]], dict[str, int], float]:
    """Build and run the Beam pipeline for ``plan``; returns per-node seconds, counters, wall s."""
    import apache_beam as beam

    p = beam.Pipeline(options=_beam_options(opts.beam_args))
    g = pipeline.graph()
    pcs: dict[str, Any] = {}
    for name in pipeline.topological_order():
        c = pipeline.component(name)
        action = plan[name]
        if action == PRUNE:
            continue
        if action == LOAD:
            if not any(plan[ch] == COMPUTE for ch in g.successors(name)):
                continue  # an output read directly after the run
            assert store is not None
            specs = store.part_specs(fps[name])
            reader = _read_part if c.produces_rows else _read_value
            pcs[name] = (p | f"{name}/Load/Parts" >> beam.Create(specs)
                         | f"{name}/Load/Read" >> beam.FlatMap(reader))
            continue
        if c.kind == SOURCE:
            pcs[name] = (p | f"{name}/Files" >> beam.Create(c.source_files())
                         | f"{name}/Read" >> beam.FlatMap(_read_source, c.fn, dict(c.params)))
        elif c.kind == BEAM:
            pcs[name] = _apply_user_step(c, {arg: pcs[parent] for arg, parent in c.inputs.items()})
        elif c.kind == PYTHON:
            side = {}
            row_args = set()
            for arg, parent in c.inputs.items():
                if pipeline.component(parent).produces_rows:
                    side[arg] = beam.pvalue.AsList(pcs[parent])
                    row_args.add(arg)
                else:
                    side[arg] = beam.pvalue.AsSingleton(pcs[parent])
            pcs[name] = (p | f"{name}/Start" >> beam.Create([None])
                         | f"{name}/Run" >> beam.Map(_run_python, c.fn, dict(c.params), frozenset(row_args), **side))
        else:
            raise PipelineError(f"component {name!r} has unknown kind {c.kind!r}")
        if c.produces_rows:
            _ = pcs[name] | f"{MEASURE_PREFIX}/{name}" >> beam.ParDo(_measure_fn(name))
        kind = ROWS if c.produces_rows else VALUE
        if name in write:
            assert store is not None
            _write(pcs[name], f"{WRITE_PREFIX}/{name}", store, fps[name], kind, name)
        if name in collect:
            _write(pcs[name], f"{RESULT_PREFIX}/{name}", results, fps[name], kind, name)
    t0 = time.perf_counter()
    result = p.run()
    result.wait_until_finish()
    wall = time.perf_counter() - t0
    return _node_seconds(result, [c.name for c in pipeline.components]), _counters(result), wall


def _python_only(pipeline: Pipeline, plan: Mapping[Hashable, str]) -> bool:
    """True when every computed node is a Python step: the run needs no Beam pipeline."""
    return all(pipeline.component(n).kind == PYTHON for n, a in plan.items() if a == COMPUTE)


def _execute_in_process(pipeline: Pipeline, plan: Mapping[Hashable, str], fps: Mapping[str, str],
                        write: set[str], collect: set[str], store: ArtifactStore | None,
                        results: ArtifactStore, opts: RunOptions
                        ) -> tuple[dict[str, dict[str, float]], dict[str, int], float]:
    """Run a plan whose computed nodes are all Python steps without starting Beam.

    Their loaded inputs are read (checksums verified) from the store and the steps run in
    topological order with the same argument order as inside Beam (rows sorted), so the
    outputs equal the Beam path's. Starting a Beam pipeline costs seconds; an edit to the
    evaluation or a hyperparameter with stored training data needs none.
    """
    g = pipeline.graph()
    values: dict[str, Any] = {}
    seconds: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for name in pipeline.topological_order():
        c = pipeline.component(name)
        action = plan[name]
        entry = seconds.setdefault(name, {"compute": 0.0, "load": 0.0, "write": 0.0})
        if action == LOAD and any(plan[ch] == COMPUTE for ch in g.successors(name)):
            assert store is not None
            t = time.perf_counter()
            values[name] = store.read_rows(fps[name]) if c.produces_rows else store.read_value(fps[name])
            entry["load"] += time.perf_counter() - t
        elif action == COMPUTE:
            row_args = frozenset(a for a, parent in c.inputs.items() if pipeline.component(parent).produces_rows)
            t = time.perf_counter()
            values[name] = _run_python(None, c.fn, dict(c.params), row_args,
                                       **{a: values[parent] for a, parent in c.inputs.items()})
            entry["compute"] += time.perf_counter() - t
            if name in write:
                assert store is not None
                t = time.perf_counter()
                store.write_value(fps[name], values[name], node=name)
                entry["write"] += time.perf_counter() - t
            if name in collect:
                results.write_value(fps[name], values[name], node=name)
    return seconds, {}, time.perf_counter() - t0


def run_pipeline(pipeline: Pipeline, options: RunOptions | None = None) -> RunResult:
    """Plan, rewrite and run ``pipeline`` once; record it into MLMD when a store is given.

    With ``options.gate`` the gate is asked first; a prune runs the pipeline without its
    training and what depends on it (``pipelines.gate``).
    """
    opts = options or RunOptions()
    t_start = time.perf_counter()
    run_id = opts.run_id or f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}.{uuid.uuid4().hex[:8]}"
    full = pipeline
    decision, skipped = None, ()
    if opts.gate is not None:
        prunable = skipped_by_prune(pipeline)
        decision = opts.gate(pipeline.name, run_id)
        if decision.action == "prune":
            skipped = prunable
            pipeline = without(pipeline, skipped)
            log.info("decision %s: prune; skipping %s", decision.decision_id, ", ".join(skipped))
    started = time.time()  # after the decision: the recorded executions start after it, as under a TFX gate
    store = ArtifactStore(opts.artifacts) if opts.artifacts is not None else None
    history = CostHistory(store.root / "history.json" if store else None)
    all_fps = full.fingerprints()
    fps = {c.name: all_fps[c.name] for c in pipeline.components}
    outputs = pipeline.requested_outputs()
    tmp_results = Path(tempfile.mkdtemp(prefix="frugal-results-"))
    try:
        for attempt in range(3):
            stored: dict[str, int] = {}
            if store is not None and opts.reuse:
                for name, fp in fps.items():
                    m = store.verify(fp)
                    if m is not None:
                        stored[name] = m.size_bytes
            dag = annotate_dag(pipeline, fps, stored, history)
            plan = _plan(dag, outputs, opts, history.overhead_s())
            write, wanted = _materializations(dag, plan, outputs, opts, history.overhead_s())
            collect = {n for n in pipeline.topological_order() if plan[n] == COMPUTE and n not in write
                       and (n in outputs or not pipeline.component(n).produces_rows)}
            results = ArtifactStore(tmp_results / f"attempt{attempt}")
            seconds: dict[str, dict[str, float]] = {}
            counters: dict[str, int] = {}
            computing = any(a == COMPUTE for a in plan.values())
            in_process = computing and _python_only(pipeline, plan)
            beam_used = computing and not in_process
            wall = 0.0
            if computing:
                try:
                    execute = _execute_in_process if in_process else _execute
                    seconds, counters, wall = execute(pipeline, plan, fps, write, collect, store, results, opts)
                except Exception as e:
                    broken = [n for n in stored if store is not None and store.verify(fps[n]) is None]
                    if broken and attempt < 2:
                        log.warning("materialized %s turned out corrupt (%s); recomputing", broken, e)
                        continue
                    if isinstance(e, PipelineError):
                        raise
                    if "ArtifactCorruptError" in repr(e):
                        raise ArtifactCorruptError(str(e)) from e
                    raise
            # read outputs, verify loaded ones (fall back to another attempt if corrupt)
            out: dict[str, Any] = {}
            values: dict[str, Any] = {}
            try:
                for name in pipeline.topological_order():
                    c = pipeline.component(name)
                    if name not in outputs and name not in collect:
                        continue
                    if plan[name] == PRUNE:
                        continue
                    src = store if (plan[name] == LOAD or name in write) else results
                    assert src is not None
                    t_read = time.perf_counter()
                    val = src.read_rows(fps[name]) if c.produces_rows else src.read_value(fps[name])
                    if plan[name] == LOAD:
                        entry = seconds.setdefault(name, {"compute": 0.0, "load": 0.0, "write": 0.0})
                        entry["load"] += time.perf_counter() - t_read
                    if not c.produces_rows:
                        values[name] = val
                    if name in outputs:
                        out[name] = val
            except ArtifactCorruptError as e:
                if attempt < 2:
                    log.warning("output artifact corrupt (%s); recomputing", e)
                    if store is not None:
                        for n in stored:
                            store.verify(fps[n])
                    continue
                raise
            break
        else:  # pragma: no cover - loop always breaks or raises
            raise PipelineError("run failed after retries")

        sizes = _record_costs(pipeline, fps, plan, write, seconds, counters, wall if beam_used else 0.0,
                              store, history, results)
        evicted: list[str] = []
        if store is not None:
            if opts.budget_bytes is not None:
                evicted = _evict(store, pipeline, fps, history, opts, {fps[n] for n in wanted}, dag)
            for name in pipeline.components:
                history.count_run(f"{pipeline.name}.{name.name}", fps[name.name])
            history.save()
        wall_s = time.perf_counter() - t_start
        reports = {}
        for name in full.topological_order():
            fp = all_fps[name]
            if name in skipped:
                reports[name] = NodeReport(name, fp, PRUNE, False, 0.0, None)
                continue
            s = seconds.get(name, {})
            secs = s.get("compute", 0.0) if plan[name] == COMPUTE else s.get("load", 0.0)
            on_disk = store is not None and store.manifest(fp) is not None
            reports[name] = NodeReport(name, fp, plan[name], on_disk, round(secs, 4), sizes.get(name))
        ids: dict[str, int] = {}
        if opts.mlmd_store is not None:
            ids = _record_mlmd(opts.mlmd_store, pipeline, fps, plan, reports, values, store, run_id, started,
                               run_properties(decision) if decision is not None else {})
        return RunResult(run_id, out, reports, wall_s, beam_used, tuple(evicted),
                         store.total_bytes() if store else 0, ids, decision, skipped)
    finally:
        shutil.rmtree(tmp_results, ignore_errors=True)


def _record_costs(pipeline: Pipeline, fps: Mapping[str, str], plan: Mapping[Hashable, str], write: set[str],
                  seconds: Mapping[str, Mapping[str, float]], counters: Mapping[str, int], wall: float,
                  store: ArtifactStore | None, history: CostHistory,
                  results: ArtifactStore | None = None) -> dict[str, int]:
    """Feed the measured seconds and sizes of this run into the history; returns sizes."""
    sizes: dict[str, int] = {}
    computed = [n for n in pipeline.topological_order() if plan[n] == COMPUTE]
    if computed and not any(v.get("compute") for v in seconds.values()):
        # no per-transform timings (runner without Fn API monitoring): split the wall time
        est = {n: history.compute_s(f"{pipeline.name}.{n}", fps[n]) for n in computed}
        total = sum(est.values()) or 1.0
        seconds = {**seconds, **{n: {"compute": wall * est[n] / total, "load": 0.0, "write": 0.0} for n in computed}}
    if computed and wall > 0 and any(v.get("compute") for v in seconds.values()):
        busy = sum(v.get("compute", 0.0) + v.get("load", 0.0) + v.get("write", 0.0) for v in seconds.values())
        history.observe_overhead(max(wall - busy, 0.0))
    for name in pipeline.topological_order():
        key, fp = f"{pipeline.name}.{name}", fps[name]
        m = store.manifest(fp) if store is not None else None
        if m is None and results is not None:
            m = results.manifest(fp)
        size: int | None = m.size_bytes if m is not None else None
        if size is None and plan[name] == COMPUTE:
            n_el = counters.get(f"{name}:elements")
            sampled = counters.get(f"{name}:sampled")
            if n_el and sampled:
                # pickled size overstates Parquet; halve it as a first estimate
                size = int(n_el * counters.get(f"{name}:sample_bytes", 0) / sampled / 2)
        if size is not None:
            sizes[name] = size
        s = seconds.get(name, {})
        history.observe(
            key, fp,
            compute_s=max(s.get("compute", 0.0), 0.01) if plan[name] == COMPUTE and s else None,
            load_s=max(s.get("load", 0.0), 0.01) if plan[name] == LOAD and s.get("load") else None,
            size_bytes=size,
            write_s=max(s.get("write", 0.0), 0.01) if name in write and s.get("write") else None,
        )
    return sizes


def _evict(store: ArtifactStore, pipeline: Pipeline, fps: Mapping[str, str], history: CostHistory,
           opts: RunOptions, protect: set[str], dag: nx.DiGraph) -> list[str]:
    assert opts.budget_bytes is not None
    if opts.eviction == "lru":
        return store.evict(opts.budget_bytes)
    by_fp_node = {fp: f"{pipeline.name}.{n}" for n, fp in fps.items()}
    # this pipeline's outputs: recreated from what else stays stored (Beam start-up included),
    # recorded for when they are no longer current
    for fp, seconds in _recreation_if_evicted(store, fps, dag, history.overhead_s()).items():
        history.observe_recreation(fp, seconds)

    def choose(entries, budget):
        from optimizer.materialize import choose_evictions
        from optimizer.plan import StoreEntry

        rows = []
        for e in entries:
            h = history.fp(e.key)
            comp_key = by_fp_node.get(e.key) or (f"{pipeline.name}.{e.node}" if e.node else "")
            size = max(int(e.size_bytes), 0)
            rows.append(StoreEntry(
                key=e.key,
                size_bytes=size,
                recreation_cost=history.recreation_s(e.key),
                load_cost=float(history.load_s(e.key, size)),
                recurrence=min(1.0, max(0.0, history.recurrence(comp_key) if comp_key else 0.5)),
                frequency=float(h.get("seen", 1)),
                last_used=float(e.last_used_at),
                pinned=False,
            ))
        policy = opts.policy if opts.policy != "none" else "all"
        return choose_evictions(rows, budget, policy=policy, protect=protect)

    return store.evict(opts.budget_bytes, choose=choose)


def _recreation_if_evicted(store: ArtifactStore, fps: Mapping[str, str], dag: nx.DiGraph,
                           overhead_s: float) -> dict[str, float]:
    """Per stored fingerprint of this pipeline: the cost to recreate it were it evicted, from
    the other stored outputs (their loads), its unstored ancestors (their compute) and the
    Beam start-up when one of those is a Beam step."""
    from optimizer.materialize import recreation_costs

    stored = {n for n, fp in fps.items() if store.manifest(fp) is not None}
    out: dict[str, float] = {}
    for n in stored:
        out[fps[n]] = recreation_costs(dag, stored - {n}, startup_cost=overhead_s)[n]
    return out


def _record_mlmd(path: str | os.PathLike, pipeline: Pipeline, fps: Mapping[str, str], plan: Mapping[Hashable, str],
                 reports: Mapping[str, NodeReport], values: Mapping[str, Any], store: ArtifactStore | None,
                 run_id: str, started: float, properties: Mapping[str, Any] | None = None) -> dict[str, int]:
    from provenance.run_recorder import ArtifactRecord, ExecutionRecord, RunRecord, record_run

    def artifact(name: str) -> ArtifactRecord:
        c = pipeline.component(name)
        props: dict[str, Any] = {"component": name}
        v = values.get(name)
        if isinstance(v, Mapping):
            for flag in ("pushed", "blessed"):
                if flag in v:
                    props[flag] = int(bool(v[flag]))
            for k, x in v.items():
                if k not in ("pushed", "blessed") and isinstance(x, (int, float, str)) and not isinstance(x, bool):
                    props[k] = x
        if c.output_type == "PushedModel" and "pushed" not in props:
            props["pushed"] = 0
        uri = str(store.path(fps[name])) if store is not None and reports[name].materialized else ""
        return ArtifactRecord(key=fps[name], type_name=c.output_type or "Artifact", uri=uri, properties=props)

    executions = []
    for name in pipeline.topological_order():
        c = pipeline.component(name)
        r = reports[name]
        props: dict[str, Any] = {"fingerprint": fps[name], "action": r.action}
        if c.params:
            props["parameters"] = json.dumps(dict(c.params), sort_keys=True, default=repr)
        executions.append(ExecutionRecord(
            node=name,
            type_name=c.type_name or name,
            state="COMPLETE" if plan[name] == COMPUTE else "CACHED",
            duration_s=r.seconds,
            inputs={arg: artifact(parent) for arg, parent in c.inputs.items()},
            outputs={"output" if c.kind != SOURCE else "examples": artifact(name)},
            properties=props,
        ))
    return record_run(path, RunRecord(pipeline.name, run_id, started, executions, dict(properties or {})))
