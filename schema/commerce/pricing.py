"""Prices in the graph: the quote createOrder charges, and the line-by-line breakdown of a
quote or an order."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from resolvers.commerce import pricing
from schema.base import Money, PayloadErrors, UserError, decode_id, errors_field
from schema.context import Info
from schema.loyalty.tiers import Tier


@strawberry.type(description="One line of a price breakdown; discounts are negative.")
class PriceLine:
    kind: str = strawberry.field(description="LIST, WHOLESALE, SUBTOTAL, MEMBER_TIER, COUPON, POINTS or TOTAL.")
    label: str
    amount: Money


def price_lines(lines: list[pricing.PriceLine], currency: str) -> list[PriceLine]:
    return [PriceLine(kind=l.kind, label=l.label, amount=Money(amount=l.amount, currency=currency)) for l in lines]


@strawberry.type(description="What an order would cost: createOrder charges exactly this total.")
class PriceQuote:
    quantity: int
    list_unit_price: Money
    unit_price: Money
    subtotal: Money
    tier: Tier
    tier_discount: Money
    coupon_code: str | None
    coupon_discount: Money
    points_used: int
    points_discount: Money
    max_points_usable: int
    total: Money
    lines: list[PriceLine]

    @classmethod
    def of(cls, q: pricing.Quote) -> PriceQuote:
        def m(amount: Decimal) -> Money:
            return Money(amount=amount, currency=q.currency)

        return cls(
            quantity=q.quantity, list_unit_price=m(q.list_unit_price), unit_price=m(q.unit_price),
            subtotal=m(q.subtotal), tier=q.tier, tier_discount=m(q.tier_discount), coupon_code=q.coupon_code,
            coupon_discount=m(q.coupon_discount), points_used=q.points_used, points_discount=m(q.points_discount),
            max_points_usable=q.max_points, total=m(q.total), lines=price_lines(q.lines, q.currency),
        )


@strawberry.input
class PriceQuoteInput:
    product_id: strawberry.ID
    quantity: int = 1
    coupon_code: str | None = None
    points_to_use: int = 0


@strawberry.type
class PriceQuotePayload:
    errors: list[UserError] = errors_field()
    quote: PriceQuote | None = None


@strawberry.type
class PricingQueries:
    # A query with a payload: a price that cannot be quoted is a UserError, as in createOrder.
    @strawberry.field(
        description="What an order would cost, line by line (the engine createOrder charges with).",
        extensions=[PayloadErrors()],
    )
    async def price_quote(self, info: Info, input: PriceQuoteInput) -> PriceQuotePayload:
        request = pricing.PriceRequest(
            product_id=decode_id(input.product_id, "Product", "productId"), quantity=input.quantity,
            coupon_code=input.coupon_code, points_to_use=input.points_to_use,
        )
        priced = await pricing.price(info.context.actor, request)
        return PriceQuotePayload(quote=PriceQuote.of(priced.quote))
