"""Follows, feeds (FOLLOWING from the database and from Redis fan-out, HOT, LATEST, PRODUCT,
TOPIC), the HOT rank sweep, and activity tracking.

Posts are made with the ORM (the posts engineer's mutations are tested with them). The Redis
fan-out tests build their own FeedStore on LOCAL_REDIS under a fresh namespace (as
tests/test_bus.py does), so they run, against the real Redis, in the embedded run too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from strawberry.relay import GlobalID

from models.accounts.users import User
from models.commerce.catalog import Product
from models.community.follows import Follow, FollowKind
from models.community.posts import ContentStatus, Post, PostKind
from models.community.topics import PostTopic, Topic
from models.accounts.notifications import Notification
from resolvers.community import fanout, feeds, follows, ranking
from resolvers.accounts.auth import Actor, authenticate
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.community.fanout import FeedStore
from resolvers.community.feeds import FeedKind
from resolvers.pagination import decode_cursor
from subscriptions import jobs, outbox
from tests.conftest import LOCAL_REDIS, Client, drop_redis_namespace, eventually, new_namespace, reachable
from tests.factories import make_merchant, make_product, make_user, make_users, token_for

FOLLOW = "mutation($input: FollowInput!) { follow(input: $input) { errors { code field } following changed } }"
UNFOLLOW = "mutation($input: UnfollowInput!) { unfollow(input: $input) { errors { code field } following changed } }"


def gid(type_name: str, key: int) -> str:
    return str(GlobalID(type_name, str(key)))


def actor(user: User) -> Actor:
    return Actor(user=user)


async def make_post(
    author: User,
    *,
    product: Product | None = None,
    topics: tuple[Topic, ...] = (),
    status: ContentStatus = ContentStatus.VISIBLE,
    likes: int = 0,
    comments: int = 0,
    age: timedelta | None = None,
) -> Post:
    post = await Post.create(
        author=author, kind=PostKind.GUIDE, title="A post", body="body", body_html="<p>body</p>",
        product=product, status=status, like_count=likes, comment_count=comments,
    )
    for topic in topics:
        await PostTopic.create(post=post, topic=topic)
    if age is not None:
        await Post.filter(id=post.id).update(created_at=datetime.now(UTC) - age)
        post = await Post.get(id=post.id)
    return post


async def make_topic() -> Topic:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    return await Topic.create(slug=slug, name=slug)


def ids(page: Any) -> list[int]:
    return [p.id for p in page.items]


# -- follows ----------------------------------------------------------------------------


async def test_follow_is_idempotent_counts_and_notifies_once(stack: Any) -> None:
    fan, star = await make_user(), await make_user()
    first = await follows.follow(actor(fan), "User", star.id)
    again = await follows.follow(actor(fan), "User", star.id)
    assert (first.following, first.changed, again.changed) == (True, True, False)
    assert (await User.get(id=star.id)).follower_count == 1
    assert await Follow.filter(follower_id=fan.id).count() == 1
    await eventually(lambda: Notification.filter(user_id=star.id, kind="FOLLOW").exists())

    gone = await follows.unfollow(actor(fan), "User", star.id)
    still_gone = await follows.unfollow(actor(fan), "User", star.id)
    assert (gone.changed, still_gone.changed, gone.following) == (True, False, False)
    assert (await User.get(id=star.id)).follower_count == 0
    # Following again does not notify again (dedupe key).
    await follows.follow(actor(fan), "User", star.id)
    assert (await User.get(id=star.id)).follower_count == 1
    await asyncio.sleep(0.2)
    assert await Notification.filter(user_id=star.id, kind="FOLLOW").count() == 1


async def test_follow_merchants_products_and_topics(stack: Any) -> None:
    fan = await make_user()
    product = await make_product()
    topic = await make_topic()
    for type_name, key in (("Merchant", product.merchant_id), ("Product", product.id), ("Topic", topic.id)):
        assert (await follows.follow(actor(fan), type_name, key)).changed
    kinds = set(await Follow.filter(follower_id=fan.id).values_list("kind", flat=True))
    assert kinds == {FollowKind.MERCHANT, FollowKind.PRODUCT, FollowKind.TOPIC}
    assert await follows.following_counts([fan.id, 10**12]) == [3, 0]


async def test_concurrent_follows_keep_the_follower_count_exact(stack: Any) -> None:
    star = await make_user()
    fans = await make_users(30)
    # Every fan follows twice at once, and a third of them unfollow at once too.
    await asyncio.gather(*(follows.follow(actor(f), "User", star.id) for f in fans for _ in range(2)))
    assert (await User.get(id=star.id)).follower_count == 30
    await asyncio.gather(*(follows.unfollow(actor(f), "User", star.id) for f in fans[:10] for _ in range(2)))
    rows = await Follow.filter(kind=FollowKind.USER, target_id=star.id).count()
    assert rows == 20
    assert (await User.get(id=star.id)).follower_count == rows


async def test_follow_over_graphql_and_bad_input_changes_nothing(stack: Any, client: Client) -> None:
    account = await client.register()
    me = int(GlobalID.from_id(account["user"]["id"]).node_id)
    star = await make_user()
    ok = (await client.gql(FOLLOW, {"input": {"targetId": gid("User", star.id)}}))["follow"]
    assert ok == {"errors": [], "following": True, "changed": True}
    bad_inputs = [
        account["user"]["id"],  # oneself
        "not-a-global-id",
        gid("Order", 1),  # not followable
        gid("User", 10**12),  # nobody
        gid("Topic", 10**12),
    ]
    for target in bad_inputs:
        payload = (await client.gql(FOLLOW, {"input": {"targetId": target}}))["follow"]
        assert payload == {"errors": [{"code": "INVALID_INPUT", "field": "targetId"}], "following": None, "changed": None}
    assert await Follow.filter(follower_id=me).count() == 1
    assert (await User.get(id=star.id)).follower_count == 1
    data = await client.gql(
        "query($id: ID!) { node(id: $id) { ... on User { followerCount followingCount } } viewer { followingCount } }",
        {"id": gid("User", star.id)},
    )
    assert data == {"node": {"followerCount": 1, "followingCount": 0}, "viewer": {"followingCount": 1}}
    off = (await client.gql(UNFOLLOW, {"input": {"targetId": gid("User", star.id)}}))["unfollow"]
    assert off == {"errors": [], "following": False, "changed": True}
    anonymous = (await client.gql(FOLLOW, {"input": {"targetId": gid("User", star.id)}}, token=""))["follow"]
    assert anonymous["errors"][0]["code"] == "UNAUTHENTICATED"
    assert (await User.get(id=star.id)).follower_count == 0


# -- FOLLOWING from the database --------------------------------------------------------


async def _following_world() -> dict[str, Any]:
    """A reader following a user, a product, a merchant and a topic, and posts of each kind."""
    reader, author, stranger = await make_user(), await make_user(), await make_user()
    followed_product = await make_product()
    shop = await make_merchant()
    shop_product = await make_product(shop)
    other_product = await make_product()
    topic, other_topic = await make_topic(), await make_topic()
    await follows.follow(actor(reader), "User", author.id)
    await follows.follow(actor(reader), "Product", followed_product.id)
    await follows.follow(actor(reader), "Merchant", shop.id)
    await follows.follow(actor(reader), "Topic", topic.id)
    expected = [
        await make_post(author),
        await make_post(stranger, product=followed_product),
        await make_post(stranger, product=shop_product),
        await make_post(stranger, topics=(topic,)),
        await make_post(author, product=shop_product, topics=(topic,)),  # matches thrice: once
    ]
    noise = [
        await make_post(stranger),
        await make_post(stranger, product=other_product, topics=(other_topic,)),
        await make_post(author, status=ContentStatus.HIDDEN),
        await make_post(author, status=ContentStatus.HELD),
        await make_post(reader, topics=(topic,)),  # one's own post
    ]
    return {"reader": reader, "author": author, "stranger": stranger, "expected": expected, "noise": noise,
            "topic": topic, "shop_product": shop_product}


async def test_following_from_the_database(stack: Any) -> None:
    world = await _following_world()
    reader = world["reader"]
    want = sorted((p.id for p in world["expected"]), reverse=True)
    page = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=10, store=None)
    assert ids(page) == want and not page.has_next
    # Keyset pages of two.
    seen: list[int] = []
    after = None
    while True:
        page = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=2, after=after, store=None)
        seen += ids(page)
        if not page.has_next:
            break
        after = page.cursors[-1]
    assert seen == want
    assert await page.total.count() == len(want)  # type: ignore[union-attr]
    with pytest.raises(UserFacingError) as anonymous:
        await feeds.feed(Actor(), FeedKind.FOLLOWING, store=None)
    assert anonymous.value.code == ErrorCode.UNAUTHENTICATED


# -- FOLLOWING from Redis ---------------------------------------------------------------


@pytest.fixture
async def store() -> AsyncIterator[FeedStore]:
    if not reachable(LOCAL_REDIS, 6379):
        pytest.skip(f"Redis is not reachable at {LOCAL_REDIS}")
    namespace = new_namespace()
    client = Redis.from_url(LOCAL_REDIS)
    try:
        yield FeedStore(client, namespace, cap=50, active_days=7)
    finally:
        await client.aclose()
        await drop_redis_namespace(LOCAL_REDIS, namespace)


async def test_redis_feed_is_built_fanned_out_and_matches_the_database(stack: Any, store: FeedStore) -> None:
    world = await _following_world()
    reader = await User.get(id=world["reader"].id)
    # First read: no feed yet, built from the database.
    assert not await store.redis.exists(store.key(reader.id))
    page = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=10, store=store)
    assert ids(page) == sorted((p.id for p in world["expected"]), reverse=True)
    assert await store.redis.exists(store.key(reader.id))
    assert 0 < await store.redis.ttl(store.key(reader.id)) <= 7 * 86400

    # A new post by the followed author reaches the feed by fan-out, not by a rebuild.
    post = await make_post(world["author"])
    assert await fanout.fan_out(store, post.id) == 1
    assert await fanout.fan_out(store, post.id) == 1  # a re-run is harmless
    await Post.filter(id=world["expected"][0].id).update(status=ContentStatus.HIDDEN)  # hidden later
    page = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=3, store=store)
    db = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=3, store=None)
    assert ids(page) == ids(db) and ids(page)[0] == post.id and world["expected"][0].id not in ids(page)
    # The same cursors work on both paths.
    nxt = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=3, after=page.cursors[-1], store=store)
    nxt_db = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=3, after=page.cursors[-1], store=None)
    assert ids(nxt) == ids(nxt_db)

    # Unfollowing drops the cache: the next read is rebuilt without the author's posts.
    await follows.unfollow(actor(reader), "User", world["author"].id)  # the runtime's store (maybe none)
    await store.forget(reader.id)
    page = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=10, store=store)
    assert post.id not in ids(page)


async def test_fan_out_reaches_the_followers_of_a_posts_product_and_its_shop(stack: Any, store: FeedStore) -> None:
    """A post about a product reaches who follows the product and who follows its shop (the
    shop is looked up from the product: this path used to fail on every such post)."""
    product = await make_product()
    shop_fan, product_fan = await make_users(2)
    for fan in (shop_fan, product_fan):
        await User.filter(id=fan.id).update(last_active_at=datetime.now(UTC))
    await follows.follow(actor(shop_fan), "Merchant", product.merchant_id)
    await follows.follow(actor(product_fan), "Product", product.id)
    for fan in (shop_fan, product_fan):
        await feeds.feed(actor(await User.get(id=fan.id)), FeedKind.FOLLOWING, first=5, store=store)  # built
    post = await make_post(await make_user(), product=product)
    assert await fanout.fan_out(store, post.id) == 2
    for fan in (shop_fan, product_fan):
        page = await feeds.feed(actor(await User.get(id=fan.id)), FeedKind.FOLLOWING, first=5, store=store)
        assert ids(page)[0] == post.id


async def test_fan_out_reaches_only_active_followers_in_batches(stack: Any, store: FeedStore) -> None:
    author = await make_user()
    fans = await make_users(7)
    for fan in fans:
        await follows.follow(actor(fan), "User", author.id)
    now = datetime.now(UTC)
    inactive = fans[:2]
    await User.filter(id__in=[f.id for f in inactive]).update(last_active_at=now - timedelta(days=30))
    await User.filter(id__in=[f.id for f in fans[2:]]).update(last_active_at=now)
    for fan in fans:  # everyone has a built feed
        await store.rebuild(fan.id)
    post = await make_post(author)
    assert await fanout.fan_out(store, post.id, batch=2) == 5
    for fan in fans:
        members = await store.redis.zrange(store.key(fan.id), 0, -1)
        assert (str(post.id).encode() in members) == (fan not in inactive)
    # A hidden post is not fanned out.
    hidden = await make_post(author, status=ContentStatus.HELD)
    assert await fanout.fan_out(store, hidden.id) == 0


async def test_a_returning_inactive_user_gets_a_rebuilt_feed(stack: Any, store: FeedStore) -> None:
    """Mastodon #2619: feeds must not go empty (or stale) after inactivity."""
    author, reader = await make_user(), await make_user()
    await follows.follow(actor(reader), "User", author.id)
    await User.filter(id=reader.id).update(last_active_at=datetime.now(UTC))
    before = await make_post(author)
    assert ids(await feeds.feed(actor(await User.get(id=reader.id)), FeedKind.FOLLOWING, store=store)) == [before.id]
    # The reader goes away; fan-out skips them; their stale key is still there.
    await User.filter(id=reader.id).update(last_active_at=datetime.now(UTC) - timedelta(days=20))
    missed = await make_post(author)
    assert await fanout.fan_out(store, missed.id) == 0
    assert await store.redis.exists(store.key(reader.id))
    back = await User.get(id=reader.id)  # as authenticate() loaded them, before the touch
    assert ids(await feeds.feed(actor(back), FeedKind.FOLLOWING, store=store)) == [missed.id, before.id]
    # And a user with no feed at all (expired key) gets one too.
    await store.forget(reader.id)
    await User.filter(id=reader.id).update(last_active_at=datetime.now(UTC))
    fresh = await User.get(id=reader.id)
    assert ids(await feeds.feed(actor(fresh), FeedKind.FOLLOWING, store=store)) == [missed.id, before.id]


