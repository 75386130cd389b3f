"""Incremental analysis: only changed sources are rebuilt, with the same result as a full build;
a failed analysis leaves the previous one intact."""

from __future__ import annotations

import shutil

import duckdb
import pytest

import analysis
from provenance.ingest import ingest

TABLES = {
    "graphlets": "SELECT * FROM graphlets ORDER BY graphlet_id",
    "members": "SELECT * FROM graphlet_members ORDER BY ALL",
    "waste": "SELECT * FROM execution_waste ORDER BY source_id, execution_id",
    "runs": "SELECT * FROM component_runs ORDER BY source_id, execution_id",
}


def snapshot(path) -> dict:
    """Rows of every analysis output; floats rounded (parallel sums differ in the last bits)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {k: [tuple(round(v, 6) if isinstance(v, float) else v for v in row)
                    for row in con.execute(q).fetchall()]
                for k, q in TABLES.items()}
    finally:
        con.close()


def test_incremental_equals_full(tmp_path, tfx_store):
    prod, minimal = tfx_store("penguin_prod"), tfx_store("penguin_minimal")
    wh = tmp_path / "inc.duckdb"
    ingest([prod], wh, progress=False)
    first = analysis.analyze(wh)
    assert first.sources_analyzed == ("penguin_prod",) and first.graphlets == 8
    assert analysis.analyze(wh).sources_analyzed == ()  # nothing changed
    ingest([minimal], wh, progress=False)
    second = analysis.analyze(wh)
    assert second.sources_analyzed == ("penguin_minimal",)
    assert second.graphlets == 11 and second.pushed_graphlets == 8

    full = tmp_path / "full.duckdb"
    ingest([prod, minimal], full, progress=False)
    analysis.analyze(full)
    assert snapshot(wh) == snapshot(full)


def test_failed_analysis_keeps_previous_results(tmp_path, tfx_store):
    wh = tmp_path / "w.duckdb"
    ingest([tfx_store("penguin_prod")], wh, progress=False)
    analysis.analyze(wh)
    before = snapshot(wh)
    with pytest.raises(analysis.AnalysisError, match="not in the warehouse"):
        analysis.analyze(wh, sources=["nope"])
    roles = tmp_path / "bad.toml"
    roles.write_text('[execution]\n"x" = "nonsense"\n')
    with pytest.raises(analysis.AnalysisError):
        analysis.analyze(wh, roles=roles)
    assert snapshot(wh) == before


def test_not_a_warehouse(tmp_path):
    bad = tmp_path / "empty.duckdb"
    duckdb.connect(str(bad)).close()
    with pytest.raises(analysis.AnalysisError, match="lacks table"):
        analysis.analyze(bad)


def test_cli_analyze_and_report(tmp_path, tfx_store):
    from frugal.cli import main

    wh = tmp_path / "w.duckdb"
    shutil.copyfile(tfx_store("penguin_minimal"), tmp_path / "m.sqlite")
    ingest([tmp_path / "m.sqlite"], wh, progress=False)
    assert main(["analyze", "--warehouse", str(wh)]) == 0
    assert main(["report", "--warehouse", str(wh), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").exists() and (tmp_path / "rep" / "summary.json").exists()
    assert main(["analyze", "--warehouse", str(tmp_path / "missing.duckdb")]) == 2
    assert main(["analyze", "--warehouse", str(wh), "--roles", str(tmp_path / "none.toml")]) == 2
