"""Merchant payouts: a request moves money from the shop's available balance to its pending
withdrawal account (ledger), staff approve and mark it paid (out of the books), or reject it
(back to the shop)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class WithdrawalStatus(StrEnum):
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    PAID = "PAID"
    REJECTED = "REJECTED"


class Withdrawal(Model):
    """One payout request. ``amount`` leaves the shop's balance, the payee receives
    ``amount - fee`` and the platform keeps ``fee``."""

    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Merchant", related_name="withdrawals", on_delete=fields.RESTRICT
    )
    amount = fields.DecimalField(max_digits=12, decimal_places=2)
    fee = fields.DecimalField(max_digits=12, decimal_places=2)
    currency = fields.CharField(max_length=3, default="CNY")
    status = fields.CharEnumField(WithdrawalStatus, max_length=16, default=WithdrawalStatus.REQUESTED)
    requested_by_id = fields.BigIntField()
    note = fields.CharField(max_length=300, default="")
    payout_reference = fields.CharField(max_length=120, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)
    paid_at = fields.DatetimeField(null=True)

    class Meta:
        table = "merchant_withdrawal"
        indexes = (("merchant_id", "id"), ("status", "id"))
