"""Writing behaviour events: the one way in, for client batches and domain events alike.

Two doors onto the same table:

- ``record(events)`` writes at once through the ORM, inside the caller's transaction if there
  is one (the outbox relay writes server events this way, with the stamp of the outbox rows
  they come from, so each is written exactly once);
- ``track(...)`` (the ``track`` mutation) validates a client batch and only *buffers* it
  (resolvers/discovery/ingest.py); the buffer reaches ``write_rows`` (in the API process, or
  with Redis in a job-consuming process through resolvers/discovery/event_queue.py): one
  PostgreSQL ``COPY`` into a temporary table and one ``INSERT ... ON CONFLICT (event_id) DO
  NOTHING``, or a multi-row insert on SQLite.

Both are idempotent by ``event_id``. Both apply the user's personalisation choice: the
events of a user who turned personalisation off are stored with ``personalised=False`` and
neither ``user_id`` nor ``device_id``, so they count in anonymous aggregates and nothing can
tie them back to the person (models read only rows that name a user).
"""

from __future__ import annotations

import contextlib
import re

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from kameng.settings import get_settings
from models.accounts.users import User
from models.lifecycle.churn import ChurnScore
from models.lifecycle.segments import BuyerRfm
from models.discovery.events import BehaviourEvent, EventKind
from resolvers.accounts import profiling, users
from resolvers.accounts.auth import Actor, require
from resolvers.discovery import storage
from resolvers.errors import invalid
from subscriptions import outbox


@dataclass(slots=True)  # slots, not frozen: built per event on the ingestion path, where frozen init doubles the cost
class TrackedEvent:
    event_id: str
    kind: EventKind
    user_id: int | None = None
    device_id: str | None = None
    product_id: int | None = None
    post_id: int | None = None
    topic_id: int | None = None
    merchant_id: int | None = None
    order_id: int | None = None
    query: str | None = None
    surface: str | None = None
    token: str | None = None
    amount: Decimal | None = None
    personalised: bool = True
    client_time: datetime | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))


#: Columns written by COPY, in order (``id`` comes from the table's sequence).
COLUMNS = (
    "event_id", "kind", "user_id", "device_id", "product_id", "post_id", "topic_id", "merchant_id", "order_id",
    "query", "surface", "token", "amount", "personalised", "client_time", "occurred_at",
)


async def record(events: Sequence[TrackedEvent], *, join: bool = False, wait: bool = True) -> bool:
    """Write ``events`` now; an ``event_id`` already written is skipped (idempotent retries).

    The users' choice is read in the write's transaction under ``profiling.writing()``, as the
    flush of buffered events reads it: an opt-out or a deletion under way or committing
    meanwhile either is seen (the events are stored anonymous) or waits for this write and then
    unlinks it with the rest. (Not a row lock on the users: the relay writes here, and a
    deletion updates other users' rows, their follower counts, while it holds its own.)
    ``join``: the caller's transaction is open and has a savepoint of its own (the relay's), so
    this one need not pay another's two round trips. ``wait=False``: rather than wait for an
    erasure, write nothing and return False (the relay hands such events to the buffered writer)."""
    events = _distinct(events)
    if not events:
        return True
    # In event-id order, as write_rows: two writers inserting overlapping ids take their
    # unique-index locks in the same order, so they wait for each other instead of deadlocking.
    events.sort(key=lambda event: event.event_id)
    user_ids = {event.user_id for event in events if event.user_id is not None}
    if not user_ids:  # nobody's choice to respect: no transaction, no lock
        await BehaviourEvent.bulk_create([BehaviourEvent(**_fields(event)) for event in events], ignore_conflicts=True)
        return True
    async with contextlib.nullcontext() if join else in_transaction():
        if wait:
            await profiling.writing()
        elif not await profiling.try_writing():
            return False
        profiled = await profiling.profiled(user_ids)
        await BehaviourEvent.bulk_create([
            BehaviourEvent(**_fields(event if event.user_id is None or event.user_id in profiled else anonymous(event)))
            for event in events
        ], ignore_conflicts=True)
    return True


def as_row(event: TrackedEvent) -> tuple[Any, ...]:
    """The event's values in ``COLUMNS`` order, as COPY takes them."""
    return (event.event_id, event.kind.value, event.user_id, event.device_id, event.product_id, event.post_id,
            event.topic_id, event.merchant_id, event.order_id, event.query, event.surface, event.token, event.amount,
            event.personalised, event.client_time, event.occurred_at)


async def write_batch(events: Sequence[TrackedEvent]) -> None:
    """The flusher's fast path: the same rows as ``record``, written with COPY on PostgreSQL."""
    await write_rows([as_row(event) for event in events])


