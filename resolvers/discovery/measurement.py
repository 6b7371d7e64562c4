"""Online measurement of recommendations, from real events: per day, surface and model version,
impressions and clicks (client events carrying a recommendation's token), click-through rate,
orders attributed to a click and their share of the day's GMV.

Attribution: a paid order belongs to the latest click on a recommendation of the same product
by the same buyer within ``KAMENG_RECOMMEND_ATTRIBUTION_HOURS`` before payment. Tokens are
checked (resolvers/discovery/recommendations.read_token): a forged or altered token counts for
nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from kameng.settings import get_settings
from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent, EventKind
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.discovery.recommendations import read_token
from resolvers.errors import invalid

MAX_DAYS = 92
PAID = (OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED)


@dataclass
class DayStats:
    day: date
    surface: str
    model_version: str
    impressions: int = 0
    clicks: int = 0
    orders: int = 0
    gmv: Decimal = Decimal("0")
    day_gmv: Decimal = Decimal("0")

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def conversion(self) -> float | None:
        return self.orders / self.clicks if self.clicks else None

    @property
    def gmv_share(self) -> float | None:
        return float(self.gmv / self.day_gmv) if self.day_gmv else None


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def stats(actor: Actor, start: date, end: date) -> list[DayStats] | None:
    """Staff only (None for anyone else): one row per (day, surface, model version) with any
    impression, click or attributed order, oldest day first."""
    if not permissions.allowed(actor, Action.READ_RECOMMENDATION_STATS):
        return None
    if end < start:
        raise invalid("to", "`to` is before `from`.")
    if (end - start).days + 1 > MAX_DAYS:
        raise invalid("to", f"Ask for at most {MAX_DAYS} days at a time.")
    window = timedelta(hours=get_settings().recommend_attribution_hours)
    lower, upper = _start(start), _start(end + timedelta(days=1))
    rows: dict[tuple[date, str, str], DayStats] = {}

    def row(day: date, surface: str, version: str) -> DayStats:
        key = (day, surface, version)
        if key not in rows:
            rows[key] = DayStats(day, surface, version)
        return rows[key]

    events = await BehaviourEvent.filter(
        kind__in=[EventKind.RECOMMENDATION_IMPRESSION, EventKind.RECOMMENDATION_CLICK],
        occurred_at__gte=lower - window, occurred_at__lt=upper,
    ).order_by("occurred_at", "id").values_list("kind", "token", "user_id", "occurred_at")
    # (buyer, product) -> [(click time, surface, version)], in time order.
    clicks: dict[tuple[int, int], list[tuple[datetime, str, str]]] = defaultdict(list)
    for kind, token, user_id, at in events:
        claims = read_token(token)
        if claims is None:
            continue
        buyer = user_id if user_id is not None else claims.user_id
        if kind == EventKind.RECOMMENDATION_CLICK and buyer is not None:
            clicks[(buyer, claims.product_id)].append((at, claims.surface, claims.model_version))
        if at < lower:
            continue
        counted = row(at.astimezone(UTC).date(), claims.surface, claims.model_version)
        if kind == EventKind.RECOMMENDATION_IMPRESSION:
            counted.impressions += 1
        else:
            counted.clicks += 1
    day_gmv: dict[date, Decimal] = defaultdict(Decimal)
    orders = await Order.filter(status__in=PAID, paid_at__gte=lower, paid_at__lt=upper).values_list(
        "buyer_id", "product_id", "total", "paid_at")
    attributed: list[tuple[date, str, str, Decimal]] = []
    for buyer, product, total, paid_at in orders:
        day = paid_at.astimezone(UTC).date()
        day_gmv[day] += total
        history = clicks.get((buyer, product)) if buyer is not None else None
        if not history:
            continue
        at = bisect_right([c[0] for c in history], paid_at)
        if at and paid_at - history[at - 1][0] <= window:
            _, surface, version = history[at - 1]
            attributed.append((day, surface, version, total))
    for day, surface, version, total in attributed:
        counted = row(day, surface, version)
        counted.orders += 1
        counted.gmv += total
    for counted in rows.values():
        counted.day_gmv = day_gmv.get(counted.day, Decimal("0"))
    return sorted(rows.values(), key=lambda r: (r.day, r.surface, r.model_version))
