"""Checkout offers: what a buyer could save on the order they are pricing, shown without
asking. Today: the first-order (new-user) coupons. A buyer who has never paid an order is
issued them here (``coupons.ensure_new_user_coupons``, once) and ``priceQuote`` lists each
one that applies to the product, with the total it would make, so the quote shows the
offer at checkout; applying it is one field (``couponCode``) of the same quote and of
``createOrder``, priced by the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from models.commerce.catalog import Product
from models.loyalty.coupons import UserCoupon, UserCouponStatus
from resolvers.accounts.auth import Actor
from resolvers.commerce import pricing
from resolvers.errors import UserFacingError
from resolvers.loyalty import coupons


@dataclass(frozen=True)
class CheckoutOffer:
    kind: str  # FIRST_ORDER
    coupon_code: str
    title: str
    total: Decimal  # what the order would cost with it
    saving: Decimal


async def checkout_offers(actor: Actor, product: Product, quote: pricing.Quote) -> list[CheckoutOffer]:
    """First-order coupons the viewer holds (issued now if due) that apply to this quote;
    none once a coupon is applied, for guests, or after a first paid order."""
    if actor.user is None or quote.coupon_code is not None:
        return []
    user_id = actor.user.id
    if await coupons.has_paid_order(user_id):
        return []
    await coupons.ensure_new_user_coupons(user_id)
    held = await UserCoupon.filter(
        user_id=user_id, status=UserCouponStatus.AVAILABLE, coupon__new_users_only=True
    ).select_related("coupon")
    found: list[CheckoutOffer] = []
    for item in held:
        coupon = item.coupon
        if not coupons.is_valid_now(coupon) or not coupons.applies_to(coupon, product):
            continue
        try:
            with_it = pricing.compute(
                quote.list_unit_price, pricing.parse_tiers(product.wholesale_tiers), quote.quantity, quote.tier,
                pricing.CouponTerms.of(coupon), quote.points_used, currency=quote.currency,
            )
        except UserFacingError:
            continue  # minimum spend not reached, or the points asked no longer fit
        if with_it.total < quote.total:
            found.append(CheckoutOffer("FIRST_ORDER", coupon.code, coupon.title, with_it.total,
                                       quote.total - with_it.total))
    return sorted(found, key=lambda offer: (offer.total, offer.coupon_code))
