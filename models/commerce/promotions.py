"""Who pays for a coupon: a coupon listed here is funded by that merchant (its discount comes
out of the shop's proceeds); any other coupon is the platform's and is subsidised at
settlement."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class MerchantCoupon(Model):
    id = fields.BigIntField(primary_key=True)
    coupon_id = fields.BigIntField(unique=True)
    merchant: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Merchant", related_name="coupons", on_delete=fields.RESTRICT
    )
    created_by_id = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "merchant_coupon"
        indexes = (("merchant_id", "id"),)
