"""Cross-cutting concerns as plain ASGI middleware: body cap, bearer token, metrics.

Every error is JSON ``{"detail": message}``; nothing answers with a traceback.
"""

from __future__ import annotations

import collections
import hmac
import json
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["BodyLimit", "TokenAuth", "ServiceMetrics", "RequestMetrics", "json_response"]

OPEN_PATHS = ("/healthz", "/login", "/static/")
COOKIE = "frugal_token"


async def json_response(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413), by header or while streaming."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    return await json_response(send, 400, {"detail": "Content-Length is not a number"})
                if too_big:
                    return await json_response(send, 413, {"detail": f"request body over {self.limit} bytes"})
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            return await self.app(scope, limited, send)
        except _TooLarge:
            return await json_response(send, 413, {"detail": f"request body over {self.limit} bytes"})


class _TooLarge(Exception):
    pass


class TokenAuth:
    """``Authorization: Bearer TOKEN`` (or the login cookie) on every path but the open ones.

    Compared in constant time. Pages without a valid token redirect to the login form.
    """

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.token is None or scope["path"].startswith(OPEN_PATHS):
            return await self.app(scope, receive, send)
        presented = None
        cookie = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                text = value.decode("latin-1")
                if text[:7].lower() == "bearer ":
                    presented = text[7:].strip()
            elif name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    k, _, v = part.strip().partition("=")
                    if k == COOKIE:
                        cookie = v
        for candidate in (presented, cookie):
            if candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode()):
                return await self.app(scope, receive, send)
        path = scope["path"]
        if scope["method"] == "GET" and not (path.startswith("/api/") or path == "/metrics" or path == "/readyz"
                                             or path.startswith("/docs") or path == "/openapi.json"):
            return await _redirect(send, "/login?next=" + path)
        detail = "missing bearer token: send 'Authorization: Bearer TOKEN'" if presented is None and cookie is None \
            else "invalid token"
        return await json_response(send, 401, {"detail": detail}, [(b"www-authenticate", b"Bearer")])


async def _redirect(send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


class ServiceMetrics:
    """Prometheus metrics of one service (its own registry)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("frugal_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("frugal_http_request_seconds", "HTTP request latency", ["route"],
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.ingest = Histogram("frugal_ingest_seconds", "Incremental ingest of one source", ["source", "ok"],
                                buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=self.registry)
        self.refresh = Histogram("frugal_refresh_seconds", "Refresh cycle (ingest, analysis, refit, describe)",
                                 buckets=(.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600), registry=self.registry)
        self.ledger = Histogram("frugal_ledger_commit_seconds",
                                "One group commit of the decision ledger (waiting for the lock, insert, commit)",
                                buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5),
                                registry=self.registry)
        self.decisions = Counter("frugal_decisions", "Decisions answered", ["action", "kind"], registry=self.registry)
        self.gc = Histogram("frugal_gc_pause_seconds",
                            "A cyclic garbage collection (it holds the interpreter: every request waits)",
                            ["generation"], buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1),
                            registry=self.registry)
        self._gc_started = 0.0
        self._gc_pauses: collections.deque = collections.deque(maxlen=100_000)
        self.ready = Gauge("frugal_ready", "1 once decisions can be served", registry=self.registry)

    def ingest_seconds(self, source: str, seconds: float, ok: bool) -> None:
        self.ingest.labels(source, str(ok).lower()).observe(seconds)

    def refresh_seconds(self, seconds: float) -> None:
        self.refresh.observe(seconds)

    def ledger_commit(self, seconds: float) -> None:
        self.ledger.observe(seconds)

    def decision(self, action: str, kind: str) -> None:
        self.decisions.labels(action, kind).inc()

    def gc_callback(self, phase: str, info: dict) -> None:
        """For ``gc.callbacks``: time each collection (the service registers it while it runs).

        Only a deque append here: a collection can start inside a metric's lock, so the
        pauses reach the histogram when ``/metrics`` is read (``observe_gc``).
        """
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_pauses.append((info.get("generation"), time.perf_counter() - self._gc_started))

    def observe_gc(self) -> None:
        while self._gc_pauses:
            generation, seconds = self._gc_pauses.popleft()
            self.gc.labels(str(generation)).observe(seconds)


class RequestMetrics:
    """Count and time every request by route template (bounded label values)."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}

        async def tracked(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], name, str(status["code"])).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - t0)
