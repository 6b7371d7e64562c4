"""Churn: the fitted repeat-buying model and each buyer's risk."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class RiskBand(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class ChurnModel(Model):
    """One fit of BG/NBD (time in weeks) and Gamma-Gamma, on ``buyers`` buyers."""

    id = fields.BigIntField(primary_key=True)
    r = fields.FloatField()
    alpha = fields.FloatField()
    a = fields.FloatField()
    b = fields.FloatField()
    p = fields.FloatField(null=True)
    q = fields.FloatField(null=True)
    gamma = fields.FloatField(null=True)
    buyers = fields.IntField()
    fitted_at = fields.DatetimeField()

    class Meta:
        table = "lifecycle_churn_model"


class ChurnScore(Model):
    """A buyer's churn risk as of ``scored_at``: the model's figures over the next 90 days,
    the warning signs, and the band they make."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.BigIntField(unique=True)
    p_alive = fields.FloatField()
    expected_purchases_90d = fields.FloatField()
    expected_spend_90d = fields.DecimalField(max_digits=14, decimal_places=2)
    visits_recent = fields.IntField(default=0)  # PAGE_VISIT / PRODUCT_VIEW in the last 30 days
    visits_before = fields.IntField(default=0)  # ... in the 60 days before, per 30 days
    abandoned_checkouts = fields.IntField(default=0)  # unpaid orders cancelled in 90 days
    complaints = fields.IntField(default=0)  # refunded orders in 90 days
    signs = fields.CharField(max_length=200, default="")  # comma-separated warning signs
    band = fields.CharEnumField(RiskBand, max_length=8)
    model_id = fields.BigIntField(null=True)
    scored_at = fields.DatetimeField()

    class Meta:
        table = "lifecycle_churn_score"
