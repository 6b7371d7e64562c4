"""Coupons in the graph: held coupons, claiming, the rewards catalog bought with points, and
staff issuance and creation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay

from models.loyalty.coupons import Coupon as CouponModel
from models.loyalty.coupons import CouponKind as CouponKindValue
from models.loyalty.coupons import CouponScope as CouponScopeValue
from models.loyalty.coupons import UserCoupon as UserCouponModel
from models.loyalty.coupons import UserCouponStatus as UserCouponStatusValue
from resolvers.accounts.auth import allowed, require
from resolvers.accounts.permissions import Action
from resolvers.accounts.permissions import require as require_to
from resolvers.errors import invalid
from resolvers.loyalty import coupons, points
from schema.base import Connection, Money, UserError, decode_id, describe_values, errors_field, mutation
from schema.context import Info
from schema.loyalty.points import Perk

CouponKind = describe_values(
    strawberry.enum(CouponKindValue, name="CouponKind", description="FIXED off, PERCENT off, THRESHOLD (满减)."),
    FIXED="`value` yuan off.",
    PERCENT="`value` percent off (10 is 10% off).",
    THRESHOLD="满减: `value` yuan off once the order reaches `minSpend`.",
)
CouponScope = describe_values(
    strawberry.enum(CouponScopeValue, name="CouponScope", description="Which orders a coupon applies to."),
    PLATFORM="Any product.",
    MERCHANT="Products of one shop.",
    CATEGORY="Products of one category.",
    PRODUCT="One product.",
)
UserCouponStatus = describe_values(
    strawberry.enum(UserCouponStatusValue, name="UserCouponStatus", description="Whether a held coupon can be used."),
    AVAILABLE="Can be applied to an order.",
    LOCKED="Applied to an unpaid order; back to AVAILABLE if that order is cancelled or expires.",
    USED="Spent on a paid order.",
)


@strawberry.type(description="A coupon campaign. Public: its code is what a buyer types to claim it.")
class Coupon(relay.Node):
    id: relay.NodeID[int]
    code: str = strawberry.field(description="What buyers type to claim it (upper case).")
    title: str = strawberry.field(description="Display name, e.g. \"10 off 100\".")
    kind: CouponKind = strawberry.field(description="How the discount is computed.")
    value: Decimal = strawberry.field(description="Amount off (FIXED, THRESHOLD) or percent off (PERCENT).")
    min_spend: Money = strawberry.field(description="The order must reach this amount (zero: no minimum).")
    scope: CouponScope = strawberry.field(description="Which products it applies to.")
    valid_from: datetime = strawberry.field(description="Usable from this time.")
    valid_until: datetime = strawberry.field(description="Usable until this time (exclusive).")
    total_quantity: int | None = strawberry.field(description="How many can be handed out in all; null: no limit.")
    issued_count: int = strawberry.field(description="How many have been handed out.")
    per_user_limit: int = strawberry.field(description="How many one user may hold.")
    new_users_only: bool = strawberry.field(description="Only for accounts without a paid order.")
    points_price: int | None = strawberry.field(description="In the rewards catalog for this many points.")

    @classmethod
    def from_model(cls, c: CouponModel) -> Coupon:
        return cls(
            id=c.id, code=c.code, title=c.title, kind=c.kind, value=Decimal(c.value),
            min_spend=Money(amount=Decimal(c.min_spend).quantize(Decimal("0.01")), currency="CNY"),
            scope=c.scope, valid_from=c.valid_from, valid_until=c.valid_until, total_quantity=c.total_quantity,
            issued_count=c.issued_count, per_user_limit=c.per_user_limit, new_users_only=c.new_users_only,
            points_price=c.points_price,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Coupon | None]:
        found = await coupons.visible_coupons(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(c) if c is not None else None for c in found]


@strawberry.type(description="A coupon held by a user.")
class UserCoupon(relay.Node):
    id: relay.NodeID[int]
    status: UserCouponStatus = strawberry.field(description="Whether it can be used.")
    source: str = strawberry.field(description="How it was obtained: claim, issue, reward, task or new_user.")
    created_at: datetime = strawberry.field(description="When the user got it.")
    coupon: Coupon = strawberry.field(description="The coupon's terms.")

    @classmethod
    def from_model(cls, held: UserCouponModel) -> UserCoupon:
        return cls(id=held.id, status=held.status, source=held.source, created_at=held.created_at,
                   coupon=Coupon.from_model(held.coupon))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[UserCoupon | None]:
        found = await coupons.visible_user_coupons(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(held) if held is not None else None for held in found]


async def coupons_of(info: Info, user_id: int, status: UserCouponStatusValue | None, **page: Any) -> Connection[UserCoupon] | None:
    """`User.coupons`: to the user themself and to staff. ``page``: first/after/last/before."""
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    found = await coupons.list_for(info.context.actor, user_id, status=status, **page)
    return Connection.of(found, UserCoupon.from_model)


@strawberry.type(description="What points can buy.")
class Rewards:
    coupons: list[Coupon] = strawberry.field(description="Coupons on sale for points (`pointsPrice`), cheapest first.")
    perks: list[Perk] = strawberry.field(description="Perks on sale for points.")


@strawberry.input(description="A public coupon to claim.")
class ClaimCouponInput:
    code: str = strawberry.field(description="The coupon's code (case does not matter).")


@strawberry.type(description="Result of `claimCoupon`.")
class ClaimCouponPayload:
    errors: list[UserError] = errors_field()
    user_coupon: UserCoupon | None = strawberry.field(default=None, description="The coupon now held; null on failure.")


@strawberry.input(description="What to buy with points: exactly one of `couponId` and `perk`.")
class RedeemRewardInput:
    coupon_id: strawberry.ID | None = strawberry.field(default=None, description="A coupon of the rewards catalog.")
    perk: str | None = strawberry.field(default=None, description="Or a perk's code, e.g. PRIORITY_SUPPORT.")


@strawberry.type(description="Result of `redeemReward`.")
class RedeemRewardPayload:
    errors: list[UserError] = errors_field()
    user_coupon: UserCoupon | None = strawberry.field(
        default=None, description="The coupon bought; null for a perk or on failure."
    )
    perk: Perk | None = strawberry.field(default=None, description="The perk bought; null for a coupon or on failure.")
    balance: int | None = strawberry.field(default=None, description="Points left.")


@strawberry.input(description="A coupon to hand to users.")
class IssueCouponsInput:
    coupon_id: strawberry.ID = strawberry.field(description="The coupon's global ID.")
    user_ids: list[strawberry.ID] = strawberry.field(description="The users' global IDs.")


@strawberry.type(description="Result of `issueCoupons`.")
class IssueCouponsPayload:
    errors: list[UserError] = errors_field()
    issued_count: int | None = strawberry.field(default=None, description="Users who got it now.")
    skipped_count: int | None = strawberry.field(default=None, description="Issued to them before: unchanged.")
    failed_user_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Users who could not get it (no such user, or none left, or over their limit)."
    )


@strawberry.input(description="A new coupon campaign.")
class CreateCouponInput:
    code: str = strawberry.field(description="What buyers type; unique.")
    title: str = strawberry.field(description="Display name.")
    kind: CouponKind = strawberry.field(description="How the discount is computed.")
    value: Decimal = strawberry.field(description="Yuan off (FIXED, THRESHOLD) or percent off (PERCENT).")
    valid_from: datetime = strawberry.field(description="Usable from.")
    valid_until: datetime = strawberry.field(description="Usable until (exclusive); after `validFrom`.")
    min_spend: Decimal = strawberry.field(default=Decimal("0"), description="Minimum order amount, yuan.")
    scope: CouponScope = strawberry.field(default=CouponScopeValue.PLATFORM, description="Which products.")
    scope_id: strawberry.ID | None = strawberry.field(default=None, description="Merchant, Category or Product ID.")
    total_quantity: int | None = strawberry.field(default=None, description="How many in all; null: no limit.")
    per_user_limit: int = strawberry.field(default=1, description="How many one user may hold.")
    new_users_only: bool = strawberry.field(default=False, description="Only accounts without a paid order.")
    points_price: int | None = strawberry.field(
        default=None, description="Sell it in the rewards catalog for this many points (then it cannot be claimed)."
    )


@strawberry.type(description="Result of `createCoupon`.")
class CreateCouponPayload:
    errors: list[UserError] = errors_field()
    coupon: Coupon | None = strawberry.field(default=None, description="The new coupon; null on failure.")


_SCOPE_TYPES = {CouponScopeValue.MERCHANT: "Merchant", CouponScopeValue.CATEGORY: "Category",
                CouponScopeValue.PRODUCT: "Product"}


@strawberry.type(description="Queries of the loyalty programme.")
class CouponQueries:
    @strawberry.field(description="The rewards catalog: coupons and perks bought with points.")
    async def rewards(self) -> Rewards:
        catalog = await coupons.rewards_catalog()
        return Rewards(coupons=[Coupon.from_model(c) for c in catalog], perks=[Perk.of(p) for p in points.PERKS.values()])


@strawberry.type(description="Mutations of coupons and rewards.")
class CouponMutations:
    @mutation(description="Claim a public coupon by its code (signed-in only).")
    async def claim_coupon(self, info: Info, input: ClaimCouponInput) -> ClaimCouponPayload:
        held = await coupons.claim(info.context.actor, input.code)
        return ClaimCouponPayload(user_coupon=UserCoupon.from_model(held))

    @mutation(description="Spend points on a coupon of the rewards catalog, or on a perk.")
    async def redeem_reward(self, info: Info, input: RedeemRewardInput) -> RedeemRewardPayload:
        if (input.coupon_id is None) == (input.perk is None):
            require(info.context.actor)
            raise invalid("couponId", "Give a couponId or a perk.")
        if input.coupon_id is not None:
            coupon_id = decode_id(input.coupon_id, "Coupon", "couponId")
            held, left = await coupons.redeem_reward(info.context.actor, coupon_id)
            return RedeemRewardPayload(user_coupon=UserCoupon.from_model(held), balance=left)
        perk, left = await points.redeem_perk(info.context.actor, (input.perk or "").strip().upper())
        return RedeemRewardPayload(perk=Perk.of(perk), balance=left)

    @mutation(description="Admins: issue a coupon to users (idempotent per coupon and user).")
    async def issue_coupons(self, info: Info, input: IssueCouponsInput) -> IssueCouponsPayload:
        require_to(info.context.actor, Action.ISSUE_COUPONS)
        coupon_id = decode_id(input.coupon_id, "Coupon", "couponId")
        user_ids = [decode_id(u, "User", "userIds") for u in input.user_ids]
        done = await coupons.issue(info.context.actor, coupon_id, user_ids)
        return IssueCouponsPayload(
            issued_count=len(done.issued), skipped_count=len(done.skipped),
            failed_user_ids=[strawberry.ID(str(relay.GlobalID("User", str(u)))) for u in done.failed],
        )

    @mutation(description="Admins: create a coupon.")
    async def create_coupon(self, info: Info, input: CreateCouponInput) -> CreateCouponPayload:
        require_to(info.context.actor, Action.CREATE_COUPON)
        scope_id = None
        if input.scope_id is not None:
            expected = _SCOPE_TYPES.get(input.scope)
            if expected is None:
                raise invalid("scopeId", "A PLATFORM coupon has no scope ID.")
            scope_id = decode_id(input.scope_id, expected, "scopeId")
        spec = coupons.NewCoupon(
            code=input.code, title=input.title, kind=input.kind, value=input.value, valid_from=input.valid_from,
            valid_until=input.valid_until, min_spend=input.min_spend, scope=input.scope, scope_id=scope_id,
            total_quantity=input.total_quantity, per_user_limit=input.per_user_limit,
            new_users_only=input.new_users_only, points_price=input.points_price,
        )
        return CreateCouponPayload(coupon=Coupon.from_model(await coupons.create(info.context.actor, spec)))
