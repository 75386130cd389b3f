"""Pieces injected into routers: the service, a read cursor, JSON-safe rows."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request

from frugal.service.state import Service

__all__ = ["get_service", "read_cursor"]


async def get_service(request: Request) -> Service:
    """The service (``async``: FastAPI would run a plain function in a worker thread, a thread
    hop on every decision)."""
    return request.app.state.service


def read_cursor(request: Request) -> Iterator:
    """A DuckDB cursor on the service's warehouse for one request (reads only)."""
    cur = request.app.state.service.con.cursor()
    try:
        yield cur
    finally:
        cur.close()
