"""Delivery promises in the graph: what a product gives for a late delivery, how it is set,
and a shop's measured delivery record."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from models.commerce.catalog import LateCompensation as LateCompensationValue
from models.commerce.catalog import Product as ProductModel
from resolvers.commerce.promises import CompensationSpec, DeliveryStats as Stats
from schema.base import Money, decode_id, describe_values

LateCompensation = describe_values(
    strawberry.enum(
        LateCompensationValue, name="LateCompensation",
        description="What a buyer gets, automatically and once, when an order is delivered after its promise.",
    ),
    NONE="Nothing.",
    POINTS="Loyalty points (`points`); their value is charged to the shop.",
    COUPON="One of the shop's own coupons (`couponId`).",
    AMOUNT="Money into the buyer's wallet (`amount`), from the shop's balance, or its deposit when that is short.",
)


@strawberry.type(description="What a product gives for a late delivery.")
class LateDeliveryCompensation:
    kind: LateCompensation = strawberry.field(description="Which kind; NONE when the product promises nothing more.")
    points: int = strawberry.field(description="POINTS: how many; 0 otherwise.")
    amount: Money | None = strawberry.field(description="AMOUNT: how much; null otherwise.")
    coupon_id: strawberry.ID | None = strawberry.field(description="COUPON: the coupon's global ID; null otherwise.")

    @classmethod
    def of(cls, product: ProductModel) -> LateDeliveryCompensation:
        kind = product.late_compensation
        coupon = product.late_compensation_coupon_id
        return cls(
            kind=kind,
            points=product.late_compensation_points,
            amount=Money(amount=Decimal(product.late_compensation_amount).quantize(Decimal("0.01")),
                         currency=product.currency) if kind == LateCompensationValue.AMOUNT else None,
            coupon_id=strawberry.ID(str(strawberry.relay.GlobalID("Coupon", str(coupon)))) if coupon is not None else None,
        )


@strawberry.input(description="What a product gives for a late delivery; only the field of `kind` is read.")
class LateCompensationInput:
    kind: LateCompensation = strawberry.field(description="Which kind; NONE removes the compensation.")
    points: int | None = strawberry.field(default=None, description="POINTS: how many (1 to 100,000).")
    amount: str | None = strawberry.field(
        default=None, description='AMOUNT: a decimal string, e.g. "2.00" (at most 1000.00).'
    )
    coupon_id: strawberry.ID | None = strawberry.field(
        default=None, description="COUPON: the global ID of a coupon scoped to this shop or this product."
    )

    def spec(self) -> CompensationSpec:
        coupon = None
        if self.kind == LateCompensationValue.COUPON and self.coupon_id is not None:
            coupon = decode_id(self.coupon_id, "Coupon", "lateCompensation.couponId")
        return CompensationSpec(kind=LateCompensationValue(self.kind), points=self.points, amount=self.amount,
                                coupon_id=coupon)


@strawberry.type(
    description="A shop's delivery record over the last days (`KAMENG_DELIVERY_PROMISE_WINDOW_DAYS`, 30 by "
                "default): time from payment to delivery of its delivered orders."
)
class DeliveryStats:
    delivered_orders: int = strawberry.field(description="Orders delivered in the window.")
    median_seconds: int | None = strawberry.field(
        description="Median delivery time in seconds (nearest rank: a real order's time); null with no deliveries."
    )
    p95_seconds: int | None = strawberry.field(
        description="95th percentile of delivery time in seconds (nearest rank); null with no deliveries."
    )
    on_time_share: float | None = strawberry.field(
        description="Share (0 to 1) delivered within their product's promise; null with no deliveries."
    )

    @classmethod
    def of(cls, stats: Stats) -> DeliveryStats:
        return cls(delivered_orders=stats.delivered, median_seconds=stats.median_seconds,
                   p95_seconds=stats.p95_seconds, on_time_share=stats.on_time_share)
