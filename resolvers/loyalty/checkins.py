"""The daily check-in: points, more for a streak of consecutive days, and the task progress
it makes, in one transaction.

It sits above both the points ledger and the task center (it posts to the one and counts a
``CHECK_IN`` event towards the other), so neither of those needs to know about it. The check-in
rows themselves are ``models.loyalty.points.CheckIn``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from tortoise.exceptions import IntegrityError

from kameng.settings import get_settings
from models.discovery.events import EventKind
from models.loyalty.points import CheckIn
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.loyalty import points, tasks
from subscriptions import outbox

CHECK_IN = "CHECK_IN"  # the loyalty event a check-in counts towards tasks


def check_in_points(streak: int) -> int:
    settings = get_settings()
    bonus = min(settings.points_check_in_streak_bonus * (streak - 1), settings.points_check_in_streak_bonus_max)
    return settings.points_check_in + max(bonus, 0)


@dataclass(frozen=True)
class CheckedIn:
    points: int
    streak: int
    day: date
    balance: int  # after the check-in and the tasks it completed


async def check_in(actor: Actor) -> CheckedIn:
    """Once per calendar day (``KAMENG_LOYALTY_TIMEZONE``): points, more for a streak of
    consecutive days; a missed day starts the streak again. A second check-in on the same
    day, even a concurrent one, is DUPLICATE (the unique (user, day) row decides). The task
    progress it makes (DAILY_CHECK_IN) is rewarded in the same transaction, so the balance
    returned includes it."""
    user = require(actor)
    day = points.today()
    async with outbox.atomic():
        await points.lock(user.id)
        if await CheckIn.filter(user_id=user.id, day=day).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "You have checked in today already.")
        previous = await CheckIn.filter(user_id=user.id, day=day - timedelta(days=1)).first()
        streak = previous.streak + 1 if previous is not None else 1
        awarded = check_in_points(streak)
        try:  # no savepoint: a concurrent check-in's row rolls all of this back anyway
            await CheckIn.create(user_id=user.id, day=day, streak=streak, points=awarded)
        except IntegrityError:
            raise UserFacingError(ErrorCode.DUPLICATE, "You have checked in today already.") from None
        await points.post(user.id, "check_in", day.isoformat(), awarded, f"check-in, day {streak} of a streak")
        await tasks.record_event(user.id, CHECK_IN, f"check_in:{day.isoformat()}")
        await outbox.track(EventKind.CHECKED_IN, f"check_in:{user.id}:{day.isoformat()}", user_id=user.id)
    return CheckedIn(awarded, streak, day, await points.balance(user.id))


async def current_streaks(user_ids: list[int]) -> list[int]:
    """Batch load for DataLoaders: each user's streak that is still alive (checked in today
    or yesterday), else 0; in the order asked."""
    day = points.today()
    rows = await CheckIn.filter(user_id__in=user_ids, day__gte=day - timedelta(days=1)).order_by("day")
    alive = {row.user_id: row.streak for row in rows}  # ascending days: the latest wins
    return [alive.get(i, 0) for i in user_ids]
