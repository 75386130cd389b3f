"""Run a pipeline as ONE Beam pipeline rewritten by the optimizer's plan, and record it.

Steps of :func:`run_pipeline`:

1. fingerprint every component; verify which fingerprints the artifact store holds (a
   corrupt or missing artifact counts as absent, so it is recomputed);
2. gather what the optimizer needs (the DAG with fingerprints and stored outputs, costs and
   the store's entries) and ask ``optimizer.reuse.optimize.optimize`` for the plan: compute / load /
   prune per node and which outputs to write. The runner makes no decision of its own;
3. apply the plan: one Beam pipeline where loaded nodes become reads of their Parquet parts
   (checksums checked again while reading), pruned nodes disappear, computed nodes run their
   transforms, and the written ones also write their output (staged, then published
   atomically). When nothing needs computing no Beam pipeline is started at all, and when only
   Python steps (training, evaluation, push) compute they run in-process, without Beam;
4. measure each node (Beam's per-transform execution time), apply the optimizer's eviction
   rule to the store as the run left it, and record the run.

Runner options (``--runner=FlinkRunner`` ...) pass through to Beam; the artifact folder must
then be on a file system that the workers share.
"""

from __future__ import annotations

import json
import logging
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
from optimizer.reuse.costs import PipelineCosts
from optimizer.reuse.costs import pipeline_costs as costs_from_history
from optimizer.reuse.rules.evict_stored import evict_stored
from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.optimize import annotate, optimize
from optimizer.reuse.plan import COMPUTE, LOAD, PRUNE, Plan
from pipelines.errors import PipelineError
from pipelines.gate import run_properties, skipped_by_prune, without
from provenance.run_history import RunHistory, read_run_history
from provenance.run_recorder import RunWriter, update_artifacts

__all__ = [
    "NodeReport",
    "RunOptions",
    "RunResult",
    "optimizer_config",
    "pipeline_costs",
    "pipeline_graph",
    "run_pipeline",
]

log = logging.getLogger(__name__)

WRITE_PREFIX = "__write__"
MEASURE_PREFIX = "__measure__"
RESULT_PREFIX = "__result__"
METRICS_NAMESPACE = "frugal"
MLMD_FILE = "mlmd.sqlite"  # the run history beside the artifacts when no MLMD store is given


@dataclass(frozen=True)
class RunOptions:
    """How to run: where artifacts and MLMD live, the budget and the reuse strategy.

    ``strategy``: ``"optimal"`` (minimum-cut plan), ``"exact"`` (TFX-style: load every
    cached component, compute the rest). ``policy``: the materialization policy passed to
    ``choose_materializations``. ``eviction``: ``"policy"`` (the optimizer chooses) or ``"lru"``.
    ``budget_bytes`` None means unlimited. ``mlmd_store``: where runs are recorded and costs are
    read from (a SQLite path or a server address); by default ``mlmd.sqlite`` in the artifact
    folder, and nothing is recorded when neither is given.
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
# planning: the optimizer decides, the runner only gathers what it needs to know
# --------------------------------------------------------------------------------------------
def pipeline_graph(pipeline: Pipeline, fingerprints: Mapping[str, str], stored: Mapping[str, int]) -> nx.DiGraph:
    """The pipeline DAG as the optimizer reads it: per node its fingerprint, component key,
    whether its output is stored, and whether computing it starts the engine (not for Python
    steps, which run in-process)."""
    g = pipeline.graph()
    for name in g.nodes:
        g.nodes[name].update(
            fingerprint=fingerprints[name],
            component=f"{pipeline.name}.{name}",
            materialized=name in stored,
            needs_startup=pipeline.component(name).kind != PYTHON,
        )
    return g


def pipeline_costs(pipeline: Pipeline, fingerprints: Mapping[str, str], history: RunHistory,
                   store: ArtifactStore | None) -> PipelineCosts:
    """What the optimizer knows about costs, all read from the pipeline's MLMD history
    (``optimizer.reuse.costs.pipeline_costs``), plus the artifact store's entries."""
    graph = pipeline_graph(pipeline, fingerprints, {})
    stored = []
    if store is not None:
        for e in store.entries():
            stored.append((e.key, e.size_bytes, e.last_used_at, f"{pipeline.name}.{e.node}" if e.node else None))
    return costs_from_history(graph, history, stored=stored)


