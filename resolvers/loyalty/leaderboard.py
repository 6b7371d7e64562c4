"""The weekly creator leaderboard: authors ranked by the GMV of the completed orders placed
from their posts since Monday 00:00 (``KAMENG_LOYALTY_TIMEZONE``). Read from the orders
themselves, so it needs no bookkeeping of its own; an author buying from their own post is
not credited (as in creators.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tortoise.functions import Count, Sum

from kameng import clock
from kameng.settings import get_settings
from models.commerce.orders import Order, OrderStatus
from models.community.posts import Post
from resolvers.commerce import ledger
from resolvers.errors import invalid

LEADERBOARD_MAX = 100


@dataclass(frozen=True)
class CreatorRank:
    rank: int
    author_id: int
    attributed_orders: int
    gmv: Decimal


async def leaderboard(first: int = 10, at: datetime | None = None) -> list[CreatorRank]:
    """This week's creators (Monday 00:00 in the loyalty timezone), by GMV of the completed
    orders placed from their posts, then by order count, then by who got there first (id)."""
    if not 1 <= first <= LEADERBOARD_MAX:
        raise invalid("first", f"first must be between 1 and {LEADERBOARD_MAX}.")
    since = clock.week_start(at or clock.now(), get_settings().loyalty_timezone)
    per_post = await Order.filter(
        status=OrderStatus.COMPLETED, from_post_id__isnull=False, completed_at__gte=since
    ).group_by("from_post_id", "buyer_id").annotate(n=Count("id"), gmv=Sum("total")).values(
        "from_post_id", "buyer_id", "n", "gmv"
    )
    if not per_post:
        return []
    authors = dict(
        await Post.filter(id__in=[row["from_post_id"] for row in per_post]).values_list("id", "author_id")
    )
    totals: dict[int, list[Decimal | int]] = {}
    for row in per_post:
        author = authors.get(row["from_post_id"])
        if author is None or author == row["buyer_id"]:
            continue  # an author buying from their own post is not credited
        entry = totals.setdefault(author, [0, Decimal("0")])
        entry[0] = int(entry[0]) + int(row["n"])
        entry[1] = Decimal(entry[1]) + Decimal(row["gmv"] or 0)
    ordered = sorted(totals.items(), key=lambda item: (-Decimal(item[1][1]), -int(item[1][0]), item[0]))[:first]
    return [
        CreatorRank(i + 1, author, int(n), Decimal(gmv).quantize(ledger.CENT))
        for i, (author, (n, gmv)) in enumerate(ordered)
    ]
