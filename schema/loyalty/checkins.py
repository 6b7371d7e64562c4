"""The daily check-in in the graph."""

from __future__ import annotations

import strawberry

from resolvers.loyalty import checkins
from schema.base import UserError, mutation, errors_field
from schema.context import Info


@strawberry.input
class CheckInInput:
    client_mutation_id: str | None = None


@strawberry.type
class CheckInPayload:
    errors: list[UserError] = errors_field()
    points_awarded: int | None = None
    streak: int | None = None
    balance: int | None = None


@strawberry.type
class CheckInMutations:
    @mutation(description="Once a day; consecutive days build a streak bonus.")
    async def check_in(self, info: Info, input: CheckInInput | None = None) -> CheckInPayload:
        done = await checkins.check_in(info.context.actor)
        return CheckInPayload(points_awarded=done.points, streak=done.streak, balance=done.balance)
