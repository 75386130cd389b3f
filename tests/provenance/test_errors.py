"""Bad input: clear messages, exit status 2, no traceback, nothing lost; data problems are counted."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys

import pytest

from frugal.cli import main
from provenance import ProvenanceError, ingest
from provenance.warehouse import connect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_cli(args, capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_missing_file(tmp_path, capsys):
    code, err = _run_cli(["ingest", str(tmp_path / "nope.sqlite"), "-w", str(tmp_path / "w.duckdb")], capsys)
    assert code == 2 and "not found" in err and "Traceback" not in err
    assert not (tmp_path / "nope.sqlite").exists()  # nothing was created in its place


def test_not_a_sqlite_file(tmp_path, capsys):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("hello, I am text\n" * 10)
    code, err = _run_cli(["ingest", str(bad), "-w", str(tmp_path / "w.duckdb")], capsys)
    assert code == 2 and "not a SQLite database" in err


def test_sqlite_but_not_mlmd(tmp_path, capsys):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x INT)")
    before = other.read_bytes()
    code, err = _run_cli(["ingest", str(other), "-w", str(tmp_path / "w.duckdb")], capsys)
    assert code == 2 and "not an MLMD store" in err
    assert other.read_bytes() == before  # the file was not turned into an MLMD store


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_unsupported_schema_version_names_the_supported_ones(tfx_store, tmp_path, capsys, via):
    old = tfx_store("penguin_minimal")
    with sqlite3.connect(old) as con:
        con.execute("UPDATE MLMDEnv SET schema_version = 7")
    code, err = _run_cli(["ingest", str(old), "-w", str(tmp_path / "w.duckdb"), "--via", via], capsys)
    assert code == 2 and "schema version 7" in err and "10" in err
    with sqlite3.connect(old) as con:  # the store was not migrated
        assert con.execute("SELECT schema_version FROM MLMDEnv").fetchall() == [(7,)]


def test_unreachable_mysql(tmp_path, capsys):
    url = f"mysql://root@127.0.0.1:{_free_port()}/mlmd"
    code, err = _run_cli(["ingest", url, "-w", str(tmp_path / "w.duckdb")], capsys)
    assert code == 2 and "cannot reach the MySQL/MariaDB server" in err


def test_via_sqlite_refuses_a_server_store(tmp_path, capsys):
    code, err = _run_cli(["ingest", "mysql://root@127.0.0.1:3306/x", "-w", str(tmp_path / "w.duckdb"),
                          "--via", "sqlite"], capsys)
    assert code == 2 and "--via api" in err


def test_cli_prints_no_traceback_in_a_real_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "frugal", "ingest", str(tmp_path / "missing.sqlite"),
                          "-w", str(tmp_path / "w.duckdb")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "MLMD store not found" in out.stderr


def test_a_bad_store_among_good_ones_changes_nothing(tfx_store, tmp_path, dump):
    wh = tmp_path / "w.duckdb"
    ingest([tfx_store("penguin_minimal")], wh, progress=False)
    before = dump(wh)
    with pytest.raises(ProvenanceError):
        ingest([tfx_store("penguin_prod"), tmp_path / "missing.sqlite"], wh, progress=False)
    assert dump(wh) == before


def test_same_source_id_for_two_stores_is_refused(tfx_store, tmp_path):
    a = tfx_store("penguin_minimal")
    (tmp_path / "other").mkdir()
    b = tmp_path / "other" / "penguin_minimal.sqlite"
    shutil.copyfile(a, b)
    wh = tmp_path / "w.duckdb"
    ingest([a], wh, progress=False)
    with pytest.raises(ProvenanceError, match="--source-id"):
        ingest([b], wh, progress=False)
    report = ingest([b], wh, source_ids=["minimal_copy"], progress=False)
    assert report.sources[0].source_id == "minimal_copy"


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_dangling_events_and_unknown_types_are_counted(rich_store, tmp_path, via, dump, assert_same_warehouse):
    path, ids = rich_store
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM Artifact WHERE id = ?", [ids["model"]])       # its events now dangle
        con.execute("UPDATE Execution SET type_id = 999 WHERE id = ?", [ids["gen"]])  # a type nobody defines
    report = ingest([path], tmp_path / "w.duckdb", via=via, progress=False)
    counts = report.sources[0].issue_counts
    assert counts["dangling_event"] == 1
    assert counts["unknown_type"] == 1
    con = connect(tmp_path / "w.duckdb", read_only=True)
    assert con.execute("SELECT type_name, type_id FROM executions WHERE execution_id = ?",
                       [ids["gen"]]).fetchall() == [(None, 999)]
    detail = con.execute("SELECT detail FROM ingest_issues WHERE issue = 'dangling_event'").fetchall()[0][0]
    assert f"missing artifact {ids['model']}" in detail
    con.close()
    other = "api" if via == "sqlite" else "sqlite"
    ingest([path], tmp_path / "other.duckdb", via=other, progress=False)
    assert_same_warehouse(tmp_path / "w.duckdb", tmp_path / "other.duckdb")


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_empty_store_is_reported_not_fatal(tmp_path, via, mlmd_api):
    path = tmp_path / "empty.sqlite"
    mlmd_api.open_store(mlmd_api.sqlite_config(path))
    report = ingest([path], tmp_path / "w.duckdb", via=via, progress=False)
    assert report.sources[0].issue_counts == {"empty_store": 1}
    assert report.sources[0].rows["artifacts"] == 0


def test_ingest_summary_and_quiet(tfx_store, tmp_path, capsys):
    store = tfx_store("penguin_minimal")
    assert main(["ingest", str(store), "-w", str(tmp_path / "w.duckdb")]) == 0
    out = capsys.readouterr().out
    assert "penguin_minimal (sqlite, via sqlite, full)" in out
    assert "executions 12" in out and "events 24" in out and "rows/s" in out
    assert main(["ingest", str(store), "-w", str(tmp_path / "w.duckdb"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def _cli_on_terminal(args) -> tuple[int, str, str]:
    """Run `frugal` in a real process with stderr on a pseudo-terminal."""
    import os
    import pty

    cmd = [sys.executable, "-m", "frugal", *args]
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read()
    proc.wait()
    os.close(master)
    return proc.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_only_on_a_terminal(tfx_store, tmp_path):
    store = tfx_store("penguin_prod")
    plain = subprocess.run(
        [sys.executable, "-c", "import sys; from provenance import ingest; ingest([sys.argv[1]], sys.argv[2])",
         str(store), str(tmp_path / "a.duckdb")], capture_output=True, text=True)
    assert plain.returncode == 0 and plain.stderr == ""  # progress=None and no terminal: no bar
    code, out, err = _cli_on_terminal(["ingest", str(store), "-w", str(tmp_path / "b.duckdb")])
    assert code == 0 and "penguin_prod: " in err and "rows" in err  # the bar, drawn on the terminal
    assert "total: 2,307 store rows" in out


@pytest.mark.parametrize("via", ["sqlite", "api"])
def test_damaged_store_tables_give_a_clear_error(rich_store, tmp_path, via, capsys):
    path, _ = rich_store
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE EventPath")  # an MLMD store with a table missing
    code, err = _run_cli(["ingest", str(path), "-w", str(tmp_path / "w.duckdb"), "--via", via], capsys)
    assert code == 2 and "Traceback" not in err
    assert "cannot read the MLMD store" in err or "cannot open the MLMD store" in err
    if (tmp_path / "w.duckdb").exists():
        con = connect(tmp_path / "w.duckdb", read_only=True)
        assert con.execute("SELECT COUNT(*) FROM sources").fetchall() == [(0,)]


@pytest.mark.parametrize("version", [7, 4])
def test_older_schema_is_read_through_an_upgraded_copy(tfx_store, tmp_path, version, assert_same_warehouse):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    current = tfx_store("penguin_minimal")
    old = tmp_path / "old" / "penguin_minimal.sqlite"
    old.parent.mkdir()
    shutil.copyfile(current, old)
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(old)
    metadata_store.downgrade_schema(cfg, version)  # an older ml-metadata's store, made by ml-metadata itself
    before = old.read_bytes()
    with pytest.raises(ProvenanceError, match="--upgrade-copy"):
        ingest([old], tmp_path / "w.duckdb", progress=False)
    report = ingest([old], tmp_path / "w.duckdb", progress=False, upgrade_copy=True)
    assert report.sources[0].rows["executions"] == 12
    assert old.read_bytes() == before  # the store itself was not migrated
    con = connect(tmp_path / "w.duckdb", read_only=True)
    states = con.execute("SELECT state, COUNT(*) FROM executions GROUP BY 1 ORDER BY 1").fetchall()
    # schema versions before 5 have no last_known_state (the downgrade dropped it, as such stores never had it)
    assert states == ([("CACHED", 4), ("COMPLETE", 8)] if version >= 5 else [(None, 12)])
    assert con.execute("SELECT COUNT(*) FROM events").fetchall() == [(24,)]
    assert con.execute("SELECT COUNT(*) FROM attributions").fetchall() == [(54,)]
