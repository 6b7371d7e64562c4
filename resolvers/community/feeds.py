"""Feeds (FOLLOWING, HOT, LATEST, PRODUCT, TOPIC), the HOT rank, FOLLOWING fan-out, and the
live community streams (comments of a post, replies to me, the live feed).

FOLLOWING, two ways with one cursor format (the post id):

* With Redis: fan-out on write (Mastodon). ``fan_out`` (a job, run after the post commits)
  adds the post id to the capped sorted set ``<ns>:feed:<user>`` of every follower active in
  the last ``feed_active_days``, in batches of followers (keyset on follower id) through
  pipelines. Only feeds that exist are written: a feed is created by ``rebuild`` from the
  database, which happens when a user reads it and has none, or was inactive (fan-out skipped
  them meanwhile: Mastodon #2619, feeds going empty after inactivity), or changed whom they
  follow. A built feed always holds a sentinel member (score 0), so "built but empty" and
  "not built" differ. Keys expire an hour before the user would stop counting as active,
  so a cache that fan-out has stopped feeding never outlives its validity.
* Without Redis: one SQL query over the follow set, keyset by id.

HOT: ``hot_rank`` stored on the post, ordered (hot_rank, id) desc with a keyset cursor. The
rank is Lemmy's ``log10(max(2, score + 2)) / (hours + 2) ** 1.8`` with score = likes +
comments (floored by the max, so negative or empty posts rank like score 0, never below),
set when the post is fanned out and refreshed in batches by a periodic sweep for the posts of
the last ``HOT_WINDOW``. The same sweep sets the rank of posts that left the window to 0, so
a post that stops being refreshed cannot stay on top (Lemmy #3428).

Live streams: a bus event names a comment or post id; the database is the source of truth.
A client resumes by passing the ID of the last comment / post it received: what came after
is read from the database (listening starts first, duplicates are dropped), exactly like
``notifications.stream``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from models.accounts.users import User
from models.commerce.catalog import Product
from models.community.community import Comment, ContentStatus, Follow, FollowKind, Post, PostTopic, Topic
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Page,
    decode_cursor,
    encode_cursor,
    paginate,
    paginate_by,
)
from subscriptions import topics
from subscriptions.bus import EventBus

log = logging.getLogger(__name__)

#: Posts younger than this have their HOT rank refreshed; older ones rank 0.
HOT_WINDOW = timedelta(days=7)
#: Followers handled per fan-out batch (one SQL query and one Redis pipeline each).
FANOUT_BATCH = 1000
#: Post rows per HOT refresh batch.
RANK_BATCH = 1000
#: At most this many missed items are replayed to a resuming subscriber.
RESUME_MAX = 100
#: A subscriber to a post's comments re-checks that the post is still visible this often,
#: even when no comment arrives.
RECHECK_SECONDS = 30.0
_SENTINEL = "0"  # member with score 0 in every built feed


class FeedKind(StrEnum):
    FOLLOWING = "FOLLOWING"
    HOT = "HOT"
    LATEST = "LATEST"
    PRODUCT = "PRODUCT"
    TOPIC = "TOPIC"


comments_topic = topics.post_comments


replies_topic = topics.replies


# -- activity ---------------------------------------------------------------------------


def last_active(user: User) -> datetime:
    """When the user was last seen: ``last_active_at``, or sign-up if never recorded since."""
    return user.last_active_at or user.created_at


def active_since(cutoff: datetime, prefix: str = "") -> Q:
    """Users (or ``<prefix>`` users) last active at or after ``cutoff``."""
    return Q(**{f"{prefix}last_active_at__gte": cutoff}) | Q(
        **{f"{prefix}last_active_at__isnull": True, f"{prefix}created_at__gte": cutoff}
    )


# -- visibility -------------------------------------------------------------------------


def post_visible(actor: Actor, post: Post) -> bool:
    """The community module's rule: VISIBLE to everyone, the author's own held or hidden
    posts to the author, everything to staff."""
    from resolvers.community.community import can_see  # imported late: community's jobs import feeds

    return can_see(actor, post.status, post.author_id)


def _visible() -> QuerySet[Post]:
    return Post.filter(status=ContentStatus.VISIBLE)


# -- the Redis feed store ---------------------------------------------------------------

# KEYS: feed. ARGV: post id, cap. Only a built feed is written (see the module docstring).
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 2))
  return 1
end
return 0
"""


