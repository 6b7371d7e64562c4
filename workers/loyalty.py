"""Loyalty jobs: the loyalty-event actor (resolvers/loyalty/events.py does the work) and the
periodic tier sweep."""

from __future__ import annotations

import logging
import time
from typing import Any

from kameng.settings import get_settings
from resolvers.loyalty import events, tiers
from workers.jobs import job

log = logging.getLogger(__name__)


@job(queue="default", max_retries=10, min_backoff=500, max_backoff=60_000)
async def loyalty_event(user_id: int, event: str, reference: str, **extra: Any) -> None:
    await events.handle(int(user_id), str(event), str(reference), **extra)


# -- the tier sweep --------------------------------------------------------------------------

_last_tier_sweep = time.monotonic()


async def sweep_tiers() -> int:
    """Every ``KAMENG_TIER_SWEEP_SECONDS`` (counted from process start), recompute tiers: a
    user whose 12 months no longer reach their tier moves down and is told."""
    global _last_tier_sweep
    if time.monotonic() - _last_tier_sweep < get_settings().tier_sweep_seconds:
        return 0
    _last_tier_sweep = time.monotonic()
    changed = await tiers.recompute_all()
    if changed:
        log.info("tier sweep: %s users changed tier", changed)
    return changed


SWEEPS = (sweep_tiers,)
