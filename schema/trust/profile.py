"""A shop's trust profile in the graph: ``Merchant.trustProfile`` (resolvers/trust/profile.py)."""

from __future__ import annotations

import strawberry

from resolvers.trust.profile import Percentiles, TrustNumbers
from schema.base import Money
from schema.commerce.promises import DeliveryStats


@strawberry.type(description="How fast a shop's tickets were handled: nearest-rank percentiles in seconds.")
class TicketTimes:
    count: int = strawberry.field(description="Tickets measured (answered, or resolved).")
    median_seconds: int | None = strawberry.field(description="Median; null when none were measured.")
    p95_seconds: int | None = strawberry.field(description="95th percentile; null when none were measured.")

    @classmethod
    def of(cls, value: Percentiles) -> TicketTimes:
        return cls(count=value.count, median_seconds=value.median_seconds, p95_seconds=value.p95_seconds)


@strawberry.type(
    description="What buyers look at before they trust a shop, computed live (public). Times and rates cover "
                "the last `KAMENG_DELIVERY_PROMISE_WINDOW_DAYS` days (30 by default); deposit and rating are "
                "as of now."
)
class TrustProfile:
    delivery: DeliveryStats = strawberry.field(
        description="Payment-to-delivery times of orders delivered in the window (the same as `deliveryStats`).")
    tickets_opened: int = strawberry.field(description="After-sales tickets opened in the window.")
    first_response: TicketTimes = strawberry.field(
        description="Time from opening to the shop's (or staff's) first answer, of the window's tickets answered.")
    resolution: TicketTimes = strawberry.field(
        description="Time from opening to resolution, of the window's tickets RESOLVED (withdrawn or closed ones "
                    "are not counted).")
    orders_paid: int = strawberry.field(description="Orders paid in the window: the base of both rates.")
    dispute_rate: float | None = strawberry.field(
        description="Share (0 to 1) of the orders paid in the window that got a ticket; null with no orders.")
    refund_rate: float | None = strawberry.field(
        description="Share (0 to 1) of the orders paid in the window that were refunded; null with no orders.")
    deposit: Money = strawberry.field(description="The security deposit the platform holds for the shop now.")
    review_count: int = strawberry.field(description="Visible reviews by verified buyers of the shop's products.")
    review_rating: float | None = strawberry.field(
        description="Their average rating, 1 to 5 (two decimals); null when the shop has no verified review.")

    @classmethod
    def of(cls, numbers: TrustNumbers, delivery: DeliveryStats, deposit: Money) -> TrustProfile:
        return cls(
            delivery=delivery, tickets_opened=numbers.tickets_opened,
            first_response=TicketTimes.of(numbers.first_response), resolution=TicketTimes.of(numbers.resolution),
            orders_paid=numbers.orders_paid, dispute_rate=numbers.dispute_rate, refund_rate=numbers.refund_rate,
            deposit=deposit, review_count=numbers.review_count, review_rating=numbers.review_rating,
        )
