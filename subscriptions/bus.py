"""The event bus: publish after commit, subscribe per topic, resume from an event id.

Two implementations of one interface:

* ``RedisBus``: each event is appended to a capped Redis stream for its topic and announced
  on a pub/sub channel, atomically (one Lua script), so the live order and the stored
  order agree. Each process holds one pub/sub connection and fans messages out to its
  local subscribers, so 5,000 WebSocket subscribers cost one Redis connection.
* ``MemoryBus``: the same in one process, for the embedded default.

Event ids are Redis stream ids (``<ms>-<seq>``) in both, ordered per topic. A subscriber
that passes the last id it saw first receives what it missed (as far as the cap keeps),
then the live events, without a gap: it registers for live events *before* it reads the
backlog and drops duplicates by id. A subscriber that falls behind is not allowed to
block the others: it is marked lagged and re-reads from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)

#: How many events a topic keeps for resuming subscribers.
STREAM_CAP = 1000
#: Idle topics' streams expire after this many seconds.
STREAM_TTL_SECONDS = 7 * 24 * 3600
#: Live events buffered per subscriber before it is considered lagging.
SUBSCRIBER_BUFFER = 1000


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    topic: str
    data: dict[str, Any]


def id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class _Listener:
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_BUFFER))
    lagged: bool = False

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    def mark_lagged(self) -> None:
        self.lagged = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(_WAKE)


_WAKE = Event(id="0-0", topic="", data={})


class EventBus:
    """Shared subscribe logic; subclasses store, announce and replay."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[_Listener]] = {}

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        raise NotImplementedError

    async def replay(self, topic: str, after: str) -> list[Event]:
        """Stored events of ``topic`` with an id greater than ``after``, oldest first."""
        raise NotImplementedError

    async def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Publish several events in order (one round trip where the backend allows)."""
        return [await self.publish(topic, data) for topic, data in events]

    async def last_id(self, topic: str) -> str:
        """The id of the newest stored event of ``topic`` ("0-0" if none)."""
        raise NotImplementedError

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def _watch(self, topic: str) -> None:
        """Make sure live events of ``topic`` reach this process from now on."""

    async def _unwatch(self, topic: str) -> None:
        pass

    def _dispatch(self, event: Event) -> None:
        for listener in self._listeners.get(event.topic, ()):
            listener.offer(event)

    def subscribe(self, topic: str, after: str | None = None) -> Subscription:
        """Events of ``topic``: those after ``after`` (if given), then live ones.

        Use as ``async with bus.subscribe(topic) as events: async for event in events``; once
        the ``async with`` is entered, every event published afterwards will be delivered, so
        a caller may read current state from the database there without leaving a gap.
        """
        return Subscription(self, topic, after)

    def subscriber_count(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())


class Subscription:
    def __init__(self, bus: EventBus, topic: str, after: str | None) -> None:
        self._bus = bus
        self._topic = topic
        self._last = after
        self._listener = _Listener()

    async def __aenter__(self) -> Subscription:
        if self._last is None:
            # Start from the newest stored event, read before listening: whatever follows it
            # is ours. The first read of the stream (below) covers what was published while
            # the listener was being set up, and a lag or a reconnect is repaired the same way.
            self._last = await self._bus.last_id(self._topic)
        listeners = self._bus._listeners
        first = self._topic not in listeners
        listeners.setdefault(self._topic, set()).add(self._listener)
        if first:
            try:
                await self._bus._watch(self._topic)
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        listeners = self._bus._listeners.get(self._topic)
        if listeners is None:
            return
        listeners.discard(self._listener)
        if not listeners:
            del self._bus._listeners[self._topic]
            with contextlib.suppress(Exception):
                await self._bus._unwatch(self._topic)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        listener = self._listener
        for event in await self._bus.replay(self._topic, self._last):
            self._last = event.id
            yield event
        while True:
            event = await listener.queue.get()
            if listener.lagged:
                # Fell behind (or the connection was lost): re-read from the stored stream.
                listener.lagged = False
                while not listener.queue.empty():
                    listener.queue.get_nowait()
                for missed in await self._bus.replay(self._topic, self._last):
                    self._last = missed.id
                    yield missed
                continue
            if event is _WAKE:
                continue
            if id_key(event.id) <= id_key(self._last):
                continue
            self._last = event.id
            yield event


class MemoryBus(EventBus):
    """In-process bus for the embedded default (one API process)."""

    def __init__(self, cap: int = STREAM_CAP) -> None:
        super().__init__()
        self._cap = cap
        self._streams: dict[str, deque[Event]] = {}
        self._last = (0, 0)

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        event = Event(self._next_id(), topic, data)
        self._streams.setdefault(topic, deque(maxlen=self._cap)).append(event)
        self._dispatch(event)
        return event.id

    async def last_id(self, topic: str) -> str:
        stream = self._streams.get(topic)
        return stream[-1].id if stream else "0-0"

    async def replay(self, topic: str, after: str) -> list[Event]:
        bound = id_key(after)
        return [e for e in self._streams.get(topic, ()) if id_key(e.id) > bound]


# KEYS: stream, channel. ARGV: cap, ttl, payload. Append and announce in one step so
# that live order equals stored order.
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'd', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[3])
return id
"""