def optimizer_config(opts: RunOptions, outputs: Sequence[str]) -> OptimizerConfig:
    """The optimizer's configuration for a run with ``opts``."""
    return OptimizerConfig(outputs=tuple(outputs), reuse=opts.reuse, strategy=opts.strategy, policy=opts.policy,
                           store=opts.artifacts is not None, budget_bytes=opts.budget_bytes, eviction=opts.eviction)


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
                        results: ArtifactStore, opts: RunOptions, steps: _StepRecorder | None = None
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
            token = steps.start(name, values) if steps is not None else None
            try:
                t = time.perf_counter()
                values[name] = _run_python(None, c.fn, dict(c.params), row_args,
                                           **{a: values[parent] for a, parent in c.inputs.items()})
                entry["compute"] += time.perf_counter() - t
                if name in write:
                    assert store is not None
                    t = time.perf_counter()
                    store.write_value(fps[name], values[name], node=name)
                    entry["write"] += time.perf_counter() - t
            except BaseException:
                if steps is not None and token is not None:
                    steps.fail(name, token)
                raise
            if steps is not None and token is not None:
                steps.end(name, token, values[name], entry["write"])
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
    store = ArtifactStore(opts.artifacts) if opts.artifacts is not None else None
    mlmd = opts.mlmd_store if opts.mlmd_store is not None else (store.root / MLMD_FILE if store else None)
    history = read_run_history(mlmd, pipeline=pipeline.name) if mlmd is not None else RunHistory()
    writer = RunWriter(mlmd, pipeline.name, run_id, run_properties(decision) if decision is not None else {}
                       ) if mlmd is not None else None
    steps: _StepRecorder | None = None
    all_fps = full.fingerprints()
    fps = {c.name: all_fps[c.name] for c in pipeline.components}
    outputs = pipeline.requested_outputs()
    config = optimizer_config(opts, outputs)
    tmp_results = Path(tempfile.mkdtemp(prefix="frugal-results-"))
    try:
        for attempt in range(3):
            stored: dict[str, int] = {}
            if store is not None and opts.reuse:
                for name, fp in fps.items():
                    m = store.verify(fp)
                    if m is not None:
                        stored[name] = m.size_bytes
            graph = pipeline_graph(pipeline, fps, stored)
            costs = pipeline_costs(pipeline, fps, history, store)
            decided = optimize(graph, costs, config)
            plan, write = dict(decided.decisions), set(decided.write)
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
                    if in_process:
                        steps = _StepRecorder(writer, pipeline, fps, store) if writer is not None else None
                        seconds, counters, wall = _execute_in_process(pipeline, plan, fps, write, collect, store,
                                                                      results, opts, steps)
                    else:
                        seconds, counters, wall = _execute(pipeline, plan, fps, write, collect, store, results, opts)
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

        measured = _measure(pipeline, fps, plan, write, seconds, counters, wall if beam_used else 0.0,
                            store, results, costs)
        reports = _reports(pipeline, fps, plan, seconds, measured, store)
        ids: dict[str, int] = {}
        if writer is not None:
            ids = _record_mlmd(writer, pipeline, fps, plan, reports, values, store, measured,
                               steps.ids if steps is not None else {})
        evicted: list[str] = []
        if store is not None and opts.budget_bytes is not None:
            after = read_run_history(mlmd, pipeline=pipeline.name) if mlmd is not None else history
            evicted, recreation = _evict(store, pipeline, fps, after, config, decided, graph)
            if mlmd is not None:
                update_artifacts(mlmd, {fp: {"recreation_s": round(x, 4)} for fp, x in recreation.items()},
                                 deleted=evicted)
            reports = _reports(pipeline, fps, plan, seconds, measured, store)
        wall_s = time.perf_counter() - t_start
        for name in skipped:
            reports[name] = NodeReport(name, all_fps[name], PRUNE, False, 0.0, None)
        reports = {n: reports[n] for n in full.topological_order()}
        return RunResult(run_id, out, reports, wall_s, beam_used, tuple(evicted),
                         store.total_bytes() if store else 0, ids, decision, skipped)
    finally:
        shutil.rmtree(tmp_results, ignore_errors=True)


