"""Coupons: limits under concurrency, claiming and issuing, the new-user coupon, rewards for
points, and coupons and points given back when an order is cancelled, expires or is refunded."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.accounts.users import Role
from models.loyalty.coupons import Coupon, CouponKind, CouponScope, UserCoupon, UserCouponStatus
from models.commerce.orders import Order, OrderStatus
from models.loyalty.points import PointsEntry
from resolvers.commerce import orders, settlement
from resolvers.loyalty import points
from tests.factories import make_product, make_user, make_users
from tests.test_ledger import assert_ledger_consistent
from tests.test_points import (
    as_client,
    assert_points_consistent,
    complete,
    give_points,
    gid,
    pay_and_deliver,
    place_order,
    purchase_booked,
)
from resolvers.loyalty import events as loyalty

CLAIM = """mutation($input: ClaimCouponInput!) { claimCoupon(input: $input) { errors { code field message }
  userCoupon { id status source coupon { code kind } } } }"""
ISSUE = """mutation($input: IssueCouponsInput!) { issueCoupons(input: $input) { errors { code }
  issuedCount skippedCount failedUserIds } }"""
REDEEM = """mutation($input: RedeemRewardInput!) { redeemReward(input: $input) { errors { code field }
  userCoupon { status source coupon { code } } balance } }"""
VIEWER_COUPONS = """query($status: UserCouponStatus) { viewer { coupons(status: $status, first: 20) {
  edges { node { status source coupon { code newUsersOnly } } } } } }"""
CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code field message }
  order { id status total { amount } couponDiscount { amount } pointsUsed pointsDiscount { amount }
  priceLines { kind amount { amount } } } } }"""
CREATE_COUPON = """mutation($input: CreateCouponInput!) { createCoupon(input: $input) { errors { code field }
  coupon { id code kind } } }"""


async def make_coupon(**fields: Any) -> Coupon:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "code": f"C{uuid.uuid4().hex[:10].upper()}", "title": "Test coupon", "kind": CouponKind.FIXED,
        "value": Decimal("2.00"), "valid_from": now - timedelta(days=1), "valid_until": now + timedelta(days=30),
    }
    values.update(fields)
    return await Coupon.create(**values)


async def hold(user_id: int, coupon: Coupon) -> UserCoupon:
    return await UserCoupon.create(coupon=coupon, user_id=user_id, source="test")


async def test_100_concurrent_claims_of_10_coupons_succeed_10_times(make_client) -> None:  # type: ignore[no-untyped-def]
    coupon = await make_coupon(total_quantity=10)
    clients = [await as_client(make_client, user) for user in await make_users(100)]
    results = await asyncio.gather(*(c.gql(CLAIM, {"input": {"code": coupon.code.lower()}}) for c in clients))
    payloads = [r["claimCoupon"] for r in results]
    assert sum(1 for p in payloads if not p["errors"]) == 10
    assert {p["errors"][0]["code"] for p in payloads if p["errors"]} == {"COUPON_INVALID"}
    await coupon.refresh_from_db()
    assert coupon.issued_count == 10
    assert await UserCoupon.filter(coupon_id=coupon.id).count() == 10


async def test_per_user_limit_holds_under_concurrency(make_client) -> None:  # type: ignore[no-untyped-def]
    coupon = await make_coupon(per_user_limit=2)
    user = await make_user()
    client = await as_client(make_client, user)
    results = await asyncio.gather(*(client.gql(CLAIM, {"input": {"code": coupon.code}}) for _ in range(12)))
    assert sum(1 for r in results if not r["claimCoupon"]["errors"]) == 2
    assert await UserCoupon.filter(coupon_id=coupon.id, user_id=user.id).count() == 2
    await coupon.refresh_from_db()
    assert coupon.issued_count == 2


