"""Membership tiers: the GOLD price, promotion on a completed order, demotion by the sweep
when the rolling 12 months fall below the threshold, with a notification each time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from models.accounts.users import Tier, User
from models.accounts.notifications import Notification
from models.commerce.orders import Order
from resolvers.loyalty import tiers
from tests.conftest import eventually
from tests.factories import make_product, make_user
from tests.test_points import as_client, complete, give_points, gid, place_order
from workers import loyalty, scheduler

CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code }
  order { total { amount } unitPrice { amount } tierDiscount { amount } subtotal { amount } } } }"""
VIEWER = "{ viewer { tier } }"


async def test_a_gold_member_pays_the_gold_price(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(price="40.00", keys=3)
    gold = await make_user()
    await User.filter(id=gold.id).update(tier=Tier.GOLD)
    client = await as_client(make_client, gold)
    assert (await client.gql(VIEWER))["viewer"]["tier"] == "GOLD"
    created = (await client.gql(CREATE, {"input": {"productId": gid("Product", product.id), "quantity": 2,
                                                    "idempotencyKey": uuid.uuid4().hex}}))["createOrder"]
    assert created["errors"] == []
    assert created["order"]["subtotal"]["amount"] == "80.00"
    assert created["order"]["tierDiscount"]["amount"] == "4.00"
    assert created["order"]["total"]["amount"] == "76.00"  # 95%
    normal = await as_client(make_client, await make_user())
    plain = (await normal.gql(CREATE, {"input": {"productId": gid("Product", product.id), "quantity": 1,
                                                  "idempotencyKey": uuid.uuid4().hex}}))["createOrder"]
    assert plain["order"]["total"]["amount"] == "40.00"


async def test_spend_promotes_on_completion_and_the_sweep_demotes_when_it_ages_out(stack) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    order = await complete(user, await place_order(user, price="2100.00"))

    async def gold() -> bool:
        return (await User.get(id=user.id)).tier == Tier.GOLD

    await eventually(gold, timeout=15)  # the ORDER_COMPLETED loyalty event recomputed it
    promoted = await Notification.filter(user_id=user.id, kind="TIER_CHANGED").order_by("id")
    assert [n.data["to"] for n in promoted] == ["GOLD"]

    # Thirteen months later the order no longer counts; the points it earned are old too.
    long_ago = datetime.now(UTC) - timedelta(days=400)
    await Order.filter(id=order.id).update(completed_at=long_ago)
    from models.loyalty.points import PointsEntry

    await PointsEntry.filter(user_id=user.id).update(created_at=long_ago)
    assert loyalty.sweep_tiers in scheduler.SWEEPS
    assert await tiers.recompute_all() >= 1
    assert (await User.get(id=user.id)).tier == Tier.NORMAL
    notes = await Notification.filter(user_id=user.id, kind="TIER_CHANGED").order_by("id")
    assert [n.data["to"] for n in notes] == ["GOLD", "NORMAL"]
    await tiers.recompute_all()
    assert await Notification.filter(user_id=user.id, kind="TIER_CHANGED").count() == 2  # told once


async def test_points_earned_reach_silver(stack) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    await give_points(user, 3000)
    assert await tiers.recompute(user.id) == Tier.SILVER
    assert await tiers.recompute(user.id) is None
    standing = await tiers.standing(user.id)
    assert standing.tier == Tier.SILVER and standing.points == 3000
