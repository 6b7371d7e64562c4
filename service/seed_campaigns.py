"""The demo's campaigns and surveys (`kameng seed --demo`, after service/seed_history.py): segment
sizes week by week over the history, one win-back campaign sent sixty days ago to the shoppers
then silent or lapsed (with its control group, opens and clicks), and answered post-purchase
surveys, so that the report's segment-size, uplift and NPS sections have something to show.

Written directly and dated back, like the history (the use cases stamp the present). The
history's orders do not react to the campaign, so its uplift is honest noise around zero.
Deterministic: a fixed seed.
"""

from __future__ import annotations

import random
from datetime import timedelta

from kameng import clock
from models.accounts.notifications import Notification
from models.lifecycle.campaigns import Arm, AudienceKind, Campaign, CampaignMember
from models.lifecycle.segments import Stage
from models.lifecycle.surveys import Survey
from models.commerce.orders import Order, OrderStatus
from resolvers.lifecycle import campaigns, rfm, segments
from service.seed_history import MONTHS

SEED = 20260413
SENT_DAYS_AGO = 60


async def build_campaign_history(staff_user_id: int) -> int:
    """Write the demo's segment sizes, campaign and surveys; returns the campaign's members."""
    rng = random.Random(SEED)
    await segments.ensure_default_rules()
    now = clock.now()
    await rfm.backfill_sizes([(now - timedelta(weeks=w)).date() for w in range(MONTHS * 4, 0, -1)])
    await rfm.recompute_all()
    await segments.record_sizes()

    sent_at = now - timedelta(days=SENT_DAYS_AGO)
    campaign = await Campaign.create(
        name="Win back the silent (demo)", title="We saved you a gift", body="20 points to spend on your next order.",
        audience=AudienceKind.SEGMENT, segment_key="silent", starts_at=sent_at, ends_at=sent_at + timedelta(days=1),
        control_percent=20, conversion_days=30, created_by_id=staff_user_id, last_run_at=sent_at,
    )
    audience = []
    for user_id, rows in (await rfm.purchases()).items():
        before = [(when, total) for when, total in rows if when < sent_at]
        if before:
            summary = rfm.summarise(user_id, before, sent_at)
            if rfm.stage_of(summary.frequency, summary.recency_days) in (Stage.SILENT, Stage.LAPSED):
                audience.append(user_id)
    await CampaignMember.bulk_create([CampaignMember(
        campaign_id=campaign.id, user_id=user_id, assigned_at=sent_at,
        arm=Arm.CONTROL if campaigns.held_out(campaign, user_id) else Arm.TREATMENT,
        delivered_at=None if campaigns.held_out(campaign, user_id) else sent_at + timedelta(seconds=2),
    ) for user_id in sorted(audience)], batch_size=500)
    treated = list(await CampaignMember.filter(campaign_id=campaign.id, arm=Arm.TREATMENT))
    await Notification.bulk_create([Notification(
        user_id=m.user_id, kind=campaigns.NOTIFICATION_KIND, title=campaign.title, body=campaign.body,
        data={"campaign": campaign.id, "offer": campaign.offer.value}, dedupe_key=f"campaign:{m.id}",
        created_at=sent_at, read_at=sent_at + timedelta(hours=rng.uniform(1, 48)) if rng.random() < 0.45 else None,
    ) for m in treated], batch_size=500)
    notes = dict(await Notification.filter(dedupe_key__in=[f"campaign:{m.id}" for m in treated])
                 .values_list("dedupe_key", "id"))
    for m in treated:
        clicked = sent_at + timedelta(hours=rng.uniform(1, 72)) if rng.random() < 0.15 else None
        await CampaignMember.filter(id=m.id).update(notification_id=notes.get(f"campaign:{m.id}"), clicked_at=clicked)

    # Post-purchase surveys of the last months' orders, a third of them answered.
    orders = await Order.filter(status=OrderStatus.COMPLETED, delivered_at__gte=now - timedelta(days=180),
                                delivered_at__lt=now - timedelta(days=8), order_no__startswith="H").values(
        "id", "buyer_id", "delivered_at")
    surveys = []
    for order in orders:
        asked = order["delivered_at"] + timedelta(days=7)
        answered = rng.random() < 0.35
        score = rng.choices(range(11), weights=[1, 1, 1, 1, 2, 3, 4, 8, 12, 10, 9])[0] if answered else None
        surveys.append(Survey(order_id=order["id"], user_id=order["buyer_id"], asked_at=asked, score=score,
                              answered_at=asked + timedelta(hours=rng.uniform(1, 30)) if answered else None))
    await Survey.bulk_create(surveys, batch_size=500)
    return len(audience)
