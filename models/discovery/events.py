"""Behaviour events: one table for what users do, from clients (``track``) and from the domain
itself (orders, posts, follows... through the outbox).

Raw rows are kept for a retention period; daily aggregates outlive them. ``event_id`` is the
idempotency key: a client's retry or a re-run job writes nothing twice.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class EventKind(StrEnum):
    # Sent by clients through `track`.
    PRODUCT_VIEW = "PRODUCT_VIEW"
    POST_VIEW = "POST_VIEW"
    SEARCH = "SEARCH"
    RECOMMENDATION_IMPRESSION = "RECOMMENDATION_IMPRESSION"
    RECOMMENDATION_CLICK = "RECOMMENDATION_CLICK"
    PAGE_VISIT = "PAGE_VISIT"
    # Written by the domain (server events); a client cannot send these.
    ORDER_PAID = "ORDER_PAID"
    ORDER_DELIVERED = "ORDER_DELIVERED"
    ORDER_REFUNDED = "ORDER_REFUNDED"
    POST_CREATED = "POST_CREATED"
    POST_LIKED = "POST_LIKED"
    COMMENTED = "COMMENTED"
    FOLLOWED = "FOLLOWED"
    CIRCLE_JOINED = "CIRCLE_JOINED"
    CHECKED_IN = "CHECKED_IN"


CLIENT_KINDS = frozenset(
    {
        EventKind.PRODUCT_VIEW,
        EventKind.POST_VIEW,
        EventKind.SEARCH,
        EventKind.RECOMMENDATION_IMPRESSION,
        EventKind.RECOMMENDATION_CLICK,
        EventKind.PAGE_VISIT,
    }
)


class BehaviourEvent(Model):
    """One thing a user (or an anonymous device) did. ``personalised`` is False when the user
    had turned personalisation off: such rows feed anonymous aggregates only."""

    id = fields.BigIntField(primary_key=True)
    event_id = fields.CharField(max_length=64, unique=True)
    kind = fields.CharEnumField(EventKind, max_length=32)
    user_id = fields.BigIntField(null=True, db_index=True)
    device_id = fields.CharField(max_length=64, null=True, db_index=True)
    product_id = fields.BigIntField(null=True, db_index=True)
    post_id = fields.BigIntField(null=True)
    topic_id = fields.BigIntField(null=True)
    merchant_id = fields.BigIntField(null=True)
    order_id = fields.BigIntField(null=True)
    query = fields.CharField(max_length=200, null=True)
    surface = fields.CharField(max_length=32, null=True)
    token = fields.CharField(max_length=200, null=True)  # a recommendation's attribution token
    amount = fields.DecimalField(max_digits=12, decimal_places=2, null=True)
    personalised = fields.BooleanField(default=True)
    client_time = fields.DatetimeField(null=True)
    occurred_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "behaviour_event"


class DailyEventAggregate(Model):
    """What raw events leave behind once the retention sweep deletes them: per UTC day, kind,
    product and post (0 when the event named none), how many events and how many distinct
    users and devices. Opted-out events count in ``events`` but name no user or device."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    kind = fields.CharEnumField(EventKind, max_length=32)
    product_id = fields.BigIntField(default=0)
    post_id = fields.BigIntField(default=0)
    events = fields.IntField(default=0)
    users = fields.IntField(default=0)
    devices = fields.IntField(default=0)
    amount = fields.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        table = "behaviour_event_daily"
        unique_together = (("day", "kind", "product_id", "post_id"),)
