"""Campaigns in the graph: staff (ADMIN) create, pause and run them and read their results;
a user records a click on a campaign's message."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from models.lifecycle.campaigns import AudienceKind as AudienceValue
from models.lifecycle.campaigns import Campaign as CampaignModel
from models.lifecycle.campaigns import CampaignStatus as StatusValue
from models.lifecycle.campaigns import Channel as ChannelValue
from models.lifecycle.campaigns import OfferKind as OfferValue
from resolvers.lifecycle import campaign_results, campaigns
from resolvers.errors import invalid
from resolvers.lifecycle.campaigns import NewCampaign
from schema.base import PayloadErrors, UserError, decode_id, describe_values, errors_field, mutation
from schema.context import Info

Audience = describe_values(
    strawberry.enum(AudienceValue, name="CampaignAudience", description="Who a campaign is for."),
    SEGMENT="Buyers in a named segment (`segmentKey`).",
    RISK_BAND="Buyers in a churn risk band (`riskBand`).",
    NO_VISIT="Users who visited before but not in the last `triggerDays` days.",
    EXPIRING="Buyers whose delivered item's validity, or whose plan without auto-renew, ends within `triggerDays` "
             "days.",
    AFTER_DELIVERY="Buyers `triggerDays` days (to 2 more) after a delivery.",
)
Offer = describe_values(
    strawberry.enum(OfferValue, name="CampaignOffer", description="What a campaign's message gives."),
    NONE="Only the message.", COUPON="A coupon (`couponId`).", POINTS="Points (`points`).",
    BENEFIT="A perk (`benefit`, e.g. PRIORITY_SUPPORT).",
)
CampaignChannel = describe_values(
    strawberry.enum(ChannelValue, name="CampaignChannel", description="How a campaign's messages reach users."),
    IN_APP="An in-app notification (kind CAMPAIGN).",
)
Status = describe_values(
    strawberry.enum(StatusValue, name="CampaignStatus", description="Whether a campaign sends."),
    ACTIVE="Runs in its window, outside quiet hours.", PAUSED="Sends nothing.",
)


def _gid(kind: str, pk: int) -> strawberry.ID:
    return strawberry.ID(str(strawberry.relay.GlobalID(kind, str(pk))))


@strawberry.type(description="A win-back campaign (ADMIN).")
class Campaign:
    id: strawberry.ID = strawberry.field(description="The campaign's global ID.")
    name: str = strawberry.field(description="Name staff see.")
    status: Status = strawberry.field(description="Whether it sends.")
    audience: Audience = strawberry.field(description="Who it is for.")
    segment_key: str | None = strawberry.field(description="SEGMENT: the segment rule's key.")
    risk_band: str | None = strawberry.field(description="RISK_BAND: LOW, MEDIUM or HIGH.")
    trigger_days: int | None = strawberry.field(description="NO_VISIT, EXPIRING, AFTER_DELIVERY: the days.")
    offer: Offer = strawberry.field(description="What the message gives.")
    title: str = strawberry.field(description="The message's title.")
    body: str = strawberry.field(description="The message's text.")
    channel: CampaignChannel = strawberry.field(description="How it is sent.")
    starts_at: datetime = strawberry.field(description="Sends from then.")
    ends_at: datetime | None = strawberry.field(description="Sends until then; null: no end.")
    quiet_start_hour: int = strawberry.field(description="Quiet hours start (local hour, inclusive).")
    quiet_end_hour: int = strawberry.field(description="Quiet hours end (local hour, exclusive).")
    timezone: str = strawberry.field(description="Time zone of the quiet hours.")
    control_percent: int = strawberry.field(description="Percent of the audience held out, never messaged.")
    conversion_days: int = strawberry.field(description="A paid order within this many days counts as converted.")
    last_run_at: datetime | None = strawberry.field(description="When it last ran.")

    @classmethod
    def of(cls, c: CampaignModel) -> Campaign:
        return cls(
            id=_gid("Campaign", c.id), name=c.name, status=c.status, audience=c.audience, segment_key=c.segment_key,
            risk_band=c.risk_band, trigger_days=c.trigger_days, offer=c.offer, title=c.title, body=c.body,
            channel=c.channel, starts_at=c.starts_at, ends_at=c.ends_at, quiet_start_hour=c.quiet_start_hour,
            quiet_end_hour=c.quiet_end_hour, timezone=c.timezone, control_percent=c.control_percent,
            conversion_days=c.conversion_days, last_run_at=c.last_run_at,
        )


@strawberry.type(description="One arm of a campaign: what its members did.")
class CampaignArm:
    arm: str = strawberry.field(description="TREATMENT (messaged) or CONTROL (held out).")
    users: int = strawberry.field(description="Members in the arm.")
    delivered: int = strawberry.field(description="Messages delivered (0 for CONTROL).")
    opened: int = strawberry.field(description="Messages read.")
    clicked: int = strawberry.field(description="Messages followed (`trackCampaignClick`).")
    converted: int = strawberry.field(description="Members who paid an order within the conversion window.")
    conversion_rate: float | None = strawberry.field(description="converted / users; null for an empty arm.")
    revenue: Decimal = strawberry.field(description="Paid in the members' conversion windows.")


@strawberry.type(description="Uplift: treatment conversion rate minus control's, with its 95% interval.")
class CampaignUplift:
    difference: float = strawberry.field(description="Treatment rate minus control rate.")
    low: float = strawberry.field(description="Lower end of the 95% interval (normal approximation).")
    high: float = strawberry.field(description="Upper end of the 95% interval.")
    p_value: float = strawberry.field(description="Two-sided p-value of the pooled two-proportion z-test.")


@strawberry.type(description="A campaign's results from real notifications and orders.")
class CampaignResults:
    campaign_id: strawberry.ID = strawberry.field(description="The campaign's global ID.")
    treatment: CampaignArm = strawberry.field(description="The messaged arm.")
    control: CampaignArm = strawberry.field(description="The held-out arm.")
    uplift: CampaignUplift | None = strawberry.field(description="Null while either arm is empty.")

    @classmethod
    def of(cls, r: campaign_results.CampaignResult) -> CampaignResults:
        def arm(a: campaign_results.ArmResult) -> CampaignArm:
            return CampaignArm(arm=a.arm, users=a.users, delivered=a.delivered, opened=a.opened, clicked=a.clicked,
                               converted=a.converted, conversion_rate=a.conversion_rate, revenue=a.revenue)
        u = r.uplift
        return cls(campaign_id=_gid("Campaign", r.campaign_id), treatment=arm(r.treatment), control=arm(r.control),
                   uplift=CampaignUplift(difference=u.difference, low=u.low, high=u.high, p_value=u.p_value)
                   if u else None)


@strawberry.type(description="Result of `campaignResults`.")
class CampaignResultsPayload:
    errors: list[UserError] = errors_field()
    results: CampaignResults | None = strawberry.field(default=None, description="The results; null on failure.")


@strawberry.type(description="Campaign queries (ADMIN).")
class CampaignQueries:
    @strawberry.field(description="ADMIN: every campaign, newest first (empty for anyone else).")
    async def campaigns(self, info: Info) -> list[Campaign]:
        return [Campaign.of(c) for c in await campaigns.list_all(info.context.actor)]

    @strawberry.field(description="ADMIN: a campaign's delivered, opened, clicked and converted members per arm, and "
                                  "its uplift over the control group.", extensions=[PayloadErrors()])
    async def campaign_results(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The campaign's global ID.")]
    ) -> CampaignResultsPayload:
        key = decode_id(id, "Campaign", "id")
        return CampaignResultsPayload(results=CampaignResults.of(await campaign_results.results(info.context.actor, key)))


@strawberry.input(description="A new campaign.")
class CreateCampaignInput:
    name: str = strawberry.field(description="Name staff see (80 characters).")
    title: str = strawberry.field(description="The message's title (120 characters).")
    body: str = strawberry.field(default="", description="The message's text (1000 characters).")
    audience: Audience = strawberry.field(description="Who it is for.")
    segment_key: str | None = strawberry.field(default=None, description="SEGMENT: a segment rule's key.")
    risk_band: str | None = strawberry.field(default=None, description="RISK_BAND: LOW, MEDIUM or HIGH.")
    trigger_days: int | None = strawberry.field(default=None, description="NO_VISIT, EXPIRING, AFTER_DELIVERY: days.")
    offer: Offer = strawberry.field(default=OfferValue.NONE, description="What the message gives.")
    coupon_id: strawberry.ID | None = strawberry.field(default=None, description="COUPON: the coupon's global ID.")
    points: int | None = strawberry.field(default=None, description="POINTS: how many.")
    benefit: str | None = strawberry.field(default=None, description="BENEFIT: the perk's code (PRIORITY_SUPPORT).")
    channel: CampaignChannel = strawberry.field(default=ChannelValue.IN_APP, description="How it is sent.")
    starts_at: datetime | None = strawberry.field(default=None, description="Sends from then; default: now.")
    ends_at: datetime | None = strawberry.field(default=None, description="Sends until then; default: no end.")
    quiet_start_hour: int = strawberry.field(default=22, description="Quiet hours start, local hour (0-23).")
    quiet_end_hour: int = strawberry.field(default=8, description="Quiet hours end, local hour; equal to the start: "
                                                                  "no quiet hours.")
    timezone: str | None = strawberry.field(default=None, description="IANA zone; default KAMENG_CAMPAIGN_TIMEZONE.")
    control_percent: int | None = strawberry.field(default=None, description="Percent held out (0-50); default "
                                                                             "KAMENG_CAMPAIGN_CONTROL_PERCENT.")
    conversion_days: int = strawberry.field(default=7, description="Conversion window in days (1-365).")


@strawberry.type(description="Result of `createCampaign` and `setCampaignStatus`.")
class CampaignPayload:
    errors: list[UserError] = errors_field()
    campaign: Campaign | None = strawberry.field(default=None, description="The campaign as saved.")


@strawberry.input(description="Which campaign to run, pause or resume.")
class CampaignInput:
    id: strawberry.ID = strawberry.field(description="The campaign's global ID.")
    status: Status | None = strawberry.field(default=None, description="setCampaignStatus: the new status.")


@strawberry.type(description="Result of `runCampaign`.")
class RunCampaignPayload:
    errors: list[UserError] = errors_field()
    sent: int | None = strawberry.field(default=None, description="Messages sent by this run.")
    held_out: int | None = strawberry.field(default=None, description="Users put in the control group by this run.")
    capped: int | None = strawberry.field(default=None, description="Users skipped by the frequency cap (tried again "
                                                                    "next run).")
    skipped: int | None = strawberry.field(default=None, description="Users already in the campaign.")
    quiet: bool | None = strawberry.field(default=None, description="True if nothing ran: quiet hours.")
    opted_out: int | None = strawberry.field(default=None, description="Users of the audience who turned marketing "
                                                                       "messages off: neither messaged nor held out.")


@strawberry.input(description="The viewer's choice about marketing messages.")
class SetMarketingMessagesInput:
    enabled: bool = strawberry.field(description="False: no campaign messages or offers from now on, queued ones "
                                                 "included; order, payment and reply notifications still come.")


@strawberry.type(description="Result of `setMarketingMessages`.")
class SetMarketingMessagesPayload:
    errors: list[UserError] = errors_field()
    enabled: bool | None = strawberry.field(default=None, description="The choice now in force.")


@strawberry.input(description="The campaign whose message the viewer followed.")
class TrackCampaignClickInput:
    campaign_id: strawberry.ID = strawberry.field(description="The campaign's global ID (in the notification's data).")


@strawberry.type(description="Result of `trackCampaignClick`.")
class TrackCampaignClickPayload:
    errors: list[UserError] = errors_field()
    first: bool | None = strawberry.field(default=None, description="True for the first click (the one counted).")


@strawberry.type(description="Campaign mutations.")
class CampaignMutations:
    @mutation(description="ADMIN: create a campaign (it runs with the sweep, or at once with `runCampaign`).")
    async def create_campaign(self, info: Info, input: CreateCampaignInput) -> CampaignPayload:
        spec = NewCampaign(
            name=input.name, title=input.title, body=input.body, audience=AudienceValue(input.audience),
            segment_key=input.segment_key, risk_band=input.risk_band, trigger_days=input.trigger_days,
            offer=OfferValue(input.offer),
            coupon_id=decode_id(input.coupon_id, "Coupon", "couponId") if input.coupon_id is not None else None,
            points=input.points, benefit=input.benefit, channel=ChannelValue(input.channel), starts_at=input.starts_at,
            ends_at=input.ends_at, quiet_start_hour=input.quiet_start_hour, quiet_end_hour=input.quiet_end_hour,
            timezone=input.timezone, control_percent=input.control_percent, conversion_days=input.conversion_days,
        )
        return CampaignPayload(campaign=Campaign.of(await campaigns.create(info.context.actor, spec)))

    @mutation(description="ADMIN: pause or resume a campaign.")
    async def set_campaign_status(self, info: Info, input: CampaignInput) -> CampaignPayload:
        if input.status is None:
            raise invalid("status", "Give the new status.")
        key = decode_id(input.id, "Campaign", "id")
        return CampaignPayload(campaign=Campaign.of(
            await campaigns.set_status(info.context.actor, key, StatusValue(input.status))))

    @mutation(description="ADMIN: run a campaign now (nothing in quiet hours; a re-run sends nothing twice).")
    async def run_campaign(self, info: Info, input: CampaignInput) -> RunCampaignPayload:
        done = await campaigns.run_now(info.context.actor, decode_id(input.id, "Campaign", "id"))
        return RunCampaignPayload(sent=done.sent, held_out=done.held_out, capped=done.capped, skipped=done.skipped,
                                  quiet=done.quiet, opted_out=done.opted_out)

    @mutation(description="The signed-in viewer takes marketing messages (campaigns and their offers), or not.")
    async def set_marketing_messages(self, info: Info, input: SetMarketingMessagesInput) -> SetMarketingMessagesPayload:
        return SetMarketingMessagesPayload(enabled=await campaigns.set_marketing(info.context.actor, input.enabled))

    @mutation(description="The viewer followed a campaign's message (its first click is counted).")
    async def track_campaign_click(self, info: Info, input: TrackCampaignClickInput) -> TrackCampaignClickPayload:
        key = decode_id(input.campaign_id, "Campaign", "campaignId")
        return TrackCampaignClickPayload(first=await campaigns.track_click(info.context.actor, key))
