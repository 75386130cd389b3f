"""`/api/v1/pipelines`: trainings, pushes, waste and decisions per pipeline.

A pipeline's name may hold ``/`` (``team/penguin``, as it is or as ``team%2Fpenguin``): the
route takes the rest of the path, except a rest that ends in ``/view`` or ``/compare``, which
the pages router (mounted after this one) answers for the name before it.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends
from starlette.convertors import Convertor, register_url_convertor

from frugal.service.dependencies import get_service, read_cursor
from frugal.service.errors import NotFound


class PipelineNameConvertor(Convertor[str]):
    """The rest of the path, ``/`` included, that does not end in ``/view`` or ``/compare``."""

    regex = r".+(?<!/view)(?<!/compare)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("pipeline_name", PipelineNameConvertor())

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

_PIPELINES_SQL = """
    WITH g AS (
        SELECT source_id, pipeline, count(*) AS trainings, count(*) FILTER (WHERE pushed) AS pushes,
               sum(compute_s) AS compute_s, max(started_at) AS last_training_at
        FROM graphlets {where} GROUP BY 1, 2
    ), w AS (
        SELECT source_id, pipeline, sum(duration_s) FILTER (WHERE NOT leads_to_deployment AND NOT undetermined)
               AS wasted_s
        FROM execution_waste {where} GROUP BY 1, 2
    )
    SELECT g.source_id, g.pipeline, g.trainings, g.pushes, g.compute_s, coalesce(w.wasted_s, 0) AS wasted_s,
           g.last_training_at
    FROM g LEFT JOIN w USING (source_id, pipeline) ORDER BY g.pipeline, g.source_id
"""


def _iso(t):
    return None if t is None else (t.isoformat() + "Z" if isinstance(t, dt.datetime) else str(t))


def _rows(cur, pipeline: str | None) -> list[dict]:
    where = "WHERE pipeline = $p" if pipeline is not None else ""
    rows = cur.execute(_PIPELINES_SQL.format(where=where), {"p": pipeline} if pipeline is not None else {}).fetchall()
    last = {}
    for r in cur.execute("""
        SELECT pipeline, source_id, arg_max(action, decided_at), max(decided_at), arg_max(decision_id, decided_at)
        FROM decisions GROUP BY 1, 2""").fetchall():
        last[(r[0], r[1])] = {"action": r[2], "decided_at": _iso(r[3]), "decision_id": r[4]}
    return [{"pipeline": r[1], "source": r[0], "trainings": r[2], "pushes": r[3],
             "push_rate": (r[3] / r[2]) if r[2] else None, "compute_s": r[4], "wasted_s": r[5],
             "last_training_at": _iso(r[6]), "last_decision": last.get((r[1], r[0]))} for r in rows]


@router.get("/pipelines")
def list_pipelines(cur=Depends(read_cursor)) -> dict:
    """Every pipeline with trainings: trainings, pushes, compute, wasted compute, last decision."""
    return {"pipelines": _rows(cur, None)}


@router.get("/pipelines/{name:pipeline_name}")
def pipeline(name: str, graphlets: int = 50, service=Depends(get_service), cur=Depends(read_cursor)) -> dict:
    """One pipeline: per source its figures, newest graphlets, decisions and what they saved, its rule."""
    from optimizer.pruning.ledger import ledger_summary, recent_decisions

    rows = _rows(cur, name)
    if not rows:
        raise NotFound(f"pipeline {name!r} has no trainings in the warehouse; GET /api/v1/pipelines lists them")
    recent = cur.execute("""
        SELECT graphlet_id, source_id, trainer_execution_id, run_context, started_at, ended_at, compute_s,
               blessed, pushed
        FROM graphlets WHERE pipeline = ? ORDER BY started_at DESC, graphlet_id DESC LIMIT ?
    """, [name, max(1, min(graphlets, 1000))]).fetchall()
    cols = ("graphlet_id", "source", "trainer_execution_id", "run_context", "started_at", "ended_at", "compute_s",
            "blessed", "pushed")
    rule = service.rules.get(name)
    warm = service.warm
    upcoming = []
    if warm is not None:
        for by_source in (warm.pipelines.get(name) or {}).values():
            for lane in by_source:
                u = warm.upcoming[lane]
                upcoming.append({"lane": u.component, "source": u.source_id, "probability": u.probability,
                                 "guard": u.guard, "cost_s": u.cost_s})
    return {"pipeline": name, "sources": rows,
            "graphlets": [{k: (_iso(v) if isinstance(v, dt.datetime) else v) for k, v in zip(cols, r)}
                          for r in recent],
            "upcoming": upcoming,
            "decisions": recent_decisions(cur, name, 50),
            "ledger": ledger_summary(cur, name),
            "rule": rule.to_dict() if rule is not None else None}
