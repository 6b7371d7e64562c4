"""Self-service onboarding: a user's application to open a shop, and staff's decision on it."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ApplicationStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class MerchantApplication(Model):
    """One application to become a merchant. On approval the shop is created and linked here."""

    id = fields.BigIntField(primary_key=True)
    applicant: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="merchant_applications", on_delete=fields.RESTRICT
    )
    shop_name = fields.CharField(max_length=80)
    description = fields.TextField(default="")
    contact = fields.CharField(max_length=200)
    status = fields.CharEnumField(ApplicationStatus, max_length=16, default=ApplicationStatus.PENDING)
    review_note = fields.CharField(max_length=300, default="")
    reviewed_by_id = fields.BigIntField(null=True)
    merchant_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    reviewed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "merchant_application"
        indexes = (("status", "id"), ("applicant_id", "id"))
