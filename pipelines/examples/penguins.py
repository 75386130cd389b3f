"""Penguin species classification: Beam data steps and a Keras trainer, iterated on.

The ``palmerpenguins`` data (344 birds) is enlarged with synthetic rows (a real bird of the
same species with Gaussian jitter) so that each step takes seconds, as in real pipelines.

    raw -> clean -> stats --> features -> train_data -> train -> evaluate -> push
                 \\________/            \\-> eval_data --------/      /
                                                 \\__________________/

:class:`PenguinConfig` holds what a data scientist changes between iterations (feature
transform version, hyperparameters, evaluation); :func:`build_pipeline` turns it into a
:class:`~pipelines.api.Pipeline`. Run one with
``frugal run pipelines/examples/penguin_pipeline.py --store runs/penguins.sqlite`` (the outputs go
beside the store).
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.api import Pipeline, beam_step, python_step, source

__all__ = ["FEATURES", "PenguinConfig", "build_pipeline", "make_dataset"]

NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
SPECIES = ("Adelie", "Chinstrap", "Gentoo")
FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "is_male")


def make_dataset(folder: str | os.PathLike, rows: int, *, seed: int = 0, name: str = "span-1.csv") -> Path:
    """Write ``rows`` penguins (the real ones, then jittered copies) as one CSV file."""
    import palmerpenguins

    real = palmerpenguins.load_penguins()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(real), size=rows)
    df = real.iloc[idx].reset_index(drop=True)
    for col in NUMERIC:
        scale = real[col].std() * 0.15
        df[col] = (df[col] + rng.normal(0.0, scale, size=rows)).round(2)
    df.insert(0, "id", [f"{seed}-{i}" for i in range(rows)])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = path.with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


# ---- data steps (Beam) -----------------------------------------------------------------------
def _clean_row(row: dict) -> dict:
    return {
        "id": row["id"],
        "label": SPECIES.index(row["species"]),
        "island": row["island"],
        "is_male": 1.0 if row["sex"] == "male" else 0.0,
        **{c: float(row[c]) for c in NUMERIC},
    }


def _complete(row: dict) -> bool:
    return row["species"] in SPECIES and row["sex"] in ("male", "female") and all(
        row[c] is not None and not (isinstance(row[c], float) and math.isnan(row[c])) for c in NUMERIC
    )


def clean(raw):
    """Drop incomplete records, encode species and sex."""
    return raw | "Complete" >> beam.Filter(_complete) | "Encode" >> beam.Map(_clean_row)


class _MeanStd(beam.CombineFn):
    def create_accumulator(self):
        return {c: [0.0, 0.0, 0] for c in FEATURES}

    def add_input(self, acc, row):
        for c in FEATURES:
            s = acc[c]
            s[0] += row[c]
            s[1] += row[c] * row[c]
            s[2] += 1
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for a in accs:
            for c in FEATURES:
                for i in range(3):
                    out[c][i] += a[c][i]
        return out

    def extract_output(self, acc):
        row = {}
        for c in FEATURES:
            s, ss, n = acc[c]
            mean = s / n if n else 0.0
            row[f"{c}_mean"] = mean
            row[f"{c}_std"] = math.sqrt(max(ss / n - mean * mean, 1e-12)) if n else 1.0
        return row


def statistics(cleaned):
    """Mean and standard deviation of every feature (one row)."""
    return cleaned | "MeanStd" >> beam.CombineGlobally(_MeanStd())


def _zscore(row: dict, stats: dict) -> dict:
    out = {"id": row["id"], "label": row["label"]}
    for c in FEATURES:
        out[c] = (row[c] - stats[f"{c}_mean"]) / stats[f"{c}_std"]
    return out


def _zscore_with_ratio(row: dict, stats: dict) -> dict:
    out = _zscore(row, stats)
    out["bill_ratio"] = row["bill_length_mm"] / row["bill_depth_mm"] - 2.5
    out["mass_per_flipper"] = row["body_mass_g"] / row["flipper_length_mm"] / 20.0 - 1.0
    return out


def features_v1(cleaned, stats):
    """Z-score every feature with the dataset statistics."""
    return cleaned | "ZScore" >> beam.Map(_zscore, beam.pvalue.AsSingleton(stats))


def features_v2(cleaned, stats):
    """Z-scores plus two ratio features."""
    return cleaned | "ZScoreRatios" >> beam.Map(_zscore_with_ratio, beam.pvalue.AsSingleton(stats))


def _bucket(row_id: str) -> int:
    return zlib.crc32(row_id.encode()) % 10


def train_split(examples, eval_buckets: int = 2):
    """Rows of the training split (hash buckets >= eval_buckets)."""
    return examples | "Train" >> beam.Filter(lambda r, k: _bucket(r["id"]) >= k, eval_buckets)


def eval_split(examples, eval_buckets: int = 2):
    """Rows of the evaluation split (hash buckets < eval_buckets)."""
    return examples | "Eval" >> beam.Filter(lambda r, k: _bucket(r["id"]) < k, eval_buckets)


# ---- training steps (TensorFlow/Keras) -------------------------------------------------------
def _matrix(rows: list[dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    cols = sorted(k for k in rows[0] if k not in ("id", "label")) if rows else []
    x = np.array([[r[c] for c in cols] for r in rows], dtype=np.float32)
    y = np.array([r["label"] for r in rows], dtype=np.int32)
    return cols, x, y


def _build_model(n_features: int, hidden: int, layers: int):
    import tensorflow as tf

    inputs = tf.keras.Input(shape=(n_features,))
    h = inputs
    for _ in range(layers):
        h = tf.keras.layers.Dense(hidden, activation="relu")(h)
    outputs = tf.keras.layers.Dense(len(SPECIES), activation="softmax")(h)
    return tf.keras.Model(inputs, outputs)


def train(examples: list[dict], hidden: int = 16, layers: int = 2, learning_rate: float = 0.01,
          epochs: int = 3, batch_size: int = 64, seed: int = 0) -> dict[str, Any]:
    """Train a small Keras classifier; returns its weights, columns and shape."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    cols, x, y = _matrix(examples)
    model = _build_model(len(cols), hidden, layers)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return {"weights": [w.copy() for w in model.get_weights()], "columns": cols, "hidden": hidden,
            "layers": layers, "train_rows": len(examples)}


