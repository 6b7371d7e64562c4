"""Products: what a shop sells, how it is delivered, and its stock limit and counters."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.commerce.merchants import Category, Merchant
from models.statements import Increment, Select


class DeliveryKind(StrEnum):
    CARD_KEY = "CARD_KEY"  # delivered automatically from imported keys
    DIRECT_TOPUP = "DIRECT_TOPUP"  # a worker calls the merchant's upstream supplier
    MANUAL = "MANUAL"  # the merchant fulfils by hand, before a deadline


class LateCompensation(StrEnum):
    """What a product gives a buyer whose order was delivered later than it promised."""

    NONE = "NONE"
    POINTS = "POINTS"  # loyalty points, their value charged to the shop
    COUPON = "COUPON"  # one of the shop's own coupons
    AMOUNT = "AMOUNT"  # money into the buyer's wallet, from the shop's balance (or deposit)


class ProductStatus(StrEnum):
    ACTIVE = "ACTIVE"
    HIDDEN = "HIDDEN"


class Product(Model):
    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "kameng.Merchant", related_name="products", on_delete=fields.RESTRICT
    )
    category: fields.ForeignKeyNullableRelation[Category] = fields.ForeignKeyField(
        "kameng.Category", related_name="products", null=True, on_delete=fields.SET_NULL
    )
    title = fields.CharField(max_length=120)
    description = fields.TextField(default="")
    price = fields.DecimalField(max_digits=12, decimal_places=2)
    currency = fields.CharField(max_length=3, default="CNY")
    delivery_kind = fields.CharEnumField(DeliveryKind, max_length=16)
    # [{"minQuantity": 10, "unitPrice": "9.50"}, ...], ascending by minQuantity.
    wholesale_tiers = fields.JSONField(default=list)
    min_quantity = fields.IntField(default=1)
    max_quantity = fields.IntField(default=100)
    delivery_promise_minutes = fields.IntField(default=10)
    # Paid automatically, once per order, when an order is delivered after its promise.
    late_compensation = fields.CharEnumField(LateCompensation, max_length=16, default=LateCompensation.NONE)
    late_compensation_points = fields.IntField(default=0)
    late_compensation_amount = fields.DecimalField(max_digits=12, decimal_places=2, default=0)
    late_compensation_coupon_id = fields.BigIntField(null=True)
    # Stock of DIRECT_TOPUP / MANUAL products (null: unlimited). CARD_KEY stock is the
    # count of available keys, never stored here.
    stock_limit = fields.IntField(null=True)
    sold_count = fields.IntField(default=0)
    # Maintained by the community (reviews): sum of ratings and how many.
    rating_sum = fields.IntField(default=0)
    review_count = fields.IntField(default=0)
    status = fields.CharEnumField(ProductStatus, max_length=16, default=ProductStatus.ACTIVE)
    # Repurchase (issue 13): days a delivered unit stays valid (null: forever), and the period
    # bounds, in days, a buyer may choose for a plan of it (null: not sold as a plan).
    validity_days = fields.IntField(null=True)
    plan_min_days = fields.IntField(null=True)
    plan_max_days = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "product"
        # Keyset pagination: newest (id), by price, best selling (see resolvers/commerce/catalog.py).
        indexes = (
            ("status", "id"),
            ("merchant_id", "id"),
            ("status", "price", "id"),
            ("status", "sold_count", "id"),
        )


#: createOrder's product with its shop, a fixed statement (models/statements.py).
PRODUCT_WITH_MERCHANT = Select(Product, "id", limit=1, related="merchant")
#: A delivery's units sold, added at its transaction's commit (resolvers/commerce/inventory.py).
SOLD_COUNT = Increment(Product, "sold_count")
