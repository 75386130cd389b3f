"""Fixtures of the service tests: a simulated corpus, and ``serve``: `frugal serve` as a real
subprocess on a free port, started by the shared launcher ``frugal_serve`` (tests/conftest.py)
and stopped at the end of the test. Requests go over real HTTP with httpx.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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


@pytest.fixture
def serve(frugal_serve):
    """The launcher ``frugal_serve`` (tests/conftest.py); every service this test started is stopped at its end."""

    def start(*args, **kw):
        served = frugal_serve(*args, **kw)
        start.services.append(served)
        return served

    start.services = []
    yield start
    for served in start.services:
        served.stop()
