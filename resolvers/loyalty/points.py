"""Points: an append-only ledger per user, the earn and spend rules, and the perks points buy.

Every award or spend is one ``PointsEntry`` unique per (user, rule, reference), so a
replayed event (an at-least-once job, a double click) cannot count twice. The balance is
the sum of the entries, cached on ``PointsBalance`` in the same transaction with a
conditional ``UPDATE ... WHERE balance >= x`` whose affected-row count is checked: it can
never go negative. A user's awards and spends are serialised by locking their balance row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises transactions anyway), which is
what makes daily caps and per-user coupon limits exact under concurrency.

The rules live in ``RULES`` below, and their amounts in the settings
(``KAMENG_POINTS_*``): this table is the one place to read what earns and what spends.
Entries of amount 0 with rule ``event`` mark a loyalty event as counted (task progress)
and are left out of the history.

This module knows nothing of what earns (check-ins, tasks, loyalty events): the modules above
it post here, so every dependency points down to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any

from tortoise.expressions import F
from tortoise.functions import Sum

from kameng import clock
from kameng.settings import get_settings
from models.loyalty.points import PointsBalance, PointsEntry
from models.statements import InsertNew
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate
from subscriptions import outbox


class Kind(StrEnum):
    EARN = "EARN"  # counts towards tiers (points earned in 12 months)
    EARN_REVERSAL = "EARN_REVERSAL"  # takes an earn back (also counted, negatively)
    SPEND = "SPEND"
    SPEND_RETURN = "SPEND_RETURN"  # a spend given back (a cancelled order's points)
    MARKER = "MARKER"  # amount 0: an event was counted


@dataclass(frozen=True)
class Rule:
    name: str
    kind: Kind
    description: str
    setting: str | None = None  # the settings attribute holding the amount
    daily_cap_setting: str | None = None  # at most this many awards per calendar day


#: Every rule, in one table. Amounts: ``get_settings().<setting>``.
RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in [
        Rule("purchase", Kind.EARN, "per 1.00 paid, booked when the order completes", "points_per_yuan_paid"),
        Rule("purchase_reversal", Kind.EARN_REVERSAL, "purchase points taken back when the order is refunded"),
        Rule("check_in", Kind.EARN, "daily check-in, plus a streak bonus", "points_check_in"),
        Rule("showcase", Kind.EARN, "the first showcase post of a delivered order", "points_showcase"),
        Rule("review", Kind.EARN, "a verified-purchase review", "points_review"),
        Rule("like", Kind.EARN, "a like received", "points_like_received", "points_like_daily_cap"),
        Rule("answer", Kind.EARN, "an answer accepted by the asker", "points_answer_accepted"),
        Rule("demand", Kind.EARN, "a DEMAND post fulfilled by a merchant", "points_demand_fulfilled"),
        Rule("creator", Kind.EARN, "an order placed from the author's post completed", "points_creator_order"),
        Rule("creator_reversal", Kind.EARN_REVERSAL, "creator points taken back when the order is refunded"),
        Rule("invite", Kind.EARN, "an invitation whose invitee completed a first order (both sides)"),
        Rule("task", Kind.EARN, "a task completed (the task's own reward)"),
        Rule("reward", Kind.SPEND, "a coupon from the rewards catalog"),
        Rule("perk", Kind.SPEND, "a perk from the rewards catalog (priority support)"),
        Rule("order", Kind.SPEND, "part payment of an order"),
        Rule("order_back", Kind.SPEND_RETURN, "points of a cancelled, expired or refunded order given back"),
        # Not earned (tiers do not count it): the shop hands value back for a broken promise.
        Rule("late_delivery", Kind.SPEND_RETURN, "compensation for a late delivery, paid by the shop"),
        Rule("event", Kind.MARKER, "a loyalty event counted towards tasks"),
        # Not earned (tiers do not count it): a gift, once a year (resolvers/repurchase/birthdays.py).
        Rule("birthday", Kind.SPEND_RETURN, "the yearly birthday benefit", "points_birthday"),
        # Not earned (tiers do not count it): a campaign's offer (resolvers/lifecycle/campaigns.py).
        Rule("campaign", Kind.SPEND_RETURN, "a win-back campaign's gift"),
    ]
}

#: Loyalty events (resolvers/loyalty/events.py) that earn by a simple rule: event -> rule.
NEW_BALANCE, NEW_ENTRY = InsertNew(PointsBalance), InsertNew(PointsEntry)
EVENT_RULES = {
    "SHOWCASE_CREATED": "showcase",
    "REVIEW_VERIFIED": "review",
    "LIKE_RECEIVED": "like",
    "ANSWER_ACCEPTED": "answer",
    "DEMAND_FULFILLED": "demand",
}

_EARNED = [name for name, rule in RULES.items() if rule.kind in (Kind.EARN, Kind.EARN_REVERSAL)]


@dataclass(frozen=True)
class Perk:
    code: str
    title: str
    points_price: int
    days: int


#: Non-price perks of the rewards catalog.
PERKS: dict[str, Perk] = {
    "PRIORITY_SUPPORT": Perk("PRIORITY_SUPPORT", "Priority after-sales support for 30 days", 500, 30),
}


def amount_of(rule: str) -> int:
    setting = RULES[rule].setting
    return int(getattr(get_settings(), setting)) if setting else 0


def today() -> date:
    return clock.local_day(clock.now(), get_settings().loyalty_timezone)


# -- the ledger ---------------------------------------------------------------------------


async def lock(user_id: int) -> PointsBalance:
    """The user's balance row, created on first use and locked (PostgreSQL) until the
    caller's transaction ends. Call inside a transaction."""
    row = await PointsBalance.filter(user_id=user_id).select_for_update().first()
    if row is not None:
        return row
    await NEW_BALANCE.run([PointsBalance(user_id=user_id)])  # no row back: a concurrent creation won
    return await PointsBalance.filter(user_id=user_id).select_for_update().get()


