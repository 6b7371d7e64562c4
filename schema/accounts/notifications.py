"""Notifications in the graph: the type, marking read, and the live subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from kameng import runtime
from models.accounts.notifications import Notification as NotificationModel
from resolvers.accounts import notifications
from resolvers.accounts.auth import require
from schema.accounts.notification_payloads import NotificationPayload, payload_of
from schema.base import UserError, decode_id, errors_field, mutation
from schema.context import Info


@strawberry.type(
    description="Something that happened to the reader (their order, their post, their account). Only its "
                "recipient sees it."
)
class Notification(relay.Node):
    id: relay.NodeID[int]
    kind: str = strawberry.field(
        description="What happened, as an upper-case code (ORDER_PAID, NEW_SIGNIN, LIKES, REPLY, TIER_CHANGED...); "
                    "`payload` is typed by it. New kinds may be added."
    )
    title: str = strawberry.field(description="One line for people, in English, ready to show.")
    body: str = strawberry.field(description="More detail for people; may be empty.")
    data: JSON = strawberry.field(
        description="The untyped data behind `payload`.", deprecation_reason="Use payload."
    )
    read_at: datetime | None = strawberry.field(description="When it was marked read; null while unread.")
    created_at: datetime = strawberry.field(description="When it was created (a grouped one: first created).")
    _model: strawberry.Private[NotificationModel]

    @strawberry.field(description="What it is about, typed by `kind`: the objects it concerns, as the reader may "
                                  "see them now.")
    def payload(self) -> NotificationPayload:
        return payload_of(self._model)

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
            _model=note,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Notification | None]:
        found = await notifications.visible_many(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(note) if note is not None else None for note in found]


@strawberry.input(description="Which of the viewer's notifications to mark read.")
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Notification IDs (others' are ignored). Default: all of them."
    )


@strawberry.type(description="Result of `markNotificationsRead`.")
class MarkNotificationsReadPayload:
    errors: list[UserError] = errors_field()
    marked: int | None = strawberry.field(default=None, description="How many were unread and are now read.")
    unread_count: int | None = strawberry.field(default=None, description="How many remain unread.")


@strawberry.type(description="Mutations of notifications.")
class NotificationMutations:
    @mutation(description="Mark some or all of the viewer's notifications read (signed-in only).")
    async def mark_notifications_read(
        self, info: Info, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadPayload:
        actor = info.context.actor
        ids = None if input.ids is None else [decode_id(i, "Notification", "ids") for i in input.ids]
        marked = await notifications.mark_read(actor, ids)
        return MarkNotificationsReadPayload(marked=marked, unread_count=await notifications.unread_count(actor))


@strawberry.type(description="Live notifications.")
class NotificationSubscriptions:
    @strawberry.subscription(
        description=(
            "The viewer's new notifications. Pass the ID of the last one seen as `after` to "
            "first receive those created while disconnected."
        )
    )
    async def notification_received(
        self, info: Info,
        after: Annotated[strawberry.ID | None, strawberry.argument(
            description="Resume: the ID of the last Notification received; up to 100 created since come first."
        )] = None,
    ) -> AsyncGenerator[Notification, None]:
        # A UserFacingError raised here reaches the client as an error with its code.
        user = require(info.context.actor)
        last = decode_id(after, "Notification", "after") if after is not None else None
        async for note in notifications.stream(runtime.bus(), user.id, after=last):
            yield Notification.from_model(note)
