"""Live community streams: the comments of a post, replies to me, and the live feed.

A bus event names a comment or post id; the database is the source of truth. A client
resumes by passing the ID of the last comment / post it received: what came after is read
from the database (listening starts first, duplicates are dropped), exactly like
``notifications.stream``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from tortoise.expressions import Q

from models.community.comments import Comment
from models.community.posts import ContentStatus, Post
from resolvers.accounts.auth import Actor, require
from resolvers.community.topics import posts_in_topic
from resolvers.community.visibility import can_see, public_posts, visible_post
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import topics
from subscriptions.bus import EventBus

#: At most this many missed items are replayed to a resuming subscriber.
RESUME_MAX = 100
#: A subscriber to a post's comments re-checks that the post is still visible this often,
#: even when no comment arrives.
RECHECK_SECONDS = 30.0


def _post_shown(actor: Actor, post: Post) -> bool:
    return can_see(actor, post.status, post.author_id)


def _comment_shown(comment: Comment, actor: Actor) -> bool:
    return comment.status == ContentStatus.VISIBLE and _post_shown(actor, comment.post)


class _Sent:
    """Ids already delivered (backlog vs live, at-least-once relay), bounded."""

    def __init__(self) -> None:
        self._ids: dict[int, None] = {}

    def __contains__(self, item: int) -> bool:
        return item in self._ids

    def add(self, item: int) -> None:
        self._ids[item] = None
        if len(self._ids) > RESUME_MAX * 10:
            del self._ids[next(iter(self._ids))]


async def comment_stream(
    bus: EventBus, actor: Actor, post_id: int, *, after: int | None = None, recheck: float = RECHECK_SECONDS
) -> AsyncIterator[Comment]:
    """New visible comments of a post the actor may see; first those after ``after``.

    Raises FORBIDDEN when the post is (or becomes) hidden from the actor: checked on
    subscribe, with every event, and every ``recheck`` seconds while the thread is quiet.
    """
    if await visible_post(actor, post_id) is None:
        raise UserFacingError(ErrorCode.FORBIDDEN, "You cannot follow this post's comments.")
    async with bus.subscribe(topics.post_comments(post_id)) as events:
        sent = _Sent()
        if after is not None:
            backlog = (
                Comment.filter(post_id=post_id, id__gt=after, status=ContentStatus.VISIBLE)
                .select_related("post")
                .order_by("id")
                .limit(RESUME_MAX)
            )
            for comment in await backlog:
                sent.add(comment.id)
                yield comment
        queue: asyncio.Queue[int | None] = asyncio.Queue()

        async def pump() -> None:
            async for event in events:
                queue.put_nowait(int(event.data["comment"]) if "comment" in event.data else None)

        pumping = asyncio.create_task(pump())
        try:
            while True:
                try:
                    comment_id = await asyncio.wait_for(queue.get(), timeout=recheck)
                except TimeoutError:
                    comment_id = None
                if pumping.done():
                    pumping.result()  # the bus failed: let the client reconnect and resume
                if comment_id is None or comment_id in sent or (after is not None and comment_id <= after):
                    if await visible_post(actor, post_id) is None:
                        raise UserFacingError(ErrorCode.FORBIDDEN, "This post is no longer visible.")
                    continue
                comment = await Comment.filter(id=comment_id, post_id=post_id).select_related("post").first()
                if comment is None:
                    continue
                if not _post_shown(actor, comment.post):
                    raise UserFacingError(ErrorCode.FORBIDDEN, "This post is no longer visible.")
                if comment.status == ContentStatus.VISIBLE:
                    sent.add(comment.id)
                    yield comment
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)


def _replies_to(user_id: int) -> Q:
    return Q(post__author_id=user_id) | Q(parent__author_id=user_id)


async def reply_stream(bus: EventBus, actor: Actor, *, after: int | None = None) -> AsyncIterator[Comment]:
    """Comments on the viewer's posts and replies to their comments (not their own)."""
    user = require(actor)
    async with bus.subscribe(topics.replies(user.id)) as events:
        sent = _Sent()
        if after is not None:
            backlog = (
                Comment.filter(_replies_to(user.id), id__gt=after, status=ContentStatus.VISIBLE)
                .exclude(author_id=user.id)
                .select_related("post")
                .order_by("id")
                .limit(RESUME_MAX)
            )
            for comment in await backlog:
                if _comment_shown(comment, actor):
                    sent.add(comment.id)
                    yield comment
        async for event in events:
            comment_id = int(event.data["comment"])
            if comment_id in sent or (after is not None and comment_id <= after):
                continue
            comment = await Comment.filter(id=comment_id).select_related("post").first()
            if comment is None or comment.author_id == user.id or not _comment_shown(comment, actor):
                continue
            sent.add(comment.id)
            yield comment


class _SharedPosts:
    """One load of a post per process for all live-feed subscribers of an event (5,000
    subscribers of one published post cost one query, not 5,000). Entries live briefly."""

    TTL = 2.0

    def __init__(self) -> None:
        self._entries: dict[int, tuple[float, asyncio.Task[Post | None]]] = {}

    def get(self, post_id: int) -> asyncio.Task[Post | None]:
        now = time.monotonic()
        entry = self._entries.get(post_id)
        if entry is not None and now - entry[0] < self.TTL:
            return entry[1]
        if len(self._entries) > 256:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.TTL}
        task = asyncio.ensure_future(public_posts().filter(id=post_id).first())
        self._entries[post_id] = (now, task)
        return task


_shared_posts = _SharedPosts()


async def live_stream(bus: EventBus, *, topic: str | None = None, after: int | None = None) -> AsyncIterator[Post]:
    """Newly published visible posts (in ``topic`` if given); first those after ``after``."""
    async with bus.subscribe(topics.LIVE_POSTS) as events:
        sent = _Sent()
        if after is not None:
            backlog = public_posts().filter(id__gt=after)
            if topic:
                backlog = backlog.filter(id__in=posts_in_topic(topic))
            for post in await backlog.order_by("id").limit(RESUME_MAX):
                sent.add(post.id)
                yield post
        async for event in events:
            post_id = int(event.data["post"])
            if post_id in sent or (after is not None and post_id <= after):
                continue
            if topic and topic not in (event.data.get("topics") or ()):
                continue
            post = await asyncio.shield(_shared_posts.get(post_id))
            if post is not None:
                sent.add(post.id)
                yield post
