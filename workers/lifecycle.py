"""Lifecycle jobs: a buyer's RFM and segment after each completed or refunded order (or
every buyer's after a rule edit), the churn model's fit and scores, and their sweeps
(resolvers/lifecycle/rfm.py and churn.py decide)."""

from __future__ import annotations

import logging
import time

from kameng.settings import get_settings
from resolvers.lifecycle import campaigns, churn, rfm, segments, surveys
from workers.jobs import job

log = logging.getLogger(__name__)


@job(queue="default", max_retries=5)
async def refresh_rfm(user_id: int | None = None) -> None:
    if user_id is None:
        await rfm.recompute_all()
    else:
        await rfm.recompute_user(int(user_id))


@job(queue="default", max_retries=3)
async def fit_churn() -> None:
    await churn.fit_and_score()


@job(queue="default", max_retries=5)
async def send_campaign_message(member_id: int) -> None:
    await campaigns.deliver(int(member_id))


# -- the sweeps (counted from process start, like the tier sweep) ---------------------------

_last = {"rfm": time.monotonic(), "churn": time.monotonic(), "campaigns": time.monotonic()}


async def sweep_rfm() -> int:
    """Every ``KAMENG_RFM_SWEEP_SECONDS``: every buyer's RFM, stage and segment (recency moves
    with time alone, so a buyer with no new order still changes stage)."""
    if time.monotonic() - _last["rfm"] < get_settings().rfm_sweep_seconds:
        return 0
    _last["rfm"] = time.monotonic()
    scored = await rfm.recompute_all()
    await segments.record_sizes()  # the day's segment sizes, for the report
    return scored


async def sweep_churn() -> int:
    """Every ``KAMENG_CHURN_FIT_SECONDS``: refit the churn model and score every buyer."""
    if time.monotonic() - _last["churn"] < get_settings().churn_fit_seconds:
        return 0
    _last["churn"] = time.monotonic()
    scored = await churn.fit_and_score()
    log.info("churn sweep: %s buyers scored", scored)
    return scored


async def sweep_campaigns() -> int:
    """Every ``KAMENG_CAMPAIGN_SWEEP_SECONDS``: run every active campaign (triggers included)
    and ask the post-purchase surveys that are due."""
    if time.monotonic() - _last["campaigns"] < get_settings().campaign_sweep_seconds:
        return 0
    _last["campaigns"] = time.monotonic()
    return await campaigns.run_due() + await surveys.ask_due()


SWEEPS = (sweep_rfm, sweep_churn, sweep_campaigns)
