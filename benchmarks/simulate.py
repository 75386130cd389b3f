"""Benchmark: simulate a paper-scale corpus (3000 pipelines x 120 days, >= 450,000 trainer executions).

Prints the corpus figures, rows/s, and the ratio of MLMD rows written per second against the
ml_metadata API writing TFX-like trainer lineage with put_lineage_subgraph in batches (measured
here, on a scratch store, just before).
The target: at least 450,000 trainer executions written in at most 10 minutes.
Last line: one JSON object.

    .venv/bin/python benchmarks/simulate.py [--pipelines 3000] [--days 120] [--stores 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (the working tree's packages first on sys.path)
from pipelines.simulator import simulate

TARGET_TRAINERS = 450_000
TARGET_SECONDS = 600.0


def api_baseline(runs: int = 2000, batch: int = 100) -> tuple[float, float, float]:
    """MLMD rows/s, executions/s and rows per CPU second of the ml_metadata API on TFX-like lineage.

    ``put_lineage_subgraph`` in batches of ``batch`` trainer executions, each with three custom
    properties, one input (a shared Examples artifact) and two new outputs (Model, ModelRun, two
    custom properties each) with one-key paths, associated with a pipeline and a run context.
    """
    import sqlite3

    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "api.sqlite"
        cfg = pb.ConnectionConfig()
        cfg.sqlite.filename_uri = str(path)
        cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        store = metadata_store.MetadataStore(cfg)
        trainer = store.put_execution_type(pb.ExecutionType(name="tfx.components.trainer.component.Trainer"))
        examples_t = store.put_artifact_type(pb.ArtifactType(name="Examples"))
        model_t = store.put_artifact_type(pb.ArtifactType(name="Model"))
        run_t = store.put_artifact_type(pb.ArtifactType(name="ModelRun"))
        pipeline_t = store.put_context_type(pb.ContextType(name="pipeline"))
        run_ct = store.put_context_type(pb.ContextType(name="pipeline_run"))
        [examples] = store.put_artifacts([pb.Artifact(type_id=examples_t, uri="/data/examples/1")])
        [pipeline] = store.put_contexts([pb.Context(type_id=pipeline_t, name="bench")])
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, runs, batch):
            executions, artifacts, edges = [], [], []
            for i in range(start, min(runs, start + batch)):
                e = pb.Execution(type_id=trainer, name=f"e{i}", last_known_state=pb.Execution.COMPLETE)
                for key in ("module_path", "train_args", "custom_config"):
                    e.custom_properties[key].string_value = '{"num_steps": 100}'
                executions.append(e)
                x = len(executions) - 1
                ev = pb.Event(type=pb.Event.INPUT, artifact_id=examples)
                ev.path.steps.add().key = "examples"
                edges.append((x, None, ev))
                for type_id, key in ((model_t, "model"), (run_t, "model_run")):
                    a = pb.Artifact(type_id=type_id, uri=f"/root/Trainer/{key}/{i}", state=pb.Artifact.LIVE)
                    a.custom_properties["tfx_version"].string_value = "1.21.0"
                    a.custom_properties["is_external"].int_value = 0
                    artifacts.append(a)
                    out = pb.Event(type=pb.Event.OUTPUT)
                    out.path.steps.add().key = key
                    edges.append((x, len(artifacts) - 1, out))
            ctx = [pb.Context(id=pipeline, type_id=pipeline_t, name="bench"),
                   pb.Context(type_id=run_ct, name=f"run-{start}")]
            store.put_lineage_subgraph(executions, artifacts, ctx, edges)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        db = sqlite3.connect(path)
        rows = sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
            "Artifact", "ArtifactProperty", "Execution", "ExecutionProperty", "Event", "EventPath",
            "Context", "Association", "Attribution"))
        db.close()
        return rows / seconds, runs / seconds, rows / cpu


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the store writers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=3000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stores", type=int, default=8)
    parser.add_argument("--keep", type=Path, default=None, help="write the corpus here and keep it")
    args = parser.parse_args()

    baseline_rows, baseline, baseline_cpu = api_baseline()
    print(f"ml_metadata API, put_lineage_subgraph in batches of 100 trainer runs: {baseline_rows:,.0f} rows/s, "
          f"{baseline:,.0f} executions/s, {baseline_cpu:,.0f} rows per CPU second")
    out = args.keep or Path(tempfile.mkdtemp(prefix="frugal-sim-bench-"))
    try:
        started = time.perf_counter()
        cpu_before = _cpu_seconds()
        result = simulate(out / "corpus", pipelines=args.pipelines, days=args.days, seed=args.seed,
                          stores=args.stores, progress=None)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        c = result.counts
        size = sum(p.stat().st_size for p in result.store_paths)
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    exec_rate = c["executions"] / seconds
    figures = {
        "pipelines": args.pipelines, "days": args.days, "stores": args.stores, "seed": args.seed,
        "trainer_executions": c["trainer_executions"], "trainings": c["trainings"],
        "trainers_cached": c["trainers_cached"], "not_pushed_fraction": c["not_pushed_fraction"],
        "redundant_executions": c["redundant_executions"], "redundant_recorded": c["redundant_recorded"],
        "executions": c["executions"], "artifacts": c["artifacts"], "events": c["events"],
        "contexts": c["contexts"], "rows": c["rows"], "store_bytes": size,
        "seconds": round(seconds, 1), "rows_per_s": round(c["rows"] / seconds),
        "cpu_seconds": round(cpu, 1), "processes": min(args.stores, os.cpu_count() or 1),
        "rows_per_cpu_s": round(c["rows"] / cpu) if cpu else None,
        "api_baseline_rows_per_cpu_s": round(baseline_cpu),
        "cpu_speedup_vs_api": round(c["rows"] / cpu / baseline_cpu, 1) if cpu else None,
        "executions_per_s": round(exec_rate), "api_baseline_rows_per_s": round(baseline_rows),
        "api_baseline_executions_per_s": round(baseline),
        "speedup_vs_api": round(c["rows"] / seconds / baseline_rows, 1),
        "meets_target": c["trainer_executions"] >= TARGET_TRAINERS and seconds <= TARGET_SECONDS,
    }
    print(f"{c['trainer_executions']:,} trainer executions ({c['trainings']:,} trainings), "
          f"{c['executions']:,} executions, {c['rows']:,} MLMD rows in {seconds:,.1f} s")
    print(f"{figures['rows_per_s']:,} rows/s = {figures['speedup_vs_api']}x the API baseline's rows/s "
          f"({exec_rate:,.0f} executions/s with all their lineage); target (>= {TARGET_TRAINERS:,} trainer executions "
          f"in <= {TARGET_SECONDS:.0f} s): {'met' if figures['meets_target'] else 'NOT met'}")
    print(f"CPU time {cpu:,.0f} s over {figures['processes']} process(es) ({figures['rows_per_cpu_s']:,} rows per CPU "
          f"second = {figures['cpu_speedup_vs_api']}x the API's): wall time on a shared machine depends on what "
          "else runs; CPU time much less")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
