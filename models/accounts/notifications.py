from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.accounts.users import User


class Notification(Model):
    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "kameng.User", related_name="notifications", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=32)
    title = fields.CharField(max_length=200)
    body = fields.TextField(default="")
    data = fields.JSONField(default=dict)
    # Set by producers that may run twice (jobs are delivered at least once).
    dedupe_key = fields.CharField(max_length=100, null=True, unique=True)
    read_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notification"
        indexes = (("user_id", "read_at"),)
