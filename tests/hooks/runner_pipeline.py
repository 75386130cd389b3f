"""A small pipeline file for `frugal run --hook`: source -> features -> train -> evaluate -> push.

Reads ./hook-data/rows.csv (written on first use) in the working directory.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.api import Pipeline, beam_step, python_step, source

DATA = Path("hook-data")
if not (DATA / "rows.csv").exists():
    DATA.mkdir(exist_ok=True)
    (DATA / "rows.csv").write_text("x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(50)))


def features(rows):
    import apache_beam as beam

    return rows | beam.Map(lambda r: {"x": float(r["x"]), "y": float(r["y"])})


def train(examples):
    n = len(examples)
    mx = sum(r["x"] for r in examples) / n
    my = sum(r["y"] for r in examples) / n
    slope = sum((r["x"] - mx) * (r["y"] - my) for r in examples) / sum((r["x"] - mx) ** 2 for r in examples)
    return {"slope": slope, "intercept": my - slope * mx}


def evaluate(model, examples):
    err = max(abs(model["slope"] * r["x"] + model["intercept"] - r["y"]) for r in examples)
    return {"max_error": err, "blessed": err < 1e-6}


def push(model, evaluation):
    return {"pushed": bool(evaluation["blessed"])}


pipeline = Pipeline("hooked", (
    source("rows", DATA / "rows.csv"),
    beam_step("features", features, {"rows": "rows"}, type_name="Transform"),
    python_step("train", train, {"examples": "features"}, type_name="Trainer", output_type="Model"),
    python_step("evaluate", evaluate, {"model": "train", "examples": "features"}, type_name="Evaluator",
                output_type="ModelEvaluation"),
    python_step("push", push, {"model": "train", "evaluation": "evaluate"}, type_name="Pusher",
                output_type="PushedModel"),
))
