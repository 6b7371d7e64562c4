"""Feeds: pages of posts, FOLLOWING, HOT, LATEST, PRODUCT and TOPIC, all with one kind of
keyset cursor per feed (the post id; HOT: rank and id).

FOLLOWING reads the viewer's Redis feed when there is a store (built on first read, see
``resolvers.community.fanout``) and the database otherwise; both give the same pages. Paging
backward (``last``/``before``) always reads the database: the store is kept for the common
case, scrolling down from the top.
"""

from __future__ import annotations

from enum import StrEnum

from models.accounts.users import User
from models.community.posts import Post
from resolvers.accounts.auth import Actor, require
from resolvers.community.fanout import (
    SENTINEL,
    FeedStore,
    current_store,
    following_ids,
    following_queryset,
    last_active,
)
from resolvers.community.ranking import parse_rank
from resolvers.community.topics import posts_in_topic
from resolvers.community.visibility import public_posts
from resolvers.errors import invalid
from resolvers.pagination import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Page,
    decode_cursor,
    encode_cursor,
    paginate,
    paginate_by,
)


class FeedKind(StrEnum):
    FOLLOWING = "FOLLOWING"
    HOT = "HOT"
    LATEST = "LATEST"
    PRODUCT = "PRODUCT"
    TOPIC = "TOPIC"


def _size(first: int | None) -> int:
    if first is not None and not 0 <= first <= MAX_PAGE:
        raise invalid("first", f"first must be between 0 and {MAX_PAGE}.")
    return DEFAULT_PAGE if first is None else first


async def feed(
    actor: Actor,
    kind: FeedKind,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    topic: str | None = None,
    product_id: int | None = None,
    store: FeedStore | None | bool = True,
) -> Page[Post]:
    """One page of a feed, newest (or hottest) first. ``store``: True for this process's
    Redis store (if any), None to force the database, or a store (tests, benchmarks)."""
    if kind == FeedKind.FOLLOWING:
        if topic is not None:
            raise invalid("topic", "The FOLLOWING feed is not filtered by topic.")
        if last is not None or before is not None:
            user = require(actor)
            return await paginate(following_queryset(user.id), first=first, after=after, last=last, before=before)
        chosen = current_store() if store is True else store
        return await following_page(actor, first=first, after=after, store=chosen or None)
    queryset = public_posts()
    if kind == FeedKind.PRODUCT:
        if product_id is None:
            raise invalid("productId", "The PRODUCT feed needs a productId.")
        queryset = queryset.filter(product_id=product_id)
    if kind == FeedKind.TOPIC and not topic:
        raise invalid("topic", "The TOPIC feed needs a topic.")
    if topic:
        queryset = queryset.filter(id__in=posts_in_topic(topic))
    if kind == FeedKind.HOT:
        return await paginate_by(
            queryset, "hot_rank", descending=True, parse=parse_rank, first=first, after=after, last=last, before=before
        )
    return await paginate(queryset, first=first, after=after, last=last, before=before)


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
    found = {p.id: p for p in await public_posts().filter(id__in=ids)}
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
        pipe.zrevrangebyscore(key, f"({bound}" if bound is not None else "+inf", f"({SENTINEL}", start=0, num=ask)
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
