"""Community jobs: a published post's fan-out, and the HOT rank sweep.

``fan_out_post`` is enqueued through the outbox by the transaction that makes a post visible
(created, or released by a moderator), so a post by an account with 100,000 followers costs
its author's request one outbox row; the work happens here, in batches
(``resolvers.community.fanout.publish``).
"""

from __future__ import annotations

import logging
import time

from kameng.settings import get_settings
from resolvers.community import fanout, ranking
from workers.jobs import job

log = logging.getLogger(__name__)


@job(queue="feeds", max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=15 * 60 * 1000)
async def fan_out_post(post_id: int) -> None:
    await fanout.publish(post_id)


_last_refresh: list[float] = []


async def sweep_hot_ranks() -> None:
    """Refresh HOT ranks every ``hot_rank_refresh_seconds`` (the scheduler calls more often)."""
    now = time.monotonic()
    if _last_refresh and now - _last_refresh[0] < get_settings().hot_rank_refresh_seconds:
        return
    _last_refresh[:] = [now]
    refreshed = await ranking.refresh_hot_ranks()
    log.debug("feeds: refreshed the HOT rank of %s posts", refreshed)


SWEEPS = (sweep_hot_ranks,)
