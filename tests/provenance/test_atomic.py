"""An ingest killed with SIGKILL at any moment leaves the warehouse as it was; the next one completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from provenance import ingest
from provenance.synthetic_store import write_synthetic_store


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.sqlite"
    write_synthetic_store(path, runs=1500, seed=1)  # ~150k MLMD rows
    return path


def _ingest_and_kill(stores, warehouse, marker: str, delay: float) -> int:
    """Start a real `frugal ingest` process and SIGKILL it `delay` s after it logs `marker`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "frugal", "-v", "ingest", *map(str, stores), "-w", str(warehouse), "--quiet"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            if marker in line:
                time.sleep(delay)
                break
            assert time.monotonic() < deadline
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    return proc.returncode


@pytest.mark.parametrize("marker,delay", [
    ("loading into the warehouse", 0.05),   # inside the transaction, during the bulk load
    ("loaded in", 0.0),                      # first store loaded, second one being read
])
def test_kill_9_mid_ingest_leaves_warehouse_unchanged(big_store, tfx_store, tmp_path, dump, marker, delay,
                                                      assert_same_warehouse):
    minimal = tfx_store("penguin_minimal")
    wh = tmp_path / "w.duckdb"
    ingest([minimal], wh, progress=False)
    before = dump(wh)
    code = _ingest_and_kill([big_store, minimal], wh, marker, delay)
    assert code == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert dump(wh) == before
    report = ingest([big_store, minimal], wh, progress=False)
    assert report.sources[0].full and report.sources[0].rows["events"] > 20_000
    ingest([big_store, minimal], tmp_path / "clean.duckdb", progress=False)
    assert_same_warehouse(wh, tmp_path / "clean.duckdb")
