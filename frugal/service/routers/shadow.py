"""`GET /api/v1/shadow` and `GET /api/v1/audit`: what pruning would cost (shadow mode) and what it
costs (enforce mode, estimated from the explored trainings); see optimizer.pruning.audit."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from frugal.service.dependencies import read_cursor

router = APIRouter(prefix="/api/v1", tags=["shadow"])


@router.get("/shadow")
def shadow(pipeline: str | None = None, cur=Depends(read_cursor)) -> dict:
    """Every pipeline asked in shadow mode: decisions, would-be prunes, the compute they would have
    saved, the pushes they would have lost and the age the deployed model would have gained."""
    from optimizer.pruning.audit import shadow_report

    return {"pipelines": shadow_report(cur, pipeline)}


@router.get("/audit")
def audit(pipeline: str | None = None, cur=Depends(read_cursor)) -> dict:
    """The pushes (and model age) the enforced prunes cost, estimated by inverse propensity weighting
    from the explored trainings, with a 95% interval, beside what the policy predicted."""
    from optimizer.pruning.audit import audit as run_audit

    return run_audit(cur, pipeline)
