"""Behaviour events in the graph: the ``track`` batch mutation and ``setPersonalisation``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import strawberry

from models.discovery.events import EventKind
from resolvers.discovery import ingest, tracking
from schema.base import UserError, decode_id, describe_values, errors_field, mutation
from schema.context import Info

BehaviourEventKind = describe_values(
    strawberry.enum(EventKind, name="BehaviourEventKind", description="What a behaviour event records."),
    PRODUCT_VIEW="A product page was seen (client).",
    POST_VIEW="A post was read (client).",
    SEARCH="A search was run (client; `query` says what).",
    RECOMMENDATION_IMPRESSION="A recommendation was shown (client; carries its `token`).",
    RECOMMENDATION_CLICK="A recommendation was opened (client; carries its `token`).",
    PAGE_VISIT="A page was visited (client; `path` says which).",
    ORDER_PAID="An order was paid (server only).",
    ORDER_DELIVERED="An order was delivered (server only).",
    ORDER_REFUNDED="An order was refunded (server only).",
    POST_CREATED="A post was published (server only).",
    POST_LIKED="A post was liked (server only).",
    COMMENTED="A comment was written (server only).",
    FOLLOWED="A user, shop, product or topic was followed (server only).",
    CIRCLE_JOINED="A buyer joined a product's circle (server only).",
    CHECKED_IN="A daily check-in (server only).",
)


@strawberry.input(description="One thing the client saw or did.")
class TrackEventInput:
    event_id: str = strawberry.field(
        description="The client's unique id for this event (8-64 of A-Z a-z 0-9 _ . : -; a UUID fits): resending "
                    "an event with the same id records it once."
    )
    kind: BehaviourEventKind = strawberry.field(description="What happened; only the client kinds are accepted.")
    client_time: datetime = strawberry.field(description="When it happened on the client (at most 7 days ago).")
    product_id: strawberry.ID | None = strawberry.field(default=None, description="The product's global ID.")
    post_id: strawberry.ID | None = strawberry.field(default=None, description="The post's global ID.")
    topic_id: strawberry.ID | None = strawberry.field(default=None, description="The topic's global ID.")
    query: str | None = strawberry.field(default=None, description="A search's text (at most 200 characters).")
    surface: str | None = strawberry.field(default=None, description="Where it was shown, such as HOME or PRODUCT.")
    token: str | None = strawberry.field(default=None, description="A recommendation's attribution token.")
    path: str | None = strawberry.field(default=None, description="A page visit's path (at most 200 characters).")


def _event_from_input(cls: type[TrackEventInput], value: Mapping[str, Any], context: object) -> TrackEventInput:
    """Builds one event of a batch from graphql-core's coerced value. Strawberry's generic
    conversion resolves each field's type and GraphQL name anew for every event (~200 µs
    an event, 75 % of a 500-event ``track``); the fields here are flat and already coerced
    (the enum to its member, ``DateTime`` to a datetime), so they are only renamed."""
    get = value.get
    return cls(event_id=value["eventId"], kind=value["kind"], client_time=value["clientTime"],
               product_id=get("productId"), post_id=get("postId"), topic_id=get("topicId"), query=get("query"),
               surface=get("surface"), token=get("token"), path=get("path"))


TrackEventInput.__strawberry_definition__.from_input = _event_from_input  # type: ignore[attr-defined]


@strawberry.input(description="A batch of behaviour events.")
class TrackInput:
    device_id: str | None = strawberry.field(
        default=None, description="The client's anonymous device id (8-64 characters); signed in, it merges the "
                                  "device's earlier anonymous events into the user."
    )
    events: list[TrackEventInput] = strawberry.field(
        description="The events, at most 500 by default. All or nothing: one bad event refuses the batch "
                    "(its field is `events.<index>.<name>`)."
    )


@strawberry.type(description="Result of `track`.")
class TrackPayload:
    errors: list[UserError] = errors_field()
    accepted: int | None = strawberry.field(
        default=None, description="Events accepted (buffered, written within a second); repeats are stored once."
    )


@strawberry.input(description="The viewer's personalisation choice.")
class SetPersonalisationInput:
    enabled: bool = strawberry.field(
        description="False: events stop being linked to the viewer (kept only for anonymous aggregates), "
                    "earlier ones included."
    )


@strawberry.type(description="Result of `setPersonalisation`.")
class SetPersonalisationPayload:
    errors: list[UserError] = errors_field()
    enabled: bool | None = strawberry.field(default=None, description="The choice now in force.")


def _id(raw: strawberry.ID | None, kind: str, index: int, name: str) -> int | None:
    return decode_id(raw, kind, f"events.{index}.{name}") if raw is not None else None


@strawberry.type(description="Behaviour events.")
class TrackingMutations:
    @mutation(description="Anyone (guests too) sends a batch of behaviour events; rate-limited per device and "
                          "per address, idempotent per event id.")
    async def track(self, info: Info, input: TrackInput) -> TrackPayload:
        events = [
            ingest.ClientEvent(
                event_id=e.event_id, kind=e.kind.value, client_time=e.client_time,
                product_id=_id(e.product_id, "Product", i, "productId"), post_id=_id(e.post_id, "Post", i, "postId"),
                topic_id=_id(e.topic_id, "Topic", i, "topicId"), query=e.query, surface=e.surface, token=e.token,
                path=e.path,
            )
            for i, e in enumerate(input.events)
        ]
        accepted = await ingest.track(info.context.actor, input.device_id, events)
        return TrackPayload(accepted=accepted)

    @mutation(description="The signed-in viewer turns personalisation on or off.")
    async def set_personalisation(self, info: Info, input: SetPersonalisationInput) -> SetPersonalisationPayload:
        user = await tracking.set_personalisation(info.context.actor, input.enabled)
        return SetPersonalisationPayload(enabled=user.personalisation)
