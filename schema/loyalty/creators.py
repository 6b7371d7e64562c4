"""Creators in the graph: what a user's posts earned from the orders placed from them."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from resolvers.accounts.auth import allowed
from resolvers.loyalty import creators
from schema.base import Money
from schema.context import Info


def cny(amount: Decimal) -> Money:
    return Money(amount=Decimal(amount).quantize(Decimal("0.01")), currency="CNY")


@strawberry.type(description="Orders placed from the user's posts that completed, and what they earned.")
class CreatorStats:
    attributed_orders: int = strawberry.field(description="Completed orders placed from the user's posts.")
    gmv: Money = strawberry.field(description="What those orders were worth (their totals).")
    commission: Money = strawberry.field(description="The user's earned share of the platform fee on them.")


async def creator_stats_of(info: Info, user_id: int) -> CreatorStats | None:
    """`User.creatorStats`: to the user themself and to staff."""
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    s = await creators.stats(info.context.actor, user_id)
    return CreatorStats(attributed_orders=s.attributed_orders, gmv=cny(s.gmv), commission=cny(s.commission))