@dataclass(frozen=True)
class _Measured:
    """What one run measured: per node its seconds (compute or load), write seconds and output
    size, and the engine's start-up (None when no engine ran or it could not be told apart)."""

    duration_s: Mapping[str, float]
    write_s: Mapping[str, float]
    size_bytes: Mapping[str, int]
    startup_s: float | None


def _measure(pipeline: Pipeline, fps: Mapping[str, str], plan: Mapping[Hashable, str], write: set[str],
             seconds: Mapping[str, Mapping[str, float]], counters: Mapping[str, int], wall: float,
             store: ArtifactStore | None, results: ArtifactStore | None, costs: PipelineCosts) -> _Measured:
    """The run's measurements, as they go into MLMD."""
    computed = [n for n in pipeline.topological_order() if plan[n] == COMPUTE]
    if computed and not any(v.get("compute") for v in seconds.values()):
        # no per-transform timings (runner without Fn API monitoring): split the wall time
        est = {n: costs.nodes[n].compute_cost for n in computed}
        total = sum(est.values()) or 1.0
        seconds = {**seconds, **{n: {"compute": wall * est[n] / total, "load": 0.0, "write": 0.0} for n in computed}}
    startup = None
    if computed and wall > 0 and any(v.get("compute") for v in seconds.values()):
        busy = sum(v.get("compute", 0.0) + v.get("load", 0.0) + v.get("write", 0.0) for v in seconds.values())
        startup = round(max(wall - busy, 0.0), 4)
    duration: dict[str, float] = {}
    writes: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for name in pipeline.topological_order():
        fp = fps[name]
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
        if plan[name] == COMPUTE:
            duration[name] = round(max(s.get("compute", 0.0), 0.01), 4)
        elif plan[name] == LOAD and s.get("load"):
            duration[name] = round(max(s.get("load", 0.0), 0.01), 4)
        else:
            duration[name] = 0.0
        if name in write and s.get("write"):
            writes[name] = round(max(s.get("write", 0.0), 0.01), 4)
    return _Measured(duration, writes, sizes, startup)


def _reports(pipeline: Pipeline, fps: Mapping[str, str], plan: Mapping[Hashable, str],
             seconds: Mapping[str, Mapping[str, float]], measured: _Measured,
             store: ArtifactStore | None) -> dict[str, NodeReport]:
    reports = {}
    for name in pipeline.topological_order():
        fp = fps[name]
        s = seconds.get(name, {})
        secs = s.get("compute", 0.0) if plan[name] == COMPUTE else s.get("load", 0.0)
        on_disk = store is not None and store.manifest(fp) is not None
        reports[name] = NodeReport(name, fp, plan[name], on_disk, round(secs, 4), measured.size_bytes.get(name))
    return reports


def _evict(store: ArtifactStore, pipeline: Pipeline, fps: Mapping[str, str], history: RunHistory,
           config: OptimizerConfig, decided: Plan, graph: nx.DiGraph) -> tuple[list[str], Mapping[str, float]]:
    """Apply the optimizer's eviction rule to the store as the run left it (measured sizes and
    costs, this run included); returns the evicted keys and the recreation costs to record."""
    assert config.budget_bytes is not None
    costs = pipeline_costs(pipeline, fps, history, store)
    after = evict_stored(decided, annotate(graph, costs), costs, config)
    return store.evict(config.budget_bytes, choose=lambda entries, budget: after.evict), after.recreation_s


def _artifact_record(pipeline: Pipeline, fps: Mapping[str, str], name: str, value: Any, uri: str,
                     size: int | None):
    """The MLMD artifact of ``name``'s output: its fingerprint, type, where it is stored, its
    size, and scalar fields of its value (``pushed``/``blessed`` as 0/1)."""
    from provenance.run_recorder import ArtifactRecord

    c = pipeline.component(name)
    props: dict[str, Any] = {"component": name}
    if isinstance(value, Mapping):
        for flag in ("pushed", "blessed"):
            if flag in value:
                props[flag] = int(bool(value[flag]))
        for k, x in value.items():
            if k not in ("pushed", "blessed") and isinstance(x, (int, float, str)) and not isinstance(x, bool):
                props[k] = x
    if c.output_type == "PushedModel" and "pushed" not in props:
        props["pushed"] = 0
    if size is not None:
        props["size_bytes"] = int(size)
    return ArtifactRecord(key=fps[name], type_name=c.output_type or "Artifact", uri=uri, properties=props)


