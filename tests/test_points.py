"""Points: the ledger (balanced with its cache, never negative, idempotent), check-in with a
streak under a controlled clock, earn rules from loyalty events, perks and history.

Also the helpers the other loyalty tests share (orders placed, paid, completed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from strawberry.relay import GlobalID

from kameng import clock
from models.accounts.users import User
from models.commerce.orders import Order, OrderStatus
from models.loyalty.points import CheckIn, PointsBalance, PointsEntry
from models.outbox import OutboxEntry
from resolvers.commerce import orders, payments, settlement
from resolvers.loyalty import points
from resolvers.accounts.auth import Actor
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import outbox
from tests.conftest import Client, eventually
from tests.factories import fund, make_product, make_user, token_for
from resolvers.loyalty import events as loyalty

CHECK_IN = """mutation { checkIn { errors { code message } pointsAwarded streak balance } }"""
VIEWER_POINTS = """query($first: Int, $after: String) { viewer { points { balance earnedTotal checkInStreak
  history(first: $first, after: $after) { edges { cursor node { amount rule reference } } pageInfo { hasNextPage endCursor } } } } }"""
REDEEM = """mutation($input: RedeemRewardInput!) { redeemReward(input: $input) { errors { code field }
  userCoupon { status coupon { code } } perk { code } balance } }"""

#: Noon in Shanghai on a fixed day: far from midnight either way.
DAY1 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


@pytest.fixture(autouse=True)
def real_clock() -> Iterator[None]:
    yield
    clock.reset()


async def as_client(make_client, user: User) -> Client:  # type: ignore[no-untyped-def]
    client = make_client()
    client.token = await token_for(user)
    return client


async def give_points(user: User, amount: int) -> None:
    async with outbox.atomic():
        await points.post(user.id, "task", f"test:{uuid.uuid4().hex}", amount, "test grant")


async def assert_points_consistent(*users: User) -> None:
    """Each user's cached balance is the sum of their entries, and never negative."""
    for user in users:
        entries = await PointsEntry.filter(user_id=user.id).values_list("amount", flat=True)
        row = await PointsBalance.filter(user_id=user.id).first()
        cached = row.balance if row else 0
        assert cached == sum(entries), (user.id, cached, sum(entries))
        assert cached >= 0


async def place_order(user: User, product: Any = None, *, quantity: int = 1, price: str = "10.00",
                      **extra: Any) -> Order:
    product = product or await make_product(price=price, keys=quantity + 1)
    request = orders.NewOrder(product_id=product.id, quantity=quantity, idempotency_key=uuid.uuid4().hex, **extra)
    return await orders.create_order(Actor(user=user), request)


async def pay_and_deliver(user: User, order: Order) -> Order:
    await fund(user, str(order.total))
    await payments.pay_order(Actor(user=user), order.id, payments.PaymentMethod.WALLET)

    async def delivered() -> bool:
        return (await Order.get(id=order.id)).status == OrderStatus.DELIVERED

    await eventually(delivered, timeout=15)
    return await Order.get(id=order.id)


async def complete(user: User, order: Order) -> Order:
    order = await pay_and_deliver(user, order)
    await settlement.confirm_receipt(Actor(user=user), order.id)
    return await Order.get(id=order.id)


async def purchase_booked(user: User, order: Order) -> bool:
    return await PointsEntry.filter(user_id=user.id, rule="purchase", reference=f"order:{order.id}").exists()


# -- check-in -----------------------------------------------------------------------------


async def test_check_in_twice_on_one_day_awards_once_even_concurrently(make_client) -> None:  # type: ignore[no-untyped-def]
    clock.set(DAY1)
    user = await make_user()
    client = await as_client(make_client, user)
    results = await asyncio.gather(*(client.gql(CHECK_IN) for _ in range(8)))
    payloads = [r["checkIn"] for r in results]
    ok = [p for p in payloads if not p["errors"]]
    assert len(ok) == 1, payloads
    # 5 for the check-in, 2 for the DAILY_CHECK_IN task it completes.
    assert ok[0]["streak"] == 1 and ok[0]["pointsAwarded"] == 5 and ok[0]["balance"] == 7
    assert {p["errors"][0]["code"] for p in payloads if p["errors"]} == {"DUPLICATE"}
    assert await CheckIn.filter(user_id=user.id).count() == 1
    assert await points.balance(user.id) == 7
    # Later the same (Shanghai) day, even after UTC midnight-ish: still the same day.
    clock.set(DAY1 + timedelta(hours=11))  # 23:00 in Shanghai
    again = (await client.gql(CHECK_IN))["checkIn"]
    assert again["errors"][0]["code"] == "DUPLICATE"
    await assert_points_consistent(user)