async def test_capped_feed_continues_from_the_database(stack: Any, store: FeedStore) -> None:
    author, reader = await make_user(), await make_user()
    await follows.follow(actor(reader), "User", author.id)
    await User.filter(id=reader.id).update(last_active_at=datetime.now(UTC))
    reader = await User.get(id=reader.id)
    posts = [await make_post(author) for _ in range(store.cap + 10)]
    await store.rebuild(reader.id)
    extra = [await make_post(author) for _ in range(3)]
    for post in extra:
        await fanout.fan_out(store, post.id)
    assert await store.redis.zcard(store.key(reader.id)) == store.cap + 1  # trimmed
    want = sorted((p.id for p in posts + extra), reverse=True)
    seen: list[int] = []
    after = None
    while True:
        page = await feeds.feed(actor(reader), FeedKind.FOLLOWING, first=17, after=after, store=store)
        seen += ids(page)
        if not page.has_next:
            break
        after = page.cursors[-1]
    assert seen == want


# -- HOT, LATEST, PRODUCT, TOPIC --------------------------------------------------------


def test_hot_rank_formula_floors_and_ages() -> None:
    now = datetime.now(UTC)
    fresh = ranking.hot_rank(10, 5, now, now)
    assert fresh > ranking.hot_rank(10, 5, now - timedelta(hours=5), now) > 0
    # Negative or empty scores floor at log(2): never below a zero-score post, never negative.
    assert ranking.hot_rank(-50, 0, now, now) == ranking.hot_rank(0, 0, now, now) > 0
    assert ranking.hot_rank(10_000, 0, now - timedelta(days=7, seconds=1), now) == 0.0
    assert ranking.hot_rank(10, 0, now + timedelta(minutes=1), now) == ranking.hot_rank(10, 0, now, now)  # clock skew


