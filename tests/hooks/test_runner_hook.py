"""`frugal run PIPELINE_FILE --hook URL` against a real `frugal serve` on the run's own MLMD store.

One plain run gives the pipeline a history; then, with the service reading the same store:
an operator's prune rule skips train, evaluate and push (the data steps still run), the run
context in MLMD carries the decision id and no execution of the skipped components is
recorded; without the rule the service answers run and the model trains; with the service
stopped the run fails open and trains. After an ingest, frugal's graphlets are exactly the
trainings that ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PIPELINE_FILE = HERE / "runner_pipeline.py"
SKIPPED = ["train", "evaluate", "push"]


def frugal_run(tmp: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")])}
    proc = subprocess.run([sys.executable, "-m", "frugal", "run", str(PIPELINE_FILE), "--store",
                           str(tmp / "mlmd.sqlite"), "--no-reuse", *args],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_frugal_run_asks_the_service_first(tmp_path, frugal_service):
    first = json.loads(frugal_run(tmp_path, "--json").stdout)
    assert first["decision"] is None and first["skipped"] == []
    service = frugal_service([tmp_path / "mlmd.sqlite"])
    service.call("POST", "/api/v1/rules", {"pipeline": "hooked", "action": "prune", "reason": "bad data"})

    pruned = json.loads(frugal_run(tmp_path, "--json", "--hook", service.url, "--hook-timeout", "60").stdout)
    assert pruned["decision"]["fallback"] is None, pruned["decision"]["reasons"]
    assert pruned["decision"]["action"] == "prune" and pruned["skipped"] == SKIPPED
    assert {n: r["action"] for n, r in pruned["nodes"].items()} == {
        "rows": "compute", "features": "compute", "train": "prune", "evaluate": "prune", "push": "prune"}
    assert "push" not in pruned["outputs"]
    decision_id = pruned["decision"]["decision_id"]
    assert service.sql(f"SELECT pipeline, run_id, action, rule FROM decisions WHERE decision_id = '{decision_id}'") \
        == [["hooked", pruned["run_id"], "prune", "bad data"]]

    service.call("DELETE", "/api/v1/rules/hooked")
    text = frugal_run(tmp_path, "--hook", service.url, "--hook-timeout", "60").stdout
    assert "frugal decision " in text and ": run (" in text and "train                compute" in text

    service.call("POST", "/api/v1/ingest")
    run_props = service.sql(
        "SELECT p.name, p.string_value FROM contexts c JOIN properties p ON p.source_id = c.source_id "
        "AND p.entity = 'context' AND p.entity_id = c.context_id "
        f"WHERE c.type_name = 'pipeline_run' AND c.name = '{pruned['run_id']}' ORDER BY 1")
    assert ["frugal_action", "prune"] in run_props and ["frugal_decision_id", decision_id] in run_props
    executed = service.sql(
        "SELECT e.type_name FROM executions e JOIN associations a USING (source_id, execution_id) "
        f"JOIN contexts c ON c.source_id = a.source_id AND c.context_id = a.context_id "
        f"WHERE c.type_name = 'pipeline_run' AND c.name = '{pruned['run_id']}' ORDER BY e.execution_id")
    assert [r[0] for r in executed] == ["ExampleGen", "Transform"]
    trainings = service.sql("SELECT count(*) FROM graphlets WHERE pipeline = 'hooked'")[0][0]
    assert trainings == 2  # the plain run and the run the service allowed
    ledger = service.call("GET", "/api/v1/pipelines/hooked")["ledger"]
    assert (ledger["decisions"], ledger["pruned"], ledger["ran"], ledger["by_rule"]) == (2, 1, 1, 1)

    url = service.url
    service.stop()
    failed_open = json.loads(frugal_run(tmp_path, "--json", "--hook", url).stdout)
    assert failed_open["decision"]["fallback"] == "unreachable" and failed_open["skipped"] == []
    assert failed_open["nodes"]["train"]["action"] == "compute" and failed_open["outputs"]["push"]["pushed"] is True


def test_hook_needs_a_training_step(tmp_path, closed_port):
    bare = tmp_path / "bare.py"
    bare.write_text("from pipelines.api import Pipeline, source\n"
                    "pipeline = Pipeline('bare', (source('rows', 'rows.csv'),))\n")
    (tmp_path / "rows.csv").write_text("x\n1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "clients" / "python")])}
    proc = subprocess.run([sys.executable, "-m", "frugal", "run", str(bare), "--no-reuse", "--hook",
                           f"http://127.0.0.1:{closed_port}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "no training component" in proc.stderr + proc.stdout and "type_name='Trainer'" in proc.stderr + proc.stdout
