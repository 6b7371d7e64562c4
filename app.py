"""The Starlette app: /graphql (HTTP and WebSocket), health, readiness and metrics.

Run it with `kameng serve`; uvicorn can also load it as a factory:
`uvicorn app:create_app --factory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from tortoise import connections

from kameng import runtime, text
from kameng.observability import HTTP_REQUESTS, configure_logging
from kameng.settings import Settings, get_settings
from resolvers.commerce.callbacks import CALLBACK_MAX_BYTES, handle_callback
from schema import build_schema
from service import wiring
from service.web import pages
from service.web import dashboard
from service.web.cors import OriginPolicy
from service.web.events import track_events
from service.web.explorer import ExplorerGate
from service.web.limits import RequestLimits
from service.web.outages import OutageResponses
from service.web.response_cache import CachedResponses, ResponseCache
from service.web.view import GraphQLView

log = structlog.get_logger("kameng.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContext:
    """Request id (accepted from X-Request-ID if sane, else made), one log line, HTTP metrics."""

    def __init__(self, app: ASGIApp, log_every: int = 1) -> None:
        self.app = app
        self.log_every, self._served = log_every, 0  # a sampled access log (issue 15)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                route = scope["path"] if scope["path"] in _ROUTES else "other"
                HTTP_REQUESTS.labels(route, str(status)).inc()
                self._served += 1
                if status >= 400 or self._served % self.log_every == 0:
                    log.info(
                        "http.request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        ms=round((time.perf_counter() - started) * 1000, 2),
                    )


_ROUTES = {"/graphql", "/healthz", "/readyz", "/metrics", "/payments/kpay/callback", "/orders/track", "/live"}


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(_: Request) -> Response:
    """Ready when every configured dependency answers."""
    rt = runtime.current()
    checks: dict[str, str] = {}

    async def check(name: str, probe: Any) -> None:
        try:
            await asyncio.wait_for(probe(), timeout=2)
            checks[name] = "ok"
        except Exception as exc:  # report, don't raise: this endpoint is for the load balancer
            checks[name] = f"error: {type(exc).__name__}"

    await check("database", lambda: connections.get("default").execute_query("SELECT 1"))
    if rt.redis is not None:
        await check("redis", rt.redis.ping)
    if rt.settings.broker_url is not None:
        await check("broker", lambda: asyncio.to_thread(_ping_broker, rt.broker))
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


def _ping_broker(broker: Any) -> None:
    if hasattr(broker, "client"):  # RedisBroker
        broker.client.ping()
    elif hasattr(broker, "connection"):  # RabbitmqBroker: opening the (thread-local) connection is the probe
        _ = broker.connection


async def payment_callback(request: Request) -> Response:
    """A payment provider's callback (form-encoded); resolvers/payments decides what it proves."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > CALLBACK_MAX_BYTES:
            return JSONResponse({"ok": False, "error": "callback too large"}, status_code=413)
    answer = await handle_callback(request.path_params["provider"], body)
    return Response(answer.body, status_code=answer.status_code, media_type="application/json")


async def metrics(_: Request) -> Response:
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several uvicorn processes: aggregate their files
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None, *, shared_cache: bool = True) -> Starlette:
    """``shared_cache=False`` (tests): this app's response cache hears this process's changes
    only through Redis, as another process's would."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    schema = build_schema(settings)
    cache = ResponseCache(settings, schema._schema, local=shared_cache)
    graphql = GraphQLView(
        schema,
        response_cache=cache,
        graphql_ide=None,  # the explorer is ours (service/web/explorer.py): no CDN
        allow_queries_via_get=True,  # queries only: Strawberry refuses mutations over GET
        keep_alive=True,
        keep_alive_interval=20,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=50,
        settings=settings,
    )
    cors = OriginPolicy.of(settings).middleware()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # The embedded default migrates itself; on PostgreSQL `kameng migrate` runs once per deploy.
        await wiring.start(settings, apply_migrations=settings.is_sqlite)
        # jieba's dictionary (~2 s on a slow CPU) before the first request, not inside the first
        # post's createPost: it held that post's liveFeed delivery 1.9 s (bench/feeds.py). Before
        # gc.freeze(), so its large structures are never scanned again.
        await asyncio.to_thread(text.warm_up)
        tune_gc(settings.gc_young_threshold)
        try:
            yield
        finally:
            await wiring.stop()

    app = Starlette(
        debug=settings.debug,
        routes=[
            Route("/graphql", ExplorerGate(graphql, enabled=settings.explorer_enabled), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/payments/{provider}/callback", payment_callback, methods=["POST"]),
            Route("/events", track_events, methods=["POST"]),  # `track` without GraphQL's decoding cost
            *pages.routes(settings),
            *(dashboard.routes() if settings.live_pages else []),
        ],
        lifespan=lifespan,
        middleware=[cors] if cors is not None else [],
    )
    # Issue 10: an unreachable database or Redis answers 503; bodies are bounded before
    # anything parses them.
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes, max_json_depth=settings.max_json_depth,
                       paths=frozenset({"/graphql", "/events"}), depth_paths=frozenset({"/graphql"}))
    app.add_middleware(OutageResponses)
    app.add_middleware(RequestContext, log_every=settings.access_log_every)
    app.add_middleware(CachedResponses, cache=cache)  # outermost: hits answer before any other work
    return app


def tune_gc(young_threshold: int) -> None:
    """After boot: what is loaded stays (gc.freeze() keeps the collector from scanning it
    again), and young collections run every ``young_threshold`` allocations instead of 700
    (issue 15: two young collections per request were a quarter of the catalog page's CPU)."""
    if young_threshold:
        gc.collect()
        gc.freeze()
        _, second, third = gc.get_threshold()
        gc.set_threshold(young_threshold, second, third)
