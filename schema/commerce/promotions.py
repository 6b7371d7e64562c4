"""Merchant-funded coupons in the graph: a shop's owner makes a coupon its shop pays for."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from resolvers.commerce import promotions
from schema.base import UserError, decode_id, errors_field, mutation
from schema.context import Info
from schema.loyalty.coupons import Coupon, CouponKind


@strawberry.input(description="A coupon for a shop's products, paid by the shop (its discount comes out of the "
                              "shop's proceeds; platform coupons are paid by the platform).")
class CreateMerchantCouponInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop's global ID.")
    code: str = strawberry.field(description="What buyers type; unique.")
    title: str = strawberry.field(description="Display name.")
    kind: CouponKind = strawberry.field(description="How the discount is computed.")
    value: Decimal = strawberry.field(description="Yuan off (FIXED, THRESHOLD) or percent off (PERCENT).")
    valid_from: datetime = strawberry.field(description="Usable from.")
    valid_until: datetime = strawberry.field(description="Usable until (exclusive); after `validFrom`.")
    min_spend: Decimal = strawberry.field(default=Decimal("0"), description="Minimum order amount, yuan.")
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this product of the shop; null: every product of the shop.")
    total_quantity: int | None = strawberry.field(default=None, description="How many in all; null: no limit.")
    per_user_limit: int = strawberry.field(default=1, description="How many one user may hold.")


@strawberry.type(description="Result of `createMerchantCoupon`.")
class CreateMerchantCouponPayload:
    errors: list[UserError] = errors_field()
    coupon: Coupon | None = strawberry.field(default=None, description="The new coupon; null on failure.")


@strawberry.type(description="Mutations of merchant-funded promotions.")
class PromotionMutations:
    @mutation(description="A shop's owner makes a coupon for the shop, funded by the shop; buyers claim it by code.")
    async def create_merchant_coupon(self, info: Info, input: CreateMerchantCouponInput) -> CreateMerchantCouponPayload:
        coupon = await promotions.create_merchant_coupon(info.context.actor, promotions.NewMerchantCoupon(
            merchant_id=decode_id(input.merchant_id, "Merchant", "merchantId"), code=input.code, title=input.title,
            kind=input.kind, value=input.value, valid_from=input.valid_from, valid_until=input.valid_until,
            min_spend=input.min_spend,
            product_id=decode_id(input.product_id, "Product", "productId") if input.product_id is not None else None,
            total_quantity=input.total_quantity, per_user_limit=input.per_user_limit,
        ))
        return CreateMerchantCouponPayload(coupon=Coupon.from_model(coupon))
