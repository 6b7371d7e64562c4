"""Recommendations as served: precomputed lists written by the training job, one row per owner.

An owner is a user (``u:<id>``), an anonymous device (``d:<id>``), a product (``p:<id>``, its
similar products and the posts worth reading after buying it), a purchaser circle
(``c:<product id>``), a post (``post:<id>``), a category (``cat:<id>``) or one of the
cold-start lists (``trending``, ``new``). Every API process serves from these rows (or their
copy in Redis), so a request never trains anything.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class RecommendationList(Model):
    """One owner's ranked items: ``items`` is a list of [product id, score, reason kind, reason
    text, reason reference], ``posts`` a list of post ids."""

    id = fields.BigIntField(primary_key=True)
    owner = fields.CharField(max_length=80, unique=True)
    model_version = fields.CharField(max_length=40)
    items = fields.JSONField(default=list)
    posts = fields.JSONField(default=list)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "recommendation_list"


class RecommendationModel(Model):
    """One training run: what it learnt from and how long it took."""

    id = fields.BigIntField(primary_key=True)
    version = fields.CharField(max_length=40, unique=True)
    trained_at = fields.DatetimeField(db_index=True)
    interactions = fields.IntField(default=0)
    users = fields.IntField(default=0)
    items = fields.IntField(default=0)
    lam = fields.FloatField(default=0.0)
    half_life_events = fields.FloatField(default=0.0)
    train_seconds = fields.FloatField(default=0.0)
    lists = fields.IntField(default=0)

    class Meta:
        table = "recommendation_model"
