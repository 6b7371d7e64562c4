"""Follows of users, merchants, products and topics."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class FollowKind(StrEnum):
    USER = "USER"
    MERCHANT = "MERCHANT"
    PRODUCT = "PRODUCT"
    TOPIC = "TOPIC"


class Follow(Model):
    id = fields.BigIntField(primary_key=True)
    follower: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="following", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(FollowKind, max_length=16)
    target_id = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "follow"
        unique_together = (("follower_id", "kind", "target_id"),)
        indexes = (("kind", "target_id", "follower_id"),)