class RedisBus(EventBus):
    """Redis streams (history) + pub/sub (live), one pub/sub connection per process."""

    def __init__(self, redis: Redis, namespace: str, cap: int = STREAM_CAP) -> None:
        super().__init__()
        self._redis = redis
        self._ns = namespace
        self._cap = cap
        self._script = redis.register_script(_PUBLISH)
        self._pubsub = redis.pubsub(ignore_subscribe_messages=False)
        self._reader: asyncio.Task[None] | None = None
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()

    def _stream(self, topic: str) -> str:
        return f"{self._ns}:ev:{{{topic}}}:s"

    def _channel(self, topic: str) -> str:
        return f"{self._ns}:ev:{{{topic}}}:c"

    def _topic_of(self, channel: str) -> str:
        return channel[len(self._ns) + 5 : -3]

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        payload = orjson.dumps(data)
        event_id = await self._script(
            keys=[self._stream(topic), self._channel(topic)],
            args=[self._cap, STREAM_TTL_SECONDS, payload],
        )
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    async def last_id(self, topic: str) -> str:
        rows = await self._redis.xrevrange(self._stream(topic), max="+", min="-", count=1)
        return _str(rows[0][0]) if rows else "0-0"

    async def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for topic, data in events:
                await self._script(
                    keys=[self._stream(topic), self._channel(topic)],
                    args=[self._cap, STREAM_TTL_SECONDS, orjson.dumps(data)],
                    client=pipe,
                )
            ids = await pipe.execute()
        return [_str(event_id) for event_id in ids]

    async def replay(self, topic: str, after: str) -> list[Event]:
        rows = await self._redis.xrange(self._stream(topic), min=f"({after}", max="+")
        return [Event(_str(event_id), topic, orjson.loads(fields[b"d"])) for event_id, fields in rows]

    async def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_forever(), name="redis-bus-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()

    async def _watch(self, topic: str) -> None:
        await self.start()
        channel = self._channel(topic)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = confirmed
        async with self._lock:
            await self._pubsub.subscribe(channel)
        # Wait for Redis to confirm, so that nothing published after this returns is missed.
        try:
            await asyncio.wait_for(confirmed, timeout=5)
        finally:
            self._confirmations.pop(channel, None)

    async def _unwatch(self, topic: str) -> None:
        async with self._lock:
            await self._pubsub.unsubscribe(self._channel(topic))

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
                if message is None:
                    continue
                self._handle(message)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, OSError) as exc:
                log.warning("event bus: Redis connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                await self._resubscribe()
            except Exception:  # a malformed message must not stop delivery for everyone
                log.exception("event bus: dropping a malformed message")

    def _handle(self, message: dict[str, Any]) -> None:
        channel = _str(message["channel"])
        if message["type"] == "subscribe":
            future = self._confirmations.get(channel)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if message["type"] != "message":
            return
        event_id, _, payload = message["data"].partition(b" ")
        self._dispatch(Event(event_id.decode(), self._topic_of(channel), orjson.loads(payload)))

    async def _resubscribe(self) -> None:
        """After a reconnect: listen again, and make every subscriber re-read what it missed."""
        with contextlib.suppress(Exception):
            async with self._lock:
                channels = [self._channel(topic) for topic in self._listeners]
                if channels:
                    await self._pubsub.subscribe(*channels)
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.mark_lagged()


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