async def write_rows(rows: Sequence[Sequence[Any]]) -> None:
    """``write_batch`` for rows already in ``COLUMNS`` order (the event queue's form): no event
    objects are built on the writer's hot path.

    Buffered events reach the table up to a flush later: the opt-out is read inside the write's
    transaction, after ``profiling``'s lock, so that a deletion or opt-out committing meanwhile
    either is seen or waits and then unlinks these rows too."""
    rows = _distinct_rows(rows)
    if not rows:
        return
    if get_settings().is_sqlite:
        async with in_transaction():  # one at a time on SQLite: the check and the insert together
            user_ids = {row[2] for row in rows if row[2] is not None}
            rows = _anonymised(rows, user_ids - await profiling.profiled(user_ids))
            await BehaviourEvent.bulk_create(
                [BehaviourEvent(**dict(zip(COLUMNS, row, strict=True))) for row in rows], ignore_conflicts=True,
                batch_size=500,
            )
        return
    columns = ", ".join(COLUMNS)
    client = connections.get("default")
    async with client.acquire_connection() as connection, connection.transaction():
        await connection.execute(profiling.WRITING, profiling.PROFILES_LOCK)
        user_ids = list({row[2] for row in rows if row[2] is not None})
        off = {r[0] for r in await connection.fetch(_OPTED_OUT, user_ids)} if user_ids else set()
        rows = _anonymised(rows, off)
        await connection.execute(
            "CREATE TEMP TABLE IF NOT EXISTS behaviour_event_in ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM behaviour_event WITH NO DATA"
        )
        await connection.copy_records_to_table("behaviour_event_in", records=rows, columns=list(COLUMNS))
        await connection.execute(
            f"INSERT INTO behaviour_event ({columns}) SELECT {columns} FROM behaviour_event_in "
            "ORDER BY event_id ON CONFLICT (event_id) DO NOTHING"  # a lock order (see record)
        )


def _fields(event: TrackedEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in COLUMNS}


def _distinct_rows(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            out.append(row)
    return out


#: On the flusher's own connection (deleted accounts have personalisation off too).
_OPTED_OUT = f'SELECT id FROM "{User._meta.db_table}" WHERE id = ANY($1::bigint[]) AND NOT personalisation'


def _anonymised(rows: list[Sequence[Any]], off: set[int]) -> list[Sequence[Any]]:
    """As ``anonymous``: no user, no device, not personalised."""
    if not off:
        return rows
    return [(*row[:2], None, None, *row[4:13], False, *row[14:]) if row[2] in off else row for row in rows]


def _distinct(events: Sequence[TrackedEvent]) -> list[TrackedEvent]:
    seen: set[str] = set()
    out = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            out.append(event)
    return out


def anonymous(event: TrackedEvent) -> TrackedEvent:
    """The event as an opted-out user's is stored: counted, tied to nobody."""
    return replace(event, user_id=None, device_id=None, personalised=False)


async def merge_device(user_id: int, device_id: str) -> int:
    """The device's anonymous events become the user's (sign-in merges its history), unless the
    account has gone or opted out since (the merge is buffered with the events)."""
    async with outbox.atomic():
        if not await users.hold(user_id, profiled=True):
            return 0
        return await BehaviourEvent.filter(device_id=device_id, user_id=None, personalised=True).update(
            user_id=user_id)


async def set_personalisation(actor: Actor, enabled: bool) -> User:
    """Turn personalisation on or off. Off also unlinks the events already stored: they are
    kept for anonymous aggregates, with no user or device; and the profiles built from the
    user's data (RFM and segment, churn score, the HOME list) go at once (the analytics,
    the churn fit and the training leave such users out from then on)."""
    user = require(actor)
    # One transaction: the user's row stays locked until the profiles are gone, which is what a
    # profile job waits on (resolvers.accounts.users.hold); a batch, on profiling.erasing().
    async with outbox.atomic():
        await User.filter(id=user.id).update(personalisation=enabled)
        if not enabled:
            await profiling.erasing()
            await BehaviourEvent.filter(user_id=user.id).update(user_id=None, device_id=None, personalised=False)
            await BuyerRfm.filter(user_id=user.id).delete()
            await ChurnScore.filter(user_id=user.id).delete()
            await storage.forget_user(user.id)
    user.personalisation = enabled
    return user


DEVICE_ID = re.compile(r"[A-Za-z0-9_.:-]{8,64}")


def checked_device_id(device_id: str | None, field: str = "deviceId") -> str | None:
    """A client's anonymous device id as every API takes it, or INVALID_INPUT."""
    if device_id is not None and not DEVICE_ID.fullmatch(device_id):
        raise invalid(field, "A device id is 8 to 64 letters, digits, '_', '.', ':' or '-'.")
    return device_id
