"""The live community subscriptions: a post's new comments, replies to me, the live feed.

Resuming a subscription: pass the ID of the last Comment / Post received as ``after``; what
was published since is read from the database first, then live events follow without a gap
or a duplicate (the same contract as ``notificationReceived``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from kameng import runtime
from resolvers.community import streams
from schema.base import decode_id
from schema.community.types import Comment, Post
from schema.context import Info


AfterComment = Annotated[strawberry.ID | None, strawberry.argument(
    description="Resume: the ID of the last Comment received; those added since come first (at most 100)."
)]


@strawberry.type(description="Live community streams.")
class StreamSubscriptions:
    @strawberry.subscription(
        description=(
            "New comments of a post. Refused with FORBIDDEN when the viewer may not see the post; "
            "ends with a FORBIDDEN error when the post is hidden later. `after`: the ID of the last "
            "Comment received, to first receive those added while disconnected."
        )
    )
    async def comment_added(
        self, info: Info,
        post_id: Annotated[strawberry.ID, strawberry.argument(description="The post's global ID.")],
        after: AfterComment = None,
    ) -> AsyncGenerator[Comment, None]:
        key = decode_id(post_id, "Post", "postId")
        last = decode_id(after, "Comment", "after") if after is not None else None
        async for comment in streams.comment_stream(runtime.bus(), info.context.actor, key, after=last):
            yield Comment.from_model(comment)

    @strawberry.subscription(
        description=(
            "Comments on the viewer's posts and replies to the viewer's comments (signed-in only). "
            "`after`: the ID of the last Comment received, to first receive those missed."
        )
    )
    async def replies_to_me(
        self, info: Info, after: AfterComment = None
    ) -> AsyncGenerator[Comment, None]:
        last = decode_id(after, "Comment", "after") if after is not None else None
        async for comment in streams.reply_stream(runtime.bus(), info.context.actor, after=last):
            yield Comment.from_model(comment)

    @strawberry.subscription(
        description=(
            "Newly published posts, in one topic (slug) if given. `after`: the ID of the last Post "
            "received, to first receive those missed."
        )
    )
    async def live_feed(
        self, info: Info,
        topic: Annotated[str | None, strawberry.argument(description="Only posts in this topic (slug).")] = None,
        after: Annotated[strawberry.ID | None, strawberry.argument(
            description="Resume: the ID of the last Post received; those published since come first (at most 100)."
        )] = None,
    ) -> AsyncGenerator[Post, None]:
        last = decode_id(after, "Post", "after") if after is not None else None
        async for post in streams.live_stream(runtime.bus(), topic=topic, after=last):
            yield Post.from_model(post)
