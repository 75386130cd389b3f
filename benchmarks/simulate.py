"""Benchmark: simulate a paper-scale corpus (3000 pipelines x 120 days, >= 450,000 trainer executions).

Prints the corpus figures, rows/s, and the ratio of executions written per second against the
ml_metadata API writing executions in batches of 1,000 (measured here on a scratch store).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.simulator import simulate  # noqa: E402

TARGET_TRAINERS = 450_000
TARGET_SECONDS = 600.0


def api_baseline(n: int = 5000, batch: int = 1000) -> float:
    """Executions/s that the ml_metadata API writes with put_executions in batches."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        cfg = pb.ConnectionConfig()
        cfg.sqlite.filename_uri = str(Path(tmp) / "api.sqlite")
        cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        store = metadata_store.MetadataStore(cfg)
        tid = store.put_execution_type(pb.ExecutionType(name="tfx.components.trainer.component.Trainer"))
        started = time.perf_counter()
        for start in range(0, n, batch):
            execs = []
            for i in range(start, min(n, start + batch)):
                e = pb.Execution(type_id=tid, name=f"e{i}", last_known_state=pb.Execution.COMPLETE)
                e.custom_properties["train_args"].string_value = '{"num_steps": 100}'
                execs.append(e)
            store.put_executions(execs)
        return n / (time.perf_counter() - started)


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

    baseline = api_baseline()
    print(f"ml_metadata API, put_executions in batches of 1000: {baseline:,.0f} executions/s")
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
        "executions": c["executions"], "artifacts": c["artifacts"], "events": c["events"],
        "contexts": c["contexts"], "rows": c["rows"], "store_bytes": size,
        "seconds": round(seconds, 1), "rows_per_s": round(c["rows"] / seconds),
        "cpu_seconds": round(cpu, 1), "processes": min(args.stores, os.cpu_count() or 1),
        "rows_per_cpu_s": round(c["rows"] / cpu) if cpu else None,
        "executions_per_s": round(exec_rate), "api_baseline_executions_per_s": round(baseline),
        "speedup_vs_api": round(exec_rate / baseline, 1),
        "meets_target": c["trainer_executions"] >= TARGET_TRAINERS and seconds <= TARGET_SECONDS,
    }
    print(f"{c['trainer_executions']:,} trainer executions ({c['trainings']:,} trainings), "
          f"{c['executions']:,} executions, {c['rows']:,} MLMD rows in {seconds:,.1f} s")
    print(f"{figures['rows_per_s']:,} rows/s, {exec_rate:,.0f} executions/s = "
          f"{figures['speedup_vs_api']}x the API baseline; target (>= {TARGET_TRAINERS:,} trainer executions "
          f"in <= {TARGET_SECONDS:.0f} s): {'met' if figures['meets_target'] else 'NOT met'}")
    print(f"CPU time {cpu:,.0f} s over {figures['processes']} process(es) ({figures['rows_per_cpu_s']:,} rows per CPU "
          f"second): wall time on a shared machine depends on what else runs; CPU time does not")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
