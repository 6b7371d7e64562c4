"""WebSocket frames as graphql-transport-ws and graphql-ws define them: JSON in text frames.

The view encodes JSON with orjson (bytes) for HTTP speed; Strawberry's adapter sends bytes as
binary frames, which graphql-ws (npm), gql and browsers refuse or hand over as a Blob.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected


class TextFrameWebSocketAdapter(ASGIWebSocketAdapter):
    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(self.view.encode_json_string(message))
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
