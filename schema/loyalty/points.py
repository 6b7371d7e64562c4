"""Points in the graph: a user's balance and history, and the perks points buy."""

from __future__ import annotations

from datetime import datetime

import strawberry

from models.loyalty.points import PointsEntry as PointsEntryModel
from resolvers.accounts.auth import allowed
from resolvers.loyalty import points
from schema.base import After, Before, Connection, First, Last
from schema.context import Info


@strawberry.type(description="One award or spend of points.")
class PointsEntry:
    amount: int = strawberry.field(description="Points: positive for an award, negative for a spend.")
    rule: str = strawberry.field(
        description="Why, as a stable lower-case code, e.g. `purchase`, `check_in`, `review`, `reward`, `order`."
    )
    reference: str = strawberry.field(description="What it is for, e.g. an order; one entry per rule and reference.")
    memo: str = strawberry.field(description="A note for people; may be empty.")
    created_at: datetime = strawberry.field(description="When.")

    @classmethod
    def from_model(cls, entry: PointsEntryModel) -> PointsEntry:
        return cls(amount=entry.amount, rule=entry.rule, reference=entry.reference, memo=entry.memo,
                   created_at=entry.created_at)


@strawberry.type(description="A user's points: the balance is the sum of the history.")
class Points:
    balance: int = strawberry.field(description="Points available to spend.")
    earned_total: int = strawberry.field(description="Points ever awarded (spending does not lower it).")
    check_in_streak: int = strawberry.field(description="Consecutive days checked in, up to today.")
    _user_id: strawberry.Private[int]

    @strawberry.field(description="Entries, newest first.")
    async def history(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[PointsEntry]:
        page = await points.history(
            info.context.actor, self._user_id, first=first, after=after, last=last, before=before
        )
        return Connection.of(page, PointsEntry.from_model)


async def points_of(info: Info, user_id: int) -> Points | None:
    """`User.points`: to the user themself and to staff."""
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    row = await info.context.loaders.points_balance.load(user_id)
    return Points(
        balance=row.balance if row else 0,
        earned_total=row.earned_total if row else 0,
        check_in_streak=await info.context.loaders.check_in_streak.load(user_id),
        _user_id=user_id,
    )


@strawberry.type(description="A non-price perk bought with points.")
class Perk:
    code: str = strawberry.field(description="Stable code, e.g. PRIORITY_SUPPORT: pass it to `redeemReward`.")
    title: str = strawberry.field(description="What it gives, in English.")
    points_price: int = strawberry.field(description="Its price in points.")
    days: int = strawberry.field(description="How long it lasts once bought, days.")

    @classmethod
    def of(cls, perk: points.Perk) -> Perk:
        return cls(code=perk.code, title=perk.title, points_price=perk.points_price, days=perk.days)
