"""kameng/redis.py: a burst of commands beyond the connection pool waits its turn.

redis-py's default pool refuses the 101st concurrent command (``MaxConnectionsError``), which
a burst of 200 requests turned into 503 answers (each request takes its query budget from
Redis). Against the local Redis (the services run has it; the embedded run too, where present)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import MaxConnectionsError

from kameng.redis import connect
from tests.conftest import LOCAL_REDIS, reachable

pytestmark = pytest.mark.skipif(not reachable(LOCAL_REDIS, 6379), reason="needs Redis")


async def test_commands_beyond_the_pool_wait_for_a_connection_instead_of_failing() -> None:
    key = f"test:pool:{uuid.uuid4().hex}"
    client = connect(LOCAL_REDIS, max_connections=4)
    try:
        # 16 commands that each hold a connection for 0.1 s, on a pool of 4: all answered.
        answers = await asyncio.gather(*(client.blpop([key], timeout=0.1) for _ in range(16)))
        assert answers == [None] * 16
        assert client.connection_pool.max_connections == 4
    finally:
        await client.aclose()
    # What the default pool would have done with the same burst.
    plain = Redis(connection_pool=ConnectionPool.from_url(LOCAL_REDIS, max_connections=4))
    try:
        with pytest.raises(MaxConnectionsError):
            await asyncio.gather(*(plain.blpop([key], timeout=0.1) for _ in range(16)))
    finally:
        await plain.aclose()
        await plain.connection_pool.disconnect()
