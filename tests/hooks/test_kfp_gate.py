"""frugal_gate with the real kfp v2 SDK (.venv-kfp): compiled, and run by kfp's local runner.

The compiled pipeline must carry the gate's condition on the trainer's task (the trainer
sits in the `dsl.If` sub-DAG whose trigger policy reads the gate's output), with the gate
never served from cache. Run locally against a real `frugal serve` on the real TFX store
penguin_prod: the service's run decision trains, an operator's prune rule does not, a
stopped service fails open and trains.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PIPELINE = "penguin_prod"


def kfp_run(python: Path, tmp: Path, url: str, name: str, local: bool = True) -> dict:
    out, marker = tmp / f"{name}.json", tmp / f"{name}.trained"
    cmd = [str(python), str(HERE / "kfp_pipeline.py"), "--url", url, "--pipeline", PIPELINE,
           "--yaml", str(tmp / f"{name}.yaml"), "--out", str(out), "--marker", str(marker)]
    if local:
        cmd += ["--run-local", str(tmp / f"{name}-root")]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python")}
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"kfp pipeline {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_compiled_pipeline_carries_the_condition_on_the_trainer(kfp_python, tmp_path, closed_port):
    report = kfp_run(kfp_python, tmp_path, f"http://127.0.0.1:{closed_port}", "compiled", local=False)
    spec = yaml.safe_load(Path(report["compiled"]).read_text())
    tasks = spec["root"]["dag"]["tasks"]
    gate = tasks["frugal-gate"]
    assert gate["cachingOptions"] == {}  # caching off (kfp writes enableCache: true otherwise)
    assert gate["inputs"]["parameters"]["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    guarded = [t for t in tasks.values() if "triggerPolicy" in t]
    assert len(guarded) == 1
    condition = guarded[0]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--frugal-gate-Output'] == 'run'"
    assert guarded[0]["inputs"]["parameters"]["pipelinechannel--frugal-gate-Output"]["taskOutputParameter"] == \
        {"outputParameterKey": "Output", "producerTask": "frugal-gate"}
    sub_dag = spec["components"][guarded[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert set(sub_dag) == {"train"}
    assert "train" not in tasks
    gate_code = "".join(spec["deploymentSpec"]["executors"]["exec-frugal-gate"]["container"]["command"])
    assert "from frugal_client import Client" in gate_code


def test_local_runs_obey_the_service_and_fail_open(kfp_python, tmp_path, frugal_service, prod_store):
    service = frugal_service([prod_store])
    assert kfp_run(kfp_python, tmp_path, service.url, "run")["trained"] is True
    service.call("POST", "/api/v1/rules", {"pipeline": PIPELINE, "action": "prune", "reason": "freeze"})
    assert kfp_run(kfp_python, tmp_path, service.url, "prune")["trained"] is False
    decisions = service.sql(f"SELECT action, rule FROM decisions WHERE pipeline = '{PIPELINE}' ORDER BY decided_at")
    assert decisions == [["run", None], ["prune", "freeze"]]
    url = service.url
    service.stop()
    assert kfp_run(kfp_python, tmp_path, url, "stopped")["trained"] is True
