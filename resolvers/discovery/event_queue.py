"""Client behaviour events between the API and the writer, when Redis is configured.

An API process that writes its own events spends ~15 µs of CPU per event on COPY (building
and encoding the rows), as much again as validating them: at 20,000 events/s that is most of
a process, and every GraphQL request would queue behind it. So with Redis, an API process's
flusher only appends each flushed batch to one Redis list (one ``RPUSH`` of one orjson blob,
~0.5 µs per event), and the processes that consume jobs (``kameng worker``, or an API
process running the in-process worker) drain the list and write with COPY. Without Redis
(the embedded default) there is one process, and it writes its buffer itself.

Order and crashes: one drainer at a time holds ``…:events:drain-lock`` (so a device merge is
applied after the events queued before it); it moves blobs with ``LMOVE`` to
``…:events:draining`` and removes them once written, and the next holder of the lock writes
again whatever a crashed drainer left there first. Writes are idempotent by event id, so
writing a blob twice stores it once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from kameng import runtime
from kameng.flusher import Flusher
from kameng.settings import get_settings
from resolvers.discovery.tracking import COLUMNS, merge_device, write_rows

log = logging.getLogger(__name__)

_LOCAL_KEY = "discovery.event_drainer"
#: Where COLUMNS puts the values a queued row carries as text.
_AMOUNT, _CLIENT_TIME, _OCCURRED_AT = (COLUMNS.index(name) for name in ("amount", "client_time", "occurred_at"))
#: Events per queued blob (merges ride in a flush's last blob, after its events), and blobs
#: moved per round trip and written per COPY.
_EVENTS_PER_BLOB = 1000
_BLOBS_PER_WRITE = 5
#: Releases the lock only if this drainer still holds it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _keys() -> tuple[str, str, str]:
    namespace = get_settings().namespace
    return f"{namespace}:events:queue", f"{namespace}:events:draining", f"{namespace}:events:drain-lock"


def enabled() -> bool:
    return runtime.is_started() and runtime.redis() is not None and get_settings().events_queue


def _readable(row: list[Any]) -> list[Any]:
    """A queued row back in the types COPY takes (the decimal amount travels as text)."""
    if row[_AMOUNT] is not None:
        row[_AMOUNT] = Decimal(row[_AMOUNT])
    if row[_CLIENT_TIME] is not None:
        row[_CLIENT_TIME] = datetime.fromisoformat(row[_CLIENT_TIME])
    row[_OCCURRED_AT] = datetime.fromisoformat(row[_OCCURRED_AT])
    return row


async def push(events: Sequence[Sequence[Any]], merges: Sequence[tuple[int, str]]) -> None:
    """Queue one flushed batch (and the device merges that follow it) for the writer."""
    if not events and not merges:
        return
    queue, _, _ = _keys()
    blobs = []
    for start in range(0, max(len(events), 1), _EVENTS_PER_BLOB):
        if start:
            await asyncio.sleep(0)  # half a second of events is a few ms to encode: let requests in between
        chunk = events[start : start + _EVENTS_PER_BLOB]
        last = start + _EVENTS_PER_BLOB >= len(events)
        # orjson writes the datetimes (RFC 3339) in C; the writer reads them back with fromisoformat.
        blobs.append(orjson.dumps({"events": chunk, "merges": [list(m) for m in merges] if last else []}, default=str))
    async with runtime.redis().pipeline(transaction=False) as pipe:  # type: ignore[union-attr]
        # With no writer running, the oldest batches go rather than Redis's memory.
        pipe.rpush(queue, *blobs).ltrim(queue, -get_settings().events_queue_max_batches, -1)
        await pipe.execute()


async def drain() -> int:
    """Write what the queue holds now (another drainer busy: nothing); returns the events written."""
    redis = runtime.redis()
    if redis is None:
        return 0
    queue, draining, lock = _keys()
    token = uuid.uuid4().hex
    if not await redis.set(lock, token, nx=True, px=60_000):
        return 0
    written = 0
    try:
        written += await _write(await redis.lrange(draining, 0, -1))  # what a crashed drainer left
        await redis.delete(draining)
        while True:
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(_BLOBS_PER_WRITE):
                    pipe.lmove(queue, draining, "LEFT", "RIGHT")
                pipe.pexpire(lock, 60_000)
                moved = [blob for blob in (await pipe.execute())[:-1] if blob is not None]
            if not moved:
                return written
            written += await _write(moved)
            await redis.delete(draining)
    finally:
        await redis.eval(_RELEASE, 1, lock, token)


async def _write(blobs: list[bytes]) -> int:
    rows: list[list[Any]] = []
    merges: list[tuple[int, str]] = []
    for blob in blobs:
        try:
            data = orjson.loads(blob)
            rows.extend([_readable(row) for row in data["events"]])
            merges.extend((int(user_id), str(device_id)) for user_id, device_id in data["merges"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError, ArithmeticError):
            log.error("behaviour events: dropped an unreadable queued batch (%d bytes)", len(blob))
        await asyncio.sleep(0)  # this loop also runs the worker's jobs
    await write_rows(rows)
    for user_id, device_id in merges:
        await merge_device(user_id, device_id)
    return len(rows)


async def backlog() -> int:
    """Batches waiting in the queue (tests; an operator reads the same with LLEN)."""
    redis = runtime.redis()
    return 0 if redis is None else int(await redis.llen(_keys()[0]))


class Drainer(Flusher):
    """The writer loop of a process that consumes jobs: drains the queue every flush interval."""

    name = "behaviour-event-drainer"

    def interval(self) -> float:
        return get_settings().events_flush_seconds

    async def flush(self) -> int:
        async with self._lock:
            written = await drain()
            self.written += written
            return written


def start() -> None:
    """Start this process's drainer (wiring, in processes that consume jobs and have Redis)."""
    if enabled():
        Drainer.of_process(_LOCAL_KEY).ensure_running()


def local_drainer() -> Drainer | None:
    """This process's drainer, if it runs one (its lock orders a flush after a drain in progress)."""
    return runtime.current().local.get(_LOCAL_KEY) if runtime.is_started() else None


async def stop() -> None:
    await Drainer.stop_process(_LOCAL_KEY)
