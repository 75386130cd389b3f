"""Benchmark: ingest a >= 1M-row MLMD store by the fast SQLite path and by the ml_metadata API.

Builds the store once (cached in benchmarks/.cache/), ingests it into fresh DuckDB
warehouses by both paths, checks that both give the same row counts, and prints rows/s of
each and their ratio. Rows are MLMD store rows read (all tables, event path steps and
properties included); times are the ingest call end to end (read, load, commit), with the
libraries already imported. The last line is one JSON object of the figures.

    .venv/bin/python benchmarks/ingest.py [--runs 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import CACHE, cached
from provenance.ingest import ingest
from provenance.synthetic_store import write_synthetic_store

BAR_ROWS_PER_S = 500_000
BAR_RATIO = 5.0


def build_store(runs: int) -> Path:
    """The cached synthetic store of ``runs`` pipeline runs (built on first use)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"mlmd_synthetic_{runs}runs_v1.sqlite"
    t0 = time.perf_counter()
    counts = {}
    if cached(path, lambda tmp: counts.update(write_synthetic_store(tmp, runs))):
        print(f"built {path.name}: {sum(counts.values()):,} MLMD rows in {time.perf_counter() - t0:.1f} s")
    return path


def timed_ingest(store: Path, via: str, workdir: Path, tag: str):
    warehouse = workdir / f"{tag}.duckdb"
    for p in (warehouse, warehouse.with_suffix(".duckdb.wal")):
        if p.exists():
            p.unlink()
    cpu0 = time.process_time()
    report = ingest([store], warehouse, via=via, progress=False)
    return report, warehouse, time.process_time() - cpu0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="pipeline runs in the store (~102 rows each)")
    parser.add_argument("--repeat", type=int, default=3, help="fast-path repetitions (median reported)")
    args = parser.parse_args(argv)

    store = build_store(args.runs)
    import adbc_driver_manager  # noqa: F401  (import cost is not ingest cost)
    import duckdb
    import pandas  # noqa: F401  (pyarrow imports it on first use of pa.array)
    from ml_metadata.metadata_store import metadata_store  # noqa: F401

    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=CACHE))
    try:
        fast_times, fast_cpu, fast_rows = [], [], 0
        for i in range(args.repeat):
            report, fast_wh, cpu = timed_ingest(store, "sqlite", workdir, f"fast{i}")
            fast_times.append(report.seconds)
            fast_cpu.append(cpu)
            fast_rows = report.store_rows
            print(f"fast path (sqlite) run {i + 1}: {fast_rows:,} rows in {report.seconds:.2f} s "
                  f"({fast_rows / report.seconds:,.0f} rows/s; {cpu:.2f} CPU-s)")
        t0 = time.perf_counter()
        again = ingest([store], fast_wh, via="sqlite", progress=False)
        print(f"re-ingest of the unchanged store (incremental): {again.seconds:.2f} s, "
              f"{again.store_rows:,} rows read")
        api_report, api_wh, api_cpu = timed_ingest(store, "api", workdir, "api")
        api_rows = api_report.store_rows
        print(f"API path (ml_metadata): {api_rows:,} rows in {api_report.seconds:.2f} s "
              f"({api_rows / api_report.seconds:,.0f} rows/s; {api_cpu:.2f} CPU-s)")

        def counts(path: Path) -> dict[str, int]:
            con = duckdb.connect(str(path), read_only=True)
            try:
                tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
                return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchall()[0][0] for t in tables if t != "sources"}
            finally:
                con.close()

        same = counts(fast_wh) == counts(api_wh)
        fast_s = statistics.median(fast_times)
        fast_rate = fast_rows / fast_s
        api_rate = api_rows / api_report.seconds
        ratio = fast_rate / api_rate
        load = os.getloadavg()[0]
        print(f"CPU time (all threads): fast {statistics.median(fast_cpu):.2f} s "
              f"({fast_rows / statistics.median(fast_cpu):,.0f} rows per CPU-second), API {api_cpu:.2f} s; "
              f"wall times on a shared machine include waiting for the CPU")
        print(f"fast path median {fast_rate:,.0f} rows/s (best {fast_rows / min(fast_times):,.0f}); "
              f"API {api_rate:,.0f} rows/s; ratio {ratio:.1f}x; same row counts: {same}")
        print(f"bar: fast >= {BAR_ROWS_PER_S:,} rows/s and >= {BAR_RATIO:.0f}x the API; "
              f"machine load average {load:.1f} on {os.cpu_count()} cores")
        print(json.dumps({
            "benchmark": "ingest",
            "store_rows": fast_rows,
            "fast_seconds_median": round(fast_s, 3),
            "fast_seconds_best": round(min(fast_times), 3),
            "fast_rows_per_s": round(fast_rate),
            "fast_rows_per_s_best": round(fast_rows / min(fast_times)),
            "fast_cpu_seconds_median": round(statistics.median(fast_cpu), 3),
            "fast_rows_per_cpu_s": round(fast_rows / statistics.median(fast_cpu)),
            "api_seconds": round(api_report.seconds, 3),
            "api_cpu_seconds": round(api_cpu, 3),
            "api_rows_per_s": round(api_rate),
            "ratio": round(ratio, 2),
            "incremental_noop_seconds": round(again.seconds, 3),
            "same_row_counts": same,
            "meets_bar": bool(fast_rate >= BAR_ROWS_PER_S and ratio >= BAR_RATIO),
            "load_average": round(load, 2),
            "cpus": os.cpu_count(),
        }))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
