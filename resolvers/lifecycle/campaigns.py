"""Win-back campaigns (issue 12 item 3): staff (ADMIN) define an audience, an offer, a message,
a channel, a schedule and quiet hours; a run sends to the audience, holds a control group out,
and caps marketing messages across every campaign.

A **run** (the sweep every ``KAMENG_CAMPAIGN_SWEEP_SECONDS``, or ``runCampaign``) does nothing
outside the campaign's window or inside its quiet hours (local hours in its time zone, Asia/
Shanghai by default). Otherwise, for each user of the audience not yet in the campaign:

* **Control group**: the user's bucket (GrowthBook's hash of ``user:<id>`` under the seed
  ``campaign:<id>``, resolvers/lifecycle/experiments.bucket) below ``control_percent`` holds
  them out: deterministic per user and campaign, stored as a CONTROL member, never messaged.
  Only users the cap would let through are held out, so both arms are alike.
* **Frequency cap**: in one transaction the TREATMENT member is inserted (unique per campaign
  and user: a re-run, or two runs at once, send nothing twice) and the user's ``MarketingCap``
  row is updated on the condition that its ``last_sent_at`` is older than
  ``KAMENG_MARKETING_CAP_DAYS``. The row count decides: 0 rolls the member back (the user is
  tried again at the next run). On PostgreSQL a concurrent update of the same row waits for the
  first to commit and then re-checks the condition against the new value, so of two campaigns
  sending to one user at the same moment exactly one sends; SQLite runs one writer at a time.
* The offer (a coupon, points, or a perk such as PRIORITY_SUPPORT) is granted in the same
  transaction, and the message leaves through the outbox: one ``send_campaign_message`` job per
  message, which the channel's sender delivers (in-app: a notification) and marks delivered.

A user who turned marketing messages off (``setMarketingMessages``) is left out of the run
before the arms are drawn -- neither messaged nor held out, so both arms stay alike -- and a
message queued before they turned it off is not delivered.

Tracking and uplift live in resolvers/lifecycle/campaign_results.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from kameng import clock
from kameng.settings import get_settings
from models.accounts.notifications import Notification
from models.accounts.users import User
from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent, EventKind
from models.lifecycle.campaigns import (
    Arm, AudienceKind, Campaign, CampaignMember, CampaignStatus, Channel, MarketingCap, OfferKind,
)
from models.lifecycle.churn import ChurnScore, RiskBand
from models.lifecycle.segments import BuyerRfm, SegmentRule
from models.loyalty.coupons import Coupon
from models.repurchase.plans import PlanStatus, ProductPlan
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action, allowed, require, require_signed_in
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.lifecycle.experiments import bucket
from resolvers.loyalty import coupons, points
from subscriptions import jobs, outbox

VISITS = (EventKind.PAGE_VISIT, EventKind.PRODUCT_VIEW)
#: An AFTER_DELIVERY trigger takes deliveries from ``trigger_days`` to this many days more ago.
TRIGGER_WINDOW_DAYS = 2
NOTIFICATION_KIND = "CAMPAIGN"
_HELD = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)


@dataclass(frozen=True)
class NewCampaign:
    """A campaign's definition; None takes the default (settings for zone and control share)."""

    name: str
    title: str
    audience: AudienceKind
    body: str = ""
    segment_key: str | None = None
    risk_band: str | None = None
    trigger_days: int | None = None
    offer: OfferKind = OfferKind.NONE
    coupon_id: int | None = None
    points: int | None = None
    benefit: str | None = None
    channel: Channel = Channel.IN_APP
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    quiet_start_hour: int = 22
    quiet_end_hour: int = 8
    timezone: str | None = None
    control_percent: int | None = None
    conversion_days: int = 7


