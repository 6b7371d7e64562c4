"""Friend-pay (好友代付): a buyer asks a friend to pay an order through a share code."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class FriendPayStatus(StrEnum):
    OPEN = "OPEN"  # waiting for a friend, until ``expires_at``
    PAID = "PAID"  # a friend paid the order from their wallet
    WITHDRAWN = "WITHDRAWN"  # the buyer took the request back (or paid the order themselves)


class FriendPayRequest(Model):
    """One per order: asking again returns it (or reopens it with a new code once withdrawn).
    The code is random (128 bits): whoever holds it may pay, so it is the secret."""

    id = fields.BigIntField(primary_key=True)
    order_id = fields.BigIntField(unique=True)
    requester_id = fields.BigIntField(db_index=True)
    code = fields.CharField(max_length=32, unique=True)
    status = fields.CharEnumField(FriendPayStatus, max_length=16, default=FriendPayStatus.OPEN)
    payer_id = fields.BigIntField(null=True, db_index=True)
    expires_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "friend_pay_request"
