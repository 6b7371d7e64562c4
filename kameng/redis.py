"""The Redis client, when ``REDIS_URL`` is configured (redis.asyncio; aioredis is archived)."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str) -> Redis:
    # decode_responses stays off: event payloads are orjson bytes and are passed on as-is.
    return Redis.from_url(url, health_check_interval=30, socket_keepalive=True)
