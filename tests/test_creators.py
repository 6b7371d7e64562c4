"""Creators: an order placed from a post credits its author once, when it completes, and
never if it is refunded; stats and the weekly leaderboard."""

from __future__ import annotations

import uuid
from decimal import Decimal

from models.community.posts import ContentStatus, Post, PostKind
from models.commerce.ledger import Posting
from models.commerce.orders import Order
from models.loyalty.points import PointsEntry
from resolvers.commerce import ledger, settlement
from resolvers.loyalty import points
from tests.conftest import eventually
from tests.factories import make_product, make_user
from tests.test_ledger import assert_ledger_consistent
from tests.test_points import as_client, assert_points_consistent, complete, gid, pay_and_deliver, place_order
from resolvers.loyalty import events as loyalty

CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code field }
  order { id fromPostId } } }"""
STATS = "{ viewer { creatorStats { attributedOrders gmv { amount } commission { amount } } } }"
BOARD = "{ creatorLeaderboard(first: 50) { rank attributedOrders gmv { amount } user { id } } }"


async def make_post(author, status: ContentStatus = ContentStatus.VISIBLE) -> Post:  # type: ignore[no-untyped-def]
    return await Post.create(author=author, kind=PostKind.GUIDE, title="How I top up", body="text",
                             body_html="<p>text</p>", status=status)


async def credited(author_id: int, order: Order) -> bool:
    return await PointsEntry.filter(user_id=author_id, rule="creator", reference=f"order:{order.id}").exists()


async def test_an_order_from_a_post_credits_its_author_once(make_client) -> None:  # type: ignore[no-untyped-def]
    author = await make_user(nickname="Author")
    buyer = await make_user()
    post = await make_post(author)
    client = await as_client(make_client, buyer)
    product = await make_product(price="100.00", keys=2)
    created = (await client.gql(CREATE, {"input": {"productId": gid("Product", product.id),
                                                    "idempotencyKey": uuid.uuid4().hex,
                                                    "fromPostId": gid("Post", post.id)}}))["createOrder"]
    assert created["errors"] == [] and created["order"]["fromPostId"] == gid("Post", post.id)
    order = await Order.get(from_post_id=post.id)
    order = await complete(buyer, order)

    async def done() -> bool:
        return await credited(author.id, order)

    await eventually(done, timeout=15)
    await loyalty.handle(buyer.id, "ORDER_COMPLETED", f"order:{order.id}")  # a replayed event
    assert await PointsEntry.filter(user_id=author.id, rule="creator").count() == 1
    assert await points.balance(author.id) == 10
    # 20% of the 5.00 platform fee, from platform:fees to the author's wallet, once.
    assert await Posting.filter(reason="creator.commission", reference=str(order.id)).count() == 1
    assert await ledger.balance(ledger.wallet(author.id)) == Decimal("1.00")
    stats = (await (await as_client(make_client, author)).gql(STATS))["viewer"]["creatorStats"]
    assert stats == {"attributedOrders": 1, "gmv": {"amount": "100.00"}, "commission": {"amount": "1.00"}}
    board = (await client.gql(BOARD))["creatorLeaderboard"]
    mine = [r for r in board if r["user"]["id"] == gid("User", author.id)]
    assert mine and mine[0]["attributedOrders"] == 1 and mine[0]["gmv"]["amount"] == "100.00"
    assert (await client.gql(STATS))["viewer"]["creatorStats"]["attributedOrders"] == 0  # the buyer's own
    await assert_points_consistent(author, buyer)
    await assert_ledger_consistent()


async def test_a_refunded_order_from_a_post_credits_nothing(stack) -> None:  # type: ignore[no-untyped-def]
    author = await make_user(nickname="Author")
    buyer = await make_user()
    post = await make_post(author)
    order = await place_order(buyer, from_post_id=post.id)
    order = await pay_and_deliver(buyer, order)
    assert await settlement.refund_order(order, "not as described")
    await loyalty.handle(buyer.id, "ORDER_REFUNDED", f"order:{order.id}")
    await loyalty.handle(buyer.id, "ORDER_COMPLETED", f"order:{order.id}")  # even if it came now
    assert not await credited(author.id, order)
    assert not await Posting.filter(reason="creator.commission", reference=str(order.id)).exists()
    assert await points.balance(author.id) == 0
    await assert_ledger_consistent()


async def test_a_post_must_exist_and_be_visible(make_client) -> None:  # type: ignore[no-untyped-def]
    author = await make_user()
    hidden = await make_post(author, ContentStatus.HIDDEN)
    client = await as_client(make_client, await make_user())
    product = await make_product(keys=2)
    before = await Order.all().count()
    for post_id in [gid("Post", hidden.id), gid("Post", 10**12), gid("Product", product.id)]:
        payload = (await client.gql(CREATE, {"input": {"productId": gid("Product", product.id),
                                                        "idempotencyKey": uuid.uuid4().hex,
                                                        "fromPostId": post_id}}))["createOrder"]
        assert payload["errors"][0]["code"] in ("NOT_FOUND", "INVALID_INPUT") and payload["errors"][0]["field"] == "fromPostId"
    assert await Order.all().count() == before


async def test_authors_buying_from_their_own_post_earn_nothing(stack) -> None:  # type: ignore[no-untyped-def]
    author = await make_user()
    post = await make_post(author)
    order = await complete(author, await place_order(author, from_post_id=post.id))
    await loyalty.handle(author.id, "ORDER_COMPLETED", f"order:{order.id}")
    assert not await credited(author.id, order)
