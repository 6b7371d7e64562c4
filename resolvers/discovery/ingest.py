"""Client behaviour events in: the ``track`` use case and the per-process buffer behind it.

``track`` validates a batch, spends the device's and the address's rate limits and hands
the events, as rows in ``tracking.COLUMNS`` order, to this process's ``EventBuffer``: the
request never waits on the database. A search's SEARCH event takes the same way in. A
flusher task hands the buffer on every ``KAMENG_EVENTS_FLUSH_SECONDS`` (sooner when it holds
``KAMENG_EVENTS_FLUSH_BATCH`` events): with Redis to the queue the job-consuming processes
write (resolvers/discovery/event_queue.py), without it straight to ``tracking.write_rows``
(PostgreSQL COPY); the device merges a batch asked for are applied after the device's events
are in.

What a crash loses: the events buffered in that process since its last flush (half a second
by default; what reached the Redis queue survives the API process). The stop of the runtime
flushes what is left. Behaviour events are analytics, not money; a client that needs more
resends, and the event ids make resends harmless.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from kameng import runtime
from kameng.flusher import Flusher
from kameng.settings import get_settings
from models.discovery.events import CLIENT_KINDS, EventKind
from resolvers.accounts.auth import Actor
from resolvers.discovery import event_queue
from resolvers.discovery.tracking import merge_device, write_rows
from resolvers.errors import ErrorCode, UserFacingError, invalid

log = logging.getLogger(__name__)

_LOCAL_KEY = "discovery.event_buffer"
#: A buffered event: its values in tracking.COLUMNS order.
Row = tuple[Any, ...]


class EventBuffer(Flusher):
    """Events waiting to be written by this process, and the device merges they carry."""

    name = "behaviour-event-flusher"

    def __init__(self) -> None:
        super().__init__()
        self._events: list[Row] = []  # in tracking.COLUMNS order, as COPY and the queue take them
        self._merges: list[tuple[int, str]] = []
        self.dropped = 0

    def interval(self) -> float:
        return get_settings().events_flush_seconds

    def __len__(self) -> int:
        return len(self._events)

    def add(self, events: Sequence[Row], merge: tuple[int, str] | None = None) -> None:
        settings = get_settings()
        self._events.extend(events)
        if merge is not None and merge not in self._merges:
            self._merges.append(merge)
        overflow = len(self._events) - settings.events_buffer_max
        if overflow > 0:
            del self._events[:overflow]
            self.dropped += overflow
            log.warning("behaviour events: buffer full, dropped the %d oldest", overflow)
        self.ensure_running()
        if len(self._events) >= settings.events_flush_batch:
            self._wake.set()

    async def flush(self) -> int:
        """Hand everything buffered now to the writer: the database here, or with Redis the queue
        the job-consuming processes drain (and drain it now if this process is one of them).
        Returns how many events were handed on."""
        async with self._lock:
            events, self._events = self._events, []
            merges, self._merges = self._merges, []
            if events or merges:
                try:
                    if event_queue.enabled():
                        await event_queue.push(events, merges)
                    else:
                        for start in range(0, len(events), 50_000):
                            await write_rows(events[start : start + 50_000])
                        for user_id, device_id in merges:
                            await merge_device(user_id, device_id)
                except BaseException:
                    # Keep them for the next round (bounded by the buffer's size).
                    self._events[:0] = events
                    self._merges[:0] = merges
                    raise
                self.written += len(events)
        drainer = event_queue.local_drainer()
        if drainer is not None:
            await drainer.flush()
        return len(events)


def buffer() -> EventBuffer:
    """This process's buffer (one per runtime)."""
    return EventBuffer.of_process(_LOCAL_KEY)


async def stop() -> None:
    await EventBuffer.stop_process(_LOCAL_KEY)


# -- the track mutation ----------------------------------------------------------------

_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
_SURFACE = re.compile(r"^[A-Z_]{1,32}$")
#: How far a client's clock may run ahead, and how old an event it may send.
_FUTURE = timedelta(minutes=10)
_PAST = timedelta(days=7)
_CLIENT_KIND = {kind.value: kind for kind in CLIENT_KINDS}
#: Batch work (decoding, validating, queueing) yields to the event loop every this many events.
YIELD_EVERY = 100
_NEEDS_TOKEN = frozenset({EventKind.RECOMMENDATION_IMPRESSION, EventKind.RECOMMENDATION_CLICK})


class ClientEvent(NamedTuple):
    """One event as a client sent it (decoded, not yet validated). A tuple: 500 of these per
    request, built ~3x faster than a dataclass."""

    event_id: str
    kind: str
    client_time: datetime
    product_id: int | None = None
    post_id: int | None = None
    topic_id: int | None = None
    query: str | None = None
    surface: str | None = None
    token: str | None = None
    path: str | None = None


