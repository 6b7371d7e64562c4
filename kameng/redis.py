"""The Redis client, when ``REDIS_URL`` is configured (redis.asyncio; aioredis is archived)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

#: How long a command waits for a free connection before it fails (and the request says the
#: service is unavailable): longer than any burst of commands holds them.
POOL_WAIT_SECONDS = 5.0


def connect(url: str, max_connections: int = 256) -> Redis:
    """A client whose pool makes a command wait for a free connection rather than fail.

    redis-py's default pool holds 100 connections and raises ``MaxConnectionsError`` at the
    101st concurrent command: a burst of 200 requests (each takes its query budget from Redis)
    answered some of them 503 on a loaded machine (bench/delivery.py). Waiting costs nothing
    but the wait; a Redis that is really gone still fails, after ``POOL_WAIT_SECONDS``.
    """
    # decode_responses stays off: event payloads are orjson bytes and are passed on as-is.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_WAIT_SECONDS, health_check_interval=30, socket_keepalive=True
    )
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes the connections
