"""The pipeline pages of `frugal serve`: HTML for people, the same data as JSON.

- ``GET /``: every pipeline with trainings (push rate, wasted compute, last decision).
- ``GET /pipelines/{name}?run=RUN&source=S``: the DAG of a run (default: the latest) with each
  node's state, the history of runs and what changed between them, the decisions.
- ``GET /pipelines/{name}/compare?a=RUN&b=RUN``: what differs between two runs (without ``a``
  and ``b``: the last two runs).
- ``GET /api/v1/pipelines/{name}/view?run=`` and ``GET /api/v1/pipelines/{name}/compare?a=&b=``:
  the JSON the pages show; every number on a page carries ``data-key``, its path in this JSON.

NAME may hold ``/`` (``team/penguin``), as it is or percent-encoded (``team%2Fpenguin``, as the
pages link it): the routes take the rest of the path, the ``/compare`` and ``/view`` routes
first. RUN is a pipeline-run context name, or for an asynchronous pipeline a trainer execution id.
Unknown pipelines and runs answer 404 (``{"detail": ...}`` for JSON, an HTML page otherwise)
with a message that says what exists; a name in several sources without ``source`` 409.
The routers only read: they take a dependency that yields a DuckDB cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse

from analysis.errors import AmbiguousPipelineError, AnalysisError, UnknownPipelineError, UnknownRunError
from analysis.pipeline_runs import find_pipeline, run_table
from analysis.pipeline_view import list_pipelines, pipeline_view
from analysis.run_compare import compare_runs
from frugal.pages.render import ServedLinks, render_compare, render_error, render_index, render_pipeline

__all__ = ["make_router"]

log = logging.getLogger(__name__)


def _status(exc: AnalysisError) -> int:
    if isinstance(exc, (UnknownPipelineError, UnknownRunError)):
        return 404
    if isinstance(exc, AmbiguousPipelineError):
        return 409
    return 503  # not analysed yet


def _with_shadow(cur, view: dict) -> dict:
    """The view with its pipeline's shadow report (``optimizer.pruning.audit.shadow_report``)."""
    from optimizer.pruning.audit import shadow_report

    try:
        rows = [r for r in shadow_report(cur, view["pipeline"]) if r["source"] == view.get("source_id")]
    except Exception as exc:  # the page shows the rest; the log says why this part is missing
        log.warning("shadow report of %s not shown: %s", view.get("pipeline"), exc)
        rows = []
    return {**view, "shadow": rows}


def make_router(cursor: Callable, root: str = "") -> APIRouter:
    """The pages router. ``cursor`` is a FastAPI dependency yielding a DuckDB cursor (or
    connection) on an analysed warehouse; ``root`` the prefix the app is mounted under."""
    router = APIRouter(tags=["pages"])
    links = ServedLinks(root=root)

    def html_error(exc: AnalysisError) -> HTMLResponse:
        status = _status(exc)
        return HTMLResponse(render_error(status, str(exc), links), status_code=status)

    def json_error(exc: AnalysisError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(cur=Depends(cursor)):
        try:
            return HTMLResponse(render_index(list_pipelines(cur), links))
        except AnalysisError as exc:
            return html_error(exc)

    # A name may hold "/": every route takes the rest of the path, the ones that end in
    # /compare or /view before the page of the pipeline itself.
    @router.get("/pipelines/{name:path}/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(name: str, a: str | None = None, b: str | None = None, source: str | None = None,
                     cur=Depends(cursor)):
        try:
            ref = find_pipeline(cur, name, source)
            runs = [r["run"] for r in run_table(cur, ref)]
            if a is None or b is None:
                if len(runs) < 2:
                    raise UnknownRunError(f"pipeline {name!r} has {len(runs)} run(s): nothing to compare")
                a, b = a or runs[-2], b or runs[-1]
            return HTMLResponse(render_compare(compare_runs(cur, ref, a, b), links, runs))
        except AnalysisError as exc:
            return html_error(exc)

    @router.get("/pipelines/{name:path}", response_class=HTMLResponse, include_in_schema=False)
    def pipeline_page(name: str, run: str | None = None, source: str | None = None, cur=Depends(cursor)):
        try:
            return HTMLResponse(render_pipeline(_with_shadow(cur, pipeline_view(cur, name, run=run, source=source)),
                                                links))
        except AnalysisError as exc:
            return html_error(exc)

    @router.get("/api/v1/pipelines/{name:path}/view")
    def view_json(name: str, run: str | None = None, source: str | None = None, cur=Depends(cursor)):
        """The pipeline page's data: summary, DAG, the run's nodes, history, decisions, and the shadow
        report of the pipeline (``shadow``: as GET /api/v1/shadow, for its source; empty when it was
        never asked in shadow mode)."""
        try:
            return _with_shadow(cur, pipeline_view(cur, name, run=run, source=source))
        except AnalysisError as exc:
            return json_error(exc)

    @router.get("/api/v1/pipelines/{name:path}/compare")
    def compare_json(name: str, a: str = Query(..., description="run A: pipeline-run context name or trainer id"),
                     b: str = Query(..., description="run B"), source: str | None = None, cur=Depends(cursor)):
        """What differs between runs A and B: components_added, components_removed,
        properties_changed, inputs_changed, outcome, components."""
        try:
            return compare_runs(cur, find_pipeline(cur, name, source), a, b)
        except AnalysisError as exc:
            return json_error(exc)

    return router
