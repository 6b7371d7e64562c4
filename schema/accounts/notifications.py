"""Notifications in the graph: the type, marking read, and the live subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from kameng import runtime
from models.accounts.notifications import Notification as NotificationModel
from resolvers.accounts import notifications
from resolvers.accounts.auth import require
from schema.base import UserError, decode_id, mutation, errors_field
from schema.context import Info


@strawberry.type
class Notification(relay.Node):
    id: relay.NodeID[int]
    kind: str
    title: str
    body: str
    data: JSON
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, note: NotificationModel) -> Notification:
        return cls(
            id=note.id,
            kind=note.kind,
            title=note.title,
            body=note.body,
            data=note.data,
            read_at=note.read_at,
            created_at=note.created_at,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Notification | None]:
        found = await notifications.visible_many(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(note) if note is not None else None for note in found]


@strawberry.input
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Default: all of them.")


@strawberry.type
class MarkNotificationsReadPayload:
    errors: list[UserError] = errors_field()
    marked: int | None = None
    unread_count: int | None = None


@strawberry.type
class NotificationMutations:
    @mutation()
    async def mark_notifications_read(
        self, info: Info, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadPayload:
        actor = info.context.actor
        ids = None if input.ids is None else [decode_id(i, "Notification", "ids") for i in input.ids]
        marked = await notifications.mark_read(actor, ids)
        return MarkNotificationsReadPayload(marked=marked, unread_count=await notifications.unread_count(actor))


@strawberry.type
class NotificationSubscriptions:
    @strawberry.subscription(
        description=(
            "The viewer's new notifications. Pass the ID of the last one seen as `after` to "
            "first receive those created while disconnected."
        )
    )
    async def notification_received(
        self, info: Info, after: strawberry.ID | None = None
    ) -> AsyncGenerator[Notification, None]:
        # A UserFacingError raised here reaches the client as an error with its code.
        user = require(info.context.actor)
        last = decode_id(after, "Notification", "after") if after is not None else None
        async for note in notifications.stream(runtime.bus(), user.id, after=last):
            yield Notification.from_model(note)