async def post(user_id: int, rule: str, reference: str, amount: int, memo: str = "", *,
               clamp: bool = False) -> int | None:
    """Post one entry. Returns the amount posted, or None if (user, rule, reference) was
    posted already (a replay posts nothing).

    A negative amount that the balance cannot cover raises INSUFFICIENT_BALANCE (rolling
    back the caller's transaction), unless ``clamp``: then only what the balance covers is
    taken (reversals of points the user has spent already).
    """
    if rule not in RULES:
        raise ValueError(f"unknown points rule {rule!r}")
    # The caller's transaction when there is one, with no savepoint of its own (two round trips
    # each, on every loyalty event): a replay is the INSERT that returns no row, and an error
    # rolls the caller back (none of them recovers from one here).
    async with outbox.atomic(join=True):
        held = await lock(user_id)
        if clamp and amount < 0:
            amount = -min(-amount, held.balance)
        entry = PointsEntry(user_id=user_id, amount=amount, rule=rule, reference=reference[:120], memo=memo[:200])
        if not await NEW_ENTRY.run([entry]):
            return None
        if amount != 0:
            query = PointsBalance.filter(user_id=user_id)
            if amount < 0:
                query = query.filter(balance__gte=-amount)
            changes: dict[str, Any] = {"balance": F("balance") + amount}
            if RULES[rule].kind in (Kind.EARN, Kind.EARN_REVERSAL):
                changes["earned_total"] = F("earned_total") + amount
            if await query.update(**changes) != 1:
                raise UserFacingError(ErrorCode.INSUFFICIENT_BALANCE, "Not enough points.", "points")
    return amount


async def posted(user_id: int, rule: str, reference: str) -> PointsEntry | None:
    return await PointsEntry.filter(user_id=user_id, rule=rule, reference=reference).first()


