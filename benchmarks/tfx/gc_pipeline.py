"""One run of the garbage-collection benchmark's TFX penguin pipeline (run with .venv-tfx's Python).

CsvExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Trainer -> latest blessed
model Resolver -> Evaluator (with the resolved baseline) -> Pusher, LocalDagRunner, MLMD
SQLite, caching on. Prints one JSON line: the run's nodes and their execution states.

    python gc_pipeline.py --data DIR --root DIR --metadata FILE --serving DIR --hidden N
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

MODULE = str(Path(__file__).resolve().parents[2] / "tests" / "hooks" / "tfx_module" / "penguin_trainer.py")
NAME = "penguin_gc"


def build(args) -> tfx.dsl.Pipeline:
    example_gen = tfx.components.CsvExampleGen(input_base=args.data)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
    validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                schema=schema_gen.outputs["schema"])
    trainer = tfx.components.Trainer(
        module_file=MODULE, examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=30), eval_args=tfx.proto.EvalArgs(num_steps=5),
        custom_config={"hidden": args.hidden})
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="species")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy",
            threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                lower_bound={"value": 0.3})))])])
    evaluator = tfx.components.Evaluator(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                                         baseline_model=resolver.outputs["model"], eval_config=eval_config)
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=args.serving)))
    return tfx.dsl.Pipeline(
        pipeline_name=NAME, pipeline_root=args.root,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(args.metadata),
        components=[example_gen, statistics_gen, schema_gen, validator, trainer, resolver, evaluator, pusher],
        enable_cache=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--data", "--root", "--metadata", "--serving"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--hidden", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    started = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(build(args))
    print(json.dumps({"wall_s": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
