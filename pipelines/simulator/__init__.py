"""Production-corpus simulator: TFX-shaped MLMD stores with ground truth, up to paper scale.

``simulate(out_dir, pipelines=..., days=..., seed=...)`` writes genuine MLMD SQLite stores
(schema version 10) that look like real TFX provenance, and beside each a ground-truth JSON
with every trainer execution's outcome and its true push probability. See docs/simulator.md.
"""

from __future__ import annotations

from pipelines.simulator.corpus import SimulationResult, simulate

__all__ = ["simulate", "SimulationResult"]
