"""The decision ledger's writes: a batch is one atomic statement."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from optimizer.pruning.ledger import create_ledger_tables, record_decisions


def _row(i: int, **over) -> dict:
    row = {"decision_id": f"d{i}", "decided_at": dt.datetime(2026, 12, 3, 5, 0, i), "source_id": "prod",
           "pipeline": "ünïcode-pipeline", "lane": "prod/ünïcode-pipeline/Trainer", "run_id": None,
           "action": "prune" if i % 2 else "run", "probability": i / 10, "threshold": 0.2, "policy_version": "v1",
           "reasons": [f"reason {i} — ✓"], "fallback": None, "rule": None, "inputs": [i, i + 1] if i % 2 else None,
           "cost_s": 60.0 * i}
    row.update(over)
    return row


def test_a_batch_is_written_whole_with_its_values(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    create_ledger_tables(con)
    record_decisions(con, [_row(i) for i in range(1, 6)])
    got = con.execute("""SELECT decision_id, action, probability, reasons, inputs, cost_s, outcome, pipeline
                         FROM decisions ORDER BY decision_id""").fetchall()
    assert [g[0] for g in got] == ["d1", "d2", "d3", "d4", "d5"]
    assert [g[1] for g in got] == ["prune", "run", "prune", "run", "prune"]
    assert got[2][2] == pytest.approx(0.3) and got[2][5] == pytest.approx(180.0)
    assert got[0][3] == '["reason 1 \\u2014 \\u2713"]' and got[0][4] == "[1, 2]" and got[1][4] is None
    assert {g[6] for g in got} == {"pending"} and got[0][7] == "ünïcode-pipeline"


def test_a_failing_batch_writes_nothing(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    create_ledger_tables(con)
    record_decisions(con, [_row(1)])
    with pytest.raises(duckdb.ConstraintException):   # d1 again: the whole statement is refused
        record_decisions(con, [_row(2), _row(3), _row(1)])
    assert con.execute("SELECT list(decision_id ORDER BY decision_id) FROM decisions").fetchone()[0] == ["d1"]
