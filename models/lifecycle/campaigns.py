"""Win-back campaigns: what staff send to whom, who was held out, what each message did, and
the per-user claim that caps marketing messages across every campaign."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class AudienceKind(StrEnum):
    SEGMENT = "SEGMENT"  # buyers in a named segment (``segment_key``)
    RISK_BAND = "RISK_BAND"  # buyers in a churn risk band (``risk_band``)
    NO_VISIT = "NO_VISIT"  # users whose last visit is ``trigger_days`` or more days old
    EXPIRING = "EXPIRING"  # a delivered item or a plan without auto-renew ends within ``trigger_days``
    AFTER_DELIVERY = "AFTER_DELIVERY"  # buyers ``trigger_days`` after a delivery


class OfferKind(StrEnum):
    NONE = "NONE"
    COUPON = "COUPON"  # one of ``coupon_id``
    POINTS = "POINTS"  # ``points`` points
    BENEFIT = "BENEFIT"  # a perk (``benefit``: PRIORITY_SUPPORT)


class Channel(StrEnum):
    IN_APP = "IN_APP"


class CampaignStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class Arm(StrEnum):
    TREATMENT = "TREATMENT"
    CONTROL = "CONTROL"


class Campaign(Model):
    """A campaign staff created. It runs (by the sweep or by hand) between ``starts_at`` and
    ``ends_at``, outside its quiet hours (local hours in ``timezone``, start inclusive)."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=80)
    status = fields.CharEnumField(CampaignStatus, max_length=16, default=CampaignStatus.ACTIVE)
    audience = fields.CharEnumField(AudienceKind, max_length=20)
    segment_key = fields.CharField(max_length=64, null=True)
    risk_band = fields.CharField(max_length=16, null=True)
    trigger_days = fields.IntField(null=True)
    offer = fields.CharEnumField(OfferKind, max_length=16, default=OfferKind.NONE)
    coupon_id = fields.BigIntField(null=True)
    points = fields.IntField(null=True)
    benefit = fields.CharField(max_length=32, null=True)
    title = fields.CharField(max_length=120)
    body = fields.CharField(max_length=1000, default="")
    channel = fields.CharEnumField(Channel, max_length=16, default=Channel.IN_APP)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField(null=True)
    quiet_start_hour = fields.SmallIntField(default=22)
    quiet_end_hour = fields.SmallIntField(default=8)
    timezone = fields.CharField(max_length=64, default="Asia/Shanghai")
    control_percent = fields.SmallIntField(default=10)
    conversion_days = fields.IntField(default=7)
    created_by_id = fields.BigIntField(null=True)
    last_run_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "campaign"


class CampaignMember(Model):
    """A user a campaign reached: sent a message (TREATMENT) or held out (CONTROL). One per
    campaign and user, so a re-run sends nothing twice. ``assigned_at`` starts the
    conversion window of both arms."""

    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "kameng.Campaign", related_name="members", on_delete=fields.CASCADE
    )
    user_id = fields.BigIntField(db_index=True)
    arm = fields.CharEnumField(Arm, max_length=16)
    assigned_at = fields.DatetimeField()
    channel = fields.CharEnumField(Channel, max_length=16, default=Channel.IN_APP)
    delivered_at = fields.DatetimeField(null=True)
    notification_id = fields.BigIntField(null=True)
    clicked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "campaign_member"
        unique_together = (("campaign", "user_id"),)


class MarketingCap(Model):
    """When a user was last sent a marketing message by any campaign: the frequency cap is a
    conditional update of this row (``last_sent_at`` older than the cap), so of two
    campaigns sending at once one wins."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.BigIntField(unique=True)
    last_sent_at = fields.DatetimeField(null=True)
    last_campaign_id = fields.BigIntField(null=True)

    class Meta:
        table = "marketing_cap"
