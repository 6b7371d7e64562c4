"""Loyalty in the graph: points and check-in, coupons and the rewards catalog, the task
center, price quotes, creator stats and the weekly creator leaderboard."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from models.accounts.users import STAFF_ROLES
from models.loyalty.coupons import Coupon as CouponModel
from models.loyalty.coupons import CouponKind as CouponKindValue
from models.loyalty.coupons import CouponScope as CouponScopeValue
from models.loyalty.coupons import UserCoupon as UserCouponModel
from models.loyalty.coupons import UserCouponStatus as UserCouponStatusValue
from models.loyalty.points import PointsEntry as PointsEntryModel
from models.loyalty.tasks import TaskPeriod as TaskPeriodValue
from resolvers.loyalty import coupons, creators, points, tasks
from resolvers.commerce import pricing
from resolvers.accounts.auth import allowed, require
from resolvers.errors import invalid
from schema.base import Connection, Money, UserError, decode_id, run_mutation
from schema.context import Info

if TYPE_CHECKING:
    from schema.accounts.users import Tier, User

CouponKind = strawberry.enum(CouponKindValue, name="CouponKind", description="FIXED off, PERCENT off, THRESHOLD (满减).")
CouponScope = strawberry.enum(CouponScopeValue, name="CouponScope")
UserCouponStatus = strawberry.enum(UserCouponStatusValue, name="UserCouponStatus")
TaskPeriod = strawberry.enum(TaskPeriodValue, name="TaskPeriod")


def cny(amount: Decimal) -> Money:
    return Money(amount=Decimal(amount).quantize(Decimal("0.01")), currency="CNY")


# -- points ---------------------------------------------------------------------------------


@strawberry.type(description="One award or spend of points.")
class PointsEntry:
    amount: int
    rule: str
    reference: str
    memo: str
    created_at: datetime

    @classmethod
    def from_model(cls, entry: PointsEntryModel) -> PointsEntry:
        return cls(amount=entry.amount, rule=entry.rule, reference=entry.reference, memo=entry.memo,
                   created_at=entry.created_at)


@strawberry.type(description="A user's points: the balance is the sum of the history.")
class Points:
    balance: int
    earned_total: int
    check_in_streak: int
    _user_id: strawberry.Private[int]

    @strawberry.field(description="Entries, newest first.")
    async def history(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[PointsEntry]:
        page = await points.history(info.context.actor, self._user_id, first=first, after=after)
        return Connection.of(page, PointsEntry.from_model)


async def points_of(info: Info, user_id: int) -> Points | None:
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    from models.loyalty.points import PointsBalance

    row = await PointsBalance.filter(user_id=user_id).first()
    return Points(
        balance=row.balance if row else 0,
        earned_total=row.earned_total if row else 0,
        check_in_streak=await points.current_streak(user_id),
        _user_id=user_id,
    )


@strawberry.input
class CheckInInput:
    client_mutation_id: str | None = None


@strawberry.type
class CheckInPayload:
    errors: list[UserError]
    points_awarded: int | None = None
    streak: int | None = None
    balance: int | None = None


# -- coupons --------------------------------------------------------------------------------


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
            id=c.id, code=c.code, title=c.title, kind=c.kind, value=Decimal(c.value), min_spend=cny(c.min_spend),
            scope=c.scope, valid_from=c.valid_from, valid_until=c.valid_until, total_quantity=c.total_quantity,
            issued_count=c.issued_count, per_user_limit=c.per_user_limit, new_users_only=c.new_users_only,
            points_price=c.points_price,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Coupon | None]:
        actor = info.context.actor
        found = await coupons.get_coupons([int(i) for i in node_ids])
        visible = []
        for c in found:
            ok = c is not None and (
                c.points_price is not None
                or allowed(actor, roles=STAFF_ROLES)
                or (actor.user_id is not None
                    and await UserCouponModel.filter(coupon_id=c.id, user_id=actor.user_id).exists())
            )
            visible.append(cls.from_model(c) if ok and c is not None else None)
        return visible


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
        rows = {r.id: r for r in await UserCouponModel.filter(id__in=[int(i) for i in node_ids]).select_related("coupon")}
        out = []
        for i in node_ids:
            row = rows.get(int(i))
            ok = row is not None and allowed(info.context.actor, owner_id=row.user_id)
            out.append(cls.from_model(row) if ok and row is not None else None)
        return out


async def coupons_of(info: Info, user_id: int, status: UserCouponStatusValue | None, first: int | None,
                     after: str | None) -> Connection[UserCoupon] | None:
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    page = await coupons.list_for(info.context.actor, user_id, status=status, first=first, after=after)
    return Connection.of(page, UserCoupon.from_model)


@strawberry.type(description="A non-price perk bought with points.")
class Perk:
    code: str
    title: str
    points_price: int
    days: int


@strawberry.type(description="What points can buy.")
class Rewards:
    coupons: list[Coupon]
    perks: list[Perk]


@strawberry.input
class ClaimCouponInput:
    code: str


@strawberry.type
class ClaimCouponPayload:
    errors: list[UserError]
    user_coupon: UserCoupon | None = None


@strawberry.input
class RedeemRewardInput:
    coupon_id: strawberry.ID | None = strawberry.field(default=None, description="A coupon of the rewards catalog.")
    perk: str | None = strawberry.field(default=None, description="Or a perk's code, e.g. PRIORITY_SUPPORT.")


@strawberry.type
class RedeemRewardPayload:
    errors: list[UserError]
    user_coupon: UserCoupon | None = None
    perk: Perk | None = None
    balance: int | None = strawberry.field(default=None, description="Points left.")


@strawberry.input
class IssueCouponsInput:
    coupon_id: strawberry.ID
    user_ids: list[strawberry.ID]


@strawberry.type
class IssueCouponsPayload:
    errors: list[UserError]
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
    errors: list[UserError]
    coupon: Coupon | None = None


_SCOPE_TYPES = {CouponScopeValue.MERCHANT: "Merchant", CouponScopeValue.CATEGORY: "Category",
                CouponScopeValue.PRODUCT: "Product"}


# -- price quotes ---------------------------------------------------------------------------


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
    tier: Annotated[Tier, strawberry.lazy("schema.accounts.users")]
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
    errors: list[UserError]
    quote: PriceQuote | None = None


# -- tasks and creators ---------------------------------------------------------------------


@strawberry.type(description="A task of the task center and the viewer's progress in its current period.")
class Task:
    code: str
    title: str
    period: TaskPeriod
    event: str
    target: int
    reward_points: int
    progress: int
    completed: bool
    period_key: str


async def tasks_of(info: Info, user_id: int) -> list[Task] | None:
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    states = await tasks.list_for(info.context.actor, user_id)
    return [
        Task(code=s.task.code, title=s.task.title, period=s.task.period, event=s.task.event, target=s.task.target,
             reward_points=s.task.reward_points, progress=s.progress, completed=s.completed, period_key=s.period_key)
        for s in states
    ]


@strawberry.type(description="Orders placed from the user's posts that completed, and what they earned.")
class CreatorStats:
    attributed_orders: int
    gmv: Money
    commission: Money


async def creator_stats_of(info: Info, user_id: int) -> CreatorStats | None:
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    s = await creators.stats(info.context.actor, user_id)
    return CreatorStats(attributed_orders=s.attributed_orders, gmv=cny(s.gmv), commission=cny(s.commission))


@strawberry.type
class CreatorRank:
    rank: int
    attributed_orders: int
    gmv: Money
    _user_id: strawberry.Private[int]

    @strawberry.field
    async def user(self, info: Info) -> Annotated[User, strawberry.lazy("schema.accounts.users")] | None:
        from schema.accounts.users import User

        user = await info.context.loaders.user.load(self._user_id)
        return User.from_model(user) if user is not None and user.is_active else None


# -- roots ----------------------------------------------------------------------------------


@strawberry.type
class LoyaltyQueries:
    @strawberry.field(description="What an order would cost, line by line (the engine createOrder charges with).")
    async def price_quote(self, info: Info, input: PriceQuoteInput) -> PriceQuotePayload:
        async def action() -> dict[str, Any]:
            request = pricing.PriceRequest(
                product_id=decode_id(input.product_id, "Product", "productId"), quantity=input.quantity,
                coupon_code=input.coupon_code, points_to_use=input.points_to_use,
            )
            priced = await pricing.price(info.context.actor, request)
            return {"quote": PriceQuote.of(priced.quote)}

        return await run_mutation(PriceQuotePayload, action())

    @strawberry.field(description="The rewards catalog: coupons and perks bought with points.")
    async def rewards(self) -> Rewards:
        catalog = await coupons.rewards_catalog()
        return Rewards(
            coupons=[Coupon.from_model(c) for c in catalog],
            perks=[Perk(code=p.code, title=p.title, points_price=p.points_price, days=p.days) for p in points.PERKS.values()],
        )

    @strawberry.field(description="This week's creators, by GMV of the completed orders placed from their posts.")
    async def creator_leaderboard(self, first: int = 10) -> list[CreatorRank]:
        ranks = await creators.leaderboard(first)
        return [CreatorRank(rank=r.rank, attributed_orders=r.attributed_orders, gmv=cny(r.gmv), _user_id=r.author_id)
                for r in ranks]


@strawberry.type
class LoyaltyMutations:
    @strawberry.mutation(description="Once a day; consecutive days build a streak bonus.")
    async def check_in(self, info: Info, input: CheckInInput | None = None) -> CheckInPayload:
        async def action() -> dict[str, Any]:
            done = await points.check_in(info.context.actor)
            user_id = info.context.actor.user_id or 0
            return {"points_awarded": done.points, "streak": done.streak, "balance": await points.balance(user_id)}

        return await run_mutation(CheckInPayload, action())

    @strawberry.mutation
    async def claim_coupon(self, info: Info, input: ClaimCouponInput) -> ClaimCouponPayload:
        async def action() -> dict[str, Any]:
            held = await coupons.claim(info.context.actor, input.code)
            await held.fetch_related("coupon")
            return {"user_coupon": UserCoupon.from_model(held)}

        return await run_mutation(ClaimCouponPayload, action())

    @strawberry.mutation(description="Spend points on a coupon of the rewards catalog, or on a perk.")
    async def redeem_reward(self, info: Info, input: RedeemRewardInput) -> RedeemRewardPayload:
        async def action() -> dict[str, Any]:
            if (input.coupon_id is None) == (input.perk is None):
                require(info.context.actor)
                raise invalid("couponId", "Give a couponId or a perk.")
            if input.coupon_id is not None:
                coupon_id = decode_id(input.coupon_id, "Coupon", "couponId")
                held, left = await coupons.redeem_reward(info.context.actor, coupon_id)
                await held.fetch_related("coupon")
                return {"user_coupon": UserCoupon.from_model(held), "balance": left}
            perk, left = await points.redeem_perk(info.context.actor, (input.perk or "").strip().upper())
            return {"perk": Perk(code=perk.code, title=perk.title, points_price=perk.points_price, days=perk.days),
                    "balance": left}

        return await run_mutation(RedeemRewardPayload, action())

    @strawberry.mutation(description="Staff: issue a coupon to users (idempotent per coupon and user).")
    async def issue_coupons(self, info: Info, input: IssueCouponsInput) -> IssueCouponsPayload:
        async def action() -> dict[str, Any]:
            require(info.context.actor, roles=STAFF_ROLES)
            coupon_id = decode_id(input.coupon_id, "Coupon", "couponId")
            user_ids = [decode_id(u, "User", "userIds") for u in input.user_ids]
            done = await coupons.issue(info.context.actor, coupon_id, user_ids)
            return {
                "issued_count": len(done.issued), "skipped_count": len(done.skipped),
                "failed_user_ids": [strawberry.ID(str(relay.GlobalID("User", str(u)))) for u in done.failed],
            }

        return await run_mutation(IssueCouponsPayload, action())

    @strawberry.mutation(description="Staff: create a coupon.")
    async def create_coupon(self, info: Info, input: CreateCouponInput) -> CreateCouponPayload:
        async def action() -> dict[str, Any]:
            require(info.context.actor, roles=STAFF_ROLES)
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
            return {"coupon": Coupon.from_model(await coupons.create(info.context.actor, spec))}

        return await run_mutation(CreateCouponPayload, action())

