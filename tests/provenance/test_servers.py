"""Ingest MLMD stores that live in MariaDB/MySQL and PostgreSQL, written with the ml_metadata API.

Each test creates a fresh database, writes the same pipeline into it and into a SQLite
store, ingests both and compares the warehouse rows (times aside: MLMD stamps them at write).
"""

from __future__ import annotations

import uuid

import pytest

from frugal.cli import main
from provenance import ingest
from provenance.connections import connection_config, parse_store
from provenance.schema import TABLES
from provenance.warehouse import connect

TIME_COLUMNS = {"create_time", "update_time", "ts", "duration_s", "last_ingested_at", "watermark"}


def _rows_without_times(path, source_id) -> dict[str, list]:
    con = connect(path, read_only=True)
    try:
        out = {}
        for table in TABLES:
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()
                    if r[0] not in TIME_COLUMNS and r[0] not in ("source_id", "uri", "kind")]
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE source_id = ?", [source_id]).fetchall()
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


@pytest.fixture
def mysql_url():
    import pymysql

    name = f"frugal_test_{uuid.uuid4().hex[:10]}"
    con = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    con.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        con.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        con.close()


@pytest.fixture
def postgresql_url():
    import psycopg

    name = f"frugal_test_{uuid.uuid4().hex[:10]}"
    con = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True)
    con.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.close()


def _server_store_matches_sqlite(url, tmp_path, mlmd_api, huge_len):
    spec = parse_store(url)
    server = mlmd_api.open_store(connection_config(spec))
    ids = mlmd_api.write_rich_store(server, portable=True, huge_len=huge_len)
    lite = tmp_path / "same.sqlite"
    assert mlmd_api.write_rich_store(mlmd_api.open_store(mlmd_api.sqlite_config(lite)), portable=True,
                                     huge_len=huge_len) == ids
    wh = tmp_path / "w.duckdb"
    report = ingest([url, lite], wh, progress=False)
    by_id = {s.source_id: s for s in report.sources}
    assert by_id[spec.source_id].via == "api" and by_id[spec.source_id].kind == spec.kind
    assert _rows_without_times(wh, spec.source_id) == _rows_without_times(wh, "same")
    con = connect(wh, read_only=True)
    assert con.execute("SELECT length(string_value) FROM properties WHERE source_id = ? AND name = 'huge'",
                       [spec.source_id]).fetchall() == [(huge_len,)]
    con.close()

    # incremental: in-place updates and inserts on the server store
    mlmd_api.update_store(server, ids)
    mlmd_api.update_store(mlmd_api.open_store(mlmd_api.sqlite_config(lite)), ids)
    again = ingest([url, lite], wh, progress=False)
    assert not any(s.full for s in again.sources)
    assert _rows_without_times(wh, spec.source_id) == _rows_without_times(wh, "same")
    con = connect(wh, read_only=True)
    assert con.execute("SELECT state FROM executions WHERE source_id = ? AND execution_id = ?",
                       [spec.source_id, ids["trainer"]]).fetchall() == [("COMPLETE",)]
    con.close()


@pytest.mark.mysql
def test_mysql_store_ingests_like_sqlite(mysql_url, tmp_path, mlmd_api):
    _server_store_matches_sqlite(mysql_url, tmp_path, mlmd_api, huge_len=mlmd_api.HUGE_LEN)


@pytest.mark.postgresql
def test_postgresql_store_ingests_like_sqlite(postgresql_url, tmp_path, mlmd_api):
    _server_store_matches_sqlite(postgresql_url, tmp_path, mlmd_api, huge_len=4000)


@pytest.mark.mysql
def test_mysql_database_that_does_not_exist(tmp_path, capsys):
    code = main(["ingest", f"mysql://root@127.0.0.1:3306/nope_{uuid.uuid4().hex[:8]}", "-w", str(tmp_path / "w.duckdb")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot open the MLMD store" in err and "Traceback" not in err
