"""Stores with the same file stem get `folder/stem` source ids, in `frugal ingest` and `frugal serve`.

Two real MLMD stores named metadata.sqlite: `a/` written by `frugal run` (the ml_metadata API)
for a pipeline whose name holds a `/` (`team/tiny`), `b/` a copy of a real TFX store. One
ingest command loads both as `a/metadata` and `b/metadata` and says so; `frugal sql` and
`frugal report` (the batch report and the pipeline's pages) work on that warehouse; ids
without a collision, and the ids a warehouse already holds, stay as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from frugal.cli import main

ROOT = Path(__file__).resolve().parents[2]
NOTE = ("2 stores share the default source id 'metadata': using a/metadata for {a}, "
        "b/metadata for {b} (choose others with --source-id)")

TINY = (ROOT / "tests" / "data" / "pipelines" / "tiny.py").read_text().replace('NAME = "tiny"', 'NAME = "team/tiny"')


@pytest.fixture(scope="module")
def same_stem(tmp_path_factory, tfx_dir) -> tuple[Path, Path]:
    """a/metadata.sqlite (two runs of `team/tiny`) and b/metadata.sqlite (the TFX penguin_prod store)."""
    root = tmp_path_factory.mktemp("same-stem")
    pipeline_file = root / "tiny_pipeline.py"
    pipeline_file.write_text(TINY)
    a, b = root / "a" / "metadata.sqlite", root / "b" / "metadata.sqlite"
    for _ in range(2):
        assert main(["run", str(pipeline_file), "--store", str(a), "--no-reuse"]) == 0
    b.parent.mkdir()
    shutil.copyfile(tfx_dir / "penguin_prod.sqlite", b)
    return a, b


def _sql(warehouse: Path, query: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["sql", "-w", str(warehouse), query, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ingest_gives_same_stem_stores_folder_stem_ids_and_says_so(same_stem, tmp_path, capsys):
    a, b = same_stem
    warehouse = tmp_path / "w.duckdb"
    assert main(["ingest", str(a), str(b), "-w", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert NOTE.format(a=a, b=b) in out
    assert _sql(warehouse, "SELECT source_id, uri FROM sources ORDER BY 1", capsys) == [
        {"source_id": "a/metadata", "uri": str(a)}, {"source_id": "b/metadata", "uri": str(b)}]
    counts = _sql(warehouse, "SELECT source_id, count(*) AS n FROM executions GROUP BY 1 ORDER BY 1", capsys)
    assert [c["source_id"] for c in counts] == ["a/metadata", "b/metadata"] and all(c["n"] > 0 for c in counts)
    trainings = _sql(warehouse, "SELECT source_id, pipeline, count(*) AS n FROM graphlets GROUP BY ALL ORDER BY 1",
                     capsys)
    assert trainings[0] == {"source_id": "a/metadata", "pipeline": "team/tiny", "n": 2}
    assert trainings[1]["source_id"] == "b/metadata" and trainings[1]["n"] > 0

    report = tmp_path / "report"
    assert main(["report", "-w", str(warehouse), "-o", str(report)]) == 0
    summary = json.loads((report / "summary.json").read_text())
    assert "team/tiny" in json.dumps(summary) and (report / "index.html").stat().st_size > 0
    pages = tmp_path / "pages"
    assert main(["report", "-w", str(warehouse), "-o", str(pages), "--pipeline", "team/tiny",
                 "--source", "a/metadata"]) == 0
    assert "team/tiny" in (pages / "index.html").read_text()

    # the same stores again, or one of them alone: the ids the warehouse holds, no new source
    assert main(["ingest", str(b), "-w", str(warehouse), "--no-analyze"]) == 0
    assert main(["ingest", str(a), str(b), "-w", str(warehouse), "--no-analyze"]) == 0
    assert "share the default source id" not in capsys.readouterr().out
    assert [r["source_id"] for r in _sql(warehouse, "SELECT source_id FROM sources ORDER BY 1", capsys)] == [
        "a/metadata", "b/metadata"]


def test_ids_without_a_collision_stay_the_file_stem(same_stem, tfx_dir, tmp_path, capsys):
    a, _ = same_stem
    prod = tmp_path / "penguin_prod.sqlite"
    shutil.copyfile(tfx_dir / "penguin_prod.sqlite", prod)
    warehouse = tmp_path / "w.duckdb"
    assert main(["ingest", str(a), str(prod), "-w", str(warehouse), "--no-analyze"]) == 0
    assert "source id" not in capsys.readouterr().out
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT source_id FROM sources ORDER BY 1").fetchall() == [
            ("metadata",), ("penguin_prod",)]


def _call(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return json.loads(exc.read())
        raise


def test_serve_gives_same_stem_stores_folder_stem_ids(same_stem, tmp_path):
    a, b = same_stem
    port_file, log = tmp_path / "port", tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            ["timeout", "300", sys.executable, "-m", "frugal", "serve", str(a), str(b), "-w",
             str(tmp_path / "w.duckdb"), "--port", "0", "--port-file", str(port_file), "--ingest-every", "3600"],
            cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline, url = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            if port_file.exists():
                url = f"http://127.0.0.1:{port_file.read_text().strip()}"
                try:
                    if _call(url, "/readyz").get("ready"):
                        break
                except OSError:
                    pass
            time.sleep(0.3)
        else:
            pytest.fail(f"frugal serve not ready:\n{log.read_text()[-3000:]}")
        rows = _call(url, "/api/v1/sql", {"query": "SELECT source_id, uri FROM sources ORDER BY 1"})["rows"]
        assert rows == [["a/metadata", str(a)], ["b/metadata", str(b)]]
        assert NOTE.format(a=a, b=b) in log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