async def test_a_check_in_and_the_task_it_completes_open_no_savepoint(make_client) -> None:  # type: ignore[no-untyped-def]
    """The balance row, the entries and the task's progress are idempotent inserts (INSERT ...
    ON CONFLICT DO NOTHING RETURNING), not INSERTs in savepoints: two round trips each saved."""
    from tests.conftest import count_queries

    clock.set(DAY1)
    user = await make_user()
    client = await as_client(make_client, user)
    with count_queries() as counted:
        payload = (await client.gql(CHECK_IN))["checkIn"]
    assert payload["errors"] == [] and payload["balance"] == 7, payload
    assert not [s for s in counted.statements if "SAVEPOINT" in s], "\n".join(counted.statements)
    await assert_points_consistent(user)


async def test_streak_grows_and_resets_after_a_missed_day(make_client) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    client = await as_client(make_client, user)
    seen = []
    for day in (0, 1, 2, 4, 5):  # day 3 is missed
        clock.set(DAY1 + timedelta(days=day))
        payload = (await client.gql(CHECK_IN))["checkIn"]
        assert payload["errors"] == [], payload
        seen.append((payload["streak"], payload["pointsAwarded"]))
    assert seen == [(1, 5), (2, 6), (3, 7), (1, 5), (2, 6)]
    assert await points.balance(user.id) == 29 + 5 * 2  # and the daily task, each day
    # Shanghai midnight is 16:00 UTC: a check-in at 16:30 UTC is the next local day.
    clock.set(DAY1 + timedelta(days=5, hours=12, minutes=30))
    next_day = (await client.gql(CHECK_IN))["checkIn"]
    assert next_day["errors"] == [] and next_day["streak"] == 3
    viewer = (await client.gql(VIEWER_POINTS, {"first": 2}))["viewer"]["points"]
    assert viewer["balance"] == 48 and viewer["earnedTotal"] == 48 and viewer["checkInStreak"] == 3
    assert [e["node"]["rule"] for e in viewer["history"]["edges"]] == ["task", "check_in"]
    assert viewer["history"]["pageInfo"]["hasNextPage"] is True
    rest = (await client.gql(VIEWER_POINTS, {"first": 50, "after": viewer["history"]["pageInfo"]["endCursor"]}))
    assert len(rest["viewer"]["points"]["history"]["edges"]) == 10
    await assert_points_consistent(user)


async def test_check_in_needs_a_signed_in_user(client: Client) -> None:
    payload = (await client.gql(CHECK_IN))["checkIn"]
    assert payload["errors"][0]["code"] == "UNAUTHENTICATED"


# -- the ledger ---------------------------------------------------------------------------


async def test_spends_never_overdraw_and_replays_post_nothing(stack) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    await give_points(user, 10)

    async def spend(i: int) -> bool:
        try:
            async with outbox.atomic():
                await points.post(user.id, "perk", f"test:{i}", -3)
            return True
        except UserFacingError as error:
            assert error.code == ErrorCode.INSUFFICIENT_BALANCE
            return False

    results = await asyncio.gather(*(spend(i) for i in range(10)))
    assert results.count(True) == 3
    assert await points.balance(user.id) == 1
    winner = results.index(True)  # which ones won depends on the database's scheduling
    async with outbox.atomic():
        assert await points.post(user.id, "perk", f"test:{winner}", -3) is None  # a replay
    await assert_points_consistent(user)


