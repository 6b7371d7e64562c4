from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class PointsEntry(Model):
    """Append-only: one award or spend, unique per (rule, reference) so nothing counts twice.
    A user's balance is the sum of their entries (cached on ``PointsBalance``)."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="points_entries", on_delete=fields.CASCADE
    )
    amount = fields.IntField()
    rule = fields.CharField(max_length=40)
    reference = fields.CharField(max_length=120)
    memo = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "points_entry"
        unique_together = (("user_id", "rule", "reference"),)
        indexes = (("user_id", "id"), ("user_id", "rule", "created_at"))


class PointsBalance(Model):
    """The cached sum of a user's entries, updated with each entry under a non-negative check."""

    id = fields.BigIntField(primary_key=True)
    user: fields.OneToOneRelation = fields.OneToOneField(
        "kameng.User", related_name="points_balance", on_delete=fields.CASCADE
    )
    balance = fields.IntField(default=0)
    earned_total = fields.IntField(default=0)

    class Meta:
        table = "points_balance"


class CheckIn(Model):
    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="check_ins", on_delete=fields.CASCADE
    )
    day = fields.DateField()  # the UTC+8 calendar day of the check-in
    streak = fields.IntField()
    points = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "check_in"
        unique_together = (("user_id", "day"),)
