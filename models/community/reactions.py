"""Likes of posts and comments: one row per user and target."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.community.comments import Comment
from models.community.posts import Post


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
