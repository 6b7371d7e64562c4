"""Topics (tags) and their posts; a topic with a product is that product's purchaser circle."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.community.posts import Post


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
