"""Operator rules: pin a pipeline to run or prune (`/api/v1/rules`)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from frugal.service.dependencies import get_service

router = APIRouter(prefix="/api/v1", tags=["rules"])


class RuleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(..., min_length=1, max_length=1000)
    action: str = Field(..., pattern="^(run|prune)$")
    reason: str = Field(..., min_length=1, max_length=2000)
    expires_at: dt.datetime | None = None
    source: str | None = Field(None, max_length=1000)


@router.post("/rules", status_code=201)
def put_rule(body: RuleRequest, service=Depends(get_service)) -> dict:
    """Pin ``pipeline`` to ``action`` until ``expires_at`` (or until deleted); it wins over the model."""
    return service.put_rule(body.pipeline, body.action, body.reason, body.expires_at, body.source).to_dict()


@router.get("/rules")
def list_rules(service=Depends(get_service)) -> dict:
    """Every rule, with whether it is still active."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return {"rules": [{**r.to_dict(), "active": r.active(now)} for r in service.rules.values()]}


@router.delete("/rules/{pipeline}")
def delete_rule(pipeline: str, service=Depends(get_service)) -> dict:
    """Remove the rule of ``pipeline``."""
    service.delete_rule(pipeline)
    return {"deleted": pipeline}