async def balance(user_id: int) -> int:
    row = await PointsBalance.filter(user_id=user_id).first()
    return row.balance if row is not None else 0


async def balances(user_ids: list[int]) -> list[PointsBalance | None]:
    """Batch load for DataLoaders: the cached balance rows, in the order asked (None: no
    points yet)."""
    found = {row.user_id: row for row in await PointsBalance.filter(user_id__in=user_ids)}
    return [found.get(i) for i in user_ids]


async def earned_since(user_id: int, since: datetime) -> int:
    """Points earned (net of reversals) since ``since``: what tiers count."""
    rows = await PointsEntry.filter(user_id=user_id, rule__in=_EARNED, created_at__gte=since).annotate(
        total=Sum("amount")
    ).values_list("total", flat=True)
    return int(rows[0] or 0) if rows else 0


async def history(actor: Actor, user_id: int, **page: Any) -> Page[PointsEntry]:
    require(actor, owner_id=user_id)
    return await paginate(PointsEntry.filter(user_id=user_id).exclude(amount=0), **page)


# -- earning ------------------------------------------------------------------------------


async def award(user_id: int, rule: str, reference: str, memo: str = "") -> int | None:
    """Award ``rule``'s configured amount once per reference, within its daily cap.

    Returns the points awarded (0 over the cap), or None for a replay.
    """
    amount = amount_of(rule)
    cap_setting = RULES[rule].daily_cap_setting
    async with outbox.atomic():
        await lock(user_id)  # serialises the cap check with the user's other awards
        if cap_setting is not None:
            start = clock.day_start(today(), get_settings().loyalty_timezone)
            counted = await PointsEntry.filter(
                user_id=user_id, rule=rule, created_at__gte=start, amount__gt=0
            ).count()
            if counted >= int(getattr(get_settings(), cap_setting)):
                amount = 0  # recorded all the same: the reference cannot earn later today
        return await post(user_id, rule, reference, amount, memo)


# -- points as part payment of an order ---------------------------------------------------


def points_value(points: int) -> Decimal:
    """What ``points`` are worth, rounded down to the fen."""
    per_yuan = get_settings().points_per_yuan_value
    return (Decimal(points) / per_yuan).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)


def order_reference(order_id: int) -> str:
    return f"order:{order_id}"


async def spend_for_order(user_id: int, order_id: int, points: int) -> None:
    """Inside the order's transaction: INSUFFICIENT_BALANCE rolls the order back."""
    if points > 0:
        await post(user_id, "order", order_reference(order_id), -points, "part payment of an order")


async def give_back_for_order(user_id: int, order_id: int) -> int:
    """The points an order spent, back to the buyer (cancel, expiry, refund). Once."""
    spent = await posted(user_id, "order", order_reference(order_id))
    if spent is None or spent.amount >= 0:
        return 0
    return await post(user_id, "order_back", order_reference(order_id), -spent.amount, "order points given back") or 0


# -- spending on the rewards catalog ------------------------------------------------------


async def redeem_perk(actor: Actor, code: str) -> tuple[Perk, int]:
    """Spend points on a perk; one redemption per perk per day. Returns (perk, balance)."""
    user = require(actor)
    perk = PERKS.get(code)
    if perk is None:
        raise invalid("perk", "No such perk.")
    async with outbox.atomic():
        spent = await post(user.id, "perk", f"{perk.code}:{today().isoformat()}", -perk.points_price, perk.title)
        if spent is None:
            raise UserFacingError(ErrorCode.DUPLICATE, "You redeemed this perk today already.", "perk")
    return perk, await balance(user.id)


async def has_perk(user_id: int, code: str) -> bool:
    perk = PERKS[code]
    since = clock.now() - timedelta(days=perk.days)
    return await PointsEntry.filter(
        user_id=user_id, rule="perk", reference__startswith=f"{code}:", created_at__gte=since
    ).exists()
