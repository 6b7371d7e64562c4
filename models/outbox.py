from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class OutboxKind(StrEnum):
    EVENT = "EVENT"  # published on the event bus, topic = bus topic
    JOB = "JOB"  # sent to dramatiq, topic = actor name
    TRACK = "TRACK"  # a server behaviour event, written by the relay (topic = event kind)


class OutboxEntry(Model):
    """A side effect written in the same transaction as the state change that causes it.

    The relay publishes pending entries in id order after commit and stamps
    ``published_at``; consumers are idempotent on ``id``, so a relay that dies between
    sending and stamping (at-least-once) does no harm.
    """

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(OutboxKind, max_length=8)
    topic = fields.CharField(max_length=200)
    payload = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    published_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "outbox"
