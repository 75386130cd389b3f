"""`/healthz` (alive) and `/readyz` (decisions can be served)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from frugal.service.dependencies import get_service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is alive (no token needed)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(service=Depends(get_service)):
    """200 once the first ingest, analysis and policy are ready (or restored), else 503 with what is pending.

    While the first policy is fitted (``warmup``: the step, e.g. ingest 2/4, analysis, fitting),
    decisions are already answered (``answering``): every training runs, the reason says the
    policy is warming up."""
    body = service.readiness()
    return JSONResponse(body, status_code=200 if body["ready"] else 503)
