"""Moderation: users' reports and the moderators' audit trail."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Report(Model):
    id = fields.BigIntField(primary_key=True)
    reporter: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="reports", on_delete=fields.CASCADE
    )
    target_kind = fields.CharField(max_length=16)  # POST or COMMENT
    target_id = fields.BigIntField()
    reason = fields.CharField(max_length=300)
    open = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "report"
        unique_together = (("reporter_id", "target_kind", "target_id"),)
        indexes = (("open", "id"),)


class ModerationAction(Model):
    """Audit trail: every hide, restore and release, by whom and why."""

    id = fields.BigIntField(primary_key=True)
    moderator: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.User", related_name="moderation_actions", null=True, on_delete=fields.SET_NULL
    )
    target_kind = fields.CharField(max_length=16)
    target_id = fields.BigIntField()
    action = fields.CharField(max_length=16)  # HIDE, RESTORE, RELEASE, HOLD (filter)
    reason = fields.CharField(max_length=300, default="")
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "moderation_action"
        indexes = (("target_kind", "target_id"),)
