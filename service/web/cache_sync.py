"""Response cache invalidations between processes, through Redis pub/sub (issue 15).

A process that commits a change drops the tags from its own caches at once
(subscriptions/cache_tags.py) and publishes them on ``<namespace>:response-cache``. Every
cache listening (one pub/sub connection each) drops them too -- unless they came from its own
process, which did so already -- and acknowledges on a per-message list. The publisher waits
for as many acknowledgements as PUBLISH counted receivers, at most
``KAMENG_RESPONSE_CACHE_ACK_MS``: when it returns, every other process has dropped the tags
(or is late by that bound). The committing request answers only after that
(service/web/view.py), so the next request, to any process, sees the change.

A cache stores nothing until its subscription is up; if the connection drops it forgets
everything (it may have missed invalidations meanwhile) and subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from typing import Any

import orjson
import structlog

from kameng import runtime

log = structlog.get_logger("kameng.cache")

#: This process's caches share one origin: they are invalidated locally, not through Redis.
PROCESS_ORIGIN = uuid.uuid4().hex
_tasks: set[asyncio.Task[Any]] = set()


def channel(namespace: str) -> str:
    return f"{namespace}:response-cache"


def _ack_key(namespace: str, message_id: str) -> str:
    return f"{namespace}:response-cache:ack:{message_id}"


class Publisher:
    """``cache_tags.set_publisher(Publisher(...))``: send committed tags to the other processes."""

    def __init__(self, redis: Any, namespace: str, ack_ms: int) -> None:
        self.redis, self.namespace, self.ack_seconds = redis, namespace, ack_ms / 1000

    async def __call__(self, tags: frozenset[str]) -> None:
        message_id = uuid.uuid4().hex
        ack = _ack_key(self.namespace, message_id)
        payload = orjson.dumps({"o": PROCESS_ORIGIN, "i": message_id, "t": sorted(tags)})
        try:
            receivers = await self.redis.publish(channel(self.namespace), payload)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.ack_seconds
            acknowledged = 0
            while acknowledged < receivers:
                remaining = deadline - loop.time()
                if remaining <= 0.001:
                    log.warning("cache.ack_timeout", acknowledged=acknowledged, receivers=receivers)
                    break
                if await self.redis.blpop([ack], timeout=remaining) is None:
                    continue
                acknowledged += 1
        except Exception as error:  # Redis down: other processes fall back on the TTL
            log.warning("cache.publish_failed", error=repr(error))
        finally:
            with contextlib.suppress(Exception):
                await self.redis.delete(ack)


def ensure_listening(cache: Any) -> None:
    """Start ``cache``'s subscription if Redis is configured (once); else it is ready as is."""
    if cache.listening:
        return
    cache.listening = True
    redis = runtime.current().redis if runtime.is_started() else None
    if redis is None:
        cache.ready = True
        return
    task = asyncio.get_running_loop().create_task(_listen(weakref.ref(cache), redis, runtime.current().settings.namespace))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _listen(ref: weakref.ref[Any], redis: Any, namespace: str) -> None:
    while ref() is not None:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(channel(namespace))
            cache = ref()
            if cache is None:
                return
            cache.ready = True
            del cache
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                cache = ref()
                if cache is None:
                    return
                if message is None:
                    continue
                data = orjson.loads(message["data"])
                if data["o"] != (cache.origin or PROCESS_ORIGIN):
                    cache.invalidate(data["t"], origin="remote")
                del cache
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.rpush(_ack_key(namespace, data["i"]), 1)
                    pipe.expire(_ack_key(namespace, data["i"]), 10)
                    await pipe.execute()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            cache = ref()
            if cache is not None:
                cache.forget_all()  # invalidations may have been missed meanwhile
            del cache
            log.warning("cache.subscription_lost", error=repr(error))
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


async def stop() -> None:
    for task in list(_tasks):
        task.cancel()
    for task in list(_tasks):
        with contextlib.suppress(BaseException):
            await task