async def test_claim_refuses_bad_coupons_and_changes_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    client = await as_client(make_client, user)
    expired = await make_coupon(valid_until=datetime.now(UTC) - timedelta(minutes=1))
    reward = await make_coupon(points_price=100)
    for code in ["NO-SUCH-CODE", expired.code, reward.code]:
        payload = (await client.gql(CLAIM, {"input": {"code": code}}))["claimCoupon"]
        assert payload["errors"][0]["code"] == "COUPON_INVALID" and payload["errors"][0]["field"] == "code"
    assert await UserCoupon.filter(user_id=user.id).count() == 0


async def test_staff_issue_is_idempotent_and_staff_only(make_client) -> None:  # type: ignore[no-untyped-def]
    coupon = await make_coupon(total_quantity=5)
    users = await make_users(3)
    staff = await as_client(make_client, await make_user(Role.ADMIN))
    buyer = await as_client(make_client, users[0])
    variables = {"input": {"couponId": gid("Coupon", coupon.id), "userIds": [gid("User", u.id) for u in users]}}
    refused = (await buyer.gql(ISSUE, variables))["issueCoupons"]
    assert refused["errors"][0]["code"] == "FORBIDDEN"
    first = (await staff.gql(ISSUE, variables))["issueCoupons"]
    assert first == {"errors": [], "issuedCount": 3, "skippedCount": 0, "failedUserIds": []}
    again = (await staff.gql(ISSUE, variables))["issueCoupons"]
    assert again["issuedCount"] == 0 and again["skippedCount"] == 3
    assert await UserCoupon.filter(coupon_id=coupon.id).count() == 3


async def test_new_user_coupon_is_issued_lazily_once(make_client) -> None:  # type: ignore[no-untyped-def]
    welcome = await make_coupon(new_users_only=True, title="Welcome")
    user = await make_user()
    client = await as_client(make_client, user)
    for _ in range(2):
        edges = (await client.gql(VIEWER_COUPONS))["viewer"]["coupons"]["edges"]
        mine = [e["node"] for e in edges if e["node"]["coupon"]["code"] == welcome.code]
        assert mine == [{"status": "AVAILABLE", "source": "new_user", "coupon": {"code": welcome.code, "newUsersOnly": True}}]
    # A buyer with a paid order gets none.
    veteran = await make_user()
    await pay_and_deliver(veteran, await place_order(veteran))
    vclient = await as_client(make_client, veteran)
    edges = (await vclient.gql(VIEWER_COUPONS))["viewer"]["coupons"]["edges"]
    assert all(e["node"]["coupon"]["code"] != welcome.code for e in edges)


async def test_rewards_are_bought_with_points(make_client) -> None:  # type: ignore[no-untyped-def]
    reward = await make_coupon(points_price=300, total_quantity=1)
    user, other = await make_users(2)
    client = await as_client(make_client, user)
    variables = {"input": {"couponId": gid("Coupon", reward.id)}}
    poor = (await client.gql(REDEEM, variables))["redeemReward"]
    assert poor["errors"][0]["code"] == "INSUFFICIENT_BALANCE"
    assert await UserCoupon.filter(coupon_id=reward.id).count() == 0
    await reward.refresh_from_db()
    assert reward.issued_count == 0  # rolled back with the failed spend
    await give_points(user, 500)
    done = (await client.gql(REDEEM, variables))["redeemReward"]
    assert done["errors"] == [] and done["balance"] == 200 and done["userCoupon"]["source"] == "reward"
    await give_points(other, 500)
    sold_out = (await (await as_client(make_client, other)).gql(REDEEM, variables))["redeemReward"]
    assert sold_out["errors"][0]["code"] == "COUPON_INVALID"
    assert await points.balance(other.id) == 500
    await assert_points_consistent(user, other)


