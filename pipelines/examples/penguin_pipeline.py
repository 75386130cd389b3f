"""A pipeline file for `frugal run`: the penguin pipeline over ``penguin-data/`` in the run's
folder (``$FRUGAL_RUN_DIR``, which `frugal run` sets to the MLMD store's folder; created on
first use with 20,000 rows). Edit the config below and run it again to see what is reused::

    frugal run pipelines/examples/penguin_pipeline.py --store runs/penguins.sqlite --budget 50MB

writes ``runs/penguins.sqlite``, ``runs/penguins-artifacts/`` and ``runs/penguin-data/``, and
nothing in the working directory. Loaded outside `frugal run` (no ``$FRUGAL_RUN_DIR``), the
data goes to ``frugal-penguin-data/`` in the system's temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipelines.examples.penguins import PenguinConfig, build_pipeline, make_dataset

_RUN_DIR = os.environ.get("FRUGAL_RUN_DIR")
DATA = Path(_RUN_DIR) / "penguin-data" if _RUN_DIR else Path(tempfile.gettempdir()) / "frugal-penguin-data"
if not any(DATA.glob("*.csv")):
    make_dataset(DATA, 20000)

pipeline = build_pipeline(DATA, PenguinConfig(hidden=16, learning_rate=0.01, epochs=3, threshold=0.9))
