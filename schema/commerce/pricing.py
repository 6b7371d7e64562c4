"""Prices in the graph: the quote createOrder charges, and the line-by-line breakdown of a
quote or an order."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry

from resolvers.commerce import pricing
from resolvers.repurchase import offers
from schema.base import Money, PayloadErrors, UserError, decode_id, errors_field
from schema.context import Info
from schema.loyalty.tiers import Tier


@strawberry.type(description="One line of a price breakdown; discounts are negative.")
class PriceLine:
    kind: str = strawberry.field(description="LIST, WHOLESALE, SUBTOTAL, MEMBER_TIER, COUPON, POINTS or TOTAL.")
    label: str = strawberry.field(description="English text for the line, e.g. \"Gold member -5%\".")
    amount: Money = strawberry.field(description="The line's amount; negative for a discount.")


def price_lines(lines: list[pricing.PriceLine], currency: str) -> list[PriceLine]:
    return [PriceLine(kind=l.kind, label=l.label, amount=Money(amount=l.amount, currency=currency)) for l in lines]


@strawberry.type(description="An offer at checkout: a coupon the viewer holds and what the order would cost with it.")
class CheckoutOffer:
    kind: str = strawberry.field(description="FIRST_ORDER: the new-user coupon, for a first paid order.")
    coupon_code: str = strawberry.field(description="The code to give as `couponCode`.")
    title: str = strawberry.field(description="The coupon's title.")
    total: Money = strawberry.field(description="What the order would cost with it.")
    saving: Money = strawberry.field(description="How much less than `total` of the quote.")


@strawberry.type(description="What an order would cost: createOrder charges exactly this total.")
class PriceQuote:
    quantity: int = strawberry.field(description="Units priced.")
    list_unit_price: Money = strawberry.field(description="The product's list price of one unit.")
    unit_price: Money = strawberry.field(description="Price of one unit after wholesale tiers.")
    subtotal: Money = strawberry.field(description="unitPrice x quantity.")
    tier: Tier = strawberry.field(description="The member tier the discount is for (NORMAL for guests).")
    tier_discount: Money = strawberry.field(description="Member-tier discount (zero if none).")
    coupon_code: str | None = strawberry.field(description="The coupon applied; null if none.")
    coupon_discount: Money = strawberry.field(description="Coupon discount (zero if none).")
    points_used: int = strawberry.field(description="Points applied (at most `maxPointsUsable`).")
    points_discount: Money = strawberry.field(description="What those points are worth.")
    max_points_usable: int = strawberry.field(
        description="The most points this order may use: a share (by tier) of what is left after the other "
                    "discounts."
    )
    total: Money = strawberry.field(description="What the buyer would pay.")
    lines: list[PriceLine] = strawberry.field(description="The same, line by line, in order.")
    offers: list[CheckoutOffer] = strawberry.field(
        default_factory=list,
        description="Offers the viewer holds that would lower this total, shown without asking (today: the "
                    "first-order coupon of a buyer who never paid an order); apply one with `couponCode`.",
    )

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


@strawberry.input(description="The order to price: the same fields as `CreateOrderInput`.")
class PriceQuoteInput:
    product_id: strawberry.ID = strawberry.field(description="The product's global ID.")
    quantity: int = strawberry.field(default=1, description="Units.")
    coupon_code: str | None = strawberry.field(default=None, description="A coupon the viewer holds.")
    points_to_use: int = strawberry.field(default=0, description="Points to apply (signed-in buyers).")


@strawberry.type(description="Result of `priceQuote`.")
class PriceQuotePayload:
    errors: list[UserError] = errors_field()
    quote: PriceQuote | None = strawberry.field(default=None, description="The quote; null when it cannot be priced.")


@strawberry.type(description="Queries about prices.")
class PricingQueries:
    # A query with a payload: a price that cannot be quoted is a UserError, as in createOrder.
    @strawberry.field(
        description="What an order would cost, line by line (the engine createOrder charges with).",
        extensions=[PayloadErrors()],
    )
    async def price_quote(
        self, info: Info,
        input: Annotated[PriceQuoteInput, strawberry.argument(description="The order to price.")],
    ) -> PriceQuotePayload:
        request = pricing.PriceRequest(
            product_id=decode_id(input.product_id, "Product", "productId"), quantity=input.quantity,
            coupon_code=input.coupon_code, points_to_use=input.points_to_use,
        )
        priced = await pricing.price(info.context.actor, request)
        quote = PriceQuote.of(priced.quote)
        currency = priced.quote.currency
        quote.offers = [
            CheckoutOffer(kind=o.kind, coupon_code=o.coupon_code, title=o.title,
                          total=Money(amount=o.total, currency=currency), saving=Money(amount=o.saving, currency=currency))
            for o in await offers.checkout_offers(info.context.actor, priced.product, priced.quote)
        ]
        return PriceQuotePayload(quote=quote)
