"""The GraphQL endpoint: Strawberry's ASGI view with Kameng's authentication, context and JSON.

Both HTTP and the WebSocket protocols (graphql-transport-ws, graphql-ws) enter here.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from resolvers.accounts.auth import ANONYMOUS, Actor, authenticate
from resolvers.errors import UserFacingError
from schema.context import Context
from service.web.sessions import SessionTransportWSHandler, SessionWSHandler


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with Kameng's authentication, context and JSON encoding."""

    # Issue 10: a WebSocket ends with the session it was opened with (service/web/sessions.py).
    graphql_transport_ws_handler_class = SessionTransportWSHandler
    graphql_ws_handler_class = SessionWSHandler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            token = _bearer(request.headers.get("authorization"))
            actor = ANONYMOUS
            if token is not None:
                try:
                    actor = await authenticate(
                        token, ip=_client_ip(scope), user_agent=request.headers.get("user-agent", "")
                    )
                except UserFacingError as error:
                    # A bad token is refused outright rather than silently treated as anonymous.
                    body = {"errors": [{"message": error.message, "extensions": {"code": error.code.value}}]}
                    response = Response(
                        orjson.dumps(body),
                        status_code=401,
                        media_type="application/json",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                    )
                    await response(scope, receive, send)
                    return
            if actor is ANONYMOUS:
                actor = Actor(ip=_client_ip(scope), user_agent=request.headers.get("user-agent", ""))
            scope.setdefault("state", {})["actor"] = actor
        await super().__call__(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        actor = request.scope.get("state", {}).get("actor", ANONYMOUS)
        return Context(request=request, response=response, actor=actor)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization")
        token = _bearer(raw) if isinstance(raw, str) else None
        scope = context.request.scope
        if token is None:
            context.actor = Actor(ip=_client_ip(scope))
            return None
        try:
            context.actor = await authenticate(token, ip=_client_ip(scope))
        except UserFacingError as error:
            raise ConnectionRejectionError({"code": error.code.value}) from None
        return None

    def decode_json(self, data: str | bytes) -> object:
        # orjson is several times faster; what it refuses (big integers, NaN, lone surrogates,
        # malformed JSON) goes to json.loads, so the accepted input and errors stay the same.
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            import json

            return json.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)