async def test_hot_feed_refresh_decays_posts_that_left_the_window(stack: Any) -> None:
    """Lemmy #3428: a post that stops being refreshed must not stay on top."""
    author = await make_user()
    topic = await make_topic()
    old = await make_post(author, likes=10_000, age=timedelta(days=8), topics=(topic,))
    await Post.filter(id=old.id).update(hot_rank=99.0)  # ranked high while it was young
    busy = await make_post(author, likes=50, comments=10, age=timedelta(hours=3), topics=(topic,))
    quiet = await make_post(author, age=timedelta(hours=1), topics=(topic,))
    newest = await make_post(author, likes=3, topics=(topic,))
    hidden = await make_post(author, likes=500, status=ContentStatus.HIDDEN, topics=(topic,))
    assert await ranking.refresh_hot_ranks() >= 3
    assert (await Post.get(id=old.id)).hot_rank == 0.0
    page = await feeds.feed(Actor(), FeedKind.HOT, topic=topic.slug, first=10)
    order = ids(page)
    assert hidden.id not in order and order[-1] == old.id
    assert set(order[:3]) == {busy.id, quiet.id, newest.id}
    assert order[0] == newest.id  # fresh and liked beats older and busier at these ages
    # Keyset paging by (rank, id), ties included (two zero-rank posts).
    tie = await make_post(author, likes=9, age=timedelta(days=9), topics=(topic,))
    paged: list[int] = []
    after = None
    while True:
        page = await feeds.feed(Actor(), FeedKind.HOT, topic=topic.slug, first=2, after=after)
        paged += ids(page)
        if not page.has_next:
            break
        after = page.cursors[-1]
    assert paged == order[:3] + [tie.id, old.id]
    with pytest.raises(UserFacingError):
        await feeds.feed(Actor(), FeedKind.HOT, after="bm90LWEtY3Vyc29y")


