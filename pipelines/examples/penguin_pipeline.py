"""A pipeline file for `frugal run`: the penguin pipeline over ./penguin-data (created on
first use with 20,000 rows). Edit the config below and run it again to see what is reused::

    frugal run pipelines/examples/penguin_pipeline.py --store penguins.sqlite --budget 50MB
"""

from __future__ import annotations

from pathlib import Path

from pipelines.examples.penguins import PenguinConfig, build_pipeline, make_dataset

DATA = Path("penguin-data")
if not any(DATA.glob("*.csv")):
    make_dataset(DATA, 20000)

pipeline = build_pipeline(DATA, PenguinConfig(hidden=16, learning_rate=0.01, epochs=3, threshold=0.9))
