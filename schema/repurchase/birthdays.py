"""Birthdays in the graph: the viewer's birthday and setting it (the yearly benefit is
granted by a sweep: resolvers/repurchase/birthdays.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from models.repurchase.birthdays import Birthday as BirthdayModel
from resolvers.repurchase import birthdays
from schema.base import UserError, errors_field, mutation
from schema.context import Info


@strawberry.type(description="A birthday, without the year.")
class Birthday:
    month: int = strawberry.field(description="1 to 12.")
    day: int = strawberry.field(description="Day of the month.")
    changed_at: datetime = strawberry.field(description="When it was last set (it can change once a year).")

    @classmethod
    def from_model(cls, b: BirthdayModel) -> Birthday:
        return cls(month=b.month, day=b.day, changed_at=b.changed_at)


@strawberry.input(description="A birthday to set.")
class SetBirthdayInput:
    month: int = strawberry.field(description="1 to 12.")
    day: int = strawberry.field(description="Day of the month (29 February is celebrated on the 28th in other years).")


@strawberry.type(description="Result of `setBirthday`.")
class SetBirthdayPayload:
    errors: list[UserError] = errors_field()
    birthday: Birthday | None = strawberry.field(default=None, description="The birthday as set.")


@strawberry.type(description="The viewer's birthday.")
class BirthdayQueries:
    @strawberry.field(description="The signed-in user's birthday; null if not given.")
    async def my_birthday(self, info: Info) -> Birthday | None:
        found = await birthdays.of(info.context.actor)
        return Birthday.from_model(found) if found is not None else None


@strawberry.type(description="Mutations of birthdays.")
class BirthdayMutations:
    @mutation(description="Give your birthday (month and day) for a yearly benefit (points, once a year). Set freely "
                          "the first time, then changed at most once a year.")
    async def set_birthday(self, info: Info, input: SetBirthdayInput) -> SetBirthdayPayload:
        found = await birthdays.set_birthday(info.context.actor, input.month, input.day)
        return SetBirthdayPayload(birthday=Birthday.from_model(found))
