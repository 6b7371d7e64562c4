"""Who pays for a discount.

The pricing engine (``pricing.py``) takes member-tier, coupon and points discounts off what
the buyer pays, and escrow holds only that. Whose money the discount is decides settlement:

* **merchant-funded**: a coupon a shop made for its own products (``createMerchantCoupon``,
  recorded in ``MerchantCoupon``). Its discount comes out of the shop's proceeds: the shop
  is settled on what the buyer paid.
* **platform-funded**: member-tier discounts, points, and every other coupon (platform,
  category, or a staff coupon scoped to a shop). At settlement the platform pays the shop
  the discount from ``platform:promotions`` (``escrow.settle``), so the shop receives what
  it would have without the promotion (less the platform fee, which is charged on what the
  buyer paid, as before).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from models.commerce.catalog import Product
from models.commerce.orders import Order
from models.commerce.promotions import MerchantCoupon
from models.loyalty.coupons import Coupon, CouponKind, CouponScope, UserCoupon
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce.merchants import find_merchant
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.loyalty import coupons
from subscriptions import outbox

PROMOTIONS = "platform:promotions"


async def merchant_funded(coupon_id: int) -> bool:
    return await MerchantCoupon.filter(coupon_id=coupon_id).exists()


async def platform_discount(order: Order) -> Decimal:
    """The part of an order's discounts the platform pays: tier + points, and the coupon's
    unless a shop funded it."""
    subsidy = Decimal(order.tier_discount) + Decimal(order.points_discount)
    if order.coupon_discount and order.user_coupon_id is not None:
        coupon_id = await UserCoupon.filter(id=order.user_coupon_id).values_list("coupon_id", flat=True)
        if not coupon_id or not await merchant_funded(int(coupon_id[0])):
            subsidy += Decimal(order.coupon_discount)
    return subsidy.quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class NewMerchantCoupon:
    merchant_id: int
    code: str
    title: str
    kind: CouponKind
    value: Decimal
    valid_from: datetime
    valid_until: datetime
    min_spend: Decimal = Decimal("0")
    product_id: int | None = None  # None: every product of the shop
    total_quantity: int | None = None
    per_user_limit: int = 1


async def create_merchant_coupon(actor: Actor, spec: NewMerchantCoupon) -> Coupon:
    """A shop's owner makes a coupon for the shop (or one of its products), paid by the shop."""
    shop = await find_merchant(spec.merchant_id)
    user = permissions.require(actor, Action.CREATE_MERCHANT_COUPON, owner_id=shop.owner_id)
    scope, scope_id = CouponScope.MERCHANT, shop.id
    if spec.product_id is not None:
        if not await Product.filter(id=spec.product_id, merchant_id=shop.id).exists():
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such product in this shop.", "productId")
        scope, scope_id = CouponScope.PRODUCT, spec.product_id
    async with outbox.atomic():
        coupon = await coupons.insert(coupons.NewCoupon(
            code=spec.code, title=spec.title, kind=spec.kind, value=spec.value, valid_from=spec.valid_from,
            valid_until=spec.valid_until, min_spend=spec.min_spend, scope=scope, scope_id=scope_id,
            total_quantity=spec.total_quantity, per_user_limit=spec.per_user_limit,
        ))
        await MerchantCoupon.create(coupon_id=coupon.id, merchant_id=shop.id, created_by_id=user.id)
    return coupon
