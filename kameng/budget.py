"""Token buckets: per-client point budgets that refill continuously (GraphQL query cost).

Why not ``kameng.ratelimit``: the ``limits`` library's strategies are windows, and a weighted
hit on its Redis moving window pushes one list entry per point (a 5,000-point query would
write 5,000 entries). A token bucket needs two numbers per client and one round trip: the
points left and when they were last counted.

Shared through Redis when it is configured (one Lua script: refill, compare, take, so that
concurrent API processes cannot both spend the same points), in process otherwise. Time
comes from ``kameng.clock`` (passed to the script rather than read from Redis), so that tests
can move it; API hosts are expected to keep their clocks in sync, and a bucket never runs
backwards when one host's clock is behind another's.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kameng import clock

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS[1] the bucket; ARGV: capacity, refill per millisecond, now (epoch milliseconds), cost.
# Returns {1 if taken else 0, points left as a string} (Lua numbers reply as integers).
# Whole milliseconds because Lua writes numbers with 14 significant digits: epoch seconds
# with microseconds would be rounded on every write, and the rounding would refill points.
# A bucket untouched for a whole refill period is full: its key can go. (The expiry counts
# in Redis's time, so it is the full period, not the time to refill what was taken, which
# would drop a bucket early while a test holds kameng.clock still.)
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'points', 'at')
local points = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
if now > at then
  points = math.min(capacity, points + (now - at) * rate)
  at = now
end
local taken = 0
if cost <= points then
  points = points - cost
  taken = 1
end
redis.call('HSET', KEYS[1], 'points', tostring(points), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return {taken, tostring(points)}
"""


@dataclass(frozen=True, slots=True)
class Take:
    taken: bool
    remaining: float  # points left after the take (or, when refused, before it)
    capacity: int
    rate: float  # points per second
    now: float  # epoch seconds the take was counted at

    @property
    def full_at(self) -> float:
        """When the bucket is full again (epoch seconds), if nothing more is taken."""
        return self.now + (self.capacity - self.remaining) / self.rate

    def retry_after(self, cost: int) -> int:
        """Whole seconds until ``cost`` points are available (0 if they are)."""
        return max(0, math.ceil((cost - self.remaining) / self.rate))


class TokenBuckets:
    """Buckets of ``capacity`` points refilled at ``rate`` points per second, one per key."""

    def __init__(self, capacity: int, rate: float, redis: Redis | None, prefix: str, max_local: int = 100_000) -> None:
        self.capacity, self.rate, self.redis, self.prefix = capacity, rate, redis, prefix
        self._script = redis.register_script(_TAKE) if redis is not None else None
        # In process: key -> (points, at). Bounded; a forgotten client starts again full,
        # which is no more than the refill would have given it after a quiet spell.
        self._local: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_local = max_local

    async def take(self, key: str, cost: int) -> Take:
        now = clock.now().timestamp()
        if self._script is not None:
            taken, left = await self._script(
                keys=[f"{self.prefix}:{key}"], args=[self.capacity, self.rate / 1000, math.floor(now * 1000), cost]
            )
            return Take(bool(taken), float(left), self.capacity, self.rate, now)
        points, at = self._local.pop(key, (float(self.capacity), now))
        if now > at:
            points, at = min(float(self.capacity), points + (now - at) * self.rate), now
        taken = cost <= points
        if taken:
            points -= cost
        self._local[key] = (points, at)
        if len(self._local) > self._max_local:
            self._local.popitem(last=False)
        return Take(taken, points, self.capacity, self.rate, now)
