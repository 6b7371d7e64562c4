"""Notifications: written with the change that causes them, streamed to the user live."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from models.accounts.notifications import Notification
from models.accounts.users import AuthSession
from models.statements import InsertNew
from resolvers.accounts.auth import Actor, require
from resolvers.pagination import Page, paginate
from subscriptions import outbox
from subscriptions import topics
from subscriptions.bus import EventBus

NEW_NOTIFICATION = InsertNew(Notification)
#: At most this many missed notifications are replayed to a resuming subscriber.
RESUME_MAX = 100


topic_for = topics.notifications


async def notify(
    user_id: int,
    kind: str,
    title: str,
    body: str = "",
    data: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
) -> Notification | None:
    """Create a notification and its live event in the caller's transaction.

    ``dedupe_key`` makes it idempotent: a job that runs twice notifies once (returns None
    the second time).
    """
    async with outbox.atomic(join=True):
        # No look before the insert and no savepoint around it (it runs in every payment and
        # delivery): the keys callers pass are mostly new (an order event's id), and the
        # insert that finds its key taken returns no row.
        made = await NEW_NOTIFICATION.run(
            [Notification(user_id=user_id, kind=kind, title=title, body=body, data=data or {}, dedupe_key=dedupe_key)])
        if not made:
            return None
        await outbox.emit(topic_for(user_id), {"notification": made[0].id})
        return made[0]


async def notify_grouped(
    user_id: int, kind: str, group: str, title: str, body: str = "", data: dict[str, Any] | None = None
) -> Notification:
    """One notification per ``group`` while it is unread (e.g. all likes of one post): a new
    occurrence rewrites its text and data instead of adding another. Once read, the next
    occurrence starts a new one."""
    async with outbox.atomic():
        current = await Notification.filter(dedupe_key=group, read_at=None).select_for_update().first()
        if current is not None:
            await Notification.filter(id=current.id).update(title=title, body=body, data=data or {})
            return await Notification.get(id=current.id)
        # A read one keeps its text but gives the group key to its successor.
        await Notification.filter(dedupe_key=group).update(dedupe_key=None)
        note = await notify(user_id, kind, title, body, data, dedupe_key=group)
        if note is None:  # a concurrent occurrence created it first
            return await Notification.get(dedupe_key=group)
        return note


async def list_for(actor: Actor, *, unread_only: bool = False, **page: Any) -> Page[Notification]:
    user = require(actor)
    queryset = Notification.filter(user_id=user.id)
    if unread_only:
        queryset = queryset.filter(read_at=None)
    return await paginate(queryset, **page)


async def unread_count(actor: Actor) -> int:
    user = require(actor)
    return await Notification.filter(user_id=user.id, read_at=None).count()


async def mark_read(actor: Actor, ids: Sequence[int] | None) -> int:
    """Mark the caller's notifications read (``ids`` None: all of them). Others' are ignored."""
    user = require(actor)
    queryset = Notification.filter(user_id=user.id, read_at=None)
    if ids is not None:
        queryset = queryset.filter(id__in=list(ids))
    return await queryset.update(read_at=datetime.now(UTC))


async def visible_many(actor: Actor, ids: list[int]) -> list[Notification | None]:
    """Batch load of ``Notification`` nodes, in the order asked: the owner's only."""
    if actor.user is None:
        return [None] * len(ids)
    found = {n.id: n for n in await Notification.filter(id__in=ids, user_id=actor.user.id)}
    return [found.get(i) for i in ids]


async def own_session(actor: Actor, session_id: str) -> AuthSession | None:
    """The viewer's session a NEW_SIGNIN notification names; None if it is not theirs (or
    not a session id at all)."""
    if actor.user is None:
        return None
    try:
        key = uuid.UUID(session_id)
    except (ValueError, TypeError, AttributeError):
        return None
    return await AuthSession.filter(id=key, user_id=actor.user.id).first()


async def stream(bus: EventBus, user_id: int, *, after: int | None = None) -> AsyncIterator[Notification]:
    """The user's notifications as they are created; first those after ``after``, if given.

    Listening starts before the backlog is read, and ids already sent are skipped, so nothing
    falls between the two.
    """
    async with bus.subscribe(topic_for(user_id)) as events:
        # Ids already sent, to drop duplicates (backlog vs live, at-least-once relay). Not an
        # id comparison: ids are given before commit, so they may commit out of order.
        sent: dict[int, None] = {}
        if after is not None:
            for note in await Notification.filter(user_id=user_id, id__gt=after).order_by("id").limit(RESUME_MAX):
                sent[note.id] = None
                yield note
        async for event in events:
            note_id = int(event.data["notification"])
            if note_id in sent or (after is not None and note_id <= after):
                continue
            note = await Notification.filter(id=note_id, user_id=user_id).first()
            if note is not None:
                sent[note.id] = None
                if len(sent) > RESUME_MAX * 10:
                    del sent[next(iter(sent))]
                yield note
