"""Rate limits (login throttling, lookups, posting) on the ``limits`` library.

Redis-backed when ``REDIS_URL`` is set, so that every API process counts together;
in memory on the embedded default.
"""

from __future__ import annotations

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter


class RateLimiter:
    def __init__(self, redis_url: str | None, namespace: str) -> None:
        storage: Storage
        if redis_url:
            uri = redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
            storage = RedisStorage(uri, implementation="redispy", key_prefix=f"{namespace}:rl")
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, limit: str, *identifiers: str, cost: int = 1) -> bool:
        """Count one attempt (``cost`` of them: a batch); False when the limit is already used up."""
        return await self._limiter.hit(parse(limit), *identifiers, cost=cost)
