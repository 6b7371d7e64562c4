"""RFM scores per buyer and the segment rules staff edit."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Stage(StrEnum):
    NEW = "NEW"  # one purchase, a recent one
    ACTIVE = "ACTIVE"
    SILENT = "SILENT"  # no purchase for lifecycle_silent_days
    LAPSED = "LAPSED"  # no purchase for lifecycle_lapsed_days


class SegmentRule(Model):
    """A named segment: a buyer is in the first active rule (lowest ``priority``) whose every
    set bound holds. Never deleted, only deactivated, so a default rule staff turned off is
    not seeded again."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=80)
    description = fields.CharField(max_length=500, default="")
    # What the segment brings the buyer: the only part of it they see.
    benefits = fields.CharField(max_length=500, default="")
    priority = fields.IntField(default=100)
    active = fields.BooleanField(default=True)
    stage = fields.CharEnumField(Stage, max_length=16, null=True)
    recency_days_min = fields.IntField(null=True)
    recency_days_max = fields.IntField(null=True)
    frequency_min = fields.IntField(null=True)
    frequency_max = fields.IntField(null=True)
    monetary_min = fields.DecimalField(max_digits=14, decimal_places=2, null=True)
    monetary_max = fields.DecimalField(max_digits=14, decimal_places=2, null=True)  # exclusive
    updated_by_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "lifecycle_segment_rule"


class BuyerRfm(Model):
    """A buyer's recency (days since the last purchase), frequency (purchases) and monetary
    value (their total), the 1-5 quintile scores among all buyers, stage and segment."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.BigIntField(unique=True)
    recency_days = fields.IntField()
    frequency = fields.IntField()
    monetary = fields.DecimalField(max_digits=14, decimal_places=2)
    r_score = fields.SmallIntField(default=0)
    f_score = fields.SmallIntField(default=0)
    m_score = fields.SmallIntField(default=0)
    first_purchase_at = fields.DatetimeField()
    last_purchase_at = fields.DatetimeField()
    stage = fields.CharEnumField(Stage, max_length=16)
    segment_rule_id = fields.BigIntField(null=True)
    computed_at = fields.DatetimeField()

    class Meta:
        table = "lifecycle_buyer_rfm"


class SegmentSize(Model):
    """How many buyers a segment held on a day (UTC), written by the segments sweep: the
    history behind the report's "segment sizes over time"."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    segment_key = fields.CharField(max_length=64)
    buyers = fields.IntField()

    class Meta:
        table = "lifecycle_segment_size"
        unique_together = (("day", "segment_key"),)
