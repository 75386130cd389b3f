"""`/api/v1/sources` and the operator's levers: ingest now, refit now, the policy in use."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from frugal.service.dependencies import get_service

router = APIRouter(prefix="/api/v1", tags=["sources"])


@router.get("/sources")
def sources(service=Depends(get_service)) -> dict:
    """Each source: status (ok, error, pending), last ingest, last error, consecutive failures; the
    refresher's progress (its step now, e.g. ingest 2/4, analysis, fitting, describing; while
    the first policy is fitted, the warm-up), the last refit (ok or why not, its training set)."""
    return {"sources": [s.to_dict() for s in service.sources.values()], "last_refresh": service.last_refresh,
            "progress": service.progress()}


@router.post("/ingest")
def ingest_now(service=Depends(get_service)) -> dict:
    """Ingest and analyse every source now, rescore the upcoming trainings; returns what it did."""
    did = service.refresh_now()
    return {**did, "sources": [s.to_dict() for s in service.sources.values()]}


@router.post("/policy/refit")
def refit_now(service=Depends(get_service)) -> dict:
    """Relearn the policy from the whole warehouse now (returns when it is in use)."""
    did = service.refresh_now(refit=True)
    warm = service.warm
    return {**did, "policy": warm.learned.to_dict() if warm is not None and warm.learned is not None else None}


@router.get("/policy")
def policy(service=Depends(get_service)) -> dict:
    """The policy in use: version, when and on how many trainings it was learned, thresholds."""
    warm = service.warm
    learned = warm.learned if warm is not None else None
    return {"policy": learned.to_dict() if learned is not None else None,
            "budget": vars(service.budget(warm)) if warm is not None else None}
