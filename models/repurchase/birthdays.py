"""Birthdays: an optional month and day per user, and the yearly benefit granted once."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Birthday(Model):
    """A user's birthday (no year). ``changed_at``: set at most once a year after the first time."""

    id = fields.BigIntField(primary_key=True)
    user: fields.OneToOneRelation = fields.OneToOneField(
        "kameng.User", related_name="birthday", on_delete=fields.CASCADE
    )
    month = fields.IntField()
    day = fields.IntField()
    changed_at = fields.DatetimeField()

    class Meta:
        table = "birthday"
        indexes = (("month", "day"),)


class BirthdayGrant(Model):
    """The birthday benefit of one user in one year: unique, written with the points."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.BigIntField()
    year = fields.IntField()
    points = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "birthday_grant"
        unique_together = (("user_id", "year"),)
