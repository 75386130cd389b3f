"""FrugalGate on real TFX 1.16 (LocalDagRunner, MLMD SQLite) against a real `frugal serve`.

The penguin pipeline CsvExampleGen -> StatisticsGen -> SchemaGen -> FrugalGate ->
Cond(Trainer -> Evaluator -> Pusher) runs three times in .venv-tfx (TFX pins protobuf 3.20 and
ml-metadata 1.16; frugal's venv cannot hold it). The MLMD store starts as a copy of a real TFX
store (another pipeline's history), so the service has something to learn from.

1. the service answers run: the Trainer trains, the model is pushed;
2. the service is stopped: the gate fails open, the Trainer trains;
3. the service again, an operator rule pins the pipeline to prune: ingestion and validation
   run, Trainer, Evaluator and Pusher have no execution in that run, the run succeeds.

(The fail-open run comes second so that the ledger's outcome matching, which gives each
decision the first training after it, has no unrecorded training after the prune.) Then an
ingest: the ledger holds both decisions with this run's ids and inputs, the run decision
matched to the training it allowed, the prune matched to nothing; frugal's graphlets of the
pipeline are exactly the two trainings that ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

pytestmark = pytest.mark.slow

PIPELINE = "penguin_gate"
GUARDED = ("Trainer", "Evaluator", "Pusher")
UPSTREAM = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "FrugalGate")


def penguin_csv(folder: Path) -> Path:
    """The Palmer penguins (palmerpenguins package), numeric features scaled to [0, 1], species 0-2."""
    import palmerpenguins

    cols = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    df = palmerpenguins.load_penguins().dropna(subset=cols)
    out = (df[cols] - df[cols].min()) / (df[cols].max() - df[cols].min())
    out["species"] = df["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2})
    folder.mkdir(parents=True)
    out.to_csv(folder / "penguins.csv", index=False)
    return folder


class TfxRuns:
    """One .venv-tfx process running the pipeline once per `run(url)` (TFX imported once)."""

    def __init__(self, python: Path, tmp: Path) -> None:
        self.tmp, self.n = tmp, 0
        self.log = (tmp / "tfx.log").open("w")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.proc = subprocess.Popen(
            ["timeout", "900", str(python), str(HERE / "tfx_penguin.py"), "--name", PIPELINE,
             "--data", str(tmp / "data"), "--root", str(tmp / "root"), "--metadata", str(tmp / "mlmd.sqlite"),
             "--serving", str(tmp / "serving")],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def run(self, url: str) -> dict:
        self.n += 1
        out = self.tmp / f"run-{self.n}.json"
        self.proc.stdin.write(f"{url} {out}\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.strip() == f"done {out}":
                return json.loads(out.read_text())
        self.log.flush()
        raise AssertionError(f"TFX run {self.n} failed (exit {self.proc.wait()}):\n"
                             f"{(self.tmp / 'tfx.log').read_text()[-6000:]}")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(60)
        self.log.close()


def states(run: dict) -> dict:
    return {node: [e["state"] for e in execs] for node, execs in run["nodes"].items()}


def test_frugal_gate_on_real_tfx(request, tmp_path, prod_store, frugal_service, tfx_python):
    python = tfx_python
    penguin_csv(tmp_path / "data")
    shutil.copyfile(prod_store, tmp_path / "mlmd.sqlite")
    service = frugal_service([tmp_path / "mlmd.sqlite"])
    url = service.url
    tfx_runs = TfxRuns(python, tmp_path)
    request.addfinalizer(tfx_runs.close)

    first = tfx_runs.run(url)
    assert states(first) == {node: ["COMPLETE"] for node in UPSTREAM + GUARDED}
    assert first["decision"]["run"] == 1 and first["decision"]["action"] == "run"
    assert len(first["decision"]["decision_id"]) == 32, first["decision"]
    assert first["pushed"] == [1]

    service.stop()
    second = tfx_runs.run(url)
    assert states(second) == {node: ["COMPLETE"] for node in UPSTREAM + GUARDED}
    assert (second["decision"]["run"], second["decision"]["fallback"], second["decision"]["decision_id"]) == \
        (1, "unreachable", "")
    assert second["pushed"] == [1]

    service.start()
    service.call("POST", "/api/v1/rules", {"pipeline": PIPELINE, "action": "prune", "reason": "data incident"})
    third = tfx_runs.run(service.url)
    assert states(third) == {node: ["COMPLETE"] for node in UPSTREAM}, "guarded nodes executed on prune"
    assert third["decision"]["run"] == 0 and third["decision"]["action"] == "prune"
    assert any("data incident" in r for r in json.loads(third["decision"]["reasons"]))
    assert third["pushed"] == []

    service.call("POST", "/api/v1/ingest")
    ledger = {r[0]: r[1:] for r in service.sql(
        "SELECT run_id, action, rule, inputs, outcome, outcome_graphlet_id, outcome_pushed "
        f"FROM decisions WHERE pipeline = '{PIPELINE}'")}
    assert set(ledger) == {first["run_id"], third["run_id"]}
    action, rule, inputs, outcome, graphlet, pushed = ledger[first["run_id"]]
    trainer_1 = first["nodes"]["Trainer"][0]["id"]
    assert (action, rule, outcome, pushed) == ("run", None, "ran", True)
    assert graphlet.endswith(f":{trainer_1}")
    assert sorted(json.loads(inputs)) == first["gate_inputs"] and len(first["gate_inputs"]) == 2
    action, rule, inputs, outcome, graphlet, pushed = ledger[third["run_id"]]
    assert (action, rule, outcome, graphlet) == ("prune", "data incident", "pruned", None)
    assert sorted(json.loads(inputs)) == third["gate_inputs"]

    ledger = service.call("GET", f"/api/v1/pipelines/{PIPELINE}")["ledger"]
    assert (ledger["decisions"], ledger["pruned"], ledger["ran"], ledger["by_rule"]) == (2, 1, 1, 1)
    trained = {r[0] for r in service.sql(
        f"SELECT trainer_execution_id FROM graphlets WHERE pipeline = '{PIPELINE}'")}
    assert trained == {trainer_1, second["nodes"]["Trainer"][0]["id"]}
