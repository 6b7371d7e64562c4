"""Coupons in the graph: held coupons, claiming, the rewards catalog bought with points, and
staff issuance and creation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

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
from schema.base import Connection, Money, UserError, decode_id, mutation, no_errors
from schema.context import Info
from schema.loyalty.points import Perk

CouponKind = strawberry.enum(CouponKindValue, name="CouponKind", description="FIXED off, PERCENT off, THRESHOLD (满减).")
CouponScope = strawberry.enum(CouponScopeValue, name="CouponScope")
UserCouponStatus = strawberry.enum(UserCouponStatusValue, name="UserCouponStatus")


@strawberry.type
class Coupon(relay.Node):
    id: relay.NodeID[int]
    code: str
    title: str
    kind: CouponKind
    value: Decimal = strawberry.field(description="Amount off (FIXED, THRESHOLD) or percent off (PERCENT).")
    min_spend: Money
    scope: CouponScope
    valid_from: datetime
    valid_until: datetime
    total_quantity: int | None
    issued_count: int
    per_user_limit: int
    new_users_only: bool
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
    status: UserCouponStatus
    source: str
    created_at: datetime
    coupon: Coupon

    @classmethod
    def from_model(cls, held: UserCouponModel) -> UserCoupon:
        return cls(id=held.id, status=held.status, source=held.source, created_at=held.created_at,
                   coupon=Coupon.from_model(held.coupon))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[UserCoupon | None]:
        found = await coupons.visible_user_coupons(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(held) if held is not None else None for held in found]


async def coupons_of(info: Info, user_id: int, status: UserCouponStatusValue | None, first: int | None,
                     after: str | None) -> Connection[UserCoupon] | None:
    """`User.coupons`: to the user themself and to staff."""
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    page = await coupons.list_for(info.context.actor, user_id, status=status, first=first, after=after)
    return Connection.of(page, UserCoupon.from_model)


@strawberry.type(description="What points can buy.")
class Rewards:
    coupons: list[Coupon]
    perks: list[Perk]


@strawberry.input
class ClaimCouponInput:
    code: str


@strawberry.type
class ClaimCouponPayload:
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
    user_coupon: UserCoupon | None = None


@strawberry.input
class RedeemRewardInput:
    coupon_id: strawberry.ID | None = strawberry.field(default=None, description="A coupon of the rewards catalog.")
    perk: str | None = strawberry.field(default=None, description="Or a perk's code, e.g. PRIORITY_SUPPORT.")


@strawberry.type
class RedeemRewardPayload:
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
    user_coupon: UserCoupon | None = None
    perk: Perk | None = None
    balance: int | None = strawberry.field(default=None, description="Points left.")


@strawberry.input
class IssueCouponsInput:
    coupon_id: strawberry.ID
    user_ids: list[strawberry.ID]


@strawberry.type
class IssueCouponsPayload:
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
    issued_count: int | None = None
    skipped_count: int | None = strawberry.field(default=None, description="Issued to them before: unchanged.")
    failed_user_ids: list[strawberry.ID] | None = None


@strawberry.input
class CreateCouponInput:
    code: str
    title: str
    kind: CouponKind
    value: Decimal
    valid_from: datetime
    valid_until: datetime
    min_spend: Decimal = Decimal("0")
    scope: CouponScope = CouponScopeValue.PLATFORM
    scope_id: strawberry.ID | None = strawberry.field(default=None, description="Merchant, Category or Product ID.")
    total_quantity: int | None = None
    per_user_limit: int = 1
    new_users_only: bool = False
    points_price: int | None = None


@strawberry.type
class CreateCouponPayload:
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
    coupon: Coupon | None = None


_SCOPE_TYPES = {CouponScopeValue.MERCHANT: "Merchant", CouponScopeValue.CATEGORY: "Category",
                CouponScopeValue.PRODUCT: "Product"}


@strawberry.type
class CouponQueries:
    @strawberry.field(description="The rewards catalog: coupons and perks bought with points.")
    async def rewards(self) -> Rewards:
        catalog = await coupons.rewards_catalog()
        return Rewards(coupons=[Coupon.from_model(c) for c in catalog], perks=[Perk.of(p) for p in points.PERKS.values()])


@strawberry.type
class CouponMutations:
    @mutation()
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

    @mutation(description="Staff: issue a coupon to users (idempotent per coupon and user).")
    async def issue_coupons(self, info: Info, input: IssueCouponsInput) -> IssueCouponsPayload:
        require_to(info.context.actor, Action.ISSUE_COUPONS)
        coupon_id = decode_id(input.coupon_id, "Coupon", "couponId")
        user_ids = [decode_id(u, "User", "userIds") for u in input.user_ids]
        done = await coupons.issue(info.context.actor, coupon_id, user_ids)
        return IssueCouponsPayload(
            issued_count=len(done.issued), skipped_count=len(done.skipped),
            failed_user_ids=[strawberry.ID(str(relay.GlobalID("User", str(u)))) for u in done.failed],
        )

    @mutation(description="Staff: create a coupon.")
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
