"""`POST /api/v1/sql`: one read-only SELECT with a time limit and a row cap."""

from __future__ import annotations

import threading

import duckdb
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from provenance.query import json_value

from frugal.service.dependencies import get_service
from frugal.service.errors import BadRequest

router = APIRouter(prefix="/api/v1", tags=["sql"])


class SqlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=100_000)
    max_rows: int | None = Field(None, ge=1)


def _check(cur, query: str) -> None:
    try:
        statements = cur.extract_statements(query)
    except duckdb.Error as exc:
        raise BadRequest(f"query does not parse: {str(exc).strip()}") from exc
    if len(statements) != 1:
        raise BadRequest(f"send exactly one statement, not {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise BadRequest(f"only SELECT queries are allowed (got {statements[0].type.name}); the warehouse is "
                         "read-only over HTTP")


@router.post("/sql")
def sql(body: SqlRequest, service=Depends(get_service)) -> dict:
    """Run one SELECT on the warehouse: no writes, no files, no settings; interrupted at the time limit."""
    cfg = service.config
    cap = min(body.max_rows or cfg.sql_max_rows, cfg.sql_max_rows)
    cur = service.con.cursor()
    timer = threading.Timer(cfg.sql_timeout_s, cur.interrupt)
    try:
        _check(cur, body.query)
        cur.execute("BEGIN TRANSACTION")
        timer.start()
        try:
            result = cur.execute(body.query)
            columns = [d[0] for d in result.description] if result.description else []
            rows = result.fetchmany(cap + 1) if columns else []
        except duckdb.InterruptException as exc:
            raise BadRequest(f"query interrupted after the time limit of {cfg.sql_timeout_s:g} s") from exc
        except duckdb.Error as exc:
            raise BadRequest(f"query failed: {str(exc).strip()}. Queries are read-only and cannot touch "
                             "files; see docs/warehouse.md for the tables") from exc
        finally:
            timer.cancel()
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass
    finally:
        cur.close()
    truncated = len(rows) > cap
    rows = rows[:cap]
    return {"columns": columns, "rows": [[json_value(v) for v in r] for r in rows], "truncated": truncated,
            "row_cap": cap}
