"""Gifts (礼物赠送): an order bought for someone else, delivered to them when they claim it."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class GiftStatus(StrEnum):
    PENDING = "PENDING"  # paid, waiting for its recipient (the order is PAID and held)
    CLAIMED = "CLAIMED"  # the recipient took it: the order became theirs and was delivered
    RETURNED = "RETURNED"  # unclaimed in time: the order was refunded to the sender


class Gift(Model):
    """``recipient_id`` is set for a gift to a user and, for a gift by claim code, when someone
    claims it. The code itself is never stored: only its SHA-256 (the sender's copy is
    recomputed from the server's key, resolvers/commerce/gifts.py)."""

    id = fields.BigIntField(primary_key=True)
    order_id = fields.BigIntField(unique=True)
    product_id = fields.BigIntField()  # the order's, for the gift card without reading the order
    quantity = fields.IntField(default=1)
    sender_id = fields.BigIntField(db_index=True)
    recipient_id = fields.BigIntField(null=True, db_index=True)
    code_digest = fields.CharField(max_length=64, unique=True)
    message = fields.CharField(max_length=200, default="")
    status = fields.CharEnumField(GiftStatus, max_length=16, default=GiftStatus.PENDING)
    expires_at = fields.DatetimeField(db_index=True)
    claimed_at = fields.DatetimeField(null=True)
    returned_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gift"
