"""The floor for bench/feeds.py's live phase: a bare WebSocket + Redis fan-out.

A Starlette app served by uvicorn with Kameng's own server options (service.cli.server_options,
plus the same overrides the bench passes to Kameng): it speaks just enough graphql-transport-ws
(connection_init -> connection_ack, subscribe registers the socket), listens on one Redis
pub/sub channel and sends every message it receives, as one text frame with the operation's
id, to every registered socket. No GraphQL, no database, no session guard.

    python bench/ws_baseline.py PORT REDIS_URL CHANNEL '{"ws": "websockets"}'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def build(redis_url: str, channel: str) -> Any:
    from redis.asyncio import Redis
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    subscribers: dict[WebSocket, str] = {}

    async def fan_out() -> None:
        redis = Redis.from_url(redis_url)
        pubsub = redis.pubsub()
        await pubsub.subscribe(channel)
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            payload = message["data"].decode()
            for ws, prefix in list(subscribers.items()):
                with contextlib.suppress(Exception):
                    await ws.send_text(prefix + payload + "}")

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept(subprotocol="graphql-transport-ws")
        try:
            while True:
                message = json.loads(await ws.receive_text())
                if message["type"] == "connection_init":
                    await ws.send_text('{"type":"connection_ack"}')
                elif message["type"] == "subscribe":
                    subscribers[ws] = '{"id":' + json.dumps(message["id"]) + ',"type":"next","payload":'
        except WebSocketDisconnect:
            pass
        finally:
            subscribers.pop(ws, None)

    async def ready(_: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        task = asyncio.create_task(fan_out())
        yield
        task.cancel()

    return Starlette(routes=[Route("/readyz", ready), WebSocketRoute("/graphql", endpoint)], lifespan=lifespan)


if __name__ == "__main__":
    import uvicorn

    from kameng.settings import Settings
    from service.cli import server_options

    port, redis_url, channel, overrides = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    options = {**server_options(Settings()), **overrides, "log_level": "warning"}
    uvicorn.run(build(redis_url, channel), host="127.0.0.1", port=port, **options)
