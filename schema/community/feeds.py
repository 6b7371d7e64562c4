"""Feeds in the graph: the ``feed`` query (FOLLOWING, HOT, LATEST, PRODUCT, TOPIC)."""

from __future__ import annotations

import strawberry

from resolvers.community import feeds
from resolvers.community.feeds import FeedKind as FeedKindValue
from schema.base import Connection, decode_id
from schema.community.types import Post
from schema.context import Info

FeedKind = strawberry.enum(
    FeedKindValue,
    name="FeedKind",
    description=(
        "FOLLOWING: posts by followed users, about followed products, of followed merchants' "
        "products and in followed topics (signed-in only). HOT: by a time-decayed score of likes "
        "and comments. LATEST: newest first. PRODUCT: about one product (`productId`). TOPIC: in "
        "one topic (`topic`, its slug)."
    ),
)


@strawberry.type
class FeedQueries:
    @strawberry.field(
        description=(
            "A community feed, newest (HOT: hottest) first, visible posts only. `topic` filters "
            "every kind but FOLLOWING by topic slug. Forward pagination with keyset cursors."
        )
    )
    async def feed(
        self,
        info: Info,
        kind: FeedKind,
        first: int | None = None,
        after: str | None = None,
        topic: str | None = None,
        product_id: strawberry.ID | None = None,
    ) -> Connection[Post]:
        product = decode_id(product_id, "Product", "productId") if product_id is not None else None
        page = await feeds.feed(
            info.context.actor, kind, first=first, after=after, topic=topic, product_id=product
        )
        return Connection.of(page, Post.from_model)