def _predict(model: dict[str, Any], rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    cols = model["columns"]
    x = np.array([[r[c] for c in cols] for r in rows], dtype=np.float32)
    y = np.array([r["label"] for r in rows], dtype=np.int32)
    h = x
    ws = model["weights"]
    for i in range(0, len(ws) - 2, 2):
        h = np.maximum(h @ ws[i] + ws[i + 1], 0.0)
    logits = h @ ws[-2] + ws[-1]
    return logits.argmax(axis=1), y


def evaluate(model: dict[str, Any], examples: list[dict], threshold: float = 0.9,
             metric: str = "accuracy") -> dict[str, Any]:
    """Score the model on the evaluation split; blessed when the metric reaches ``threshold``."""
    pred, y = _predict(model, examples)
    if metric == "accuracy":
        score = float((pred == y).mean()) if len(y) else 0.0
    elif metric == "macro_recall":
        recalls = [float((pred[y == k] == k).mean()) for k in range(len(SPECIES)) if (y == k).any()]
        score = float(np.mean(recalls)) if recalls else 0.0
    else:
        raise ValueError(f"unknown metric {metric!r}: use 'accuracy' or 'macro_recall'")
    return {"metric": metric, "score": round(score, 6), "threshold": threshold, "blessed": score >= threshold,
            "eval_rows": len(examples)}


def push(model: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """Deploy the model when the evaluation blessed it (here: report what would be served)."""
    pushed = bool(evaluation["blessed"])
    return {"pushed": pushed, "score": evaluation["score"], "columns": ",".join(model["columns"])}


# ---- the pipeline ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PenguinConfig:
    """What changes between iterations."""

    feature_version: int = 1
    hidden: int = 16
    layers: int = 2
    learning_rate: float = 0.01
    epochs: int = 3
    batch_size: int = 256
    threshold: float = 0.9
    metric: str = "accuracy"
    eval_buckets: int = 2


def build_pipeline(data_dir: str | os.PathLike, config: PenguinConfig = PenguinConfig()) -> Pipeline:
    """The penguin pipeline over every CSV in ``data_dir``."""
    features = {1: features_v1, 2: features_v2}[config.feature_version]
    return Pipeline(
        "penguins",
        (
            source("raw", str(Path(data_dir) / "*.csv")),
            beam_step("clean", clean, {"raw": "raw"}, type_name="Transform"),
            beam_step("stats", statistics, {"cleaned": "clean"}, type_name="StatisticsGen",
                      output_type="ExampleStatistics"),
            beam_step("features", features, {"cleaned": "clean", "stats": "stats"}, type_name="Transform"),
            beam_step("train_data", train_split, {"examples": "features"}, type_name="SplitTrain",
                      eval_buckets=config.eval_buckets),
            beam_step("eval_data", eval_split, {"examples": "features"}, type_name="SplitEval",
                      eval_buckets=config.eval_buckets),
            python_step("train", train, {"examples": "train_data"}, type_name="Trainer", output_type="Model",
                        hidden=config.hidden, layers=config.layers, learning_rate=config.learning_rate,
                        epochs=config.epochs, batch_size=config.batch_size),
            python_step("evaluate", evaluate, {"model": "train", "examples": "eval_data"}, type_name="Evaluator",
                        output_type="ModelBlessing", threshold=config.threshold, metric=config.metric),
            python_step("push", push, {"model": "train", "evaluation": "evaluate"}, type_name="Pusher",
                        output_type="PushedModel"),
        ),
        outputs=("evaluate", "push"),
    )
