"""Real servers for the hook tests: a closed port, scripted HTTP servers, `frugal serve`, the TFX venv.

Every server is a real subprocess on a free 127.0.0.1 port that stops by itself
(``--lifetime``, or `timeout` for `frugal serve`) and is terminated at the end of its test
(of its module for `frugal serve`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCRIPTED = HERE / "scripted_server.py"
TFX_VENV = ROOT / ".venv-tfx"
KFP_VENV = ROOT / ".venv-kfp"


def free_port() -> int:
    """A port that nothing listens on right now (bound, read, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Wait until something accepts connections on ``port``; fail with the server's output."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode} before listening:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def closed_port() -> int:
    """A real port on 127.0.0.1 with nothing listening: connections are refused."""
    return free_port()


@pytest.fixture
def scripted_server(tmp_path):
    """Return a function (mode, **options) -> (url, requests file) starting scripted_server.py."""
    procs: list[subprocess.Popen] = []

    def start(mode: str, sleep: float = 5.0, lifetime: float = 120.0):
        port = free_port()
        requests = tmp_path / f"requests-{mode}-{port}.jsonl"
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTED), mode, "--port", str(port), "--sleep", str(sleep),
             "--requests", str(requests), "--lifetime", str(lifetime)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        procs.append(proc)
        wait_listening(port, proc)
        return f"http://127.0.0.1:{port}", requests

    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture
def tfx_python() -> Path:
    """.venv-tfx's Python (TFX 1.16, frugal-client); fails with the reason when it is missing."""
    return venv_python(TFX_VENV)


@pytest.fixture
def kfp_python() -> Path:
    """.venv-kfp's Python (kfp v2 SDK, frugal-client); fails with the reason when it is missing."""
    return venv_python(KFP_VENV)


def venv_python(venv: Path) -> Path:
    """The venv's interpreter, or a failure that says why the venv is missing (never a skip)."""
    python = venv / "bin" / "python"
    failed = venv.parent / f"{venv.name}.failed"
    if failed.exists():
        pytest.fail(f"{venv.name} could not be built (`make {venv.name}/.installed`):\n{failed.read_text()}")
    if not (venv / ".installed").exists() or not python.exists():
        pytest.fail(f"{venv.name} is missing or incomplete: build it with `make {venv.name}/.installed` "
                    f"(`make test` does)")
    return python


@pytest.fixture(scope="module")
def frugal_service(frugal_serve, tmp_path_factory):
    """Return a function (stores, token=None) -> a started `frugal serve` (the shared launcher
    ``frugal_serve`` of tests/conftest.py) with its own warehouse; ``.stop()`` then ``.start()``
    restarts it on the same warehouse. Every service started stops at the end of the test module."""

    def start(stores: list[Path], token: str | None = None):
        folder = tmp_path_factory.mktemp("frugal-service")
        service = frugal_serve(list(stores), folder / "w.duckdb", token=token, extra=["--ingest-every", "3600"],
                               timeout=120)
        start.services.append(service)
        return service

    start.services = []
    yield start
    for service in start.services:
        service.stop()


@pytest.fixture(scope="module")
def prod_store(tmp_path_factory) -> Path:
    """A private copy of the real TFX store penguin_prod (pipeline `penguin_prod`, 12 runs)."""
    import shutil

    dst = tmp_path_factory.mktemp("store") / "penguin_prod.sqlite"
    shutil.copyfile(ROOT / "tests" / "data" / "tfx" / "penguin_prod.sqlite", dst)
    return dst
