"""Shared fixtures: the real TFX stores shipped in tests/data/tfx and database servers.

Each area keeps its own fixtures in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TFX_DIR = DATA / "tfx"
TFX_STORES = ("penguin_prod", "penguin_minimal")


def server_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP server answers at host:port (used by the mysql/postgresql markers)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    """Skip server tests with a clear reason where their server is not reachable."""
    servers = {"mysql": ("127.0.0.1", 3306, "MariaDB/MySQL"), "postgresql": ("127.0.0.1", 5432, "PostgreSQL")}
    for marker, (host, port, what) in servers.items():
        if server_reachable(host, port):
            continue
        skip = pytest.mark.skip(reason=f"needs a {what} server at {host}:{port}; none is reachable")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


def pytest_runtest_setup(item):
    """Browser tests fail (never skip) without headless Chromium, saying how to get it."""
    if "browser" in item.keywords and not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()):
        pytest.fail("this test needs headless Chromium: run tests/setup-system.sh (apt-get install chromium)",
                    pytrace=False)


@pytest.fixture(scope="session")
def tfx_dir() -> Path:
    """Folder of the real TFX stores (read-only: copy before writing)."""
    return TFX_DIR


@pytest.fixture
def tfx_store(tmp_path: Path):
    """Return a function name -> path of a private copy of a real TFX store."""

    def copy(name: str = "penguin_prod") -> Path:
        dst = tmp_path / f"{name}.sqlite"
        shutil.copyfile(TFX_DIR / f"{name}.sqlite", dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def tfx_ground_truth():
    """Return a function name -> parsed ground-truth JSON of a real TFX store."""

    def load(name: str = "penguin_prod") -> dict:
        return json.loads((TFX_DIR / f"{name}.ground_truth.json").read_text())

    return load


@pytest.fixture(scope="session")
def simulated_warehouse():
    """Return a function (folder, **simulate options) -> (simulation result, warehouse path,
    analysis summary): a corpus simulated into ``folder/corpus``, ingested into
    ``folder/w.duckdb`` and analyzed."""
    import analysis
    from pipelines.simulator import simulate
    from provenance.ingest import ingest

    def build(folder: Path, **options):
        result = simulate(folder / "corpus", progress=False, **options)
        warehouse = folder / "w.duckdb"
        ingest(result.store_paths, warehouse, progress=False)
        return result, warehouse, analysis.analyze(warehouse)

    return build
