"""Points in the graph: a user's balance and history, and the perks points buy."""

from __future__ import annotations

from datetime import datetime

import strawberry

from models.loyalty.points import PointsEntry as PointsEntryModel
from resolvers.accounts.auth import allowed
from resolvers.loyalty import points
from schema.base import Connection
from schema.context import Info


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
    code: str
    title: str
    points_price: int
    days: int

    @classmethod
    def of(cls, perk: points.Perk) -> Perk:
        return cls(code=perk.code, title=perk.title, points_price=perk.points_price, days=perk.days)
