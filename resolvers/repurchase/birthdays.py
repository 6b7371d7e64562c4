"""Birthdays: an optional month and day, and a yearly benefit granted once.

The rule against farming: a birthday is set freely the first time, then changed at most
once in 365 days, and the benefit is granted once per user and calendar year
(``BirthdayGrant`` unique per (user, year), written with the points), whatever the changes.
The day is the loyalty calendar's (``KAMENG_LOYALTY_TIMEZONE``); a 29 February birthday is
kept on 28 February in other years.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery

from kameng.settings import get_settings
from models.repurchase.birthdays import Birthday, BirthdayGrant
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.loyalty import points
from subscriptions import outbox

CHANGE_EVERY = timedelta(days=365)
BATCH = 1000
RULE = "birthday"


async def set_birthday(actor: Actor, month: int, day: int) -> Birthday:
    user = require(actor)
    if not 1 <= month <= 12:
        raise invalid("month", "A month is 1 to 12.")
    if not 1 <= day <= calendar.monthrange(2000, month)[1]:  # 2000: a leap year, 29 February exists
        raise invalid("day", "No such day in that month.")
    now = datetime.now(UTC)
    current = await Birthday.filter(user_id=user.id).first()
    if current is not None:
        if (current.month, current.day) == (month, day):
            return current
        if now - current.changed_at < CHANGE_EVERY:
            raise UserFacingError(
                ErrorCode.INVALID_STATE,
                f"A birthday can be changed once a year: next on {(current.changed_at + CHANGE_EVERY):%Y-%m-%d}.",
                "month",
            )
        if await Birthday.filter(id=current.id, changed_at=current.changed_at).update(
            month=month, day=day, changed_at=now
        ) != 1:
            raise UserFacingError(ErrorCode.INVALID_STATE, "Your birthday changed meanwhile.", "month")
        return await Birthday.get(id=current.id)
    try:
        return await Birthday.create(user_id=user.id, month=month, day=day, changed_at=now)
    except IntegrityError:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Your birthday was set meanwhile.", "month") from None


async def of(actor: Actor) -> Birthday | None:
    user = require(actor)
    return await Birthday.filter(user_id=user.id).first()


def celebrated_on(today: date) -> list[tuple[int, int]]:
    """The (month, day) birthdays celebrated ``today``."""
    days = [(today.month, today.day)]
    if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
        days.append((2, 29))
    return days


async def grant(user_id: int, year: int) -> bool:
    """The year's benefit, once: points (``KAMENG_POINTS_BIRTHDAY``) and a notification."""
    amount = get_settings().points_birthday
    async with outbox.atomic():
        try:
            async with outbox.atomic():
                await BirthdayGrant.create(user_id=user_id, year=year, points=amount)
        except IntegrityError:
            return False
        if amount:
            await points.post(user_id, RULE, f"birthday:{year}", amount, "happy birthday")
        await notifications.notify(
            user_id, "BIRTHDAY", "Happy birthday!",
            f"{amount} points are in your account, with our best wishes." if amount else "With our best wishes.",
            {"year": year, "points": amount}, dedupe_key=f"birthday:{user_id}:{year}",
        )
    return True


async def sweep(today: date | None = None) -> int:
    """Grant today's birthdays not granted yet this year (run by every worker; idempotent)."""
    today = today or points.today()
    granted = 0
    for month, day in celebrated_on(today):
        while True:
            done = Subquery(BirthdayGrant.filter(year=today.year).values("user_id"))
            user_ids = await Birthday.filter(month=month, day=day).exclude(user_id__in=done).limit(BATCH).values_list(
                "user_id", flat=True
            )
            for user_id in user_ids:
                granted += await grant(user_id, today.year)
            if len(user_ids) < BATCH:
                break
    return granted
