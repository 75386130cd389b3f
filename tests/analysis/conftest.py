"""Fixtures of the analysis tests: warehouses ingested from the real TFX stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TFX_DIR = Path(__file__).resolve().parents[1] / "data" / "tfx"


@pytest.fixture(scope="session")
def analyzed_tfx_warehouse(tmp_path_factory) -> Path:
    """A warehouse with both real TFX stores ingested and analyzed (read-only for tests)."""
    import analysis
    from provenance.ingest import ingest

    folder = tmp_path_factory.mktemp("tfx_wh")
    stores = []
    for name in ("penguin_prod", "penguin_minimal"):
        dst = folder / f"{name}.sqlite"
        shutil.copyfile(TFX_DIR / f"{name}.sqlite", dst)
        stores.append(dst)
    warehouse = folder / "warehouse.duckdb"
    ingest(stores, warehouse, progress=False)
    analysis.analyze(warehouse)
    return warehouse


@pytest.fixture
def tfx_con(analyzed_tfx_warehouse):
    """A read-only DuckDB connection to the analyzed TFX warehouse."""
    import duckdb

    con = duckdb.connect(str(analyzed_tfx_warehouse), read_only=True)
    yield con
    con.close()


def truth_graphlets(ground_truth: dict) -> dict[int, dict]:
    """Executed trainers of a ground-truth file -> {pushed, blessed, run}.

    A trainer's model is pushed in its own run or in a following run that reused the trainer
    from cache (TFX re-runs Evaluator and Pusher when the baseline changed).
    """
    out: dict[int, dict] = {}
    current = None
    for run in ground_truth["runs"]:
        trainer = run["nodes"]["Trainer"]
        pushed = any(run.get("model_pushed_this_run", {}).values())
        blessed = run.get("model_blessed", {})
        if trainer["status"] == "executed":
            current = trainer["execution_id"]
            out[current] = {"pushed": pushed, "blessed": any(blessed.values()) if blessed else None,
                            "run": run["run_index"]}
        elif current is not None and pushed:
            out[current]["pushed"] = True
    return out


@pytest.fixture(scope="session")
def truth():
    """Return truth_graphlets (a function) to tests."""
    return truth_graphlets
