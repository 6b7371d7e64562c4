"""The GraphQL endpoint: Strawberry's ASGI view with Kameng's authentication, context and JSON.

Both HTTP and the WebSocket protocols (graphql-transport-ws, graphql-ws) enter here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from kameng.settings import Settings
from resolvers.accounts.auth import ANONYMOUS, Actor, authenticate
from resolvers.errors import UserFacingError
from schema.context import Context
from schema.extensions import mask_error
from service.web import graphql_http, http_caching, response_cache
from service.web.response_cache import ResponseCache
from subscriptions import cache_tags
from service.web.cors import OriginPolicy
from service.web.graphql_http import RequestError
from service.web.persisted import PersistedQueries
from service.web.websocket import TextFrameWebSocketAdapter
from service.web.sessions import SessionTransportWSHandler, SessionWSHandler


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def _drop_client_budget(response_data: dict[str, Any]) -> None:
    cost = (response_data.get("extensions") or {}).get("cost")
    if isinstance(cost, dict):
        for key in ("remaining", "resetAt"):
            cost.pop(key, None)


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


class Exchange(Response):
    """Strawberry's "sub-response" (headers and status resolvers may set), plus what the view
    learns about the request on the way: the media type to answer with, the document run and
    whether the result had errors."""

    def __init__(self, request: Request) -> None:
        super().__init__()
        self.status_code = None  # type: ignore[assignment]  # unset: the view decides
        del self.headers["content-length"]
        self.request = request
        self.answer_type = graphql_http.negotiate(request.headers.get("accept"))
        self.request_data: GraphQLRequestData | None = None
        self.has_errors = False
        self.request_error = False


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with Kameng's authentication, context, JSON encoding and the
    client-facing HTTP rules of service/web (media types, persisted queries, caching)."""

    websocket_adapter_class = TextFrameWebSocketAdapter  # type: ignore[assignment]
    # Text frames, trusted documents (service/web/websocket.py) and, for issue 10, a socket
    # that ends with the session it was opened with (service/web/sessions.py).
    graphql_transport_ws_handler_class = SessionTransportWSHandler
    graphql_ws_handler_class = SessionWSHandler

    def __init__(self, *args: Any, settings: Settings, response_cache: ResponseCache | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.response_cache = response_cache
        self.persisted = PersistedQueries(settings)
        self.origins = OriginPolicy.of(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            token = _bearer(request.headers.get("authorization"))
            actor = ANONYMOUS
            if token is not None:
                try:
                    actor = await authenticate(
                        token, ip=_client_ip(scope), user_agent=request.headers.get("user-agent", ""), for_request=True
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
            await self._serve_http(request, scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    # -- GraphQL over HTTP (service/web/graphql_http.py) ----------------------------------

    async def _serve_http(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's run; a refusal before execution answers in the GraphQL shape (JSON
        errors a client can parse) rather than Strawberry's text/plain."""
        try:
            with cache_tags.request_waits() as waits:
                response = await self.run(request)
            if waits:
                # Changes this request committed: answer once the other processes dropped
                # them from their response caches (bounded wait, service/web/cache_sync.py).
                await asyncio.gather(*waits, return_exceptions=True)
        except HTTPException as error:
            response = RequestError(error.status_code, error.reason).response(
                graphql_http.negotiate(request.headers.get("accept"))
            )
        except RequestError as error:
            response = error.response(graphql_http.negotiate(request.headers.get("accept")))
        await response(scope, receive, send)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A persisted query over GET has no `query` parameter, only `extensions`.
        return "extensions" not in request.query_params and super().should_render_graphql_ide(request)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        assert isinstance(request, Request)
        exchange = Exchange(request)
        request.state.graphql_exchange = exchange
        return exchange

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):
            data = await self.persisted.resolve(data)
        return data

    async def execute_single(  # noqa: PLR0917  # Strawberry's signature
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        method = request_adapter.method
        assert isinstance(sub_response, Exchange)
        sub_response.request_data = request_data
        # Subscriptions are served on the WebSocket only; mutations need POST (not cacheable,
        # not sent by a prefetching browser).
        allowed = {OperationType.QUERY} if method == "GET" else {OperationType.QUERY, OperationType.MUTATION}
        try:
            return await self.schema.execute(
                request_data.query,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type == OperationType.SUBSCRIPTION:
                endpoint = str(request.url.replace(scheme="wss" if request.url.scheme == "https" else "ws", query=""))
                raise RequestError(
                    400,
                    f"Subscriptions are served over a WebSocket: connect to {endpoint} "
                    "(subprotocol graphql-transport-ws or graphql-ws).",
                    "SUBSCRIPTION_NEEDS_WEBSOCKET",
                ) from None
            raise RequestError(405, "Mutations are sent with POST.", "METHOD_NOT_ALLOWED",
                               headers={"Allow": "POST"}) from None
        except CannotGetOperationTypeError as error:
            raise RequestError(400, error.as_http_error_reason()) from None
        except MissingQueryError:
            raise RequestError(400, "No GraphQL query found in the request.") from None

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        if result.errors:
            # The masking extension sees resolver errors; one raised by an extension's own hook
            # ends the operation before it can, so mask here too (idempotent).
            result.errors = [mask_error(error, self.settings.debug) for error in result.errors]
        data = await super().process_result(request, result)
        exchange: Exchange = request.state.graphql_exchange
        exchange.has_errors = bool(result.errors)
        if graphql_http.is_request_error(result.data, result.errors):
            exchange.request_error = True
            if exchange.answer_type == graphql_http.GRAPHQL_RESPONSE_JSON:
                data.pop("data", None)
        return data

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        assert isinstance(sub_response, Exchange)
        public = self._is_public(sub_response)
        if public and isinstance(response_data, dict):
            # A shared cache hands this body to every client: keep it a function of the
            # query alone, without this client's remaining query budget (schema/cost.py).
            _drop_client_budget(response_data)
        body = self.encode_json(response_data)
        status = 200
        if sub_response.request_error and sub_response.answer_type == graphql_http.GRAPHQL_RESPONSE_JSON:
            status = 400
        if public:
            headers = http_caching.public_headers(
                http_caching.etag(body, sub_response.answer_type),
                self.settings.http_cache_max_age,
                cors=self.origins.enabled,
            )
        else:
            headers = http_caching.private_headers(cors=self.origins.enabled)
        if public and status == 200 and sub_response.status_code is None:
            self._store(sub_response, body, headers["ETag"])
        if headers.get("ETag") and http_caching.matches(sub_response.request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        response = Response(body, status_code=sub_response.status_code or status, headers=headers)
        response.headers["content-type"] = graphql_http.CONTENT_TYPES[sub_response.answer_type]
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        return response

    # -- HTTP caching (service/web/http_caching.py) ----------------------------------------

    def _store(self, exchange: Exchange, body: bytes, etag: str) -> None:
        """A public answer to a request the response cache marked (service/web/response_cache.py)."""
        miss = exchange.request.scope.get("state", {}).get("response_cache")
        cache = self.response_cache
        if miss is None or cache is None:
            return
        if exchange.headers.raw or exchange.background is not None or not cache.cacheable(miss.key[0], miss.key[1]):
            response_cache.uncacheable()
            return
        cache.put(miss, response_cache.entry_for(cache, miss, body, etag, graphql_http.CONTENT_TYPES[exchange.answer_type]))

    def _is_public(self, exchange: Exchange) -> bool:
        request, data = exchange.request, exchange.request_data
        return data is not None and exchange.status_code is None and http_caching.is_public(
            method=request.method,
            authorized="authorization" in request.headers,
            has_errors=exchange.has_errors,
            query=data.query,
            operation_name=data.operation_name,
        )

    # -- WebSocket -----------------------------------------------------------------------

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        # The same allow-list as CORS: a page that may call the API may subscribe too.
        return self.origins.allows(origin)

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