async def _validated(spec: NewCampaign) -> dict[str, Any]:
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    for name, limit in (("name", 80), ("title", 120), ("body", 1000)):
        values[name] = " ".join(str(values[name]).split()) if name != "body" else str(values[name]).strip()
        if len(values[name]) > limit or (name != "body" and not values[name]):
            raise invalid(name, f"Give 1 to {limit} characters." if name != "body" else f"At most {limit} characters.")
    audience = spec.audience
    if audience == AudienceKind.SEGMENT:
        if not spec.segment_key or len(spec.segment_key) > 64 or not await SegmentRule.filter(
            key=spec.segment_key
        ).exists():
            raise invalid("segmentKey", "Give the key of an existing segment rule.")
    elif audience == AudienceKind.RISK_BAND:
        if spec.risk_band not in {band.value for band in RiskBand}:
            raise invalid("riskBand", "Give LOW, MEDIUM or HIGH.")
    elif spec.trigger_days is None or not 0 <= spec.trigger_days <= 3650:
        raise invalid("triggerDays", "Give the trigger's number of days (0 to 3650).")
    if spec.offer == OfferKind.COUPON and (spec.coupon_id is None or not await Coupon.filter(id=spec.coupon_id).exists()):
        raise invalid("couponId", "Give an existing coupon.")
    if spec.offer == OfferKind.POINTS and not (spec.points and 0 < spec.points <= 1_000_000):
        raise invalid("points", "Give 1 to 1000000 points.")
    if spec.offer == OfferKind.BENEFIT and spec.benefit not in points.PERKS:
        raise invalid("benefit", f"Give a perk: {', '.join(points.PERKS)}.")
    for name in ("quiet_start_hour", "quiet_end_hour"):
        if not 0 <= values[name] <= 23:
            raise invalid("quietStartHour" if name == "quiet_start_hour" else "quietEndHour", "Give an hour, 0 to 23.")
    # Only what the audience and offer use is kept (an unused field may hold anything).
    values["segment_key"] = spec.segment_key if audience == AudienceKind.SEGMENT else None
    values["risk_band"] = spec.risk_band if audience == AudienceKind.RISK_BAND else None
    values["benefit"] = spec.benefit if spec.offer == OfferKind.BENEFIT else None
    values["timezone"] = spec.timezone or get_settings().campaign_timezone
    if len(values["timezone"]) > 64:
        raise invalid("timezone", "Give an IANA time zone, e.g. Asia/Shanghai.")
    try:
        ZoneInfo(values["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("timezone", "Give an IANA time zone, e.g. Asia/Shanghai.") from None
    if values["control_percent"] is None:
        values["control_percent"] = get_settings().campaign_control_percent
    if not 0 <= values["control_percent"] <= 50:
        raise invalid("controlPercent", "Hold out 0 to 50 percent.")
    if not 1 <= spec.conversion_days <= 365:
        raise invalid("conversionDays", "Give 1 to 365 days.")
    values["starts_at"] = spec.starts_at or clock.now()
    if spec.ends_at is not None and spec.ends_at <= values["starts_at"]:
        raise invalid("endsAt", "The campaign ends after it starts.")
    return values


async def create(actor: Actor, spec: NewCampaign) -> Campaign:
    user = require(actor, Action.MANAGE_CAMPAIGNS)
    values = await _validated(spec)
    return await Campaign.create(**values, created_by_id=user.id)


async def set_status(actor: Actor, campaign_id: int, status: CampaignStatus) -> Campaign:
    """Pause or resume a campaign (a paused one sends nothing)."""
    require(actor, Action.MANAGE_CAMPAIGNS)
    if await Campaign.filter(id=campaign_id).update(status=status) != 1:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such campaign.", "id")
    return await Campaign.get(id=campaign_id)


async def list_all(actor: Actor) -> list[Campaign]:
    """Every campaign, newest first, for staff allowed its results; nothing for anyone else."""
    if not allowed(actor, Action.READ_CAMPAIGN_RESULTS):
        return []
    return list(await Campaign.all().order_by("-id"))


# -- who ---------------------------------------------------------------------------------


def in_quiet_hours(campaign: Campaign, at: datetime) -> bool:
    """Whether ``at`` falls in the campaign's quiet hours (start inclusive, end exclusive;
    equal hours: none)."""
    start, end = campaign.quiet_start_hour, campaign.quiet_end_hour
    if start == end:
        return False
    hour = at.astimezone(ZoneInfo(campaign.timezone)).hour
    return start <= hour < end if start < end else hour >= start or hour < end


def held_out(campaign: Campaign, user_id: int) -> bool:
    """In the control group: deterministic per (user, campaign)."""
    return bucket(f"campaign:{campaign.id}", f"user:{user_id}") * 100 < campaign.control_percent


async def _user_ids(query: Any, column: str) -> set[int]:
    return {int(v) for v in await query.distinct().values_list(column, flat=True) if v is not None}


async def audience(campaign: Campaign, now: datetime) -> list[int]:
    """The users the campaign is for, now."""
    kind = campaign.audience
    if kind == AudienceKind.SEGMENT:
        rule = await SegmentRule.filter(key=campaign.segment_key).first()
        users = set() if rule is None else await _user_ids(BuyerRfm.filter(segment_rule_id=rule.id), "user_id")
    elif kind == AudienceKind.RISK_BAND:
        users = await _user_ids(ChurnScore.filter(band=campaign.risk_band), "user_id")
    else:
        days = timedelta(days=campaign.trigger_days or 0)
        if kind == AudienceKind.NO_VISIT:
            visits = BehaviourEvent.filter(kind__in=VISITS, user_id__isnull=False)
            users = (await _user_ids(visits.filter(occurred_at__lt=now - days), "user_id")
                     - await _user_ids(visits.filter(occurred_at__gte=now - days), "user_id"))
        elif kind == AudienceKind.EXPIRING:  # a delivered item's validity, or a plan that will not renew
            users = (await _user_ids(Order.filter(status__in=_HELD, valid_until__gt=now, valid_until__lte=now + days),
                                     "buyer_id")
                     | await _user_ids(ProductPlan.filter(status=PlanStatus.ACTIVE, auto_renew=False,
                                                          next_renewal_at__gt=now, next_renewal_at__lte=now + days),
                                       "buyer_id"))
        else:  # AFTER_DELIVERY
            users = await _user_ids(Order.filter(
                status__in=_HELD, delivered_at__lte=now - days,
                delivered_at__gt=now - days - timedelta(days=TRIGGER_WINDOW_DAYS)), "buyer_id")
    return sorted(users)


# -- sending -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    sent: int = 0
    held_out: int = 0
    capped: int = 0
    skipped: int = 0  # already in the campaign (sent or held out by an earlier or concurrent run)
    opted_out: int = 0  # turned marketing messages off: left out of both arms
    quiet: bool = False


class _Capped(Exception):
    """The user had a marketing message within the cap: roll this user's send back."""


async def _grant(campaign: Campaign, user_id: int) -> None:
    reference = f"campaign:{campaign.id}"
    if campaign.offer == OfferKind.COUPON and campaign.coupon_id is not None:
        await coupons.issue_one(campaign.coupon_id, user_id, reference)  # none left: the message still goes
    elif campaign.offer == OfferKind.POINTS and campaign.points:
        await points.post(user_id, "campaign", reference, campaign.points, campaign.name)
    elif campaign.offer == OfferKind.BENEFIT and campaign.benefit in points.PERKS:
        # A perk is held while a "perk" entry of its code is recent (points.has_perk): a gift costs 0.
        await points.post(user_id, "perk", f"{campaign.benefit}:{reference}", 0, campaign.name)


async def _opted_out(user_ids: list[int]) -> set[int]:
    """Those of ``user_ids`` who turned marketing messages off (in chunks: an audience may be
    larger than a statement's parameter limit)."""
    found: set[int] = set()
    for start in range(0, len(user_ids), 500):
        found.update(await User.filter(id__in=user_ids[start:start + 500], marketing=False).values_list("id", flat=True))
    return found


async def set_marketing(actor: Actor, enabled: bool) -> bool:
    """The signed-in user takes marketing messages, or not; returns the choice now in force."""
    user = require_signed_in(actor)
    await User.filter(id=user.id).update(marketing=enabled)
    user.marketing = enabled
    return enabled


async def _capped(user_id: int, cutoff: datetime) -> bool:
    return await MarketingCap.filter(user_id=user_id, last_sent_at__gt=cutoff).exists()


async def run(campaign_id: int) -> RunResult:
    """Send the campaign to its audience now (see the module's docstring); safe to repeat."""
    now = clock.now()
    campaign = await Campaign.filter(id=campaign_id).first()
    if (campaign is None or campaign.status != CampaignStatus.ACTIVE or campaign.starts_at > now
            or (campaign.ends_at is not None and campaign.ends_at <= now)):
        return RunResult()
    if in_quiet_hours(campaign, now):
        return RunResult(quiet=True)
    members = await _user_ids(CampaignMember.filter(campaign_id=campaign.id), "user_id")
    todo = [user_id for user_id in await audience(campaign, now) if user_id not in members]
    opted_out = await _opted_out(todo)
    todo = [user_id for user_id in todo if user_id not in opted_out]
    await MarketingCap.bulk_create([MarketingCap(user_id=u) for u in todo], ignore_conflicts=True, batch_size=500)
    cutoff = now - timedelta(days=get_settings().marketing_cap_days)
    counts = {"sent": 0, "held_out": 0, "capped": 0, "skipped": len(members), "opted_out": len(opted_out)}
    for user_id in todo:
        control = held_out(campaign, user_id)
        try:
            async with outbox.atomic():
                if control and await _capped(user_id, cutoff):
                    raise _Capped
                member = await CampaignMember.create(campaign_id=campaign.id, user_id=user_id, assigned_at=now,
                                                     arm=Arm.CONTROL if control else Arm.TREATMENT,
                                                     channel=campaign.channel)
                if not control:
                    claimed = await MarketingCap.filter(
                        Q(user_id=user_id) & (Q(last_sent_at__isnull=True) | Q(last_sent_at__lte=cutoff))
                    ).update(last_sent_at=now, last_campaign_id=campaign.id)
                    if claimed != 1:
                        raise _Capped
                    await _grant(campaign, user_id)
                    await outbox.enqueue(jobs.send_campaign_message(member.id))
            counts["held_out" if control else "sent"] += 1
        except _Capped:
            counts["capped"] += 1
        except IntegrityError:  # a concurrent run of this campaign took the user first
            counts["skipped"] += 1
    await Campaign.filter(id=campaign.id).update(last_run_at=now)
    return RunResult(**counts)


async def run_now(actor: Actor, campaign_id: int) -> RunResult:
    require(actor, Action.MANAGE_CAMPAIGNS)
    if not await Campaign.filter(id=campaign_id).exists():
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such campaign.", "id")
    return await run(campaign_id)


async def run_due() -> int:
    """The sweep: every active campaign in its window; how many messages were sent."""
    now = clock.now()
    due = await Campaign.filter(Q(status=CampaignStatus.ACTIVE) & Q(starts_at__lte=now)
                                & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))).values_list("id", flat=True)
    return sum([(await run(int(campaign_id))).sent for campaign_id in due])


