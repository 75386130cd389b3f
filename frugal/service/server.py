"""The application factory of `frugal serve` and its lifespan (the background refresher)."""

from __future__ import annotations

import contextlib
import gc
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from frugal import __version__
from frugal.service.config import ServiceConfig
from frugal.service.dependencies import read_cursor
from frugal.service.errors import ServiceError
from frugal.service.middleware import BodyLimit, RequestMetrics, ServiceMetrics, TokenAuth
from frugal.service.routers import decisions, health, login, pages, pipelines, report, rules, shadow, sources, sql
from frugal.service.shared import Metrics
from frugal.service.state import Service

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(config: ServiceConfig, *, start: bool = True) -> FastAPI:
    """Build the application: the service (opened now), routers, middleware, error handlers.

    With ``start`` the lifespan starts the refresher (first ingest at once) and stops it on exit.
    """
    token = config.read_token()
    metrics = ServiceMetrics()
    service = Service(config, Metrics(ingest_seconds=metrics.ingest_seconds, refresh_seconds=metrics.refresh_seconds,
                                      decision=metrics.decision, ledger_commit=metrics.ledger_commit))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        gc.callbacks.append(metrics.gc_callback)
        if start:
            service.start()
        try:
            yield
        finally:
            service.stop()
            gc.callbacks.remove(metrics.gc_callback)

    app = FastAPI(title="frugal", version=__version__, lifespan=lifespan,
                  description="Pre-run decisions, the decision ledger and SQL over the provenance warehouse.")
    app.state.service = service
    app.state.metrics = metrics
    app.state.token = token
    for r in (health.router, login.router, decisions.router, rules.router, pipelines.router, sources.router,
              sql.router, report.router, shadow.router):
        app.include_router(r)
    app.include_router(pages.make_router(read_cursor))  # HTML pages and their JSON

    @app.get("/metrics", tags=["health"])
    def prometheus() -> Response:
        """Prometheus text: requests, latencies, ingest and refresh durations, decisions by action."""
        metrics.ready.set(1 if service.ready else 0)
        metrics.observe_gc()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the service log"},
                            status_code=500)

    app.add_middleware(TokenAuth, token=token)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: counts refused requests too
    return app
