"""`POST /api/v1/decisions`: the pre-run hook."""

from __future__ import annotations

import asyncio
import functools

import anyio
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from frugal.service.dependencies import get_service

router = APIRouter(prefix="/api/v1", tags=["decisions"])


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(..., min_length=1, max_length=1000, description="MLMD pipeline name (graphlets.pipeline)")
    source: str | None = Field(None, max_length=1000, description="source id, when the name is in several sources")
    lane: str | None = Field(None, max_length=1000, description="trainer node, when the pipeline has several")
    run_id: str | None = Field(None, max_length=1000, description="the caller's run id, kept in the ledger")
    inputs: list[int] | None = Field(None, max_length=10_000,
                                     description="MLMD artifact ids of this run's upstream: the service reads "
                                                 "the source first and describes the training from them")
    explain: bool = Field(False, description="also return the upcoming training's features")


class DecisionResponse(BaseModel):
    decision_id: str
    action: str
    probability: float | None
    threshold: float | None
    reasons: list[str]
    fallback: str | None
    policy_version: str
    pipeline: str
    source: str | None
    lane: str | None
    run_id: str | None = None
    inputs: list[int] | None = None
    mode: str = Field(..., description="the pipeline's mode: enforce, shadow or off")
    would_prune: bool = Field(..., description="the policy's (or a prune rule's) verdict, whatever the mode")
    explored: bool = Field(..., description="a model prune run anyway to measure what pruning costs")
    features: dict[str, float] | None = None
    upcoming_at: str | None = None


@router.post("/decisions", response_model=DecisionResponse, response_model_exclude_none=False)
async def decide(body: DecisionRequest, service=Depends(get_service)) -> dict:
    """Run or prune the next training of a pipeline; the answer is in the ledger before it is sent.

    A lookup runs on the event loop (microseconds) and awaits the ledger's group commit; a
    decision from this run's inputs reads the store first, in a worker thread.
    """
    kw = dict(source=body.source, lane=body.lane, run_id=body.run_id, inputs=body.inputs, explain=body.explain)
    if body.inputs is not None:
        return await anyio.to_thread.run_sync(functools.partial(service.decide, body.pipeline, **kw))
    answer, committed = service.decide_async(body.pipeline, **kw)
    await asyncio.wrap_future(committed)
    return answer


@router.get("/decisions")
def recent(pipeline: str | None = None, limit: int = 50, service=Depends(get_service)) -> dict:
    """The newest decisions of the ledger (of one pipeline), newest first."""
    from optimizer.pruning.ledger import recent_decisions

    cur = service.con.cursor()
    try:
        return {"decisions": recent_decisions(cur, pipeline, max(1, min(limit, 1000)))}
    finally:
        cur.close()
