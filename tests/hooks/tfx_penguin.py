"""Runs of the hooks' TFX penguin pipeline, gated by FrugalGate (run with .venv-tfx's Python).

CsvExampleGen -> StatisticsGen -> SchemaGen -> FrugalGate -> Cond(run == 1: Trainer ->
Evaluator -> Pusher), LocalDagRunner, MLMD SQLite, caching off (every run ingests and
validates its data again, as a run on new data would). After the run it reads MLMD (TFX's own
ml-metadata) and writes a JSON report: this run's id, every node's executions (id, type,
state), the gate's input artifact ids, its decision properties and whether a model was pushed.

    python tfx_penguin.py --name P --data DIR --root DIR --metadata FILE --serving DIR

reads one job per line on stdin, ``URL REPORT_FILE``, runs the pipeline with the gate asking
URL, writes the report and prints ``done REPORT_FILE``; one process serves every run, so TFX
and TensorFlow are imported once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from frugal_client.tfx import FrugalGate

MODULE = str(Path(__file__).parent / "tfx_module" / "penguin_trainer.py")


def build(args, url: str) -> tfx.dsl.Pipeline:
    example_gen = tfx.components.CsvExampleGen(input_base=args.data)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
    gate = FrugalGate(url=url, timeout_s=args.timeout, examples=example_gen.outputs["examples"],
                      statistics=statistics_gen.outputs["statistics"])
    with tfx.dsl.Cond(gate.outputs["decision"].future()[0].custom_property("run") == 1):
        trainer = tfx.components.Trainer(
            module_file=MODULE, examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(num_steps=20), eval_args=tfx.proto.EvalArgs(num_steps=5))
        eval_config = tfma.EvalConfig(
            model_specs=[tfma.ModelSpec(label_key="species")],
            slicing_specs=[tfma.SlicingSpec()],
            metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
                class_name="SparseCategoricalAccuracy",
                threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                    lower_bound={"value": 0.3})))])])
        evaluator = tfx.components.Evaluator(examples=example_gen.outputs["examples"],
                                             model=trainer.outputs["model"], eval_config=eval_config)
        pusher = tfx.components.Pusher(
            model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=args.serving)))
    return tfx.dsl.Pipeline(
        pipeline_name=args.name, pipeline_root=args.root,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(args.metadata),
        components=[example_gen, statistics_gen, schema_gen, gate, trainer, evaluator, pusher],
        enable_cache=False)


def report(metadata: str, name: str) -> dict:
    """This (newest) run of pipeline ``name`` as recorded in MLMD."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    runs = [c for c in store.get_contexts_by_type("pipeline_run")
            if any(p.name == name for p in store.get_parent_contexts_by_context(c.id))]
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    types = {t.id: t.name for t in store.get_execution_types()}
    nodes: dict = {}
    for e in store.get_executions_by_context(run.id):
        nodes.setdefault(types[e.type_id].rsplit(".", 1)[-1], []).append(
            {"id": e.id, "type": types[e.type_id], "state": metadata_store_pb2.Execution.State.Name(
                e.last_known_state)})
    artifacts = store.get_artifacts_by_context(run.id)
    atypes = {t.id: t.name for t in store.get_artifact_types()}
    decision = [a for a in artifacts if atypes[a.type_id] == "FrugalDecision"]
    pushed = [a for a in artifacts if atypes[a.type_id] == "PushedModel"]
    props = {}
    if decision:
        for k, v in decision[0].custom_properties.items():
            props[k] = v.string_value if v.HasField("string_value") else \
                v.int_value if v.HasField("int_value") else v.double_value if v.HasField("double_value") else None
    gate = nodes["FrugalGate"][0]["id"]
    gate_inputs = sorted(e.artifact_id for e in store.get_events_by_execution_ids([gate])
                         if e.type == metadata_store_pb2.Event.INPUT)
    return {"run_id": run.name, "nodes": nodes, "decision": props, "gate_inputs": gate_inputs,
            "decision_artifact_id": decision[0].id if decision else None,
            "pushed": [a.custom_properties["pushed"].int_value for a in pushed]}


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--name", "--data", "--root", "--metadata", "--serving"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.INFO)
    for line in sys.stdin:
        if not line.strip():
            continue
        url, out = line.split()
        started = time.monotonic()
        tfx.orchestration.LocalDagRunner().run(build(args, url))
        report_ = report(args.metadata, args.name)
        report_["wall_s"] = round(time.monotonic() - started, 1)
        Path(out).write_text(json.dumps(report_, indent=2))
        print("done", out, flush=True)


if __name__ == "__main__":
    main()