async def test_fan_out_job_ranks_a_new_post_through_the_outbox(stack: Any) -> None:
    post = await make_post(await make_user(), likes=4)
    async with outbox.atomic():
        await outbox.enqueue(jobs.fan_out_post(post.id))
    await eventually(lambda: Post.filter(id=post.id, hot_rank__gt=0).exists(), timeout=10)


async def test_latest_product_and_topic_feeds(stack: Any) -> None:
    author = await make_user()
    product = await make_product()
    topic = await make_topic()
    a = await make_post(author, product=product)
    b = await make_post(author, topics=(topic,))
    c = await make_post(author, product=product, topics=(topic,))
    await make_post(author, product=product, status=ContentStatus.DELETED)
    anyone = Actor()
    assert ids(await feeds.feed(anyone, FeedKind.PRODUCT, product_id=product.id)) == [c.id, a.id]
    assert ids(await feeds.feed(anyone, FeedKind.TOPIC, topic=topic.slug)) == [c.id, b.id]
    assert ids(await feeds.feed(anyone, FeedKind.TOPIC, topic="no-such-topic")) == []
    latest = await feeds.feed(anyone, FeedKind.LATEST, first=2)
    assert ids(latest)[0] == c.id and decode_cursor(latest.cursors[0], "after") == c.id
    for kind, kwargs, field in (
        (FeedKind.PRODUCT, {}, "productId"),
        (FeedKind.TOPIC, {}, "topic"),
        (FeedKind.FOLLOWING, {"topic": topic.slug}, "topic"),
        (FeedKind.LATEST, {"first": 101}, "first"),
    ):
        with pytest.raises(UserFacingError) as refused:
            await feeds.feed(Actor(user=author), kind, **kwargs)
        assert refused.value.code == ErrorCode.INVALID_INPUT and refused.value.field == field


