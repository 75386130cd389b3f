"""Benchmark: graphlets, waste and run history over a paper-scale corpus.

Builds a warehouse of synthetic provenance directly in DuckDB with SQL (TFX-shaped: per run
ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, Trainer, a baseline Resolver,
Evaluator, Pusher; new data every third run, cached data components otherwise; the Evaluator
compares against the previous model; ~70% of models blessed and pushed), then times
``analysis.analyze`` on it. The paper's corpus: 3000 pipelines, over 450,000 trainings.

Baseline for the ratio: the bar of 2 minutes for the whole analysis (ratio = bar / time).

    python benchmarks/analyze_corpus.py                    # 450,000 trainings
    python benchmarks/analyze_corpus.py --trainings 45000  # quick look

Last line: a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

import common  # noqa: F401  (the working tree's packages first on sys.path)
import analysis
from provenance.schema import create_schema

BAR_S = 120.0
K = 8  # executions (and artifact slots) per run

_TYPES = [
    ("execution", 0, "tfx.components.example_gen.csv_example_gen.component.CsvExampleGen"),
    ("execution", 1, "tfx.components.statistics_gen.component.StatisticsGen"),
    ("execution", 2, "tfx.components.schema_gen.component.SchemaGen"),
    ("execution", 3, "tfx.components.example_validator.component.ExampleValidator"),
    ("execution", 4, "tfx.components.trainer.component.Trainer"),
    ("execution", 5, "tfx.dsl.components.common.resolver.Resolver"),
    ("execution", 6, "tfx.components.evaluator.component.Evaluator"),
    ("execution", 7, "tfx.components.pusher.component.Pusher"),
    ("artifact", 10, "Examples"), ("artifact", 11, "ExampleStatistics"), ("artifact", 12, "Schema"),
    ("artifact", 13, "ExampleAnomalies"), ("artifact", 14, "Model"), ("artifact", 15, "ModelRun"),
    ("artifact", 16, "ModelBlessing"), ("artifact", 17, "PushedModel"),
    ("context", 20, "pipeline"), ("context", 21, "pipeline_run"),
]


def build_corpus(path: Path, pipelines: int, runs: int, sources: int) -> dict[str, int]:
    """Write the synthetic corpus; returns row counts."""
    con = duckdb.connect(str(path))
    create_schema(con)
    per_source = pipelines // sources
    con.execute("INSERT INTO sources SELECT 'store' || s, '/bench/store' || s, 'sqlite', 10, now()::TIMESTAMP, NULL "
                "FROM range(?) t(s)", [sources])
    con.execute("CREATE TEMP TABLE tt (kind VARCHAR, type_id BIGINT, name VARCHAR)")
    con.executemany("INSERT INTO tt VALUES (?, ?, ?)", _TYPES)
    con.execute("INSERT INTO types SELECT 'store' || s, type_id, kind, name, NULL, NULL, NULL FROM tt, range(?) t(s)",
                [sources])
    # one row per run: source, pipeline, run number, global run id within source
    con.execute(
        f"""
        CREATE TEMP TABLE runs AS
        SELECT 'store' || (p % {sources}) AS source_id, p AS pipeline, r,
               (p // {sources}) * {runs} + r AS rid,                          -- run id within source
               (p // {sources}) * {runs} + r - (r % 3) AS drid,               -- run that made the data
               TIMESTAMP '2025-01-01' + INTERVAL (p % 97) MINUTE + INTERVAL (r * 720) MINUTE AS t0,
               hash(p, r) % 100 < 70 AS good
        FROM range({pipelines}) a(p), range({runs}) b(r)
        """
    )
    con.execute(
        f"""
        INSERT INTO executions
        SELECT source_id, rid * {K} + k, k, tt.name,
               CASE WHEN k <= 3 AND r % 3 <> 0 THEN 'CACHED' ELSE 'COMPLETE' END,
               CASE WHEN k <= 3 AND r % 3 <> 0 THEN 'CACHED' ELSE 'COMPLETE' END,
               NULL, NULL,
               t0 + INTERVAL (k * 10) MINUTE,
               t0 + INTERVAL (k * 10) MINUTE + INTERVAL (CASE WHEN k <= 3 AND r % 3 <> 0 THEN 1 ELSE 60 + 30 * k END) SECOND,
               CASE WHEN k <= 3 AND r % 3 <> 0 THEN 1 ELSE 60 + 30 * k END
        FROM runs, range({K}) c(k) JOIN tt ON tt.kind = 'execution' AND tt.type_id = k
        """
    )
    # artifacts: slot 0..3 data (only on data runs), 4 model, 5 model run, 6 blessing, 7 pushed model
    con.execute(
        f"""
        INSERT INTO artifacts
        SELECT source_id, rid * {K} + k, 10 + k, tt.name, '/a/' || (rid * {K} + k), 'LIVE', NULL, NULL,
               t0 + INTERVAL (k * 10 + 5) MINUTE, t0 + INTERVAL (k * 10 + 5) MINUTE
        FROM runs, range({K}) c(k) JOIN tt ON tt.kind = 'artifact' AND tt.type_id = 10 + k
        WHERE k >= 4 OR r % 3 = 0
        """
    )
    # events: (execution slot, artifact slot, data-run?, type, path)
    con.execute(
        """
        CREATE TEMP TABLE ev_shape (ek INT, ak INT, from_data BOOLEAN, prev BOOLEAN, type VARCHAR, path VARCHAR);
        INSERT INTO ev_shape VALUES
          (0, 0, true, false, 'OUTPUT', 'examples/0'),
          (1, 0, true, false, 'INPUT', 'examples/0'), (1, 1, true, false, 'OUTPUT', 'statistics/0'),
          (2, 1, true, false, 'INPUT', 'statistics/0'), (2, 2, true, false, 'OUTPUT', 'schema/0'),
          (3, 1, true, false, 'INPUT', 'statistics/0'), (3, 2, true, false, 'INPUT', 'schema/0'),
          (3, 3, true, false, 'OUTPUT', 'anomalies/0'),
          (4, 0, true, false, 'INPUT', 'examples/0'), (4, 2, true, false, 'INPUT', 'schema/0'),
          (4, 4, false, false, 'OUTPUT', 'model/0'), (4, 5, false, false, 'OUTPUT', 'model_run/0'),
          (6, 0, true, false, 'INPUT', 'examples/0'), (6, 4, false, false, 'INPUT', 'model/0'),
          (6, 4, false, true, 'INPUT', 'baseline_model/0'), (6, 6, false, false, 'OUTPUT', 'blessing/0'),
          (7, 4, false, false, 'INPUT', 'model/0'), (7, 6, false, false, 'INPUT', 'model_blessing/0'),
          (7, 7, false, false, 'OUTPUT', 'pushed_model/0');
        """
    )
    con.execute(
        f"""
        INSERT INTO events
        SELECT source_id, row_number() OVER (), artifact_id, execution_id, type, path, split_part(path, '/', 1), t
        FROM (
            SELECT source_id, (CASE WHEN s.from_data THEN drid WHEN s.prev THEN rid - 1 ELSE rid END) * {K} + s.ak AS artifact_id,
                   rid * {K} + s.ek AS execution_id, s.type, s.path, t0 AS t
            FROM runs, ev_shape s
            WHERE NOT (s.prev AND r = 0)
        )
        """
    )
    con.execute(
        f"""
        INSERT INTO properties
        SELECT source_id, 'artifact', rid * {K} + 7, 'pushed', true, 'int', CASE WHEN good THEN 1 ELSE 0 END, NULL, NULL, NULL FROM runs
        UNION ALL
        SELECT source_id, 'artifact', rid * {K} + 6, 'blessed', true, 'int', CASE WHEN good THEN 1 ELSE 0 END, NULL, NULL, NULL FROM runs
        UNION ALL
        SELECT source_id, 'execution', rid * {K} + 4, 'custom_config', true, 'string', NULL, NULL,
               '{{"lr": ' || (hash(pipeline, r // 5) % 4) || '}}', NULL FROM runs
        """
    )
    con.execute(
        f"""
        INSERT INTO contexts
        SELECT DISTINCT source_id, pipeline // {sources}, 20, 'pipeline', 'pipeline-' || pipeline, NULL, NULL, NULL FROM runs
        UNION ALL
        SELECT source_id, 1000000 + rid, 21, 'pipeline_run', 'run-' || pipeline || '-' || r, NULL, t0, t0 FROM runs
        """
    )
    con.execute(
        f"""
        INSERT INTO associations
        SELECT source_id, pipeline // {sources}, rid * {K} + k FROM runs, range({K}) c(k)
        UNION ALL
        SELECT source_id, 1000000 + rid, rid * {K} + k FROM runs, range({K}) c(k)
        """
    )
    counts = _counts(con)
    con.close()
    return counts


def _counts(con) -> dict[str, int]:
    """Rows of the warehouse's provenance tables."""
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("executions", "artifacts", "events", "properties", "contexts", "associations")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trainings", type=int, default=450_000)
    ap.add_argument("--pipelines", type=int, default=3000)
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--warehouse", type=Path, help="keep the warehouse here (default: a temp file)")
    ap.add_argument("--existing", type=Path,
                    help="analyse a copy of this warehouse (e.g. a simulated corpus after `frugal ingest`) "
                         "instead of building the synthetic one")
    args = ap.parse_args(argv)
    runs = max(1, args.trainings // args.pipelines)
    folder = Path(tempfile.mkdtemp(prefix="frugal-bench-"))
    path = args.warehouse or folder / "bench.duckdb"
    if path.exists():
        path.unlink()
    t = time.perf_counter()
    if args.existing:
        import shutil

        shutil.copyfile(args.existing, path)
        con = duckdb.connect(str(path))
        for table in ("analysis_state", "graphlets", "graphlet_members", "analysis_executions"):
            con.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        counts = _counts(con)
        con.close()
        print(f"corpus: copy of {args.existing}; " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    else:
        counts = build_corpus(path, args.pipelines, runs, args.sources)
        print(f"corpus: {args.pipelines} pipelines x {runs} runs in {args.sources} sources; "
              + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    build_s = time.perf_counter() - t
    print(f"(corpus ready in {build_s:.1f} s; not part of the measured time)")
    t, c = time.perf_counter(), time.process_time()
    summary = analysis.analyze(path)
    seconds, cpu_s = time.perf_counter() - t, time.process_time() - c
    rows = counts["executions"] + counts["events"] + counts["artifacts"]
    print(f"analyze: {seconds:.1f} s wall, {cpu_s:.1f} s CPU (all threads) for {summary.graphlets:,} graphlets "
          f"({rows / seconds:,.0f} rows/s over executions+events+artifacts)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(other work competes for the CPU; wall time on an idle machine is about CPU / cores)")
    print(f"wasted {summary.wasted_compute_s / max(summary.compute_s, 1):.1%} of compute; "
          f"pushed {summary.pushed_graphlets:,} graphlets")
    t = time.perf_counter()
    again = analysis.analyze(path)
    noop_s = time.perf_counter() - t
    print(f"re-analyze with nothing changed: {noop_s:.2f} s")
    con = duckdb.connect(str(path), read_only=True)
    n_pipelines = con.execute("SELECT count(DISTINCT (source_id, pipeline)) FROM analysis_executions").fetchone()[0]
    con.close()
    ratio = BAR_S / seconds
    print(f"bar {BAR_S:.0f} s / measured {seconds:.1f} s = {ratio:.2f}x "
          f"(CPU shared with other work: figures are pessimistic; cpus={os.cpu_count()})")
    print(json.dumps({
        "benchmark": "analysis", "trainings": summary.graphlets, "pipelines": n_pipelines,
        "executions": counts["executions"], "events": counts["events"], "seconds": round(seconds, 2),
        "cpu_s": round(cpu_s, 1), "idle_estimate_s": round(cpu_s / (os.cpu_count() or 1), 1),
        "loadavg_1m": round(os.getloadavg()[0], 1),
        "rows_per_s": round(rows / seconds), "bar_s": BAR_S, "ratio_vs_bar": round(ratio, 3),
        "noop_reanalyze_s": round(noop_s, 2), "build_corpus_s": round(build_s, 1),
        "pushed_graphlets": summary.pushed_graphlets, "wasted_share": round(summary.wasted_compute_s / max(summary.compute_s, 1), 4),
        "reanalyzed_sources": len(again.sources_analyzed),
    }))
    if not args.warehouse:
        path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
