"""FrugalGate on real TFX 1.16 (LocalDagRunner, MLMD SQLite) against a real `frugal serve`.

The penguin pipeline CsvExampleGen -> StatisticsGen -> SchemaGen -> FrugalGate ->
Cond(Trainer -> Evaluator -> Pusher) runs three times in .venv-tfx (TFX pins protobuf 3.20 and
ml-metadata 1.16; frugal's venv cannot hold it). The MLMD store starts as a copy of a real TFX
store (another pipeline's history), so the service has something to learn from.

The pipeline is new to the service (its first run comes after the service loaded the store),
so it starts in shadow mode (``new_pipeline_mode``): every run trains, the ledger records what
the policy would have done.

1. shadow, the service answers run: the Trainer trains, the model is pushed;
2. shadow, an operator rule pins the pipeline to prune: the run trains and pushes anyway, the
   answer and the ledger say would_prune;
3. the service is stopped: the gate fails open, the Trainer trains;
4. the service again (the pipeline's mode kept across the restart), the rule switches the
   pipeline to enforce: ingestion and validation run, Trainer, Evaluator and Pusher have no
   execution in that run, the run succeeds.

Then an ingest: the ledger holds the three decisions with their runs' ids and inputs, the run
decisions matched to the trainings they allowed, the prune matched to nothing; frugal's graphlets
of the pipeline are exactly the three trainings that ran; the shadow report's figures are the
counts made from MLMD (the gate's recorded decisions, the trainer executions, the pushed models).
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
    assert json.loads(first["decision"]["reasons"])[0] == "shadow mode: would run, ran"
    assert first["pushed"] == [1]
    modes = {m["pipeline"]: m["mode"] for m in service.call("GET", "/api/v1/modes")["modes"]}
    assert modes == {"penguin_prod": "enforce", PIPELINE: "shadow"}

    service.call("POST", "/api/v1/rules", {"pipeline": PIPELINE, "action": "prune", "reason": "data incident"})
    second = tfx_runs.run(url)
    assert states(second) == {node: ["COMPLETE"] for node in UPSTREAM + GUARDED}, "shadow mode must train"
    assert second["decision"]["run"] == 1 and second["decision"]["action"] == "run"
    reasons = json.loads(second["decision"]["reasons"])
    assert reasons[0] == "shadow mode: would prune, ran" and "data incident" in reasons[1]
    assert second["pushed"] == [1]
    assert service.sql(f"SELECT mode, would_prune, explored FROM decisions WHERE run_id = '{second['run_id']}'") \
        == [["shadow", True, False]]

    service.stop()
    third = tfx_runs.run(url)
    assert states(third) == {node: ["COMPLETE"] for node in UPSTREAM + GUARDED}
    assert (third["decision"]["run"], third["decision"]["fallback"], third["decision"]["decision_id"]) == \
        (1, "unreachable", "")
    assert third["pushed"] == [1]

    service.start()
    service.call("PUT", f"/api/v1/rules/{PIPELINE}", {"mode": "enforce", "action": "prune",
                                                      "reason": "data incident"})
    fourth = tfx_runs.run(service.url)
    assert states(fourth) == {node: ["COMPLETE"] for node in UPSTREAM}, "guarded nodes executed on prune"
    assert fourth["decision"]["run"] == 0 and fourth["decision"]["action"] == "prune"
    assert any("data incident" in r for r in json.loads(fourth["decision"]["reasons"]))
    assert fourth["pushed"] == []

    service.call("POST", "/api/v1/ingest")
    ledger = {r[0]: r[1:] for r in service.sql(
        "SELECT run_id, action, rule, inputs, outcome, outcome_graphlet_id, outcome_pushed, mode, would_prune "
        f"FROM decisions WHERE pipeline = '{PIPELINE}'")}
    assert set(ledger) == {first["run_id"], second["run_id"], fourth["run_id"]}
    action, rule, inputs, outcome, graphlet, pushed, mode, would = ledger[first["run_id"]]
    trainer_1 = first["nodes"]["Trainer"][0]["id"]
    assert (action, rule, outcome, pushed, mode, would) == ("run", None, "ran", True, "shadow", False)
    assert graphlet.endswith(f":{trainer_1}")
    assert sorted(json.loads(inputs)) == first["gate_inputs"] and len(first["gate_inputs"]) == 2
    action, rule, inputs, outcome, graphlet, pushed, mode, would = ledger[second["run_id"]]
    trainer_2 = second["nodes"]["Trainer"][0]["id"]
    assert (action, rule, outcome, pushed, mode, would) == ("run", "data incident", "ran", True, "shadow", True)
    assert graphlet.endswith(f":{trainer_2}")
    action, rule, inputs, outcome, graphlet, pushed, mode, would = ledger[fourth["run_id"]]
    assert (action, rule, outcome, graphlet, mode, would) == ("prune", "data incident", "pruned", None, "enforce",
                                                              True)
    assert sorted(json.loads(inputs)) == fourth["gate_inputs"]

    summary = service.call("GET", f"/api/v1/pipelines/{PIPELINE}")["ledger"]
    assert (summary["decisions"], summary["pruned"], summary["ran"], summary["by_rule"]) == (3, 1, 2, 2)
    trained = {r[0] for r in service.sql(
        f"SELECT trainer_execution_id FROM graphlets WHERE pipeline = '{PIPELINE}'")}
    assert trained == {trainer_1, trainer_2, third["nodes"]["Trainer"][0]["id"]}

    # the shadow report against MLMD (each run's report is read with the ml_metadata API): the
    # runs whose recorded decision was a shadow one, their trainer executions, their pushed models
    runs = (first, second, third, fourth)
    shadow_runs = [r for r in runs if r["decision"].get("reasons")
                   and json.loads(r["decision"]["reasons"])[0].startswith("shadow mode:")]
    would_prune = [r for r in shadow_runs if json.loads(r["decision"]["reasons"])[0] == "shadow mode: would prune, ran"]
    [report] = service.call("GET", f"/api/v1/shadow?pipeline={PIPELINE}")["pipelines"]
    assert report["decisions"] == len(shadow_runs) == sum(len(r["nodes"].get("Trainer", [])) for r in shadow_runs)
    assert report["would_prune"] == len(would_prune) == 1
    assert report["pushes_lost"] == sum(sum(r["pushed"]) for r in would_prune) == 1
    assert report["compute_saved_s"] > 0
    # without the second run's push the first run's model stays deployed until the third run's push
    assert report["added_age_h2"] > 0
