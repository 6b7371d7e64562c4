"""Comments: threaded replies to a post."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.community.posts import ContentStatus, Post


class Comment(Model):
    """A reply in a thread, stored as a materialized path: a comment's path is its parent's
    path plus its own zero-padded id, so a thread sorts and slices by path."""

    id = fields.BigIntField(primary_key=True)
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "kameng.Post", related_name="comments", on_delete=fields.CASCADE
    )
    author: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="comments", on_delete=fields.RESTRICT
    )
    parent: fields.ForeignKeyNullableRelation[Comment] = fields.ForeignKeyField(
        "kameng.Comment", related_name="replies", null=True, on_delete=fields.CASCADE
    )
    path = fields.CharField(max_length=255, default="")
    depth = fields.SmallIntField(default=0)
    body = fields.TextField()
    body_html = fields.TextField()
    product: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.Product", related_name="demand_answers", null=True, on_delete=fields.SET_NULL
    )  # DEMAND posts: the product a merchant offers
    like_count = fields.IntField(default=0)
    # Reddit-style hot score, fixed at creation and moved only by likes (no decay job needed):
    # log10(max(likes, 1)) + seconds since 2024-01-01 / 45000.
    hot_rank = fields.FloatField(default=0.0)
    status = fields.CharEnumField(ContentStatus, max_length=16, default=ContentStatus.VISIBLE)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "comment"
        indexes = (
            ("post_id", "path"),
            ("post_id", "id"),
            ("author_id", "id"),
            ("post_id", "like_count", "id"),
            ("post_id", "hot_rank", "id"),
        )
