"""`frugal sql`: read-only queries in three formats; writes and file access are refused."""

from __future__ import annotations

import csv
import io
import json

import pytest

from frugal.cli import main
from provenance import ingest


@pytest.fixture
def warehouse(tfx_store, tmp_path):
    wh = tmp_path / "w.duckdb"
    ingest([tfx_store("penguin_minimal")], wh, progress=False)
    return wh


QUERY = "SELECT state, COUNT(*) AS n FROM executions GROUP BY state ORDER BY state"


def test_formats(warehouse, capsys):
    assert main(["sql", "-w", str(warehouse), QUERY]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["state", "n"]
    assert [line.split() for line in table.splitlines()[2:4]] == [["CACHED", "4"], ["COMPLETE", "8"]]
    assert "(2 rows)" in table
    assert main(["sql", "-w", str(warehouse), QUERY, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [["state", "n"], ["CACHED", "4"], ["COMPLETE", "8"]]
    assert main(["sql", "-w", str(warehouse), QUERY, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"state": "CACHED", "n": 4}, {"state": "COMPLETE", "n": 8}]
    assert main(["sql", "-w", str(warehouse), "SELECT create_time FROM executions LIMIT 1", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["create_time"].startswith("20")


@pytest.mark.parametrize("query", [
    "INSERT INTO sources VALUES ('x', 'y', 'sqlite', 10, NULL, NULL)",
    "DELETE FROM executions",
    "DROP TABLE events",
    "CREATE TABLE t AS SELECT 1",
    "UPDATE artifacts SET uri = 'x'",
    "COPY executions TO '{tmp}/out.csv'",
    "ATTACH '{tmp}/other.duckdb' AS o",
    "SELECT * FROM read_csv('{tmp}/secret.csv')",
    "SELECT * FROM read_text('/etc/hostname')",
    "INSTALL httpfs",
    "SET enable_external_access = true",
])
def test_writes_and_file_access_are_refused(warehouse, tmp_path, capsys, query, dump):
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    before = dump(warehouse)
    code = main(["sql", "-w", str(warehouse), query.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: query failed") and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
    assert dump(warehouse) == before


def test_missing_warehouse_and_bad_format(tmp_path, warehouse, capsys):
    assert main(["sql", "-w", str(tmp_path / "none.duckdb"), "SELECT 1"]) == 2
    assert "frugal ingest" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()
    assert main(["sql", "-w", str(warehouse), "SELECT 1", "--format", "xml"]) == 2
    assert "use one of table, csv, json" in capsys.readouterr().err


def test_json_output_is_valid_json_for_any_value(warehouse, capsys):
    query = "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, [1, 2] AS l, {'k': 'ü'} AS s, NULL AS n"
    assert main(["sql", "-w", str(warehouse), query, "-f", "json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == [
        {"a": None, "b": "Infinity", "l": [1, 2], "s": {"k": "ü"}, "n": None}]