# -- activity ---------------------------------------------------------------------------


async def test_activity_is_recorded_at_most_hourly(stack: Any) -> None:
    user = await make_user()
    token = await token_for(user)
    await authenticate(token)  # signed up just now: counts as active, nothing written
    assert (await User.get(id=user.id)).last_active_at is None
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    await User.filter(id=user.id).update(created_at=two_hours_ago - timedelta(days=1), last_active_at=two_hours_ago)
    seen = await authenticate(token)
    assert seen.user is not None and seen.user.last_active_at == two_hours_ago  # the value before
    touched = (await User.get(id=user.id)).last_active_at
    assert touched is not None and touched > two_hours_ago + timedelta(hours=1)
    await authenticate(token)
    assert (await User.get(id=user.id)).last_active_at == touched


# -- over GraphQL -----------------------------------------------------------------------

FEED = """query($kind: FeedKind!, $first: Int, $after: String, $topic: String, $product: ID) {
  feed(kind: $kind, first: $first, after: $after, topic: $topic, productId: $product) {
    edges { cursor node { id title likeCount commentCount viewerHasLiked author { id nickname }
      product { id title price { amount } merchant { name } } } }
    pageInfo { hasNextPage endCursor } } }"""


async def test_following_feed_over_graphql_runs_a_constant_number_of_queries(stack: Any, client: Client) -> None:
    from tests.conftest import count_queries

    account = await client.register()
    me = await User.get(id=int(GlobalID.from_id(account["user"]["id"]).node_id))
    authors = await make_users(25)
    products = [await make_product(), await make_product()]
    for author in authors:
        await follows.follow(actor(me), "User", author.id)
    for i, author in enumerate(authors):  # every post with a product card
        await make_post(author, product=products[i % 2], comments=i)
    await client.gql(FEED, {"kind": "FOLLOWING", "first": 1})  # with Redis: builds the cached feed
    counts = {}
    for size in (1, 5, 20):
        with count_queries() as queries:
            data = await client.gql(FEED, {"kind": "FOLLOWING", "first": size})
        edges = data["feed"]["edges"]
        assert len(edges) == size and all(e["node"]["author"]["nickname"] for e in edges)
        counts[size] = queries.count
    assert counts[1] == counts[5] == counts[20], counts
    page2 = await client.gql(FEED, {"kind": "FOLLOWING", "first": 20, "after": data["feed"]["pageInfo"]["endCursor"]})
    assert len(page2["feed"]["edges"]) == 5 and not page2["feed"]["pageInfo"]["hasNextPage"]
    # Inputs the feed refuses, each with its field.
    for variables, field in (
        ({"kind": "PRODUCT"}, "productId"),
        ({"kind": "PRODUCT", "product": gid("User", 1)}, "productId"),
        ({"kind": "TOPIC"}, "topic"),
        ({"kind": "LATEST", "after": "garbage"}, "after"),
    ):
        body = (await client.post(FEED, variables)).json()
        assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT", body
    anonymous = (await client.post(FEED, {"kind": "FOLLOWING"}, token="")).json()
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    hot = await client.gql(FEED, {"kind": "HOT", "first": 3}, token="")
    assert len(hot["feed"]["edges"]) == 3
