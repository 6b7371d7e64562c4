"""Feed jobs: fan-out of a new post into followers' cached feeds, and the HOT rank refresh.

``fan_out_post`` is enqueued through the outbox by the transaction that makes a post visible
(created, or released by a moderator), so a post by an account with 100,000 followers costs
its author's request one outbox row; the work happens here, in batches.
"""

from __future__ import annotations

import logging
import time

from kameng.settings import get_settings
from resolvers.community import feeds
from workers.jobs import job

log = logging.getLogger(__name__)


@job(queue="feeds", max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=15 * 60 * 1000)
async def fan_out_post(post_id: int) -> None:
    """First HOT rank of the post, then (with Redis) into its active followers' feeds.
    Idempotent: a re-run writes the same rank and the same sorted-set members."""
    await feeds.rank_post(post_id)
    store = feeds.current_store()
    if store is not None:
        written = await feeds.fan_out(store, post_id)
        log.info("feeds: post %s fanned out to %s feeds", post_id, written)


_last_refresh: list[float] = []


async def sweep_hot_ranks() -> None:
    """Refresh HOT ranks every ``hot_rank_refresh_seconds`` (the scheduler calls more often)."""
    now = time.monotonic()
    if _last_refresh and now - _last_refresh[0] < get_settings().hot_rank_refresh_seconds:
        return
    _last_refresh[:] = [now]
    refreshed = await feeds.refresh_hot_ranks()
    log.debug("feeds: refreshed the HOT rank of %s posts", refreshed)


SWEEPS = (sweep_hot_ranks,)
