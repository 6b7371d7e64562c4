"""The WebSocket protocols: JSON in text frames, as graphql-transport-ws and graphql-ws define
them, and trusted-documents mode on this path too.

The view encodes JSON with orjson (bytes) for HTTP speed; Strawberry's adapter sends bytes as
binary frames, which graphql-ws (npm), gql and browsers refuse or hand over as a Blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage

from service.web import broadcast


class TextFrameWebSocketAdapter(ASGIWebSocketAdapter):
    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(self.view.encode_json_string(message))
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


def _refusal(view: object, query: object) -> dict[str, object] | None:
    """The error of a document trusted-documents mode refuses (service/web/persisted.py)."""
    persisted = getattr(view, "persisted", None)
    if persisted is None or (isinstance(query, str) and persisted.allows(query)):
        return None
    return {"message": "This server only runs trusted documents.",
            "extensions": {"code": "PERSISTED_QUERY_NOT_IN_LIST"}}


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws, refusing documents outside the trusted list; public live
    subscriptions are served from a shared group (service/web/broadcast.py)."""

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        key = broadcast.share_key(self.schema._schema, operation.query, operation.variables, operation.operation_name)
        if key is None:
            await super().run_operation(operation)
            return
        try:
            await broadcast.follow(key, self, operation.id, operation.variables)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except Exception as error:  # as Strawberry's own run_operation does
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        error = _refusal(self.view, message["payload"].get("query")) if self.connection_acknowledged else None
        if error is not None:
            await self.send_message({"id": message["id"], "type": "error", "payload": [error]})
            return
        await super().handle_subscribe(message)


class LegacyWSHandler(BaseGraphQLWSHandler[Any, Any]):
    """Apollo's older graphql-ws, refusing documents outside the trusted list."""

    async def handle_start(self, message: StartMessage) -> None:
        error = _refusal(self.view, message["payload"].get("query")) if self.connection_acknowledged else None
        if error is not None:
            await self.send_message({"type": "error", "id": message["id"], "payload": error})
            return
        await super().handle_start(message)
