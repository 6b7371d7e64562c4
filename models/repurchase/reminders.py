"""Renewal reminders: one row per reminder ever sent, unique per (kind, reference)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ReminderKind(StrEnum):
    ITEM_EXPIRY = "ITEM_EXPIRY"  # a delivered order's validity runs out soon
    PLAN_ENDING = "PLAN_ENDING"  # a plan without auto-renew ends soon
    PLAN_RENEWAL = "PLAN_RENEWAL"  # a plan renews (and charges) soon


class RenewalReminder(Model):
    """A reminder sent, with the renewal offer it carried. The unique (kind, reference) is
    written in the transaction of the notification, so a re-run sweep sends nothing."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(ReminderKind, max_length=16)
    reference = fields.CharField(max_length=80)  # order:<id> or plan:<id>:<period>
    user_id = fields.BigIntField()
    product_id = fields.BigIntField()
    offer_total = fields.DecimalField(max_digits=12, decimal_places=2, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "renewal_reminder"
        unique_together = (("kind", "reference"),)
