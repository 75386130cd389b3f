"""Fixtures of the page tests: the real TFX stores and a store with hostile names, ingested and
analysed; the static pages `frugal report --pipeline` writes; a `frugal serve` subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TFX_DIR = Path(__file__).resolve().parents[1] / "data" / "tfx"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

# A property value and a component name that are markup: the pages must show them as text.
SCRIPT = "<script>document.title='pwned'</script>"
EVIL_COMPONENT = "Trainer<img src=x onerror=alert(1)>"


def write_hostile_store(path: Path) -> dict:
    """Two runs of pipeline ``hostile`` written through the ml_metadata API (provenance's run
    recorder): ExampleGen -> a trainer named with markup -> Pusher; the trainer's ``note``
    property holds a ``<script>`` in the second run. Returns the run ids."""
    from provenance.run_recorder import ArtifactRecord, ExecutionRecord, RunRecord, record_run

    runs = {}
    for i, note in enumerate(("plain", SCRIPT)):
        data = ArtifactRecord(key=f"data-{i}", type_name="Examples", uri=f"/data/{i}", properties={"span": i + 1})
        model = ArtifactRecord(key=f"model-{i}", type_name="Model", uri=f"/model/{i}")
        pushed = ArtifactRecord(key=f"push-{i}", type_name="PushedModel", uri=f"/push/{i}", properties={"pushed": 1})
        run_id = f"hostile-run-{i + 1}"
        record_run(path, RunRecord(pipeline="hostile", run_id=run_id, started_at=1_700_000_000 + 100 * i, executions=[
            ExecutionRecord("ExampleGen", "acme.ExampleGen", "COMPLETE", 1.5, outputs={"examples": data}),
            ExecutionRecord(EVIL_COMPONENT, "acme.Trainer", "COMPLETE", 4.25, inputs={"examples": data},
                            outputs={"model": model}, properties={"note": note, "learning_rate": 0.1}),
            ExecutionRecord("Pusher", "acme.Pusher", "COMPLETE", 0.5, inputs={"model": model},
                            outputs={"pushed_model": pushed}),
        ]))
        runs[i + 1] = run_id
    return runs


# A pipeline whose name holds "/" and one whose compared values are long unbroken strings.
SLASH_PIPELINE = "team/penguin"
LONG_PIPELINE = "fingerprints"


def write_slash_and_long_store(path: Path) -> None:
    """Two runs each of ``team/penguin`` (the trainer's ``learning_rate`` moves) and of
    ``fingerprints`` (ExampleGen -> Trainer, the trainer's ``input_fingerprint`` a 256-digit
    hex string and the examples' fingerprint a 128-digit one, both new in the second run)."""
    import hashlib

    from provenance.run_recorder import ArtifactRecord, ExecutionRecord, RunRecord, record_run

    for i in range(2):
        data = ArtifactRecord(key=f"team-data-{i}", type_name="Examples", uri=f"/team/{i}", properties={"span": 1})
        model = ArtifactRecord(key=f"team-model-{i}", type_name="Model", uri=f"/team/model/{i}")
        record_run(path, RunRecord(pipeline=SLASH_PIPELINE, run_id=f"team-run-{i + 1}",
                                   started_at=1_700_000_000 + 100 * i, executions=[
            ExecutionRecord("ExampleGen", "acme.ExampleGen", "COMPLETE", 1.0, outputs={"examples": data}),
            ExecutionRecord("Trainer", "acme.Trainer", "COMPLETE", 3.0, inputs={"examples": data},
                            outputs={"model": model}, properties={"learning_rate": 0.1 * (i + 1)}),
        ]))
    for i in range(2):
        digest = "".join(hashlib.sha512(f"{i}-{k}".encode()).hexdigest() for k in range(2))
        data = ArtifactRecord(key=digest[:128], type_name="Examples", uri=f"/fp/{i}", properties={"span": 1})
        model = ArtifactRecord(key=f"fp-model-{i}", type_name="Model", uri=f"/fp/model/{i}")
        record_run(path, RunRecord(pipeline=LONG_PIPELINE, run_id=f"fp-run-{i + 1}",
                                   started_at=1_700_000_000 + 100 * i, executions=[
            ExecutionRecord("ExampleGen", "acme.ExampleGen", "COMPLETE", 1.0, outputs={"examples": data}),
            ExecutionRecord("Trainer", "acme.Trainer", "COMPLETE", 3.0, inputs={"examples": data},
                            outputs={"model": model}, properties={"input_fingerprint": digest}),
        ]))


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> list[Path]:
    """Private copies of both TFX stores, the hostile store and the store of ``team/penguin`` and
    ``fingerprints``."""
    folder = tmp_path_factory.mktemp("stores")
    out = []
    for name in ("penguin_prod", "penguin_minimal"):
        shutil.copyfile(TFX_DIR / f"{name}.sqlite", folder / f"{name}.sqlite")
        out.append(folder / f"{name}.sqlite")
    write_hostile_store(folder / "hostile.sqlite")
    out.append(folder / "hostile.sqlite")
    write_slash_and_long_store(folder / "team.sqlite")
    out.append(folder / "team.sqlite")
    return out


@pytest.fixture(scope="session")
def warehouse(stores, tmp_path_factory) -> Path:
    """The stores ingested and analysed (tests open it read-only)."""
    import analysis
    from provenance.ingest import ingest

    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    ingest(stores, path, progress=False)
    analysis.analyze(path)
    return path


@pytest.fixture
def con(warehouse):
    import duckdb

    c = duckdb.connect(str(warehouse), read_only=True)
    yield c
    c.close()


def frugal(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the frugal command line as a subprocess of this worktree's code."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "frugal", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


@pytest.fixture(scope="session")
def static_site(warehouse, tmp_path_factory) -> Path:
    """`frugal report --pipeline penguin_prod` on a copy of the warehouse: the folder."""
    folder = tmp_path_factory.mktemp("site")
    wh = folder / "w.duckdb"
    shutil.copyfile(warehouse, wh)
    done = frugal("report", "--warehouse", str(wh), "--pipeline", "penguin_prod", "--out", str(folder / "out"))
    assert done.returncode == 0, done.stderr
    return folder / "out"


@pytest.fixture(scope="session")
def served(stores, frugal_serve, tmp_path_factory):
    """A real `frugal serve` (the shared launcher ``frugal_serve`` of tests/conftest.py) on a free
    loopback port over copies of the stores; yields its base URL once it is ready and the pipeline
    pages answer; stopped at the end."""
    folder = tmp_path_factory.mktemp("serve")
    copies = []
    for s in stores:
        shutil.copyfile(s, folder / s.name)
        copies.append(folder / s.name)
    service = frugal_serve(copies, folder / "w.duckdb", extra=["--ingest-every", "3600"], timeout=240,
                           ready=("/readyz", "/api/v1/pipelines/penguin_prod/view"))
    yield service.url
    service.stop()


def dump_dom(url: str, timeout: float = 120) -> str:
    """The DOM headless Chromium builds for ``url`` (after its scripts, if any, ran)."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


def screenshot(url: str, path: Path, size: str = "1400,2000", timeout: float = 120) -> Path:
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={path}", f"--window-size={size}", url],
        capture_output=True, text=True, timeout=timeout, check=True)
    return path


@pytest.fixture(scope="session")
def hostile_text() -> dict:
    """The markup written into the hostile store: ``script`` (a property value), ``component``."""
    return {"script": SCRIPT, "component": EVIL_COMPONENT}


@pytest.fixture(scope="session")
def tools():
    """Helpers for tests: ``frugal`` (CLI subprocess), ``dump_dom`` and ``screenshot`` (Chromium)."""
    from types import SimpleNamespace

    return SimpleNamespace(frugal=frugal, dump_dom=dump_dom, screenshot=screenshot)
