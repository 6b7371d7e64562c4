"""Delivery promises that pay out: one compensation per late order, at most."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.commerce.catalog import LateCompensation


class LateDeliveryCompensation(Model):
    """What a late order's buyer was given. Unique per order: the row is written in the
    transaction that pays, so a re-run job or sweep finds it and pays nothing more."""

    id = fields.BigIntField(primary_key=True)
    order: fields.OneToOneRelation = fields.OneToOneField(
        "kameng.Order", related_name="late_compensation", on_delete=fields.RESTRICT
    )
    merchant_id = fields.BigIntField()
    buyer_id = fields.BigIntField()
    kind = fields.CharEnumField(LateCompensation, max_length=16)
    points = fields.IntField(default=0)
    amount = fields.DecimalField(max_digits=12, decimal_places=2, default=0)
    user_coupon_id = fields.BigIntField(null=True)
    paid_from = fields.CharField(max_length=64, default="")  # the ledger account charged, if any
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "late_delivery_compensation"
