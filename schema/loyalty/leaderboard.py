"""The weekly creator leaderboard in the graph.

Apart from creators.py because a rank links to its ``User``, whose type links to
``CreatorStats``: kept in two modules, the type graph's cycle is no import cycle.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.loyalty import leaderboard
from schema.accounts.users import User
from schema.base import Money
from schema.context import Info
from schema.loyalty.creators import cny


@strawberry.type(description="A creator's place on this week's leaderboard.")
class CreatorRank:
    rank: int = strawberry.field(description="1 for the first.")
    attributed_orders: int = strawberry.field(description="Completed orders placed from their posts this week.")
    gmv: Money = strawberry.field(description="What those orders were worth.")
    _user_id: strawberry.Private[int]

    @strawberry.field(description="The creator; null if the account was deactivated.")
    async def user(self, info: Info) -> User | None:
        user = await info.context.loaders.user.load(self._user_id)
        return User.from_model(user) if user is not None and user.is_active else None


@strawberry.type(description="Queries of the creator leaderboard.")
class LeaderboardQueries:
    @strawberry.field(description="This week's creators, by GMV of the completed orders placed from their posts.")
    async def creator_leaderboard(
        self, first: Annotated[int, strawberry.argument(description="How many ranks, 1 to 100.")] = 10
    ) -> list[CreatorRank]:
        ranks = await leaderboard.leaderboard(first)
        return [CreatorRank(rank=r.rank, attributed_orders=r.attributed_orders, gmv=cny(r.gmv), _user_id=r.author_id)
                for r in ranks]