@dataclass
class FeedStore:
    """Capped FOLLOWING feeds in Redis under ``namespace``."""

    redis: Redis
    namespace: str
    cap: int = 800
    active_days: float = 7

    def __post_init__(self) -> None:
        self._add = self.redis.register_script(_ADD)

    def key(self, user_id: int) -> str:
        return f"{self.namespace}:feed:{user_id}"

    @property
    def ttl(self) -> int:
        # An hour less than activity lasts: the key is gone before fan-out stops feeding it.
        return max(60, int(self.active_days * 86400) - 3600)

    def cutoff(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) - timedelta(days=self.active_days)

    async def forget(self, user_id: int) -> None:
        await self.redis.delete(self.key(user_id))

    async def add(self, user_ids: list[int], post_id: int) -> int:
        """Add ``post_id`` to the built feeds of ``user_ids`` (one pipeline); how many took it."""
        if not user_ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for user_id in user_ids:
            await self._add(keys=[self.key(user_id)], args=[post_id, self.cap], client=pipe)
        return sum(int(r) for r in await pipe.execute())

    async def rebuild(self, user_id: int) -> None:
        ids = await following_ids(user_id, limit=self.cap)
        key = self.key(user_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.zadd(key, {_SENTINEL: 0, **{str(i): i for i in ids}})
        pipe.expire(key, self.ttl)
        await pipe.execute()


def current_store() -> FeedStore | None:
    """The FOLLOWING feed store of this process, or None without Redis (embedded default)."""
    from kameng import runtime

    rt = runtime.current()
    if rt.redis is None:
        return None
    store = rt.local.get("feed_store")
    if store is None or store.redis is not rt.redis:
        settings = rt.settings
        store = FeedStore(rt.redis, settings.namespace, settings.feed_max_posts, settings.feed_active_days)
        rt.local["feed_store"] = store
    return store


# -- FOLLOWING from the database --------------------------------------------------------


def _followed(user_id: int, kind: FollowKind) -> Subquery:
    return Subquery(Follow.filter(follower_id=user_id, kind=kind).values("target_id"))


def following_filter(user_id: int) -> Q:
    """Posts by followed users, about followed products, of followed merchants' products, or
    in followed topics (the viewer's own posts excluded)."""
    topics = Subquery(
        PostTopic.filter(topic_id__in=_followed(user_id, FollowKind.TOPIC)).values("post_id")
    )
    return (
        Q(author_id__in=_followed(user_id, FollowKind.USER))
        | Q(product_id__in=_followed(user_id, FollowKind.PRODUCT))
        | Q(product__merchant_id__in=_followed(user_id, FollowKind.MERCHANT))
        | Q(id__in=topics)
    )


def following_queryset(user_id: int) -> QuerySet[Post]:
    return _visible().filter(following_filter(user_id)).exclude(author_id=user_id)


async def following_ids(user_id: int, *, limit: int, before: int | None = None) -> list[int]:
    queryset = following_queryset(user_id)
    if before is not None:
        queryset = queryset.filter(id__lt=before)
    return list(await queryset.order_by("-id").limit(limit).values_list("id", flat=True))


# -- reading feeds ----------------------------------------------------------------------


def _size(first: int | None) -> int:
    if first is not None and not 0 <= first <= MAX_PAGE:
        raise invalid("first", f"first must be between 0 and {MAX_PAGE}.")
    return DEFAULT_PAGE if first is None else first


def parse_rank(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError
    return float(value)


async def _topic_posts(slug: str) -> Subquery:
    return Subquery(PostTopic.filter(topic__slug=slug).values("post_id"))


async def feed(
    actor: Actor,
    kind: FeedKind,
    *,
    first: int | None = None,
    after: str | None = None,
    topic: str | None = None,
    product_id: int | None = None,
    store: FeedStore | None | bool = True,
) -> Page[Post]:
    """One page of a feed, newest (or hottest) first. ``store``: True for this process's
    Redis store (if any), None to force the database, or a store (tests, benchmarks)."""
    if kind == FeedKind.FOLLOWING:
        if topic is not None:
            raise invalid("topic", "The FOLLOWING feed is not filtered by topic.")
        chosen = current_store() if store is True else store
        return await following_page(actor, first=first, after=after, store=chosen or None)
    queryset = _visible()
    if kind == FeedKind.PRODUCT:
        if product_id is None:
            raise invalid("productId", "The PRODUCT feed needs a productId.")
        queryset = queryset.filter(product_id=product_id)
    if kind == FeedKind.TOPIC and not topic:
        raise invalid("topic", "The TOPIC feed needs a topic.")
    if topic:
        queryset = queryset.filter(id__in=await _topic_posts(topic))
    if kind == FeedKind.HOT:
        return await paginate_by(queryset, "hot_rank", descending=True, parse=parse_rank, first=first, after=after)
    return await paginate(queryset, first=first, after=after)


async def following_page(
    actor: Actor, *, first: int | None = None, after: str | None = None, store: FeedStore | None = None
) -> Page[Post]:
    user = require(actor)
    size = _size(first)
    before = decode_cursor(after, "after") if after is not None else None
    queryset = following_queryset(user.id)
    if store is None:
        ranged = queryset.filter(id__lt=before) if before is not None else queryset
        posts = list(await ranged.order_by("-id").limit(size + 1))
    else:
        posts = await _following_from_store(store, user, size + 1, before)
    more = len(posts) > size
    posts = posts[:size]
    return Page(
        items=posts,
        cursors=[encode_cursor(p.id) for p in posts],
        has_next=more,
        has_previous=after is not None,
        total=queryset,
    )


async def _load(ids: list[int]) -> list[Post]:
    """Visible posts of ``ids``, in that order (one query)."""
    if not ids:
        return []
    found = {p.id: p for p in await _visible().filter(id__in=ids)}
    return [found[i] for i in ids if i in found]


async def _following_from_store(store: FeedStore, user: User, want: int, before: int | None) -> list[Post]:
    key = store.key(user.id)
    if last_active(user) < store.cutoff() or not await store.redis.exists(key):
        # New, or back after fan-out stopped writing their feed: rebuild before reading.
        await store.rebuild(user.id)
    posts: list[Post] = []
    bound = before
    for _ in range(3):  # hidden or deleted posts are skipped: read on until the page is full
        ask = want - len(posts) + 5
        pipe = store.redis.pipeline(transaction=False)
        pipe.zrevrangebyscore(key, f"({bound}" if bound is not None else "+inf", f"({_SENTINEL}", start=0, num=ask)
        pipe.zcard(key)
        pipe.expire(key, store.ttl)
        raw, size, _ = await pipe.execute()
        ids = [int(i) for i in raw]
        posts += await _load(ids)
        if len(posts) >= want:
            return posts[:want]
        if len(ids) < ask:
            # The cached feed is exhausted. If it was capped, older posts exist only in the
            # database: continue there, from the last id seen.
            if size > store.cap and (ids or bound is not None):
                bound = ids[-1] if ids else bound
                posts += await _load(await following_ids(user.id, limit=want - len(posts), before=bound))
            return posts
        bound = ids[-1]
    return posts + await _load(await following_ids(user.id, limit=want - len(posts), before=bound))


# -- fan-out ----------------------------------------------------------------------------


async def fan_out(store: FeedStore, post_id: int, *, batch: int = FANOUT_BATCH) -> int:
    """Add a visible post to the cached feeds of its active followers; how many took it.

    Idempotent (a sorted-set add), so an at-least-once job may run it twice.
    """
    post = await _visible().filter(id=post_id).first()
    if post is None:
        return 0
    targets = Q(kind=FollowKind.USER, target_id=post.author_id)
    if post.product_id is not None:
        targets |= Q(kind=FollowKind.PRODUCT, target_id=post.product_id)
        merchant_id = await Product.filter(id=post.product_id).values_list("merchant_id", flat=True).first()
        if merchant_id is not None:
            targets |= Q(kind=FollowKind.MERCHANT, target_id=merchant_id)
    topic_ids = list(await PostTopic.filter(post_id=post_id).values_list("topic_id", flat=True))
    if topic_ids:
        targets |= Q(kind=FollowKind.TOPIC, target_id__in=topic_ids)
    followers = (
        Follow.filter(targets)
        .filter(active_since(store.cutoff(), "follower__"))
        .exclude(follower_id=post.author_id)
    )
    written = 0
    last = 0
    while True:
        ids = list(
            await followers.filter(follower_id__gt=last)
            .order_by("follower_id")
            .distinct()
            .limit(batch)
            .values_list("follower_id", flat=True)
        )
        if not ids:
            return written
        written += await store.add(ids, post.id)
        if len(ids) < batch:
            return written
        last = ids[-1]


# -- HOT rank ---------------------------------------------------------------------------


def hot_rank(likes: int, comments: int, created_at: datetime, now: datetime | None = None) -> float:
    """Lemmy's rank: log10(max(2, score + 2)) / (hours + 2) ** 1.8; 0 outside the window."""
    age = (now or datetime.now(UTC)) - created_at
    if age >= HOT_WINDOW:
        return 0.0
    hours = max(0.0, age.total_seconds() / 3600)
    score = likes + comments
    return math.log10(max(2, score + 2)) / (hours + 2) ** 1.8


async def rank_post(post_id: int) -> None:
    """Give a new post its first rank (the sweep keeps it up to date afterwards)."""
    post = await Post.filter(id=post_id).first()
    if post is not None:
        rank = hot_rank(post.like_count, post.comment_count, post.created_at)
        await Post.filter(id=post_id).update(hot_rank=rank)


async def refresh_hot_ranks(now: datetime | None = None, *, batch: int = RANK_BATCH) -> int:
    """Recompute the rank of the window's posts in batches, and zero the rank of every post
    older than the window (those that just left it included). Returns posts recomputed."""
    now = now or datetime.now(UTC)
    cutoff = now - HOT_WINDOW
    done = 0
    last = 0
    while True:
        rows = list(
            await Post.filter(created_at__gte=cutoff, id__gt=last, status=ContentStatus.VISIBLE)
            .order_by("id")
            .limit(batch)
        )
        if not rows:
            break
        for row in rows:
            row.hot_rank = hot_rank(row.like_count, row.comment_count, row.created_at, now)
        await Post.bulk_update(rows, fields=["hot_rank"], batch_size=batch)
        done += len(rows)
        last = rows[-1].id
        if len(rows) < batch:
            break
    await Post.filter(created_at__lt=cutoff, hot_rank__gt=0).update(hot_rank=0.0)
    return done


# -- live streams -----------------------------------------------------------------------


async def visible_post(actor: Actor, post_id: int) -> Post | None:
    post = await Post.filter(id=post_id).first()
    return post if post is not None and post_visible(actor, post) else None


def _comment_shown(comment: Comment, actor: Actor) -> bool:
    return comment.status == ContentStatus.VISIBLE and post_visible(actor, comment.post)


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
    async with bus.subscribe(comments_topic(post_id)) as events:
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
                if not post_visible(actor, comment.post):
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
    async with bus.subscribe(replies_topic(user.id)) as events:
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
        task = asyncio.ensure_future(_visible().filter(id=post_id).first())
        self._entries[post_id] = (now, task)
        return task


_shared_posts = _SharedPosts()


async def live_stream(bus: EventBus, *, topic: str | None = None, after: int | None = None) -> AsyncIterator[Post]:
    """Newly published visible posts (in ``topic`` if given); first those after ``after``."""
    async with bus.subscribe(topics.LIVE_POSTS) as events:
        sent = _Sent()
        if after is not None:
            backlog = _visible().filter(id__gt=after)
            if topic:
                backlog = backlog.filter(id__in=await _topic_posts(topic))
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


async def topic_exists(slug: str) -> bool:
    return await Topic.filter(slug=slug).exists()