async def track(actor: Actor, device_id: str | None, events: Sequence[ClientEvent]) -> int:
    """Validate a client batch and buffer it; returns how many events were accepted.

    The batch is all or nothing: one bad item refuses the whole request (INVALID_INPUT, field
    ``events.<index>.<name>``) and nothing is buffered, so a client fixes and resends it (the
    event ids make the resend safe). RATE_LIMITED past the per-device or per-address budget,
    counted in events. A signed-in call naming a device merges that device's anonymous
    events into the user (unless personalisation is off)."""
    settings = get_settings()
    if device_id is not None and not _DEVICE_ID.fullmatch(device_id):
        raise invalid("deviceId", "A device id is 8 to 64 letters, digits, '_', '.', ':' or '-'.")
    if not events:
        raise invalid("events", "Send at least one event.")
    if len(events) > settings.track_max_events:
        raise invalid("events", f"Send at most {settings.track_max_events} events per request.")
    user = actor.user
    personal = user is not None and user.personalisation
    now = datetime.now(UTC)
    window = (now - _PAST, now + _FUTURE)
    # Whose the rows are: a guest's device; the user's (and device's); an opted-out user's
    # nobody's (as tracking.anonymous).
    owner = (None, device_id, True) if user is None else (user.id, device_id, True) if personal else (None, None, False)
    tracked: list[Row] = []
    for start in range(0, len(events), YIELD_EVERY):
        if start:
            await asyncio.sleep(0)  # a 500-event batch is a few ms of CPU: let other requests in between
        tracked.extend(_validated(i, events[i], now, window, owner)
                       for i in range(start, min(start + YIELD_EVERY, len(events))))
    await _count(actor, device_id, len(tracked))
    merge = (user.id, device_id) if personal and user is not None and device_id is not None else None
    buffer().add(tracked, merge)
    return len(tracked)


def _bad(index: int, name: str, message: str) -> UserFacingError:
    return invalid(f"events.{index}.{name}", message)


def _validated(index: int, raw: ClientEvent, now: datetime, window: tuple[datetime, datetime],
               owner: tuple[int | None, str | None, bool]) -> Row:
    if not _EVENT_ID.fullmatch(raw.event_id):
        raise _bad(index, "eventId", "An event id is 8 to 64 letters, digits, '_', '.', ':' or '-' (a UUID fits).")
    kind = _CLIENT_KIND.get(raw.kind)
    if kind is None:
        raise _bad(index, "kind", "Clients send only " + ", ".join(sorted(CLIENT_KINDS)) + ".")
    client_time = raw.client_time if raw.client_time.tzinfo else raw.client_time.replace(tzinfo=UTC)
    if not window[0] <= client_time <= window[1]:
        raise _bad(index, "clientTime", "The client time is more than 7 days old or in the future.")
    if kind is EventKind.PRODUCT_VIEW and raw.product_id is None:
        raise _bad(index, "productId", "A product view names its product.")
    if kind is EventKind.POST_VIEW and raw.post_id is None:
        raise _bad(index, "postId", "A post view names its post.")
    query = raw.query
    if query is not None:
        query = query.strip() or None
        if query is not None and len(query) > 200:
            raise _bad(index, "query", "A query is at most 200 characters.")
    if kind is EventKind.SEARCH and query is None:
        raise _bad(index, "query", "A search names its query.")
    token = raw.token
    if token is not None and len(token) > 200:
        raise _bad(index, "token", "A token is at most 200 characters.")
    if not token and kind in _NEEDS_TOKEN:
        raise _bad(index, "token", "A recommendation event carries the recommendation's token.")
    if raw.surface is not None and not _SURFACE.fullmatch(raw.surface):
        raise _bad(index, "surface", "A surface is an upper-case name such as HOME.")
    if raw.path is not None and len(raw.path) > 200:
        raise _bad(index, "path", "A path is at most 200 characters.")
    # tracking.COLUMNS: event_id, kind, user_id, device_id, product_id, post_id, topic_id,
    # merchant_id, order_id, query, surface, token, amount, personalised, client_time, occurred_at
    return (raw.event_id, kind.value, owner[0], owner[1], raw.product_id, raw.post_id, raw.topic_id, None, None,
            query if kind is EventKind.SEARCH else (raw.path or None), raw.surface, token, None, owner[2],
            client_time, now)


async def _count(actor: Actor, device_id: str | None, cost: int) -> None:
    settings = get_settings()
    limiter = runtime.limiter()
    ok = await limiter.hit(settings.track_limit_per_ip, "track:ip", actor.ip or "-", cost=cost)
    if ok and device_id is not None:
        ok = await limiter.hit(settings.track_limit_per_device, "track:device", device_id, cost=cost)
    if not ok:
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many events from this device; send fewer, later.")


