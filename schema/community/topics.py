"""Topics and purchaser circles in the graph: the ``topic`` query and joining a circle."""

from __future__ import annotations

import strawberry

from resolvers.community import topics
from schema.base import UserError, decode_id, mutation, errors_field
from schema.community.types import Topic
from schema.context import Info


@strawberry.type
class TopicQueries:
    @strawberry.field(description="A topic by its slug.")
    async def topic(self, info: Info, slug: str) -> Topic | None:
        found = await topics.topic_by_slug(slug)
        return Topic.from_model(found) if found is not None else None


@strawberry.input
class JoinCircleInput:
    product_id: strawberry.ID


@strawberry.type
class JoinCirclePayload:
    errors: list[UserError] = errors_field()
    circle: Topic | None = None


@strawberry.type
class TopicMutations:
    @mutation(description="A buyer of the product joins its purchaser circle (follows its topic).")
    async def join_circle(self, info: Info, input: JoinCircleInput) -> JoinCirclePayload:
        product_id = decode_id(input.product_id, "Product", "productId")
        return JoinCirclePayload(circle=Topic.from_model(await topics.join_circle(info.context.actor, product_id)))

