"""Coupons: claiming, staff issuance, the new-user coupon, rewards redeemed with points, and
what a coupon does while an order holds it.

Limits under concurrency:

* the total quantity is taken with ``UPDATE coupon SET issued_count = issued_count + 1
  WHERE id = ? AND issued_count < total_quantity`` and its affected-row count;
* the per-user limit is counted inside a transaction that first locks the user's points
  balance row (``points.lock``: FOR UPDATE on PostgreSQL, and SQLite serialises
  transactions), so two claims of one user cannot both see "not yet".

A coupon applied to an order is LOCKED to it; it becomes USED when the order is paid, and
goes back to its owner (AVAILABLE, order cleared) when the order is cancelled, expires or is
refunded, in the same transaction as that transition (resolvers/commerce/orders.py). A coupon given
back after its validity window ended is AVAILABLE but no longer applies.

The new-user coupon: every active coupon marked ``new_users_only`` is issued lazily to a
user who has never paid an order, the first time they look at their coupons or claim one
(``ensure_new_user_coupons``); applying it still requires that the order be their first.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tortoise.expressions import F

from kameng import clock
from models.accounts.users import User
from models.commerce.catalog import Product
from models.loyalty.coupons import Coupon, CouponKind, CouponScope, UserCoupon, UserCouponStatus
from models.commerce.orders import Order
from resolvers.loyalty import points
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor, allowed, require
from resolvers.accounts.permissions import Action
from resolvers.decimals import DecimalTextError, strict_decimal
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate
from subscriptions import outbox

MAX_ISSUE_BATCH = 1000


def coupon_invalid(message: str, field: str = "couponCode") -> UserFacingError:
    return UserFacingError(ErrorCode.COUPON_INVALID, message, field)


#: Coupon.code is VARCHAR(40).
CODE_MAX = 40


def normalise_code(code: str) -> str:
    return (code or "").strip().upper()


def lookup_code(code: str, field: str) -> str:
    """A code to look a coupon up by: one longer than any code is refused here, before the
    database (PostgreSQL refuses to compare it with the column; Tortoise refuses to send it)."""
    normalised = normalise_code(code)
    if len(normalised) > CODE_MAX:
        raise invalid(field, f"A coupon code has at most {CODE_MAX} characters.")
    return normalised


def is_valid_now(coupon: Coupon, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return coupon.valid_from <= now < coupon.valid_until


async def has_paid_order(user_id: int) -> bool:
    return await Order.filter(buyer_id=user_id, paid_at__isnull=False).exists()


# -- issuing ------------------------------------------------------------------------------


async def _issue(coupon: Coupon, user_id: int, source: str, *, check_user_limit: bool = True) -> UserCoupon:
    """Give ``coupon`` to a user; inside a transaction. COUPON_INVALID if none is left or the
    user holds their limit already."""
    await points.lock(user_id)  # serialises this user's claims
    if check_user_limit:
        held = await UserCoupon.filter(coupon_id=coupon.id, user_id=user_id).count()
        if held >= coupon.per_user_limit:
            raise coupon_invalid("You have claimed this coupon already.")
    query = Coupon.filter(id=coupon.id)
    if coupon.total_quantity is not None:
        query = query.filter(issued_count__lt=coupon.total_quantity)
    if await query.update(issued_count=F("issued_count") + 1) != 1:
        raise coupon_invalid("This coupon has all been claimed.")
    return await UserCoupon.create(coupon_id=coupon.id, user_id=user_id, source=source)


async def claim(actor: Actor, code: str) -> UserCoupon:
    """Claim a public coupon by its code (not one sold for points: ``redeem_reward``). The
    held coupon comes with its ``coupon``."""
    user = require(actor)
    code = lookup_code(code, "code")
    await ensure_new_user_coupons(user.id)
    coupon = await Coupon.filter(code=code).first()
    if coupon is None or coupon.points_price is not None:
        raise coupon_invalid("No such coupon.", "code")
    if not is_valid_now(coupon):
        raise coupon_invalid("This coupon is not valid now.", "code")
    if coupon.new_users_only and await has_paid_order(user.id):
        raise coupon_invalid("This coupon is for a first order.", "code")
    async with outbox.atomic():
        try:
            held = await _issue(coupon, user.id, "claim")
        except UserFacingError as error:
            error.field = "code"
            raise
    await held.fetch_related("coupon")  # as issued: its issued_count includes this one
    return held


async def redeem_reward(actor: Actor, coupon_id: int) -> tuple[UserCoupon, int]:
    """Buy a coupon of the rewards catalog with points. Returns (the held coupon, with its
    ``coupon``, and the points left)."""
    user = require(actor)
    coupon = await Coupon.filter(id=coupon_id).first()
    if coupon is None or coupon.points_price is None:
        raise coupon_invalid("No such reward.", "couponId")
    if not is_valid_now(coupon):
        raise coupon_invalid("This reward is not available now.", "couponId")
    async with outbox.atomic():
        try:
            held = await _issue(coupon, user.id, "reward")
        except UserFacingError as error:
            error.field = "couponId"
            raise
        await points.post(user.id, "reward", f"coupon:{held.id}", -coupon.points_price, coupon.title)
    await held.fetch_related("coupon")  # as issued: its issued_count includes this one
    return held, await points.balance(user.id)


@dataclass(frozen=True)
class Issued:
    issued: list[int]  # user ids that received the coupon now
    skipped: list[int]  # had it from an earlier issuance (idempotent)
    failed: list[int]  # unknown users, or none left


async def issue(actor: Actor, coupon_id: int, user_ids: list[int]) -> Issued:
    """Staff: issue a coupon to a list of users (the retention hook). Idempotent per (coupon,
    user): a user who was issued this coupon before is skipped, so a batch can be re-sent.
    Issuance ignores the per-user claim limit but counts against the total quantity."""
    permissions.require(actor, Action.ISSUE_COUPONS)
    coupon = await Coupon.filter(id=coupon_id).first()
    if coupon is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such coupon.", "couponId")
    unique_ids = list(dict.fromkeys(user_ids))
    if not 1 <= len(unique_ids) <= MAX_ISSUE_BATCH:
        raise invalid("userIds", f"Give 1 to {MAX_ISSUE_BATCH} users.")
    known = set(await User.filter(id__in=unique_ids, is_active=True).values_list("id", flat=True))
    result = Issued([], [], [])
    for user_id in unique_ids:
        if user_id not in known:
            result.failed.append(user_id)
            continue
        try:
            async with outbox.atomic():
                await points.lock(user_id)
                if await UserCoupon.filter(coupon_id=coupon.id, user_id=user_id, source="issue").exists():
                    result.skipped.append(user_id)
                    continue
                await _issue(coupon, user_id, "issue", check_user_limit=False)
                result.issued.append(user_id)
        except UserFacingError:
            result.failed.append(user_id)
    return result


async def issue_one(coupon_id: int, user_id: int, source: str) -> UserCoupon | None:
    """For rewards of tasks: the coupon, or None if none is left. Inside a transaction."""
    coupon = await Coupon.filter(id=coupon_id).first()
    if coupon is None:
        return None
    try:
        return await _issue(coupon, user_id, source, check_user_limit=False)
    except UserFacingError:
        return None


async def ensure_new_user_coupons(user_id: int) -> int:
    """Issue the new-user coupons to a user who has never paid an order (lazily, once)."""
    now = clock.now()
    offers = await Coupon.filter(new_users_only=True, valid_from__lte=now, valid_until__gt=now, points_price=None)
    if not offers or await has_paid_order(user_id):
        return 0
    given = 0
    for coupon in offers:
        if await UserCoupon.filter(coupon_id=coupon.id, user_id=user_id).exists():
            continue
        try:
            async with outbox.atomic():
                await _issue(coupon, user_id, "new_user")
                given += 1
        except UserFacingError:
            pass  # none left, or issued concurrently
    return given


# -- staff: creating coupons --------------------------------------------------------------


@dataclass(frozen=True)
class NewCoupon:
    code: str
    title: str
    kind: CouponKind
    value: Decimal
    valid_from: datetime
    valid_until: datetime
    min_spend: Decimal = Decimal("0")
    scope: CouponScope = CouponScope.PLATFORM
    scope_id: int | None = None
    total_quantity: int | None = None
    per_user_limit: int = 1
    new_users_only: bool = False
    points_price: int | None = None


_CODE_CHARS = set(string.ascii_uppercase + string.digits + "-_")


async def create(actor: Actor, spec: NewCoupon) -> Coupon:
    permissions.require(actor, Action.CREATE_COUPON)
    return await insert(spec)


async def insert(spec: NewCoupon) -> Coupon:
    """A validated new coupon; the caller decided who may (merchant coupons: commerce/promotions)."""
    code = normalise_code(spec.code)
    if not 3 <= len(code) <= 40 or not set(code) <= _CODE_CHARS:
        raise invalid("code", "A code has 3 to 40 letters, digits, '-' or '_'.")
    title = " ".join(spec.title.split())
    if not 1 <= len(title) <= 80:
        raise invalid("title", "A title has 1 to 80 characters.")
    value = _money(spec.value, "value")
    min_spend = _money(spec.min_spend, "minSpend")
    if value <= 0 or (spec.kind == CouponKind.PERCENT and value >= 100):
        raise invalid("value", "A positive amount off, or a percentage below 100.")
    if spec.kind == CouponKind.THRESHOLD and min_spend <= value:
        raise invalid("minSpend", "A threshold coupon needs a minimum spend above its value.")
    if spec.valid_until <= spec.valid_from:
        raise invalid("validUntil", "The validity window ends after it starts.")
    if (spec.scope == CouponScope.PLATFORM) != (spec.scope_id is None):
        raise invalid("scopeId", "Give the merchant, category or product of a scoped coupon (and none for PLATFORM).")
    if spec.total_quantity is not None and spec.total_quantity < 1:
        raise invalid("totalQuantity", "At least 1 (or none: unlimited).")
    if spec.per_user_limit < 1:
        raise invalid("perUserLimit", "At least 1.")
    if spec.points_price is not None and spec.points_price < 1:
        raise invalid("pointsPrice", "At least 1 point.")
    if await Coupon.filter(code=code).exists():
        raise UserFacingError(ErrorCode.DUPLICATE, "A coupon with this code exists.", "code")
    return await Coupon.create(
        code=code, title=title, kind=spec.kind, value=value, min_spend=min_spend, scope=spec.scope,
        scope_id=spec.scope_id, valid_from=spec.valid_from, valid_until=spec.valid_until,
        total_quantity=spec.total_quantity, per_user_limit=spec.per_user_limit,
        new_users_only=spec.new_users_only, points_price=spec.points_price,
    )


def _money(value: Decimal, field: str) -> Decimal:
    try:
        amount = value if isinstance(value, Decimal) and value.is_finite() else strict_decimal(value)
    except DecimalTextError:
        raise invalid(field, "An amount such as \"10.00\".") from None
    # The magnitude first: quantize fails on what it cannot hold (1e30).
    if amount < 0 or amount > 10**9 or amount != amount.quantize(Decimal("0.01")):
        raise invalid(field, "An amount such as \"10.00\".")
    return amount.quantize(Decimal("0.01"))


# -- applying to an order -----------------------------------------------------------------


def applies_to(coupon: Coupon, product: Product) -> bool:
    if coupon.scope == CouponScope.PLATFORM:
        return True
    if coupon.scope == CouponScope.MERCHANT:
        return product.merchant_id == coupon.scope_id
    if coupon.scope == CouponScope.CATEGORY:
        return product.category_id is not None and product.category_id == coupon.scope_id
    return product.id == coupon.scope_id


async def usable(user_id: int, code: str, product: Product) -> tuple[UserCoupon, Coupon]:
    """The user's AVAILABLE coupon with ``code`` that applies to ``product`` now, or
    COUPON_INVALID. (The minimum spend is the pricing engine's check.)"""
    coupon = await Coupon.filter(code=lookup_code(code, "couponCode")).first()
    if coupon is None:
        raise coupon_invalid("No such coupon.")
    held = await UserCoupon.filter(
        coupon_id=coupon.id, user_id=user_id, status=UserCouponStatus.AVAILABLE
    ).order_by("id").first()
    if held is None:
        raise coupon_invalid("You do not hold this coupon (claim it first), or it is in use.")
    if not is_valid_now(coupon):
        raise coupon_invalid("This coupon is not valid now.")
    if not applies_to(coupon, product):
        raise coupon_invalid("This coupon does not apply to this product.")
    if coupon.new_users_only and await has_paid_order(user_id):
        raise coupon_invalid("This coupon is for a first order.")
    return held, coupon


async def lock_for_order(user_coupon_id: int, order_id: int) -> None:
    """Inside the order's transaction: the coupon is the order's, or COUPON_INVALID (it was
    used by a concurrent order)."""
    taken = await UserCoupon.filter(id=user_coupon_id, status=UserCouponStatus.AVAILABLE).update(
        status=UserCouponStatus.LOCKED, order_id=order_id
    )
    if taken != 1:
        raise coupon_invalid("This coupon is in use by another order.")


async def mark_used(order: Order) -> None:
    if order.user_coupon_id is not None:
        await UserCoupon.filter(id=order.user_coupon_id, order_id=order.id, status=UserCouponStatus.LOCKED).update(
            status=UserCouponStatus.USED
        )


async def give_back(order: Order) -> bool:
    """The order's coupon back to its owner (cancel, expiry, refund); idempotent."""
    if order.user_coupon_id is None:
        return False
    returned = await UserCoupon.filter(
        id=order.user_coupon_id, order_id=order.id, status__in=[UserCouponStatus.LOCKED, UserCouponStatus.USED]
    ).update(status=UserCouponStatus.AVAILABLE, order_id=None)
    return returned == 1


# -- reading ------------------------------------------------------------------------------


async def list_for(actor: Actor, user_id: int, *, status: UserCouponStatus | None = None, **page: Any) -> Page[UserCoupon]:
    require(actor, owner_id=user_id)
    if actor.user_id == user_id:
        await ensure_new_user_coupons(user_id)
    queryset = UserCoupon.filter(user_id=user_id).select_related("coupon")
    if status is not None:
        queryset = queryset.filter(status=status)
    return await paginate(queryset, **page)


async def rewards_catalog() -> list[Coupon]:
    now = clock.now()
    return list(
        await Coupon.filter(points_price__isnull=False, valid_from__lte=now, valid_until__gt=now).order_by("points_price", "id")
    )


async def get_coupons(ids: list[int]) -> list[Coupon | None]:
    found = {c.id: c for c in await Coupon.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def visible_coupons(actor: Actor, ids: list[int]) -> list[Coupon | None]:
    """Batch load of ``Coupon`` nodes, in the order asked: a coupon of the rewards catalog is
    public; any other only to staff and to users who hold it (None otherwise)."""
    found = await get_coupons(ids)
    held: set[int] = set()
    staff = permissions.allowed(actor, Action.READ_PRIVATE)
    if actor.user_id is not None and not staff:
        private = [c.id for c in found if c is not None and c.points_price is None]
        if private:
            held = set(await UserCoupon.filter(coupon_id__in=private, user_id=actor.user_id)
                       .values_list("coupon_id", flat=True))
    return [
        c if c is not None and (c.points_price is not None or staff or c.id in held)
        else None
        for c in found
    ]


async def visible_user_coupons(actor: Actor, ids: list[int]) -> list[UserCoupon | None]:
    """Batch load of held coupons (with their ``coupon``), in the order asked: to their owner
    and to staff (None otherwise)."""
    rows = {r.id: r for r in await UserCoupon.filter(id__in=ids).select_related("coupon")}
    return [
        row if row is not None and allowed(actor, owner_id=row.user_id) else None
        for row in (rows.get(i) for i in ids)
    ]