def _execution_properties(pipeline: Pipeline, fps: Mapping[str, str], name: str, action: str) -> dict[str, Any]:
    c = pipeline.component(name)
    props: dict[str, Any] = {"fingerprint": fps[name], "action": action}
    if c.params:
        props["parameters"] = json.dumps(dict(c.params), sort_keys=True, default=repr)
    return props


def _output_key(pipeline: Pipeline, name: str) -> str:
    return "output" if pipeline.component(name).kind != SOURCE else "examples"


class _StepRecorder:
    """Records Python steps that run on their own (in-process) as they run: RUNNING when one
    starts, COMPLETE (or FAILED) when it ends, so that MLMD's own stamps measure it."""

    def __init__(self, writer: Any, pipeline: Pipeline, fps: Mapping[str, str], store: ArtifactStore | None) -> None:
        self.writer, self.pipeline, self.fps, self.store = writer, pipeline, fps, store
        self.ids: dict[str, int] = {}

    def _record(self, name: str, value: Any) -> Any:
        m = self.store.manifest(self.fps[name]) if self.store is not None else None
        uri = str(self.store.path(self.fps[name])) if m is not None else ""
        return _artifact_record(self.pipeline, self.fps, name, value, uri, m.size_bytes if m is not None else None)

    def start(self, name: str, inputs: Mapping[str, Any]) -> int:
        c = self.pipeline.component(name)
        return self.writer.start(name, c.type_name or name,
                                 {arg: self._record(parent, inputs.get(parent)) for arg, parent in c.inputs.items()})

    def end(self, name: str, token: int, value: Any, write_s: float | None) -> None:
        from provenance.run_recorder import ExecutionRecord

        c = self.pipeline.component(name)
        props = _execution_properties(self.pipeline, self.fps, name, COMPUTE)
        if write_s:
            props["write_s"] = round(max(write_s, 0.01), 4)
        self.ids[name] = self.writer.finish(token, ExecutionRecord(
            node=name, type_name=c.type_name or name, state="COMPLETE", duration_s=0.0,
            outputs={_output_key(self.pipeline, name): self._record(name, value)}, properties=props))

    def fail(self, name: str, token: int) -> None:
        from provenance.run_recorder import ExecutionRecord

        c = self.pipeline.component(name)
        self.writer.finish(token, ExecutionRecord(node=name, type_name=c.type_name or name, state="FAILED",
                                                  duration_s=0.0,
                                                  properties=_execution_properties(self.pipeline, self.fps, name,
                                                                                   COMPUTE)))


def _record_mlmd(writer: Any, pipeline: Pipeline, fps: Mapping[str, str], plan: Mapping[Hashable, str],
                 reports: Mapping[str, NodeReport], values: Mapping[str, Any], store: ArtifactStore | None,
                 measured: _Measured, recorded: Mapping[str, int]) -> dict[str, int]:
    """Record every node the run has not recorded yet, each with its measured ``duration_s``."""
    from provenance.run_recorder import ExecutionRecord

    def artifact(name: str) -> Any:
        uri = str(store.path(fps[name])) if store is not None and reports[name].materialized else ""
        return _artifact_record(pipeline, fps, name, values.get(name), uri, measured.size_bytes.get(name))

    if measured.startup_s is not None:
        writer.set_run_properties({"startup_s": measured.startup_s})
    ids = dict(recorded)
    for name in pipeline.topological_order():
        if name in ids:
            continue
        c = pipeline.component(name)
        props = _execution_properties(pipeline, fps, name, reports[name].action)
        if name in measured.write_s:
            props["write_s"] = measured.write_s[name]
        ids[name] = writer.put(ExecutionRecord(
            node=name,
            type_name=c.type_name or name,
            state="COMPLETE" if plan[name] == COMPUTE else "CACHED",
            duration_s=measured.duration_s[name],
            inputs={arg: artifact(parent) for arg, parent in c.inputs.items()},
            outputs={_output_key(pipeline, name): artifact(name)},
            properties=props,
        ))
    return ids
