"""Fixtures of the service tests: a simulated corpus, `frugal serve` as a real subprocess on a free port.

``serve(stores, warehouse, ...)`` starts the real command line (`python -m frugal serve`) with
``--port 0 --port-file``, waits for /readyz, and stops it (SIGTERM, then SIGKILL) at the end.
Requests go over real HTTP with httpx.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from frugal.cli import main as cli

PIPELINES, DAYS, SEED = 12, 40, 4242


@pytest.fixture(scope="session")
def sim_corpus(tmp_path_factory) -> Path:
    """A simulated MLMD SQLite store (TFX conventions) with enough trainings to learn a policy."""
    out = tmp_path_factory.mktemp("svc-corpus")
    assert cli(["simulate", "--out", str(out), "--pipelines", str(PIPELINES), "--days", str(DAYS),
                "--seed", str(SEED), "--style", "current", "--mode", "sync"]) == 0
    return out / "mlmd.sqlite"


@pytest.fixture
def store_copy(sim_corpus, tmp_path):
    """A private copy of the simulated store (tests append runs to it)."""

    def copy(name: str = "prod") -> Path:
        dst = tmp_path / f"{name}.sqlite"
        shutil.copyfile(sim_corpus, dst)
        return dst

    return copy


class Served:
    """A running `frugal serve` subprocess."""

    def __init__(self, proc: subprocess.Popen, port: int, token: str | None, log: Path):
        self.proc, self.port, self.token, self.log = proc, port, token, log
        self.url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=60.0)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.http.post(path, **kw)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.http.get(path, **kw)

    def decide(self, pipeline: str, **body) -> dict:
        r = self.post("/api/v1/decisions", json={"pipeline": pipeline, **body})
        assert r.status_code == 200, r.text
        return r.json()

    def sql(self, query: str) -> list:
        r = self.post("/api/v1/sql", json={"query": query})
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill9(self) -> None:
        self.http.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def start_service(stores, warehouse: Path, *, extra=(), token: str | None = None, wait_ready: bool = True,
                  timeout: float = 180.0) -> Served:
    workdir = warehouse.parent
    port_file = workdir / f"port-{time.monotonic_ns()}.txt"
    log = workdir / f"serve-{time.monotonic_ns()}.log"
    args = [sys.executable, "-m", "frugal", "serve", *map(str, stores), "--warehouse", str(warehouse),
            "--port", "0", "--port-file", str(port_file), *extra]
    if token:
        tf = workdir / "token.txt"
        tf.write_text(token + "\n")
        args += ["--token-file", str(tf)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"frugal serve did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    served = Served(proc, int(port_file.read_text()), token, log)
    while wait_ready:
        try:
            r = served.get("/readyz", timeout=5)
            if r.status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise AssertionError(f"frugal serve never became ready:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    return served


@pytest.fixture
def serve():
    """Return start_service(...); every service started is stopped after the test."""
    started: list[Served] = []

    def start(*args, **kw) -> Served:
        s = start_service(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
