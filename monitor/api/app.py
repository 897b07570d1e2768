"""The app factory: ``create_app(settings)`` or ``create_app(monitor)``.

One FastAPI app serves the JSON API (``/api``, API keys), the dashboard (server-rendered pages,
cookie session), ``/health`` and Prometheus ``/metrics``. Errors of the monitor's tree become a
JSON body ``{"error": {"code", "message"}}`` with a fitting status (unknown ids and other
accounts' ids alike: 404); nothing else reaches the client but a plain 500 without a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.api.context import ApiContext, JobDispatcher
from monitor.api.schemas import Health
from monitor.api.sessions import SessionSigner, session_secret
from monitor.app import Monitor, open_monitor
from monitor.errors import (
    ConfigError,
    FetchError,
    ImageError,
    ImageTooLarge,
    MonitorError,
    NotFound,
    RegistryUnavailable,
)
from monitor.settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
VERSION = "0.1.0"

DESCRIPTION = """Register the images you own, find where they are reused, and keep the evidence.

Authenticate with an API key (`monitor account create NAME` prints one, once):
`Authorization: Bearer mk_...` or `X-API-Key: mk_...`. Every id belongs to one account;
another account's id answers 404, like an unknown one. Long work (scans, uploads of several
files) returns a job: poll `GET /api/jobs/{job_id}`."""


def status_for(exc: MonitorError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ImageTooLarge):
        return 413
    if isinstance(exc, ImageError):
        return 422
    if isinstance(exc, ConfigError):
        return 400
    if isinstance(exc, RegistryUnavailable):
        return 503
    if isinstance(exc, FetchError):
        return 502
    return 500


def error_response(
    code: str, message: str, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes (413), by ``Content-Length`` or as they stream."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response("too_large", f"the request body is over {self.limit:,} bytes", 413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class _Counts(Collector):
    """Gauges read at scrape time: works, findings, accounts, jobs by state (no per-account data)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Any:
        mon = self.monitor
        try:
            works = mon.registry.count()
            findings = mon.discovery.count_findings()
            accounts = len(mon.accounts.list_accounts())
            jobs = mon.accounts.job_counts()
        except MonitorError as exc:
            log.warning("metrics: %s", exc)
            return
        yield GaugeMetricFamily("monitor_works", "Registered works.", value=works)
        yield GaugeMetricFamily("monitor_findings", "Findings.", value=findings)
        yield GaugeMetricFamily("monitor_accounts", "Accounts.", value=accounts)
        family = GaugeMetricFamily("monitor_jobs", "Jobs by status.", labels=["status"])
        for state in ("queued", "running", "finished", "failed"):
            family.add_metric([state], jobs.get(state, 0))
        yield family


def create_app(target: Settings | Monitor) -> FastAPI:
    """The API and dashboard over ``target`` (settings: the monitor is opened and migrated)."""
    monitor = target if isinstance(target, Monitor) else open_monitor(target)
    settings = monitor.settings
    metrics = CollectorRegistry(auto_describe=True)
    requests = Counter(
        "monitor_http_requests", "HTTP requests.", ["method", "route", "status"], registry=metrics
    )
    latency = Histogram("monitor_http_request_seconds", "HTTP request time.", ["route"], registry=metrics)
    metrics.register(_Counts(monitor))

    ctx = ApiContext(
        monitor=monitor,
        signer=SessionSigner(session_secret(settings), lifetime_seconds=settings.api.session_hours * 3600),
        dispatcher=JobDispatcher(monitor),
        metrics=metrics,
    )
    app = FastAPI(
        title="Image infringement monitor",
        version=VERSION,
        description=DESCRIPTION,
        docs_url=None,  # the interactive docs load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
        openapi_tags=[
            {"name": "works", "description": "Register and browse the works you own."},
            {"name": "scans", "description": "Scan URLs now; follow jobs."},
            {"name": "sources", "description": "Watched sources, crawled on a schedule."},
            {"name": "findings", "description": "Your works found on the web; evidence and rechecks."},
            {"name": "alerts", "description": "The alert inbox."},
            {"name": "account", "description": "Your account."},
            {"name": "service", "description": "Health and metrics."},
        ],
    )
    app.state.context = ctx

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        requests.labels(request.method, name, str(response.status_code)).inc()
        latency.labels(name).observe(time.perf_counter() - started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        return response

    app.add_middleware(BodyLimit, limit=settings.api.max_upload_bytes)

    from monitor.api.dashboard import LoginRequired, login_redirect

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(MonitorError)
    async def monitor_error(request: Request, exc: MonitorError) -> Response:
        status = status_for(exc)
        if status == 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, exc.code, exc.message)
        if _wants_html(request):
            from monitor.api.dashboard import error_page

            return error_page(request, status, exc.message)
        return error_response(exc.code, exc.message, status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request) and exc.status_code != 401:
            from monitor.api.dashboard import error_page

            return error_page(request, exc.status_code, str(exc.detail))
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return error_response(code, str(exc.detail), exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return error_response("invalid_request", problems or "invalid request", 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response("internal_error", "the server could not handle this request", 500)

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Any:
        """Liveness and the database: 200 when the registry answers, 503 when it does not."""
        try:
            monitor.registry.count()
        except MonitorError as exc:
            return error_response("registry_unavailable", exc.message, 503)
        return {"status": "ok", "database": "ok", "jobs": ctx.dispatcher.mode}

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["service"],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    )
    def prometheus() -> Response:
        """Prometheus metrics: requests, latency, and installation-wide counts."""
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    from monitor.api.dashboard import router as dashboard
    from monitor.api.routes import router as api

    app.include_router(api)
    app.include_router(dashboard)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path in ("/health", "/metrics", "/openapi.json"))
