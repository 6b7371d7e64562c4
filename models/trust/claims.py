"""Self-service claims: a buyer reports a problem with an order, the rules resolve it or
leave it to staff, the shop may contest an automatic outcome, staff decide."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ClaimReason(StrEnum):
    KEY_INVALID = "KEY_INVALID"  # a delivered card key does not work
    NOT_RECEIVED = "NOT_RECEIVED"  # a top-up or manual delivery never arrived


class ClaimStatus(StrEnum):
    PENDING_REVIEW = "PENDING_REVIEW"  # outside the rules: staff decide
    RESOLVED = "RESOLVED"  # replaced or refunded (by the rules or by staff)
    REJECTED = "REJECTED"  # staff found nothing to make good
    CONTESTED = "CONTESTED"  # the shop contests an automatic outcome: staff decide
    REVERSED = "REVERSED"  # staff reversed the outcome: the shop was paid back


class ClaimOutcome(StrEnum):
    NONE = "NONE"
    REPLACEMENT = "REPLACEMENT"
    REFUND = "REFUND"


class Claim(Model):
    """One report of a problem with an order. Unique per (order, subject), the subject being
    the reported key or the reason, so concurrent reports of the same problem make one claim
    and its remedy runs once."""

    id = fields.BigIntField(primary_key=True)
    order: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Order", related_name="claims", on_delete=fields.RESTRICT
    )
    subject = fields.CharField(max_length=40)  # "key:<card key id>" or "NOT_RECEIVED"
    buyer_id = fields.BigIntField(db_index=True)
    merchant_id = fields.BigIntField(db_index=True)
    reason = fields.CharEnumField(ClaimReason, max_length=16)
    ticket_id = fields.BigIntField(null=True)  # the after-sales ticket it came from, if any
    card_key_id = fields.BigIntField(null=True)  # the reported key
    replacement_key_id = fields.BigIntField(null=True)  # the key delivered instead
    message = fields.CharField(max_length=500, default="")
    status = fields.CharEnumField(ClaimStatus, max_length=16)
    outcome = fields.CharEnumField(ClaimOutcome, max_length=16, default=ClaimOutcome.NONE)
    automatic = fields.BooleanField(default=False)  # decided by a rule, not by staff
    rule = fields.CharField(max_length=40, default="")  # the rule that decided, or why none did
    amount = fields.DecimalField(max_digits=12, decimal_places=2, default=0)  # refunded, or the replaced key's price
    paid_from = fields.CharField(max_length=64, default="")  # escrow, merchant balance, deposit or both
    contest_reason = fields.CharField(max_length=500, default="")
    contested_at = fields.DatetimeField(null=True)
    decided_by_id = fields.BigIntField(null=True)  # the staff member who decided last
    decision_note = fields.CharField(max_length=300, default="")
    resolved_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "claim"
        unique_together = (("order_id", "subject"),)
        indexes = (("buyer_id", "created_at"), ("status", "id"))
