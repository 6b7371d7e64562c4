"""The current time in one place, so that tests can move time (check-in days, coupon windows, tier
windows) without patching ``datetime`` globally.

Code that reasons about calendar days or validity windows calls ``clock.now()``; tests call
``clock.set(...)`` (a fixed instant or a function) and ``clock.reset()`` afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def _system() -> datetime:
    return datetime.now(UTC)


_now: Callable[[], datetime] = _system


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return _now()


def set(value: datetime | Callable[[], datetime]) -> None:  # noqa: A001 - the clock's verb
    """Freeze the clock at ``value`` (aware) or let ``value()`` tell the time."""
    global _now
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("the clock is timezone-aware")
        fixed = value.astimezone(UTC)
        _now = lambda: fixed  # noqa: E731
    else:
        _now = value


def reset() -> None:
    global _now
    _now = _system


def local_day(at: datetime, timezone: str) -> date:
    """The calendar day of ``at`` in ``timezone`` (e.g. Asia/Shanghai)."""
    return at.astimezone(ZoneInfo(timezone)).date()


def day_start(day: date, timezone: str) -> datetime:
    """The first instant (UTC) of calendar day ``day`` in ``timezone``."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def week_start(at: datetime, timezone: str) -> datetime:
    """Monday 00:00 of the week of ``at`` in ``timezone``, as UTC."""
    day = local_day(at, timezone)
    return day_start(day - timedelta(days=day.weekday()), timezone)
