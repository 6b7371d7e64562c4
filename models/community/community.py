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


class FollowKind(StrEnum):
    USER = "USER"
    MERCHANT = "MERCHANT"
    PRODUCT = "PRODUCT"
    TOPIC = "TOPIC"


class Topic(Model):
    """A tag. A topic with a product is that product's purchaser circle."""

    id = fields.BigIntField(primary_key=True)
    slug = fields.CharField(max_length=60, unique=True)
    name = fields.CharField(max_length=60)
    product: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.Product", related_name="circles", null=True, on_delete=fields.CASCADE
    )
    post_count = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "topic"


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


class PostTopic(Model):
    id = fields.BigIntField(primary_key=True)
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "kameng.Post", related_name="topic_links", on_delete=fields.CASCADE
    )
    topic: fields.ForeignKeyRelation[Topic] = fields.ForeignKeyField(
        "kameng.Topic", related_name="post_links", on_delete=fields.CASCADE
    )

    class Meta:
        table = "post_topic"
        unique_together = (("post_id", "topic_id"),)
        indexes = (("topic_id", "post_id"),)


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


class PostLike(Model):
    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation = fields.ForeignKeyField("kameng.User", related_name="post_likes", on_delete=fields.CASCADE)
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "kameng.Post", related_name="likes", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "post_like"
        unique_together = (("user_id", "post_id"),)
        indexes = (("post_id", "user_id"),)


class CommentLike(Model):
    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="comment_likes", on_delete=fields.CASCADE
    )
    comment: fields.ForeignKeyRelation[Comment] = fields.ForeignKeyField(
        "kameng.Comment", related_name="likes", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "comment_like"
        unique_together = (("user_id", "comment_id"),)


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