async def deliver(member_id: int) -> bool:
    """The ``send_campaign_message`` job: the message through its channel (in-app: a
    notification, once), then marked delivered. False if there was nothing to do."""
    member = await CampaignMember.filter(id=member_id, arm=Arm.TREATMENT).select_related("campaign").first()
    if member is None or member.delivered_at is not None:
        return False
    if not await User.filter(id=member.user_id, marketing=True).exists():
        return False  # turned marketing messages off after the run: the message does not go
    campaign = member.campaign
    key = f"campaign:{member.id}"
    async with outbox.atomic():
        note = await notifications.notify(member.user_id, NOTIFICATION_KIND, campaign.title, campaign.body,
                                          {"campaign": campaign.id, "offer": campaign.offer.value}, dedupe_key=key)
        note_id = note.id if note is not None else (await Notification.get(dedupe_key=key)).id
        await CampaignMember.filter(id=member.id, delivered_at__isnull=True).update(
            delivered_at=clock.now(), notification_id=note_id)
    return True


async def track_click(actor: Actor, campaign_id: int) -> bool:
    """The signed-in user followed a campaign's message: its first click is recorded. False
    if it was recorded before; NOT_FOUND if the campaign never messaged them."""
    user = require_signed_in(actor)
    member = await CampaignMember.filter(campaign_id=campaign_id, user_id=user.id, arm=Arm.TREATMENT).first()
    if member is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such campaign message.", "campaignId")
    return await CampaignMember.filter(id=member.id, clicked_at__isnull=True).update(clicked_at=clock.now()) == 1
