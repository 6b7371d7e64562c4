"""503 with ``Retry-After`` when the database or Redis is unreachable (issue 10).

Authentication reads the session before GraphQL runs, and rate limits count in Redis, so an
outage used to surface as Starlette's plain-text 500. This middleware answers a JSON GraphQL
error with status 503 and ``Retry-After`` instead, in two cases:

* an exception that ``schema.outages.is_outage`` recognises escapes the endpoint before the
  response has started;
* a resolver met the outage: the masking extension turned it into a ``SERVICE_UNAVAILABLE``
  error and flagged the request (``schema.outages.OUTAGE``); the status is rewritten to 503.
"""

from __future__ import annotations

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.outages import MESSAGE, OUTAGE, RETRY_AFTER_SECONDS, SERVICE_UNAVAILABLE, OutageFlag, is_outage

log = structlog.get_logger("kameng.http")


def unavailable_body() -> bytes:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    extensions = {"code": SERVICE_UNAVAILABLE, "retryAfter": RETRY_AFTER_SECONDS, "requestId": request_id}
    return orjson.dumps({"errors": [{"message": MESSAGE, "extensions": extensions}]})


class OutageResponses:
    """ASGI middleware for the HTTP requests of ``paths``."""

    def __init__(self, app: ASGIApp, paths: frozenset[str] = frozenset({"/graphql"})) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        flag = OutageFlag()
        token = OUTAGE.set(flag)
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if flag.seen and message["status"] < 500:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"retry-after"]
                    message = {**message, "status": 503,
                               "headers": [*headers, (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]}
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started or not is_outage(exc):
                raise
            log.warning("http.outage", error=repr(exc))
            body = unavailable_body()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                                (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            OUTAGE.reset(token)
