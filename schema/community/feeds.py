"""Feeds in the graph: the ``feed`` query (FOLLOWING, HOT, LATEST, PRODUCT, TOPIC)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.community import feeds
from resolvers.community.feeds import FeedKind as FeedKindValue
from schema.base import After, Before, Connection, First, Last, decode_id, describe_values
from schema.community.types import Post
from schema.context import Info

FeedKind = describe_values(
    strawberry.enum(FeedKindValue, name="FeedKind", description="Which community feed."),
    FOLLOWING="Posts by followed users, about followed products, of followed merchants' products and in "
              "followed topics. Signed-in only.",
    HOT="By a time-decayed score of likes and comments, hottest first.",
    LATEST="Every visible post, newest first.",
    PRODUCT="Posts about one product (`productId` required), newest first.",
    TOPIC="Posts in one topic (`topic` required, its slug), newest first.",
)


@strawberry.type(description="Queries of feeds.")
class FeedQueries:
    @strawberry.field(
        description=(
            "A community feed, newest (HOT: hottest) first, visible posts only. `topic` filters "
            "every kind but FOLLOWING by topic slug. Keyset cursors both ways."
        )
    )
    async def feed(
        self,
        info: Info,
        kind: Annotated[FeedKind, strawberry.argument(description="Which feed.")],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        topic: Annotated[str | None, strawberry.argument(
            description="A topic slug: required for TOPIC, a filter for the others (not FOLLOWING)."
        )] = None,
        product_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="PRODUCT: the product's global ID."
        )] = None,
    ) -> Connection[Post]:
        product = decode_id(product_id, "Product", "productId") if product_id is not None else None
        page = await feeds.feed(
            info.context.actor, kind, first=first, after=after, last=last, before=before,
            topic=topic, product_id=product,
        )
        return Connection.of(page, Post.from_model)
