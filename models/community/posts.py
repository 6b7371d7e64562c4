"""Posts: five kinds of user-written article, and the status every piece of content has."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class PostKind(StrEnum):
    REVIEW = "REVIEW"  # about a product, with a rating
    SHOWCASE = "SHOWCASE"  # 晒单: from the author's own delivered order
    GUIDE = "GUIDE"
    QUESTION = "QUESTION"  # an answer (comment) can be accepted
    DEMAND = "DEMAND"  # a wanted product; merchants answer by linking one of theirs


class ContentStatus(StrEnum):
    VISIBLE = "VISIBLE"
    HELD = "HELD"  # waiting for a moderator (sensitive-word filter "hold")
    HIDDEN = "HIDDEN"  # hidden by a moderator (restorable)
    DELETED = "DELETED"  # soft-deleted by its author


class Post(Model):
    id = fields.BigIntField(primary_key=True)
    author: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="posts", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(PostKind, max_length=16)
    title = fields.CharField(max_length=120)
    body = fields.TextField()  # Markdown source as written
    body_html = fields.TextField()  # rendered and sanitised: the only form served as HTML
    product: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.Product", related_name="posts", null=True, on_delete=fields.SET_NULL
    )
    order: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.Order", related_name="posts", null=True, on_delete=fields.SET_NULL
    )
    rating = fields.SmallIntField(null=True)  # REVIEW: 1..5
    verified_purchase = fields.BooleanField(default=False)
    # QUESTION: the accepted answer. DEMAND: the product a merchant linked and the author chose.
    accepted_comment_id = fields.BigIntField(null=True)
    fulfilled_by_product_id = fields.BigIntField(null=True)
    like_count = fields.IntField(default=0)
    comment_count = fields.IntField(default=0)
    hot_rank = fields.FloatField(default=0.0, db_index=True)
    status = fields.CharEnumField(ContentStatus, max_length=16, default=ContentStatus.VISIBLE)
    created_at = fields.DatetimeField(auto_now_add=True)
    edited_at = fields.DatetimeField(null=True)

    class Meta:
        table = "post"
        indexes = (("status", "id"), ("author_id", "id"), ("product_id", "id"), ("status", "hot_rank", "id"))
