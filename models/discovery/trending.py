"""Trending keywords: the last computed rise of each term, per window (written by a sweep)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class TrendWindow(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


class TrendingTerm(Model):
    """One rising term of one window at ``computed_at``. ``count`` counts the posts, comments
    and searches of the window that used the term (each at most once), ``previous_count`` the
    same over the window before, ``content_count`` the posts and comments only."""

    id = fields.BigIntField(primary_key=True)
    window = fields.CharEnumField(TrendWindow, max_length=8)
    term = fields.CharField(max_length=64)
    count = fields.IntField()
    previous_count = fields.IntField()
    content_count = fields.IntField()
    rise = fields.FloatField()
    position = fields.IntField()
    computed_at = fields.DatetimeField()

    class Meta:
        table = "trending_term"
        unique_together = (("window", "term"),)
        indexes = (("window", "position"),)
