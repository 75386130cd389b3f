"""Operator rules: pin a pipeline to run or prune, set its mode or its model-age SLO (`/api/v1/rules`)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from frugal.service.dependencies import get_service

router = APIRouter(prefix="/api/v1", tags=["rules"])


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str | None = Field(None, pattern="^(run|prune)$", description="pin every decision to run or prune")
    mode: str | None = Field(None, pattern="^(enforce|shadow|off)$",
                             description="the pipeline's mode: enforce, shadow or off")
    max_model_age_h: float | None = Field(None, gt=0, description="the pipeline's model-age SLO (hours)")
    reason: str = Field(..., min_length=1, max_length=2000)
    expires_at: dt.datetime | None = None
    source: str | None = Field(None, max_length=1000)


class RuleRequest(RuleBody):
    pipeline: str = Field(..., min_length=1, max_length=1000)


def _put(service, pipeline: str, body: RuleBody) -> dict:
    return service.put_rule(pipeline, body.action, body.reason, body.expires_at, body.source, mode=body.mode,
                            max_model_age_h=body.max_model_age_h).to_dict()


@router.post("/rules", status_code=201)
def put_rule(body: RuleRequest, service=Depends(get_service)) -> dict:
    """Pin ``pipeline`` to ``action`` and/or set its ``mode`` or ``max_model_age_h`` until ``expires_at``
    (or until deleted); it wins over the model and over the pipeline's recorded mode."""
    return _put(service, body.pipeline, body)


@router.put("/rules/{pipeline:path}")
def replace_rule(pipeline: str, body: RuleBody, service=Depends(get_service)) -> dict:
    """The rule of ``pipeline`` (as POST /rules, the name in the path), replacing any it had."""
    return _put(service, pipeline, body)


@router.get("/rules")
def list_rules(service=Depends(get_service)) -> dict:
    """Every rule, with whether it is still active."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return {"rules": [{**r.to_dict(), "active": r.active(now)} for r in service.rules.values()]}


@router.delete("/rules/{pipeline:path}")
def delete_rule(pipeline: str, service=Depends(get_service)) -> dict:
    """Remove the rule of ``pipeline``."""
    service.delete_rule(pipeline)
    return {"deleted": pipeline}


@router.get("/modes")
def list_modes(service=Depends(get_service)) -> dict:
    """Each pipeline's mode as recorded when the service first saw it, and the one in force (a rule's wins)."""
    out = []
    for m in service.modes.to_list():
        rule = service.decider.active_rule(m["pipeline"], m["source"])
        out.append({**m, "effective": rule.mode if rule is not None and rule.mode else m["mode"]})
    return {"default": service.config.mode, "new_pipeline_mode": service.config.new_pipeline_mode,
            "explore": service.config.explore, "modes": out}
