"""Repurchase jobs: a plan's renewal (resolvers/repurchase/renewals.py decides), and the
sweeps that claim due renewals, send reminders and renewal offers, and grant birthdays."""

from __future__ import annotations

from resolvers.repurchase import birthdays, reminders, renewals
from workers.jobs import job


@job(queue="renewals", max_retries=5, min_backoff=1_000, max_backoff=60_000)
async def renew_plan(renewal_id: int) -> None:
    await renewals.renew(renewal_id)


#: Run by workers/scheduler.py.
SWEEPS = (renewals.sweep, reminders.sweep, birthdays.sweep)
