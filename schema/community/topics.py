"""Topics and purchaser circles in the graph: the ``topic`` query and joining a circle."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.community import topics
from schema.base import UserError, decode_id, mutation, errors_field
from schema.community.types import Topic
from schema.context import Info


@strawberry.type(description="Queries about topics.")
class TopicQueries:
    @strawberry.field(description="A topic by its slug; null if no post ever used it.")
    async def topic(
        self, info: Info, slug: Annotated[str, strawberry.argument(description="The topic's slug.")]
    ) -> Topic | None:
        found = await topics.topic_by_slug(slug)
        return Topic.from_model(found) if found is not None else None


@strawberry.input(description="The product whose purchaser circle to join.")
class JoinCircleInput:
    product_id: strawberry.ID = strawberry.field(description="The product's global ID.")


@strawberry.type(description="Result of `joinCircle`.")
class JoinCirclePayload:
    errors: list[UserError] = errors_field()
    circle: Topic | None = strawberry.field(default=None, description="The circle's topic; null on failure.")


@strawberry.type(description="Mutations of topics and circles.")
class TopicMutations:
    @mutation(description="A buyer of the product joins its purchaser circle (follows its topic).")
    async def join_circle(self, info: Info, input: JoinCircleInput) -> JoinCirclePayload:
        product_id = decode_id(input.product_id, "Product", "productId")
        return JoinCirclePayload(circle=Topic.from_model(await topics.join_circle(info.context.actor, product_id)))