async def test_earn_rules_from_events_are_idempotent_and_likes_are_capped(stack) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    for i in range(25):
        await loyalty.handle(user.id, "LIKE_RECEIVED", f"like:post:1:{i}")
    await loyalty.handle(user.id, "LIKE_RECEIVED", "like:post:1:0")  # a replay
    assert await points.balance(user.id) == stack.settings.points_like_daily_cap  # 20 at 1 each
    await loyalty.handle(user.id, "REVIEW_VERIFIED", "post:77")
    await loyalty.handle(user.id, "REVIEW_VERIFIED", "post:77")
    await loyalty.handle(user.id, "ANSWER_ACCEPTED", "comment:5")
    await loyalty.handle(user.id, "DEMAND_FULFILLED", "post:78")
    assert await points.balance(user.id) == 20 + 10 + 15 + 30
    await assert_points_consistent(user)


REVIEW = """mutation($input: CreatePostInput!) { createPost(input: $input) { errors { code } post { id verifiedPurchase } } }"""
DELETE = """mutation($input: DeletePostInput!) { deletePost(input: $input) { errors { code } } }"""


async def test_a_review_deleted_and_written_again_earns_once(make_client) -> None:  # type: ignore[no-untyped-def]
    """Issue 10 item 10: the verified-review award is keyed on (author, product), not the post."""
    buyer = await make_user()
    order = await pay_and_deliver(buyer, await place_order(buyer))
    product = await order.product
    author = await as_client(make_client, buyer)
    review = {"kind": "REVIEW", "title": "Works", "body": "Arrived at once", "productId": gid("Product", product.id),
              "rating": 5}  # fmt: skip
    first = (await author.gql(REVIEW, {"input": review}))["createPost"]
    assert first["errors"] == [] and first["post"]["verifiedPurchase"] is True
    assert (await author.gql(DELETE, {"input": {"postId": first["post"]["id"]}}))["deletePost"]["errors"] == []
    second = (await author.gql(REVIEW, {"input": review}))["createPost"]
    assert second["errors"] == [] and second["post"]["verifiedPurchase"] is True

    # Both posts asked for the award under one key; running every such job (again: the worker
    # may have run them already, a re-run is the at-least-once contract) awards once.
    jobs = [e.payload["kwargs"] for e in await OutboxEntry.filter(topic="loyalty_event")
            if e.payload["kwargs"]["event"] == "REVIEW_VERIFIED" and e.payload["kwargs"]["user_id"] == buyer.id]
    assert [job["reference"] for job in jobs] == [f"review:product:{product.id}"] * 2
    for job in jobs:
        await loyalty.handle(**job)
    awards = await PointsEntry.filter(user_id=buyer.id, rule="review").values_list("amount", flat=True)
    assert list(awards) == [10]
    await assert_points_consistent(buyer)


async def test_showcase_earns_once_per_delivered_order_of_the_author(stack) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    other = await make_user()
    order = await pay_and_deliver(user, await place_order(user))
    await loyalty.handle(user.id, "SHOWCASE_CREATED", "post:1", order_id=order.id)
    await loyalty.handle(user.id, "SHOWCASE_CREATED", "post:2", order_id=order.id)  # a second showcase
    await loyalty.handle(other.id, "SHOWCASE_CREATED", "post:3", order_id=order.id)  # not their order
    assert await points.balance(user.id) == 20
    assert await points.balance(other.id) == 0
    unpaid = await place_order(user)
    await loyalty.handle(user.id, "SHOWCASE_CREATED", "post:4", order_id=unpaid.id)
    assert await points.balance(user.id) == 20


async def test_perk_redemption(make_client) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    client = await as_client(make_client, user)
    poor = (await client.gql(REDEEM, {"input": {"perk": "PRIORITY_SUPPORT"}}))["redeemReward"]
    assert poor["errors"][0]["code"] == "INSUFFICIENT_BALANCE"
    assert await PointsEntry.filter(user_id=user.id).count() == 0
    await give_points(user, 600)
    done = (await client.gql(REDEEM, {"input": {"perk": "PRIORITY_SUPPORT"}}))["redeemReward"]
    assert done["errors"] == [] and done["perk"]["code"] == "PRIORITY_SUPPORT" and done["balance"] == 100
    assert await points.has_perk(user.id, "PRIORITY_SUPPORT")
    bad = (await client.gql(REDEEM, {"input": {"perk": "NOPE"}}))["redeemReward"]
    assert bad["errors"][0]["code"] == "INVALID_INPUT"
    await assert_points_consistent(user)
