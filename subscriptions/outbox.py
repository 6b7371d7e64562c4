"""The transactional outbox: side effects are rows written with the state change.

Use cases write state and outbox rows inside ``atomic()``; when it commits, the rows it
wrote are handed to this process's relay (workers/relay.py), which publishes them at once. A
rolled-back transaction leaves no row, so nothing is sent for it; a crash after commit leaves
the row pending, and the relay's periodic sweep (in any process) sends it. Nothing here talks
to Redis or the broker.

The rows of one ``atomic()`` (outbox entries and trade-log events, the rows a use case hands
to ``insert_at_commit``: a payment, a posting's entries; and the counters ``add_at_commit``
moves) are collected in memory and written just before it commits, in one statement (a
multi-row INSERT per table, all in one WITH on PostgreSQL) instead of one INSERT per row (a
paid order wrote eight of them one by one; issue 15). A savepoint inside it must therefore be
a nested ``atomic()``, which forgets what was written inside it when it rolls back: a bare
nested ``in_transaction()`` would let it be written anyway. tests/conftest.py fails any test
that opens one inside ``atomic()``.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from tortoise import connections
from tortoise.models import Model
from tortoise.transactions import in_transaction

from models.discovery.events import EventKind
from models.outbox import OutboxEntry, OutboxKind
from models.statements import Increment, Insert, insert_together
from models.trust.tradelog import TradeEvent
from subscriptions import cache_tags
from subscriptions.jobs import JobCall

M = TypeVar("M", bound=Model)

_on_commit: list[Callable[[], None]] = []
_on_commit_rows: list[Callable[[list[OutboxEntry], bool], None]] = []


_ENTRIES, _TRADES = Insert(OutboxEntry), Insert(TradeEvent)


class Writes:
    """What the current ``atomic()`` has written so far, not yet in the database: rows per
    statement that will insert them, in the order the tables were first written."""

    __slots__ = ("rows", "adds", "savepoints")

    def __init__(self) -> None:
        self.rows: dict[Insert[Any], list[Any]] = {}
        self.adds: list[tuple[Increment[Any], Any, int]] = []
        self.savepoints = 0  # nested atomic() savepoints open now (the test guard counts on it)

    def of(self, statement: Insert[Any]) -> list[Any]:
        return self.rows.setdefault(statement, [])

    @property
    def entries(self) -> list[OutboxEntry]:
        return self.rows.get(_ENTRIES, [])

    @property
    def trades(self) -> list[TradeEvent]:
        return self.rows.get(_TRADES, [])

    def marks(self) -> tuple[dict[Insert[Any], int], int]:
        return {statement: len(rows) for statement, rows in self.rows.items()}, len(self.adds)

    def forget_since(self, marks: tuple[dict[Insert[Any], int], int]) -> None:
        """Drop what was written after ``marks`` (a savepoint's, rolled back)."""
        counts, adds = marks
        for statement, rows in self.rows.items():
            del rows[counts.get(statement, 0):]
        del self.adds[adds:]


_writes: contextvars.ContextVar[Writes | None] = contextvars.ContextVar("outbox_writes", default=None)


def current() -> Writes | None:
    """The open ``atomic()``'s writes, None outside one."""
    return _writes.get()


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
    it is a savepoint (an error inside rolls back only what it did, the rows it wrote
    included), unless ``join``: then it is simply the outer transaction, for callers that
    recover from no error inside and so need not pay a savepoint's two round trips
    (SAVEPOINT, RELEASE) on a hot path.
    """
    writes = _writes.get()
    if writes is not None:
        if join:
            yield connections.get("default")
            return
        marks = writes.marks()
        writes.savepoints += 1
        try:
            async with in_transaction() as connection:
                yield connection
        except BaseException:
            writes.forget_since(marks)  # rolled back with the savepoint
            raise
        finally:
            writes.savepoints -= 1
        return
    writes = Writes()
    token = _writes.set(writes)
    cache_token, committed = cache_tags.begin(), False  # the response cache's tags (issue 15)
    try:
        async with in_transaction() as connection:
            yield connection
            # Last in the transaction: its rows, every table's in one statement.
            await insert_together(*writes.rows.items(), adding=writes.adds)
        committed = True
    finally:
        _writes.reset(token)
        cache_tags.end(cache_token, committed)
    if writes.entries or writes.trades:
        for callback in _on_commit:
            callback()
        for rows_callback in _on_commit_rows:
            rows_callback(writes.entries, bool(writes.trades))


async def _write(kind: OutboxKind, topic: str, payload: dict[str, Any]) -> OutboxEntry:
    writes = _writes.get()
    if writes is None:
        raise RuntimeError("outbox rows are written inside atomic(), with the state they describe")
    entry = OutboxEntry(kind=kind, topic=topic, payload=payload)
    writes.of(_ENTRIES).append(entry)
    return entry


def insert_at_commit(statement: Insert[M], *rows: M) -> None:
    """Write ``rows`` (unsaved instances) with the transaction's outbox rows, just before the
    outermost ``atomic()`` commits, in the same statement; their ids are set then. For rows
    nothing reads, names or counts on before the commit (a wallet payment's row, a posting's
    entries): one round trip fewer each on the paid path. A nested block that rolls back
    forgets the rows written inside it, as it forgets outbox entries."""
    writes = _writes.get()
    if writes is None:
        raise RuntimeError("rows written at commit need an open outbox.atomic()")
    writes.of(statement).extend(rows)


def add_at_commit(increment: Increment[Any], key: Any, amount: int) -> None:
    """Move a counter (``increment``'s column of row ``key``) by ``amount`` in the statement that
    writes the rows at commit: a product's units sold, on every delivery. Its row lock is then
    taken last and held only until the COMMIT, so deliveries of one product queue on it for a
    round trip, not for the rest of their transactions. Nothing may read the counter before."""
    writes = _writes.get()
    if writes is None:
        raise RuntimeError("counters moved at commit need an open outbox.atomic()")
    writes.adds.append((increment, key, amount))


async def emit(topic: str, data: dict[str, Any]) -> OutboxEntry:
    """Publish ``data`` on the event bus topic ``topic`` once the transaction commits. The
    entry returned has its id once the outermost ``atomic()`` has written it."""
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

    Only a row is written here (with the transaction's others, before it commits), so a
    payment never waits on the tree; the appender (resolvers/trust/tradelog.py, run by the
    relay) adds committed rows to the log. Outside ``atomic()`` (a posting made on its own)
    the row is written at once in the caller's transaction and the relay's next sweep
    appends it.
    """
    event = TradeEvent(order_id=order_id, leaf=canonical_json(data))
    writes = _writes.get()
    if writes is None:
        await event.save()
    else:
        writes.of(_TRADES).append(event)  # any entry wakes the relay after commit
    return event
