"""Append real TFX-shaped runs to an MLMD store through the ml_metadata API (provenance.run_recorder)."""

from __future__ import annotations

import json
import sqlite3
import uuid

from provenance.run_recorder import ArtifactRecord, ExecutionRecord, RunRecord, record_run

TFX = "tfx.components."


def append_run(store, pipeline: str, *, started_at: float, anomalies_blessed: int = 1, train: bool = True,
               pushed: bool = True, trainer_node: str = "Trainer") -> dict[str, int]:
    """Record one run (data ingestion, validation, and with ``train`` training to push); return artifact ids."""
    tag = uuid.uuid4().hex[:10]
    art = lambda kind, **props: ArtifactRecord(f"{kind}-{tag}", kind, f"/tmp/{pipeline}/{kind}/{tag}", props)  # noqa: E731
    examples = art("Examples", span=1, split_names='["train", "eval"]',
                   input_fingerprint="split:single_split,num_files:2,total_bytes:1000")
    stats = art("ExampleStatistics", span=1)
    schema = art("Schema")
    anomalies = art("ExampleAnomalies", span=1,
                    blessed=json.dumps({"eval": float(anomalies_blessed), "train": float(anomalies_blessed)}))
    execs = [
        ExecutionRecord("CsvExampleGen", TFX + "example_gen.csv_example_gen.component.CsvExampleGen", "COMPLETE", 1.0,
                        outputs={"examples": examples}),
        ExecutionRecord("StatisticsGen", TFX + "statistics_gen.component.StatisticsGen", "COMPLETE", 0.5,
                        inputs={"examples": examples}, outputs={"statistics": stats}),
        ExecutionRecord("SchemaGen", TFX + "schema_gen.component.SchemaGen", "COMPLETE", 0.2,
                        inputs={"statistics": stats}, outputs={"schema": schema}),
        ExecutionRecord("ExampleValidator", TFX + "example_validator.component.ExampleValidator", "COMPLETE", 0.2,
                        inputs={"statistics": stats, "schema": schema}, outputs={"anomalies": anomalies}),
    ]
    if train:
        model = art("Model")
        blessing = art("ModelBlessing", blessed=int(pushed))
        push = art("PushedModel", pushed=int(pushed))
        execs += [
            ExecutionRecord(trainer_node, TFX + "trainer.component.Trainer", "COMPLETE", 3.0,
                            inputs={"examples": examples, "schema": schema}, outputs={"model": model}),
            ExecutionRecord("Evaluator", TFX + "evaluator.component.Evaluator", "COMPLETE", 1.0,
                            inputs={"examples": examples, "model": model}, outputs={"blessing": blessing}),
            ExecutionRecord("Pusher", TFX + "pusher.component.Pusher", "COMPLETE", 0.5,
                            inputs={"model": model, "model_blessing": blessing}, outputs={"pushed_model": push}),
        ]
    record_run(store, RunRecord(pipeline, f"run-{tag}", started_at, execs))
    if "://" in str(store):    # a server store (mysql://...): the ids are read back only from SQLite files
        return {}
    con = sqlite3.connect(str(store))
    try:
        return {kind: con.execute("SELECT id FROM Artifact WHERE name = ?", [f"{kind}-{tag}"]).fetchone()[0]
                for kind in ("Examples", "ExampleStatistics", "Schema", "ExampleAnomalies")}
    finally:
        con.close()
