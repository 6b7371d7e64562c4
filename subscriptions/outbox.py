"""The transactional outbox: side effects are rows written with the state change.

Use cases write state and outbox rows inside ``atomic()``; when it commits, the rows it
wrote are handed to this process's relay (workers/relay.py), which publishes them at once. A rolled-back transaction leaves no row, so
nothing is sent for it; a crash after commit leaves the row pending, and the relay's
periodic sweep (in any process) sends it. Nothing here talks to Redis or the broker.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from models.discovery.events import EventKind
from models.outbox import OutboxEntry, OutboxKind
from models.trust.tradelog import TradeEvent
from subscriptions import cache_tags
from subscriptions.jobs import JobCall

_on_commit: list[Callable[[], None]] = []
_on_commit_rows: list[Callable[[list[OutboxEntry], bool], None]] = []
_emitted: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("outbox_emitted", default=None)
# The rows themselves, beside their ids: the committing process publishes them at once.
_rows: contextvars.ContextVar[list[OutboxEntry] | None] = contextvars.ContextVar("outbox_rows", default=None)


def on_commit(callback: Callable[[], None]) -> None:
    """Register a callback run after a transaction that wrote outbox rows commits."""
    if callback not in _on_commit:
        _on_commit.append(callback)


def on_commit_rows(callback: Callable[[list[OutboxEntry], bool], None]) -> None:
    """Register a callback run after a transaction that wrote outbox rows commits, with the
    rows it wrote (in id order) and whether it also wrote trade-log rows. It runs in the
    committing task and must not block: the relay queues the rows and publishes them."""
    if callback not in _on_commit_rows:
        _on_commit_rows.append(callback)


def clear_commit_hooks() -> None:
    _on_commit.clear()
    _on_commit_rows.clear()


@asynccontextmanager
async def atomic(*, join: bool = False) -> AsyncIterator[Any]:
    """A database transaction whose outbox rows are relayed once it commits.

    Nested use joins the outer transaction; the relay is woken by the outermost one. Nested,
    it is a savepoint (an error inside rolls back only what it did), unless ``join``: then it
    is simply the outer transaction, for callers that recover from no error inside and so
    need not pay a savepoint's two round trips (SAVEPOINT, RELEASE) on a hot path.
    """
    outer = _emitted.get()
    if outer is not None:
        if join:
            yield connections.get("default")
            return
        async with in_transaction() as connection:
            yield connection
        return
    token = _emitted.set([])
    rows_token = _rows.set([])
    cache_token, committed = cache_tags.begin(), False  # the response cache's tags (issue 15)
    try:
        async with in_transaction() as connection:
            yield connection
        emitted = _emitted.get() or []
        rows = _rows.get() or []
        committed = True
    finally:
        _emitted.reset(token)
        _rows.reset(rows_token)
        cache_tags.end(cache_token, committed)
    if emitted:
        for callback in _on_commit:
            callback()
        trades = any(i < 0 for i in emitted)
        for rows_callback in _on_commit_rows:
            rows_callback(rows, trades)


async def _write(kind: OutboxKind, topic: str, payload: dict[str, Any]) -> OutboxEntry:
    emitted = _emitted.get()
    if emitted is None:
        raise RuntimeError("outbox rows are written inside atomic(), with the state they describe")
    entry = await OutboxEntry.create(kind=kind, topic=topic, payload=payload)
    emitted.append(entry.id)
    rows = _rows.get()
    if rows is not None:
        rows.append(entry)
    return entry


async def emit(topic: str, data: dict[str, Any]) -> OutboxEntry:
    """Publish ``data`` on the event bus topic ``topic`` once the transaction commits."""
    return await _write(OutboxKind.EVENT, topic, data)


async def enqueue(call: JobCall) -> OutboxEntry:
    """Send the dramatiq message ``call`` once the transaction commits (after its delay if
    any). The message id is derived from the outbox row, so a re-sent row is recognisable."""
    if not isinstance(call, JobCall):
        raise TypeError("outbox.enqueue takes a JobCall built by subscriptions.jobs")
    return await _write(OutboxKind.JOB, call.name.value, {"kwargs": call.kwargs, "delay_ms": call.delay_ms})


async def track(kind: EventKind, event_id: str, **data: Any) -> OutboxEntry:
    """A server behaviour event (``kind``, one of the domain's) the relay writes into the
    behaviour events once the transaction commits, in the transaction that stamps this row:
    exactly once. ``event_id`` is its idempotency key; ``data`` names user_id, product_id...
    Only for facts no other outbox row already tells (resolvers/discovery/events.py reads
    order transitions, posts, comments and likes from the rows they write anyway)."""
    return await _write(OutboxKind.TRACK, EventKind(kind).value, {"event_id": event_id, **data})


def canonical_json(data: dict[str, Any]) -> str:
    """The trade log's leaf text: sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def trade(data: dict[str, Any], *, order_id: int | None = None) -> TradeEvent:
    """Record ``data`` (naming no person) as a trade-log leaf once the transaction commits.

    Only a row is written here, so a payment never waits on the tree; the appender
    (resolvers/trust/tradelog.py, run by the relay) adds committed rows to the log.
    Outside ``atomic()`` (a posting made on its own) the row rides the caller's transaction
    and the relay's next sweep appends it.
    """
    event = await TradeEvent.create(order_id=order_id, leaf=canonical_json(data))
    emitted = _emitted.get()
    if emitted is not None:
        emitted.append(-event.id)  # any entry wakes the relay after commit
    return event
