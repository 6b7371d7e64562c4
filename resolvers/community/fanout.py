"""FOLLOWING feeds: who follows what a post is about, and the Redis feed store fan-out fills.

With Redis: fan-out on write (Mastodon). ``fan_out`` (a job, run after the post commits)
adds the post id to the capped sorted set ``<ns>:feed:<user>`` of every follower active in
the last ``feed_active_days``, in batches of followers (keyset on follower id) through
pipelines. Only feeds that exist are written: a feed is created by ``rebuild`` from the
database, which happens when a user reads it and has none, or was inactive (fan-out skipped
them meanwhile: Mastodon #2619, feeds going empty after inactivity), or changed whom they
follow. A built feed always holds a sentinel member (score 0), so "built but empty" and
"not built" differ. Keys expire an hour before the user would stop counting as active, so
a cache that fan-out has stopped feeding never outlives its validity.

Without Redis: FOLLOWING is one SQL query over the follow set (``following_queryset``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import NoScriptError
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from kameng import runtime
from models.accounts.users import User
from models.commerce.catalog import Product
from models.community.follows import Follow, FollowKind
from models.community.posts import Post
from models.community.topics import PostTopic
from resolvers.community import ranking
from resolvers.community.visibility import public_posts

log = logging.getLogger(__name__)

#: Followers handled per fan-out batch (one SQL query and one Redis pipeline each).
FANOUT_BATCH = 1000
SENTINEL = "0"  # member with score 0 in every built feed


# -- activity ---------------------------------------------------------------------------


def last_active(user: User) -> datetime:
    """When the user was last seen: ``last_active_at``, or sign-up if never recorded since."""
    return user.last_active_at or user.created_at


def active_since(cutoff: datetime, prefix: str = "") -> Q:
    """Users (or ``<prefix>`` users) last active at or after ``cutoff``."""
    return Q(**{f"{prefix}last_active_at__gte": cutoff}) | Q(
        **{f"{prefix}last_active_at__isnull": True, f"{prefix}created_at__gte": cutoff}
    )


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
        self._loaded = False

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
        # Raw EVALSHA commands: ``Script.__call__`` on a pipeline costs a SCRIPT EXISTS round
        # trip per execute and a few Python calls per key; this is the hot loop of fan-out.
        if not self._loaded:
            await self.redis.script_load(_ADD)
            self._loaded = True
        prefix = f"{self.namespace}:feed:"
        pipe = self.redis.pipeline(transaction=False)
        command = pipe.pipeline_execute_command
        sha, cap = self._add.sha, self.cap
        for user_id in user_ids:
            command("EVALSHA", sha, 1, f"{prefix}{user_id}", post_id, cap)
        try:
            results = await pipe.execute()
        except NoScriptError:  # Redis restarted or flushed its scripts: load and run again
            self._loaded = False
            return await self.add(user_ids, post_id)
        return sum(results)

    async def rebuild(self, user_id: int) -> None:
        ids = await following_ids(user_id, limit=self.cap)
        key = self.key(user_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.zadd(key, {SENTINEL: 0, **{str(i): i for i in ids}})
        pipe.expire(key, self.ttl)
        await pipe.execute()


def current_store() -> FeedStore | None:
    """The FOLLOWING feed store of this process, or None without Redis (embedded default)."""
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
    return public_posts().filter(following_filter(user_id)).exclude(author_id=user_id)


async def following_ids(user_id: int, *, limit: int, before: int | None = None) -> list[int]:
    queryset = following_queryset(user_id)
    if before is not None:
        queryset = queryset.filter(id__lt=before)
    return list(await queryset.order_by("-id").limit(limit).values_list("id", flat=True))


# -- fan-out ----------------------------------------------------------------------------


async def fan_out(store: FeedStore, post_id: int, *, batch: int = FANOUT_BATCH) -> int:
    """Add a visible post to the cached feeds of its active followers; how many took it.

    Idempotent (a sorted-set add), so an at-least-once job may run it twice.
    """
    post = await public_posts().filter(id=post_id).first()
    if post is None:
        return 0
    targets = Q(kind=FollowKind.USER, target_id=post.author_id)
    if post.product_id is not None:
        targets |= Q(kind=FollowKind.PRODUCT, target_id=post.product_id)
        # (a values_list query has no .first(): limit it and take the row)
        merchant_ids = await Product.filter(id=post.product_id).limit(1).values_list("merchant_id", flat=True)
        if merchant_ids:
            targets |= Q(kind=FollowKind.MERCHANT, target_id=merchant_ids[0])
    topic_ids = list(await PostTopic.filter(post_id=post_id).values_list("topic_id", flat=True))
    if topic_ids:
        targets |= Q(kind=FollowKind.TOPIC, target_id__in=topic_ids)
    followers = (
        Follow.filter(targets)
        .filter(active_since(store.cutoff(), "follower__"))
        .exclude(follower_id=post.author_id)
    )

    async def page(after: int) -> list[int]:
        return list(
            await followers.filter(follower_id__gt=after)
            .order_by("follower_id")
            .distinct()
            .limit(batch)
            .values_list("follower_id", flat=True)
        )

    # The next page is read from the database while this one is written to Redis: the two
    # round trips overlap, so fan-out runs at the pace of the slower one (Redis), not their sum.
    written = 0
    ids = await page(0)
    while ids:
        following = asyncio.ensure_future(page(ids[-1])) if len(ids) == batch else None
        try:
            written += await store.add(ids, post.id)
        except BaseException:
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
            raise
        ids = await following if following is not None else []
    return written


async def publish(post_id: int) -> int:
    """A post was published (the ``fan_out_post`` job): its first HOT rank, then, with
    Redis, into its active followers' feeds; how many feeds took it. Idempotent: a re-run
    writes the same rank and the same sorted-set members."""
    await ranking.rank_post(post_id)
    store = current_store()
    if store is None:
        return 0
    written = await fan_out(store, post_id)
    log.info("feeds: post %s fanned out to %s feeds", post_id, written)
    return written
