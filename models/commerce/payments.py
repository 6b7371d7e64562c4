from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.statements import Insert


class PaymentMethod(StrEnum):
    WALLET = "WALLET"
    EXTERNAL = "EXTERNAL"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    REFUNDED_LATE = "REFUNDED_LATE"  # arrived after the grace window: credited to the wallet


class Payment(Model):
    id = fields.BigIntField(primary_key=True)
    order: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Order", related_name="payments", on_delete=fields.RESTRICT
    )
    method = fields.CharEnumField(PaymentMethod, max_length=16)
    provider = fields.CharField(max_length=32, default="")
    amount = fields.DecimalField(max_digits=12, decimal_places=2)
    currency = fields.CharField(max_length=3, default="CNY")
    status = fields.CharEnumField(PaymentStatus, max_length=16, default=PaymentStatus.PENDING)
    provider_txn_id = fields.CharField(max_length=80, null=True)
    # Whose wallet paid (WALLET): the buyer's, a friend's (friend-pay) or a gift's sender's, who
    # stays the payer after the gift changes hands. Refunds go back to it (settlement.py).
    payer_id = fields.BigIntField(null=True)
    pay_url = fields.CharField(max_length=500, default="")
    # The first callback's answer, returned again to every replay.
    callback_response = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    paid_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payment"
        unique_together = (("provider", "provider_txn_id"),)
        indexes = (("order_id",),)


#: A wallet payment's row, written at its transaction's commit (subscriptions/outbox.py
#: ``insert_at_commit``): it is made on every wallet payment (issue 15).
PAYMENTS = Insert(Payment)
