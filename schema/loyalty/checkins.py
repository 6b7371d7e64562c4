"""The daily check-in in the graph."""

from __future__ import annotations

import strawberry

from resolvers.loyalty import checkins
from schema.base import UserError, mutation, errors_field
from schema.context import Info


@strawberry.input(description="Nothing to say: a check-in is the viewer's, today.")
class CheckInInput:
    client_mutation_id: str | None = strawberry.field(default=None, description="Unused; kept for old clients.")


@strawberry.type(description="Result of `checkIn` (DUPLICATE if already checked in today).")
class CheckInPayload:
    errors: list[UserError] = errors_field()
    points_awarded: int | None = strawberry.field(default=None, description="Points awarded, streak bonus included.")
    streak: int | None = strawberry.field(default=None, description="Consecutive days checked in, today included.")
    balance: int | None = strawberry.field(default=None, description="Points balance afterwards.")


@strawberry.type(description="Mutations of daily check-in.")
class CheckInMutations:
    @mutation(description="Once a day; consecutive days build a streak bonus.")
    async def check_in(self, info: Info, input: CheckInInput | None = None) -> CheckInPayload:
        done = await checkins.check_in(info.context.actor)
        return CheckInPayload(points_awarded=done.points, streak=done.streak, balance=done.balance)
