"""Fixtures of the provenance tests: compare warehouses table by table."""

from __future__ import annotations

import pytest

from provenance.schema import TABLES
from provenance.warehouse import connect

# Columns of `sources` that legitimately differ between two equal ingests.
VOLATILE = {"sources": ("last_ingested_at", "watermark")}


def dump_warehouse(path, source_id: str | None = None) -> dict[str, list[tuple]]:
    """Every table of a warehouse as sorted row lists (volatile `sources` columns left out)."""
    con = connect(path, read_only=True)
    try:
        out = {}
        for table in TABLES:
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in VOLATILE.get(table, ())]
            where = " WHERE source_id = ?" if source_id else ""
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}{where}", [source_id] if source_id else []).fetchall()
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


@pytest.fixture
def dump():
    """Return dump_warehouse(path, source_id=None) -> {table: sorted rows}."""
    return dump_warehouse


@pytest.fixture
def assert_same_warehouse():
    """Assert that two warehouses hold identical rows in every table."""

    def check(a, b, source_id: str | None = None) -> None:
        da, db = dump_warehouse(a, source_id), dump_warehouse(b, source_id)
        for table in TABLES:
            assert da[table] == db[table], f"table {table} differs"

    return check
