"""Shared fixtures: the real TFX stores shipped in tests/data/tfx, database servers, and
``frugal_serve``, the one launcher of `frugal serve` as a real subprocess.

Each area keeps its own fixtures in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


# ------------------------------------------------------------------------------ `frugal serve`
SERVE_LIFETIME_S = 7200   # `timeout` ends a service by then should its test process die without stopping it
_SERVICES: list[Served] = []   # every service this process started (their logs go with a failed test)


class Served:
    """`frugal serve` as a real subprocess: ``python -m frugal serve`` of this working tree on
    127.0.0.1, on a free port (``--port 0 --port-file``), its output in a log file beside the
    warehouse. It runs under ``timeout``, so that it stops by itself after ``lifetime_s`` at the
    latest. ``start()`` launches it and waits until every path of ``ready`` answers 200; ``stop()``
    ends it (SIGTERM, then SIGKILL) and may be followed by ``start()`` again (a new port and log).

    Requests over real HTTP (httpx, with the bearer token if there is one): ``get``, ``post``,
    ``http`` (the client, base URL ``url``), ``call`` (JSON, or raises on an error status),
    ``decide`` and ``sql`` (both assert 200)."""

    def __init__(self, stores, warehouse: Path, *, extra=(), token: str | None = None,
                 folder: Path | None = None, lifetime_s: float = SERVE_LIFETIME_S,
                 ready: tuple[str, ...] = ("/readyz",)) -> None:
        self.stores, self.warehouse, self.extra = [str(s) for s in stores], Path(warehouse), list(extra)
        self.token, self.lifetime_s, self.ready = token, lifetime_s, tuple(ready)
        self.folder = Path(folder) if folder is not None else self.warehouse.parent
        self.proc: subprocess.Popen | None = None   # the `timeout` process
        self.pid: int | None = None                 # the server's own process (timeout's child)
        self.http = None
        self.url, self.port, self.log = "", 0, None
        self.running_since: float | None = None
        self.stopped_at: float | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self, *, wait_ready: bool = True, timeout: float = 180.0) -> "Served":
        """Launch the service; return once it listens (and, with ``wait_ready``, answers every
        path of ``ready`` with 200). Fails with the end of its log when it exits or times out."""
        import httpx

        tag = time.monotonic_ns()
        port_file = self.folder / f"port-{tag}.txt"
        self.log = self.folder / f"serve-{tag}.log"
        args = ["timeout", "--kill-after=30", str(int(self.lifetime_s)), sys.executable, "-m", "frugal", "serve",
                *self.stores, "--warehouse", str(self.warehouse), "--host", "127.0.0.1", "--port", "0",
                "--port-file", str(port_file), *self.extra]
        if self.token:
            token_file = self.folder / f"token-{tag}.txt"
            token_file.write_text(self.token + "\n")
            args += ["--token-file", str(token_file)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                         start_new_session=True)
        self.pid, self.port, self.url = None, 0, ""
        self.running_since, self.stopped_at = time.time(), None
        if self not in _SERVICES:
            _SERVICES.append(self)
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            self._check(deadline, timeout)
            time.sleep(0.1)
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid = _child_of(self.proc.pid)
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=120.0)
        while wait_ready and not self._answers():
            self._check(deadline, timeout)
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        import httpx

        try:
            return all(httpx.get(self.url + path, headers=self.headers, timeout=10).status_code == 200
                       for path in self.ready)
        except httpx.TransportError:
            return False

    def _check(self, deadline: float, timeout: float) -> None:
        if self.proc.poll() is not None:
            why = f"exited with {self.proc.returncode}"
        elif time.monotonic() > deadline:
            why = f"was not ready after {timeout:g} s"
        else:
            return
        self.stop()
        raise AssertionError(f"frugal serve {why} ({self.log}):\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log and self.log.exists() else ""

    def get(self, path: str, **kw):
        return self.http.get(path, **kw)

    def post(self, path: str, **kw):
        return self.http.post(path, **kw)

    def call(self, method: str, path: str, body: dict | None = None):
        """One JSON request; an error status raises httpx.HTTPStatusError."""
        r = self.http.request(method, path, json=body)
        r.raise_for_status()
        return r.json()

    def decide(self, pipeline: str, **body) -> dict:
        r = self.post("/api/v1/decisions", json={"pipeline": pipeline, **body})
        assert r.status_code == 200, r.text
        return r.json()

    def sql(self, query: str) -> list:
        r = self.post("/api/v1/sql", json={"query": query})
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    def stop(self) -> None:
        """SIGTERM to the server (`timeout` then exits with it); SIGKILL to both after 30 s."""
        if self.http is not None:
            self.http.close()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _signal(self.pid or proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                _signal(-proc.pid, signal.SIGKILL)   # its own process group: timeout and the server
                proc.wait(10)
        if self.stopped_at is None and self.running_since is not None:
            self.stopped_at = time.time()

    def kill9(self) -> None:
        """SIGKILL to the server alone, as a crash would (`timeout` then exits with it)."""
        if self.http is not None:
            self.http.close()
        _signal(self.pid or -self.proc.pid, signal.SIGKILL)   # without its pid: the whole group
        self.proc.wait(10)
        self.stopped_at = time.time()


def _child_of(pid: int) -> int | None:
    """The process whose parent is ``pid`` (the server under `timeout`), from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            return int(stat.parent.name)
    return None


def _signal(pid: int, sig: int) -> None:
    try:
        if pid < 0:
            os.killpg(-pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start_service(stores, warehouse: Path, *, wait_ready: bool = True, timeout: float = 180.0, **options) -> Served:
    """A started ``Served(stores, warehouse, **options)`` (the caller stops it); benchmarks/service.py uses it too."""
    return Served(stores, warehouse, **options).start(wait_ready=wait_ready, timeout=timeout)


@pytest.fixture(scope="session")
def frugal_serve():
    """The launcher of `frugal serve`: a function (stores, warehouse, *, extra=(), token=None,
    folder=None, lifetime_s, ready=("/readyz",), wait_ready=True, timeout=180) -> a started
    ``Served``. Stop it with ``.stop()`` (folder fixtures do, at the end of their scope); every
    service it started is stopped at the end of the session at the latest."""
    def launch(stores, warehouse: Path, **options) -> Served:
        served = start_service(stores, warehouse, **options)
        launch.services.append(served)
        return served

    launch.services = []
    yield launch
    for served in launch.services:
        served.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the log of every `frugal serve` it used that ran during the failed phase."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for served in _services_used(item):
        if served.running_since is not None and (served.stopped_at is None or served.stopped_at >= call.start):
            report.sections.append((f"frugal serve log {served.log}", served.log_tail(8000)))


def _services_used(item) -> list[Served]:
    """The services among the test's fixture values: a ``Served``, a URL of one, or a launcher's ``services``."""
    found: list[Served] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Served):
            found.append(value)
        elif isinstance(value, str):
            found += [s for s in _SERVICES if s.url and s.url == value]
        found += [s for s in getattr(value, "services", None) or () if isinstance(s, Served)]
    return list(dict.fromkeys(found))
