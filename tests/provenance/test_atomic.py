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


@pytest.fixture(scope="module")
def reference(big_store, tfx_dir, tmp_path_factory):
    """A warehouse of the big store and the minimal TFX store, ingested without interruption."""
    path = tmp_path_factory.mktemp("ref") / "clean.duckdb"
    ingest([big_store, tfx_dir / "penguin_minimal.sqlite"], path, progress=False)
    return path


# A real ingest process that logs its phases (the `frugal -v ingest` path, minus CLI start-up).
INGEST = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
    "from provenance import ingest; ingest(sys.argv[2:-1], sys.argv[-1], progress=False, part_ids=int(sys.argv[1]))"
)


def _ingest_and_kill(stores, warehouse, marker: str, delay: float, part_ids: int) -> int:
    """Start a real ingest process and SIGKILL it `delay` s after it logs `marker`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST, str(part_ids), *map(str, stores), str(warehouse)],
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


@pytest.mark.parametrize("marker,delay,part_ids", [
    ("loading into the warehouse", 0.05, 250_000),   # inside the transaction, during the bulk load
    ("loaded in", 0.0, 250_000),                      # first store loaded, second one being read
    ("part 9 read", 0.0, 2_000),                      # a first read in parts, eight of them loaded
])
def test_kill_9_mid_ingest_leaves_warehouse_unchanged(big_store, reference, tfx_dir, tmp_path, dump, marker, delay,
                                                      part_ids, assert_same_warehouse):
    minimal = tfx_dir / "penguin_minimal.sqlite"  # only read
    wh = tmp_path / "w.duckdb"
    ingest([minimal], wh, progress=False)
    before = dump(wh)
    code = _ingest_and_kill([big_store, minimal], wh, marker, delay, part_ids)
    assert code == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert dump(wh) == before
    report = ingest([big_store, minimal], wh, progress=False)
    assert report.sources[0].full and report.sources[0].rows["events"] > 20_000
    assert_same_warehouse(wh, reference)
