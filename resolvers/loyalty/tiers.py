"""Membership tiers: NORMAL, SILVER, GOLD, from the rolling 12 months.

A user's tier is the highest whose threshold they reach by paid spend (the totals of their
COMPLETED orders, completed in the last 365 days: refunded and unfinished orders do not
count) OR by points earned in the same window (net of reversals). Thresholds are settings
(``KAMENG_TIER_*``); benefits are the ``BENEFITS`` table below, the one place that says what
a tier gives. Recomputed on each completed order (resolvers/loyalty/events.py) and by a periodic
sweep over every user who could change (anyone above NORMAL, anyone with recent spend or
points). A change is a conditional update (so two recomputations notify once), a
TIER_CHANGED notification, and an outbox event on the user's ``tier`` topic.

Adding a tier: a value in models.accounts.users.Tier, a row here, thresholds in the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tortoise.functions import Sum

from kameng import clock
from kameng.settings import get_settings
from models.accounts.users import Tier, User
from models.commerce.orders import Order, OrderStatus
from models.loyalty.points import PointsEntry
from resolvers.accounts import notifications
from resolvers.loyalty import points
from subscriptions import outbox
from subscriptions import topics

WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class Benefit:
    price_rate: Decimal  # the share of the price the member pays
    priority_after_sales: bool
    points_share_bonus: Decimal  # added to KAMENG_POINTS_MAX_ORDER_SHARE
    rank: int


#: What each tier gives, in one table.
BENEFITS: dict[Tier, Benefit] = {
    Tier.NORMAL: Benefit(Decimal("1.00"), False, Decimal("0.00"), 0),
    Tier.SILVER: Benefit(Decimal("0.98"), False, Decimal("0.05"), 1),
    Tier.GOLD: Benefit(Decimal("0.95"), True, Decimal("0.10"), 2),
}


def thresholds() -> dict[Tier, tuple[Decimal, int]]:
    """(12-month spend, 12-month points) that reach each tier above NORMAL."""
    s = get_settings()
    return {Tier.SILVER: (s.tier_silver_spend, s.tier_silver_points), Tier.GOLD: (s.tier_gold_spend, s.tier_gold_points)}


def tier_for(spend: Decimal, earned: int) -> Tier:
    best = Tier.NORMAL
    for tier, (min_spend, min_points) in thresholds().items():
        if (spend >= min_spend or earned >= min_points) and BENEFITS[tier].rank > BENEFITS[best].rank:
            best = tier
    return best


async def spend_since(user_id: int, since: datetime) -> Decimal:
    rows = await Order.filter(
        buyer_id=user_id, status=OrderStatus.COMPLETED, completed_at__gte=since
    ).annotate(spent=Sum("total")).values_list("spent", flat=True)
    return Decimal(rows[0] or 0) if rows else Decimal("0")


@dataclass(frozen=True)
class Standing:
    tier: Tier
    spend: Decimal
    points: int


async def standing(user_id: int) -> Standing:
    since = clock.now() - WINDOW
    spend = await spend_since(user_id, since)
    earned = await points.earned_since(user_id, since)
    return Standing(tier_for(spend, earned), spend, earned)


async def recompute(user_id: int) -> Tier | None:
    """Move the user to the tier their last 12 months earn; returns the new tier if it changed."""
    user = await User.filter(id=user_id, is_active=True).first()
    if user is None:
        return None
    standing_tier = (await standing(user_id)).tier
    if standing_tier == user.tier:
        return None
    async with outbox.atomic():
        # is_active again: a deletion committed since would otherwise get a notification it erased.
        if await User.filter(id=user_id, tier=user.tier, is_active=True).update(tier=standing_tier) != 1:
            return None  # recomputed concurrently, or the account deleted
        up = BENEFITS[standing_tier].rank > BENEFITS[user.tier].rank
        title = f"You are now a {standing_tier.value} member" if up else f"Your membership is now {standing_tier.value}"
        at = clock.now().isoformat()
        await notifications.notify(
            user_id, "TIER_CHANGED", title,
            "Membership follows your spend and points over the last 12 months.",
            {"from": user.tier.value, "to": standing_tier.value},
            dedupe_key=f"tier:{user_id}:{user.tier.value}:{standing_tier.value}:{at}",
        )
        await outbox.emit(topics.tier(user_id), {"user": user_id, "from": user.tier.value, "to": standing_tier.value, "at": at})
    return standing_tier


async def candidates(limit: int = 10_000) -> list[int]:
    """Users whose tier could be other than it is: anyone above NORMAL, and anyone with
    completed orders or points earned in the window."""
    since = clock.now() - WINDOW
    ids: set[int] = set(await User.filter(tier__not=Tier.NORMAL).limit(limit).values_list("id", flat=True))
    ids.update(
        await Order.filter(status=OrderStatus.COMPLETED, completed_at__gte=since, buyer_id__isnull=False)
        .distinct().limit(limit).values_list("buyer_id", flat=True)
    )
    ids.update(
        await PointsEntry.filter(created_at__gte=since, amount__gt=0).distinct().limit(limit).values_list("user_id", flat=True)
    )
    return sorted(ids)


async def recompute_all() -> int:
    """The periodic sweep: returns how many users changed tier."""
    changed = 0
    for user_id in await candidates():
        if await recompute(user_id) is not None:
            changed += 1
    return changed
