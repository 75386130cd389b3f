"""Real servers for the hook tests: a closed port, scripted HTTP servers, the TFX venv.

Every server is a real subprocess on a free 127.0.0.1 port that stops by itself
(``--lifetime``) and is terminated at the end of its test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


class FrugalService:
    """A real `frugal serve` subprocess on a free port; `timeout` stops it by itself at the latest."""

    def __init__(self, folder: Path, stores: list[Path], warehouse: Path, token: str | None = None,
                 lifetime_s: int = 900) -> None:
        self.folder, self.stores, self.warehouse, self.token = folder, stores, warehouse, token
        self.lifetime_s = lifetime_s
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.starts = 0

    def start(self, timeout_s: float = 120.0) -> "FrugalService":
        self.starts += 1
        port_file = self.folder / f"port-{self.starts}"
        log = self.folder / f"serve-{self.starts}.log"
        cmd = ["timeout", str(self.lifetime_s), sys.executable, "-m", "frugal", "serve",
               *map(str, self.stores), "--warehouse", str(self.warehouse), "--port", "0",
               "--port-file", str(port_file), "--ingest-every", "3600"]
        if self.token:
            token_file = self.folder / "token"
            token_file.write_text(self.token + "\n")
            cmd += ["--token-file", str(token_file)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"frugal serve exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            if port_file.exists():
                self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"
                try:
                    if self.call("GET", "/readyz").get("ready"):
                        return self
                except OSError:
                    pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"frugal serve not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One JSON request to the service (errors raise urllib's HTTPError)."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            if e.code == 503 and path == "/readyz":
                return json.loads(e.read())
            raise

    def sql(self, query: str) -> list[list]:
        return self.call("POST", "/api/v1/sql", {"query": query})["rows"]

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture(scope="module")
def frugal_service(tmp_path_factory):
    """Return a function (stores, token=None) -> a started FrugalService with its own warehouse;
    every service started stops at the end of the test module."""
    services: list[FrugalService] = []

    def start(stores: list[Path], token: str | None = None) -> FrugalService:
        folder = tmp_path_factory.mktemp("frugal-service")
        service = FrugalService(folder, list(stores), folder / "w.duckdb", token=token)
        services.append(service)
        return service.start()

    yield start
    for service in services:
        service.stop()


@pytest.fixture(scope="module")
def prod_store(tmp_path_factory) -> Path:
    """A private copy of the real TFX store penguin_prod (pipeline `penguin_prod`, 12 runs)."""
    import shutil

    dst = tmp_path_factory.mktemp("store") / "penguin_prod.sqlite"
    shutil.copyfile(ROOT / "tests" / "data" / "tfx" / "penguin_prod.sqlite", dst)
    return dst