async def test_coupon_and_points_come_back_when_the_order_is_cancelled_or_expires(make_client) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    client = await as_client(make_client, user)
    coupon = await make_coupon(value=Decimal("3.00"))
    held = await hold(user.id, coupon)
    await give_points(user, 1000)
    product = await make_product(price="20.00", keys=3)
    variables = {"input": {"productId": gid("Product", product.id), "quantity": 1, "idempotencyKey": uuid.uuid4().hex,
                           "couponCode": coupon.code, "pointsToUse": 300}}
    created = (await client.gql(CREATE, variables))["createOrder"]
    assert created["errors"] == [], created
    # 20.00 - 3.00 coupon = 17.00; 300 points = 3.00 (at most 20% of 17.00 = 340 points).
    assert created["order"]["total"]["amount"] == "14.00"
    assert [(l["kind"], l["amount"]["amount"]) for l in created["order"]["priceLines"]] == [
        ("SUBTOTAL", "20.00"), ("COUPON", "-3.00"), ("POINTS", "-3.00"), ("TOTAL", "14.00")]
    await held.refresh_from_db()
    assert held.status == UserCouponStatus.LOCKED and await points.balance(user.id) == 700
    # The coupon is in use: a second order cannot take it.
    variables["input"]["idempotencyKey"] = uuid.uuid4().hex
    clash = (await client.gql(CREATE, variables))["createOrder"]
    assert clash["errors"][0]["code"] == "COUPON_INVALID"
    assert await points.balance(user.id) == 700

    cancel = "mutation($input: OrderIdInput!) { cancelOrder(input: $input) { errors { code } order { status } } }"
    done = (await client.gql(cancel, {"input": {"orderId": created["order"]["id"]}}))["cancelOrder"]
    assert done["errors"] == []
    await held.refresh_from_db()
    assert held.status == UserCouponStatus.AVAILABLE and held.order_id is None
    assert await points.balance(user.id) == 1000

    # Again, and this time the reservation runs out.
    variables["input"]["idempotencyKey"] = uuid.uuid4().hex
    second = (await client.gql(CREATE, variables))["createOrder"]
    assert second["errors"] == []
    await Order.filter(id=int(_pk(second["order"]["id"]))).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await orders.sweep_expired() >= 1
    await held.refresh_from_db()
    assert held.status == UserCouponStatus.AVAILABLE and await points.balance(user.id) == 1000
    await assert_points_consistent(user)


def _pk(global_id: str) -> str:
    from strawberry.relay import GlobalID

    return GlobalID.from_id(global_id).node_id


async def test_refund_gives_back_coupon_and_points_and_ledgers_balance(stack) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    coupon = await make_coupon(kind=CouponKind.PERCENT, value=Decimal("10"))
    held = await hold(user.id, coupon)
    await give_points(user, 1000)
    order = await place_order(user, price="30.00", coupon_code=coupon.code, points_to_use=500)
    assert order.coupon_discount == Decimal("3.00") and order.points_discount == Decimal("5.00")
    assert order.total == Decimal("22.00")
    await pay_and_deliver(user, order)
    await held.refresh_from_db()
    assert held.status == UserCouponStatus.USED
    assert await settlement.refund_order(await Order.get(id=order.id), "test refund")
    await held.refresh_from_db()
    assert held.status == UserCouponStatus.AVAILABLE and held.order_id is None
    assert await points.balance(user.id) == 1000
    await loyalty.handle(user.id, "ORDER_REFUNDED", f"order:{order.id}")  # what the job does; idempotent
    assert await points.balance(user.id) == 1000
    assert not await purchase_booked(user, order)
    # Never awarded later, even if the completion event arrived now.
    await loyalty.handle(user.id, "ORDER_COMPLETED", f"order:{order.id}")
    assert not await purchase_booked(user, order)
    await assert_points_consistent(user)
    await assert_ledger_consistent()


