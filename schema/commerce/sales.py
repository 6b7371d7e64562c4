"""A shop's sales in the graph: the filter of `Merchant.orders` and the statistics of
`Merchant.salesStats` (resolvers/commerce/sales.py computes both)."""

from __future__ import annotations

from datetime import date, datetime

import strawberry
from strawberry import relay

from resolvers.commerce import sales
from schema.base import Money, in_graph
from schema.commerce.catalog import DeliveryKind
from schema.commerce.orders import OrderStatus

CURRENCY = "CNY"


@strawberry.input(description="Which of a shop's orders to list; every field is optional.")
class MerchantOrderFilter:
    status: OrderStatus | None = strawberry.field(default=None, description="Only orders in this status.")
    product_id: strawberry.ID | None = strawberry.field(default=None, description="Only orders of this product.")
    from_: datetime | None = strawberry.field(default=None, name="from", description="Placed at or after this time.")
    to: datetime | None = strawberry.field(default=None, description="Placed before this time.")
    delivery_kind: DeliveryKind | None = strawberry.field(default=None, description="Only products delivered so.")


@strawberry.type(description="Sales figures over a period (orders paid in it).")
class SalesFigures:
    orders: int = strawberry.field(description="Orders paid.")
    gmv: Money = strawberry.field(description="What buyers paid for them (refunded ones included).")
    refunds: int = strawberry.field(description="How many of them were refunded since.")
    refunded: Money = strawberry.field(description="The amount of those refunds.")
    average_delivery_seconds: int | None = strawberry.field(
        description="Average time from payment to delivery of the delivered ones; null if none was.")
    buyers: int = strawberry.field(description="Distinct signed-in buyers (guests are not counted); 0 per day.")
    repeat_buyers: int = strawberry.field(description="Of those, the ones who paid for more than one order.")
    repurchase_rate: float | None = strawberry.field(description="repeatBuyers / buyers; null without buyers.")

    @classmethod
    def of(cls, f: sales.Figures) -> SalesFigures:
        return cls(
            orders=f.orders, gmv=Money(amount=f.gmv, currency=CURRENCY), refunds=f.refunds,
            refunded=Money(amount=f.refunded, currency=CURRENCY), average_delivery_seconds=f.average_delivery_seconds,
            buyers=f.buyers, repeat_buyers=f.repeat_buyers, repurchase_rate=f.repurchase_rate,
        )


@strawberry.type(description="One day's sales (UTC day of payment).")
class SalesDay:
    day: date = strawberry.field(description="The day.")
    figures: SalesFigures = strawberry.field(description="Its figures (repurchase figures are per period, not per day).")


@strawberry.type(description="One product's sales over the period.")
class SalesProduct:
    product_id: strawberry.ID = strawberry.field(description="The product's global ID.")
    figures: SalesFigures = strawberry.field(description="Its figures; repeat buyers bought this product twice or more.")


@in_graph
@strawberry.type(description="A shop's sales over a period: totals, per day and per product.")
class SalesStats:
    since: datetime = strawberry.field(description="Start of the period (inclusive).")
    until: datetime = strawberry.field(description="End of the period (exclusive).")
    total: SalesFigures = strawberry.field(description="The whole period.")
    days: list[SalesDay] = strawberry.field(description="Each day with a paid order, in order.")
    products: list[SalesProduct] = strawberry.field(description="Each product with a paid order.")

    @classmethod
    def of(cls, s: sales.SalesStats) -> SalesStats:
        return cls(
            since=s.since, until=s.until, total=SalesFigures.of(s.total),
            days=[SalesDay(day=d, figures=SalesFigures.of(f)) for d, f in s.days],
            products=[SalesProduct(product_id=strawberry.ID(str(relay.GlobalID("Product", str(p)))),
                                   figures=SalesFigures.of(f)) for p, f in s.products],
        )
