"""A small pipeline for `frugal run` in tests: its input lies where `frugal run` says ($FRUGAL_RUN_DIR)."""

import os
from pathlib import Path

from pipelines.api import Pipeline, beam_step, python_step, source

NAME = "tiny"  # the tests that need another name replace this line
DATA = Path(os.environ["FRUGAL_RUN_DIR"]) / "rows.csv"
if not DATA.exists():
    DATA.write_text("x\n" + "".join(f"{i}\n" for i in range(20)))


def double(rows):
    import apache_beam as beam

    return rows | beam.Map(lambda r: {"x": 2.0 * float(r["x"])})


def train(examples):
    return {"n": len(examples)}


def push(model):
    return {"pushed": model["n"] > 10}


pipeline = Pipeline(NAME, (
    source("rows", str(DATA)),
    beam_step("double", double, {"rows": "rows"}, type_name="Transform"),
    python_step("train", train, {"examples": "double"}, type_name="Trainer", output_type="Model"),
    python_step("push", push, {"model": "train"}, type_name="Pusher", output_type="PushedModel"),
))
