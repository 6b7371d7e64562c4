"""The process's shared handles: settings, Redis, the event bus, the rate limiter, the broker.

This module only holds them; `service/wiring.py` builds them at start-up and tears them down.
Use cases reach them through the typed accessors below, so nothing at this level imports
the layers above it (the annotations are for type checkers only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dramatiq
    from redis.asyncio import Redis

    from kameng.ratelimit import RateLimiter
    from kameng.settings import Settings
    from subscriptions.bus import EventBus
    from workers.consumers import Consumers
    from workers.relay import OutboxRelay
    from workers.scheduler import Scheduler


@dataclass
class Runtime:
    settings: Settings
    redis: Redis | None
    bus: EventBus
    limiter: RateLimiter
    broker: dramatiq.Broker
    relay: OutboxRelay
    consumers: Consumers | None = None
    scheduler: Scheduler | None = None
    # Per-process objects an upper layer builds lazily on these handles (the feed store).
    local: dict[str, Any] = field(default_factory=dict)


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` this process's (None: forget it). Called by the wiring only."""
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the Kameng runtime is not started (app lifespan or `kameng worker`)")
    return _current


def is_started() -> bool:
    return _current is not None


def bus() -> EventBus:
    return current().bus


def redis() -> Redis | None:
    return current().redis


def limiter() -> RateLimiter:
    return current().limiter


def broker() -> dramatiq.Broker:
    return current().broker
