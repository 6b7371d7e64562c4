"""A second HTTP server for tests that need other web settings (trusted documents, CORS
lists): a fresh app on its own port, sharing the running stack's runtime (database, bus,
Redis), so its lifespan stays off and nothing global is started twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from tests.conftest import Stack, free_port


@contextlib.asynccontextmanager
async def serve_app(stack: Stack, **overrides: Any) -> AsyncIterator[str]:
    from app import create_app

    settings = stack.settings.model_copy(update=overrides)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False,
    ))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
