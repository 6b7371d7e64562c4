from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class CouponKind(StrEnum):
    FIXED = "FIXED"  # value off
    PERCENT = "PERCENT"  # value percent off (e.g. 10 = 10% off)
    THRESHOLD = "THRESHOLD"  # 满减: value off once the order reaches min_spend


class CouponScope(StrEnum):
    PLATFORM = "PLATFORM"
    MERCHANT = "MERCHANT"
    CATEGORY = "CATEGORY"
    PRODUCT = "PRODUCT"


class UserCouponStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    LOCKED = "LOCKED"  # applied to an unpaid order
    USED = "USED"


class Coupon(Model):
    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=40, unique=True)
    title = fields.CharField(max_length=80)
    kind = fields.CharEnumField(CouponKind, max_length=16)
    value = fields.DecimalField(max_digits=12, decimal_places=2)
    min_spend = fields.DecimalField(max_digits=12, decimal_places=2, default=0)
    scope = fields.CharEnumField(CouponScope, max_length=16, default=CouponScope.PLATFORM)
    scope_id = fields.BigIntField(null=True)
    valid_from = fields.DatetimeField()
    valid_until = fields.DatetimeField()
    total_quantity = fields.IntField(null=True)  # null: unlimited
    issued_count = fields.IntField(default=0)
    per_user_limit = fields.IntField(default=1)
    new_users_only = fields.BooleanField(default=False)  # the first-order coupon
    points_price = fields.IntField(null=True)  # in the rewards catalog for this many points
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "coupon"


class UserCoupon(Model):
    """One coupon held by one user. It is locked by an unpaid order and returns when that
    order is cancelled, expires or is refunded."""

    id = fields.BigIntField(primary_key=True)
    coupon: fields.ForeignKeyRelation[Coupon] = fields.ForeignKeyField(
        "kameng.Coupon", related_name="holders", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="coupons", on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(UserCouponStatus, max_length=16, default=UserCouponStatus.AVAILABLE)
    order_id = fields.BigIntField(null=True)
    source = fields.CharField(max_length=40, default="claim")  # claim, issue, reward, task, new_user
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user_coupon"
        indexes = (("user_id", "status"), ("coupon_id", "user_id"), ("order_id",))