async def test_a_completed_order_refunded_later_reverses_its_purchase_points(stack) -> None:  # type: ignore[no-untyped-def]
    """COMPLETED is final in today's state machine; should after-sales refunds of completed
    orders come, the loyalty side already undoes its purchase points (and gives back what
    the order held)."""
    user = await make_user()
    coupon = await make_coupon(value=Decimal("1.00"))
    held = await hold(user.id, coupon)
    await give_points(user, 200)
    order = await place_order(user, price="50.00", coupon_code=coupon.code, points_to_use=100)
    order = await complete(user, order)
    await loyalty.handle(user.id, "ORDER_COMPLETED", f"order:{order.id}")
    assert await purchase_booked(user, order)
    purchase = await PointsEntry.get(user_id=user.id, rule="purchase", reference=f"order:{order.id}")
    assert purchase.amount == 48  # 1 point per 1.00 of the 48.00 paid
    before = await points.balance(user.id)
    await Order.filter(id=order.id).update(status=OrderStatus.REFUNDED)  # a future after-sales refund
    await loyalty.handle(user.id, "ORDER_REFUNDED", f"order:{order.id}")
    await loyalty.handle(user.id, "ORDER_REFUNDED", f"order:{order.id}")
    await held.refresh_from_db()
    assert held.status == UserCouponStatus.AVAILABLE
    assert await points.balance(user.id) == before - 48 + 100
    await assert_points_consistent(user)
    await assert_ledger_consistent()


async def test_coupon_rules_when_ordering(make_client) -> None:  # type: ignore[no-untyped-def]
    user = await make_user()
    client = await as_client(make_client, user)
    product = await make_product(price="10.00", keys=5)
    other_product = await make_product(price="10.00", keys=5)
    scoped = await make_coupon(scope=CouponScope.PRODUCT, scope_id=other_product.id)
    threshold = await make_coupon(kind=CouponKind.THRESHOLD, value=Decimal("5.00"), min_spend=Decimal("30.00"))
    for c in (scoped, threshold):
        await hold(user.id, c)

    async def order(code: str, quantity: int = 1) -> dict[str, Any]:
        return (await client.gql(CREATE, {"input": {"productId": gid("Product", product.id), "quantity": quantity,
                                                      "idempotencyKey": uuid.uuid4().hex, "couponCode": code}}))["createOrder"]

    before = await Order.filter(buyer_id=user.id).count()
    for code in [scoped.code, threshold.code, "NOPE"]:
        payload = await order(code)
        assert payload["errors"][0]["code"] == "COUPON_INVALID", payload
        assert payload["errors"][0]["field"] == "couponCode"
    assert await Order.filter(buyer_id=user.id).count() == before
    ok = await order(threshold.code, quantity=3)  # 30.00 reaches the 满减 threshold
    assert ok["errors"] == [] and ok["order"]["total"]["amount"] == "25.00"
    guest = make_client()
    anon = (await guest.gql(CREATE, {"input": {"productId": gid("Product", product.id), "idempotencyKey": uuid.uuid4().hex,
                                               "contactEmail": "g@example.com", "queryPassword": "secret-pass",
                                               "couponCode": threshold.code}}))["createOrder"]
    assert anon["errors"][0]["code"] == "UNAUTHENTICATED"


async def test_staff_create_coupons(make_client) -> None:  # type: ignore[no-untyped-def]
    staff = await as_client(make_client, await make_user(Role.ADMIN))
    now = datetime.now(UTC)
    base = {"title": "Spring", "kind": "THRESHOLD", "value": "10.00", "minSpend": "99.00",
            "validFrom": now.isoformat(), "validUntil": (now + timedelta(days=7)).isoformat()}
    code = f"SPRING-{uuid.uuid4().hex[:6]}"
    made = (await staff.gql(CREATE_COUPON, {"input": {**base, "code": code}}))["createCoupon"]
    assert made["errors"] == [] and made["coupon"]["code"] == code.upper()
    dup = (await staff.gql(CREATE_COUPON, {"input": {**base, "code": code}}))["createCoupon"]
    assert dup["errors"][0]["code"] == "DUPLICATE"
    bad = (await staff.gql(CREATE_COUPON, {"input": {**base, "code": "X" + code, "minSpend": "5.00"}}))["createCoupon"]
    assert bad["errors"][0] == {"code": "INVALID_INPUT", "field": "minSpend"}
    buyer = await as_client(make_client, await make_user())
    refused = (await buyer.gql(CREATE_COUPON, {"input": {**base, "code": "Y" + code}}))["createCoupon"]
    assert refused["errors"][0]["code"] == "FORBIDDEN"
