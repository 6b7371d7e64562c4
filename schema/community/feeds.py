"""Follows, feeds and the live community subscriptions in the graph.

``Post`` and ``Comment`` are the community module's types (schema.community.community), referenced
lazily. Resuming a subscription: pass the ID of the last Comment / Post received as
``after``; what was published since is read from the database first, then live events
follow without a gap or a duplicate (the same contract as ``notificationReceived``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from kameng import runtime
from models.community.community import Comment as CommentModel
from models.community.community import Post as PostModel
from resolvers.community import feeds, follows
from resolvers.errors import invalid
from resolvers.community.feeds import FeedKind as FeedKindValue
from schema.base import Connection, UserError, decode_id, run_mutation
from schema.context import Info

if TYPE_CHECKING:
    from schema.community.community import Comment, Post

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


def _post(model: PostModel) -> Post:
    from schema.community.community import Post

    return Post.from_model(model)


def _comment(model: CommentModel) -> Comment:
    from schema.community.community import Comment

    return Comment.from_model(model)


def _target(target_id: strawberry.ID) -> tuple[str, int]:
    try:
        gid = relay.GlobalID.from_id(str(target_id))
        return gid.type_name, int(gid.node_id)
    except (ValueError, TypeError):
        raise invalid(follows.FIELD, "Expected the ID of a user, merchant, product or topic.") from None


# -- follows ----------------------------------------------------------------------------


@strawberry.input
class FollowInput:
    target_id: strawberry.ID = strawberry.field(description="A User, Merchant, Product or Topic.")


@strawberry.input
class UnfollowInput:
    target_id: strawberry.ID


@strawberry.type
class FollowPayload:
    errors: list[UserError]
    following: bool | None = None
    changed: bool | None = strawberry.field(default=None, description="False when it already was so.")


@strawberry.type
class UnfollowPayload:
    errors: list[UserError]
    following: bool | None = None
    changed: bool | None = strawberry.field(default=None, description="False when it already was so.")


def _result(result: follows.FollowResult) -> dict[str, Any]:
    return {"following": result.following, "changed": result.changed}


@strawberry.type
class FollowMutations:
    @strawberry.mutation(description="Follow a user, merchant, product or topic (idempotent).")
    async def follow(self, info: Info, input: FollowInput) -> FollowPayload:
        async def action() -> dict[str, Any]:
            type_name, key = _target(input.target_id)
            return _result(await follows.follow(info.context.actor, type_name, key))

        return await run_mutation(FollowPayload, action())

    @strawberry.mutation(description="Stop following (idempotent).")
    async def unfollow(self, info: Info, input: UnfollowInput) -> UnfollowPayload:
        async def action() -> dict[str, Any]:
            type_name, key = _target(input.target_id)
            return _result(await follows.unfollow(info.context.actor, type_name, key))

        return await run_mutation(UnfollowPayload, action())


# -- feeds ------------------------------------------------------------------------------


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
    ) -> Connection[Annotated[Post, strawberry.lazy("schema.community.community")]]:
        product = decode_id(product_id, "Product", "productId") if product_id is not None else None
        page = await feeds.feed(
            info.context.actor, kind, first=first, after=after, topic=topic, product_id=product
        )
        return Connection.of(page, _post)


# -- subscriptions ----------------------------------------------------------------------


@strawberry.type
class FeedSubscriptions:
    @strawberry.subscription(
        description=(
            "New comments of a post. Refused with FORBIDDEN when the viewer may not see the post; "
            "ends with a FORBIDDEN error when the post is hidden later. `after`: the ID of the last "
            "Comment received, to first receive those added while disconnected."
        )
    )
    async def comment_added(
        self, info: Info, post_id: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[Annotated[Comment, strawberry.lazy("schema.community.community")], None]:
        key = decode_id(post_id, "Post", "postId")
        last = decode_id(after, "Comment", "after") if after is not None else None
        async for comment in feeds.comment_stream(runtime.bus(), info.context.actor, key, after=last):
            yield _comment(comment)

    @strawberry.subscription(
        description=(
            "Comments on the viewer's posts and replies to the viewer's comments (signed-in only). "
            "`after`: the ID of the last Comment received, to first receive those missed."
        )
    )
    async def replies_to_me(
        self, info: Info, after: strawberry.ID | None = None
    ) -> AsyncGenerator[Annotated[Comment, strawberry.lazy("schema.community.community")], None]:
        last = decode_id(after, "Comment", "after") if after is not None else None
        async for comment in feeds.reply_stream(runtime.bus(), info.context.actor, after=last):
            yield _comment(comment)

    @strawberry.subscription(
        description=(
            "Newly published posts, in one topic (slug) if given. `after`: the ID of the last Post "
            "received, to first receive those missed."
        )
    )
    async def live_feed(
        self, info: Info, topic: str | None = None, after: strawberry.ID | None = None
    ) -> AsyncGenerator[Annotated[Post, strawberry.lazy("schema.community.community")], None]:
        last = decode_id(after, "Post", "after") if after is not None else None
        async for post in feeds.live_stream(runtime.bus(), topic=topic, after=last):
            yield _post(post)
