"""Delivery promises that pay out: delivery time recorded at delivery, a late order
compensated by its shop exactly once (job, re-run, sweep), an on-time one not at all, the
product's compensation set through create/updateProduct, and a shop's delivery stats
(median, 95th percentile, share on time) on data with a known answer, in one query."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.accounts.users import Role
from models.commerce.catalog import DeliveryKind, LateCompensation, Product
from models.commerce.ledger import Posting
from models.commerce.orders import Order, OrderStatus
from models.loyalty.coupons import Coupon, CouponKind, CouponScope, UserCoupon
from models.loyalty.points import PointsEntry
from models.trust.promises import LateDeliveryCompensation
from resolvers.commerce import ledger
from resolvers.commerce.orders import new_order_no
from resolvers.loyalty import points
from resolvers.trust import promises
from tests.conftest import Client, count_queries, eventually
from tests.factories import make_merchant, make_product, make_user, token_for
from tests.test_catalog import codes, create_merchant, create_product, signed_in
from tests.test_delivery import FULFIL, buy, buyer_client, gid, pk
from tests.test_ledger import assert_ledger_consistent

UPDATE = """mutation($input: UpdateProductInput!) { updateProduct(input: $input) { errors { code field }
  product { deliveryPromise { minutes lateCompensation { kind points amount { amount } couponId } } } } }"""
STATS = """query($a: ID!, $b: ID!) {
  a: merchant(id: $a) { deliveryStats { deliveredOrders medianSeconds p95Seconds onTimeShare } }
  b: merchant(id: $b) { deliveryStats { deliveredOrders medianSeconds p95Seconds onTimeShare } } }"""


async def fund_shop(merchant_id: int, amount: str, *, deposit: bool = False) -> None:
    to = ledger.merchant_deposit(merchant_id) if deposit else ledger.merchant_balance(merchant_id)
    await ledger.post("test.fund", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, -Decimal(amount)), (to, Decimal(amount))])


async def manual_order(make_client, late_by_minutes: float, **compensation: Any) -> tuple[Order, Any, Any]:  # type: ignore[no-untyped-def]
    """A MANUAL order (promise: 10 minutes) paid ``10 + late_by_minutes`` minutes before its
    merchant fulfils it through the API; the order as delivered, its buyer and the shop."""
    owner = await make_user(Role.MERCHANT)
    shop = await make_merchant(owner)
    product = await make_product(shop, kind=DeliveryKind.MANUAL, price="9.00")
    await Product.filter(id=product.id).update(delivery_promise_minutes=10, **compensation)
    buyer_api, buyer = await buyer_client(make_client, "9.00")
    order_id = pk((await buy(buyer_api, product.id))["order"]["id"])

    async def awaiting_merchant() -> bool:
        return (await Order.get(id=order_id)).status == OrderStatus.DELIVERING

    await eventually(awaiting_merchant)
    # Time passes: the order was paid that long ago (its deadline stays ahead, so the overdue
    # sweep leaves it to the merchant).
    await Order.filter(id=order_id).update(paid_at=datetime.now(UTC) - timedelta(minutes=10 + late_by_minutes))
    merchant = make_client()
    merchant.token = await token_for(owner)
    done = (await merchant.gql(FULFIL, {"input": {"orderId": gid("Order", order_id)}}))["fulfillOrder"]
    assert done == {"errors": [], "order": {"status": "DELIVERED"}}
    return await Order.get(id=order_id), buyer, shop


async def compensations(order: Order) -> int:
    return await LateDeliveryCompensation.filter(order_id=order.id).count()


async def rerun_everything(order: Order) -> None:
    assert await promises.compensate_late_delivery(order.id) is None
    await promises.sweep_late_deliveries()


async def test_late_order_gets_its_amount_once_from_the_shop(make_client) -> None:  # type: ignore[no-untyped-def]
    order, buyer, shop = await manual_order(
        make_client, 5, late_compensation=LateCompensation.AMOUNT, late_compensation_amount=Decimal("2.50"))
    assert order.promised_minutes == 10 and 15 * 60 <= order.delivery_seconds < 16 * 60  # recorded at delivery
    await fund_shop(shop.id, "10.00")

    # The shop is funded only now: if the job ran first it found the shop short and wrote
    # nothing; either way the sweep leaves exactly one compensation.
    await promises.sweep_late_deliveries()
    assert await compensations(order) == 1
    await rerun_everything(order)
    assert await compensations(order) == 1
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("2.50")
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("7.50")
    assert await Posting.filter(reason="late_delivery", reference=f"order:{order.id}").count() == 1
    row = await LateDeliveryCompensation.get(order_id=order.id)
    assert (row.kind, row.amount, row.paid_from) == (LateCompensation.AMOUNT, Decimal("2.50"), ledger.merchant_balance(shop.id))
    await assert_ledger_consistent()


async def test_the_job_pays_at_delivery_and_a_short_balance_falls_back_to_the_deposit(make_client) -> None:  # type: ignore[no-untyped-def]
    owner = await make_user(Role.MERCHANT)
    shop = await make_merchant(owner)
    await fund_shop(shop.id, "1.00")  # not enough
    await fund_shop(shop.id, "50.00", deposit=True)
    product = await make_product(shop, kind=DeliveryKind.MANUAL, price="9.00")
    await Product.filter(id=product.id).update(late_compensation=LateCompensation.AMOUNT, late_compensation_amount=Decimal("3.00"))
    buyer_api, buyer = await buyer_client(make_client, "9.00")
    order_id = pk((await buy(buyer_api, product.id))["order"]["id"])
    await eventually(lambda: _status_is(order_id, OrderStatus.DELIVERING))
    await Order.filter(id=order_id).update(paid_at=datetime.now(UTC) - timedelta(hours=1))
    merchant = make_client()
    merchant.token = await token_for(owner)
    await merchant.gql(FULFIL, {"input": {"orderId": gid("Order", order_id)}})

    async def paid() -> bool:  # by the job the DELIVERED transition queued
        return await LateDeliveryCompensation.filter(order_id=order_id).exists()

    await eventually(paid)
    order = await Order.get(id=order_id)
    await rerun_everything(order)
    assert await compensations(order) == 1
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("3.00")
    assert await ledger.balance(ledger.merchant_deposit(shop.id)) == Decimal("47.00")
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("1.00")
    await assert_ledger_consistent()


async def _status_is(order_id: int, status: OrderStatus) -> bool:
    return (await Order.get(id=order_id)).status == status


async def test_late_order_gets_points_once_and_the_shop_pays_their_value(make_client) -> None:  # type: ignore[no-untyped-def]
    order, buyer, shop = await manual_order(
        make_client, 1, late_compensation=LateCompensation.POINTS, late_compensation_points=300)
    await fund_shop(shop.id, "20.00")
    await promises.sweep_late_deliveries()
    await rerun_everything(order)
    assert await compensations(order) == 1
    entries = await PointsEntry.filter(user_id=buyer.id, rule="late_delivery").values_list("amount", flat=True)
    assert entries == [300]
    value = points.points_value(300)
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("20.00") - value
    await assert_ledger_consistent()


async def test_late_order_gets_the_shops_coupon_once(make_client) -> None:  # type: ignore[no-untyped-def]
    order, buyer, shop = await manual_order(make_client, 2)
    now = datetime.now(UTC)
    coupon = await Coupon.create(code=f"LATE{uuid.uuid4().hex[:8]}", title="Sorry", kind=CouponKind.FIXED,
                                 value=Decimal("5"), scope=CouponScope.MERCHANT, scope_id=shop.id,
                                 valid_from=now, valid_until=now + timedelta(days=30))  # fmt: skip
    await Product.filter(id=order.product_id).update(late_compensation=LateCompensation.COUPON,
                                                     late_compensation_coupon_id=coupon.id)
    await promises.sweep_late_deliveries()
    await rerun_everything(order)
    assert await compensations(order) == 1
    assert await UserCoupon.filter(user_id=buyer.id, coupon_id=coupon.id, source="late_delivery").count() == 1


async def test_on_time_order_and_products_without_compensation_get_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    on_time, buyer, shop = await manual_order(
        make_client, -5, late_compensation=LateCompensation.AMOUNT, late_compensation_amount=Decimal("2.00"))
    assert on_time.delivery_seconds is not None and on_time.delivery_seconds <= 10 * 60
    await fund_shop(shop.id, "10.00")
    no_promise, _, other_shop = await manual_order(make_client, 30)  # late, but the product offers nothing
    await fund_shop(other_shop.id, "10.00")
    await rerun_everything(on_time)
    await rerun_everything(no_promise)
    assert await compensations(on_time) == 0 and await compensations(no_promise) == 0
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("0.00")
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("10.00")


async def test_compensation_is_set_through_create_and_update_product(make_client) -> None:  # type: ignore[no-untyped-def]
    seller = await signed_in(make_client(), Role.MERCHANT)
    shop = await create_merchant(seller)
    product = await create_product(seller, shop["id"], lateCompensation={"kind": "POINTS", "points": 200})
    stored = await Product.get(id=pk(product["id"]))
    assert (stored.late_compensation, stored.late_compensation_points) == (LateCompensation.POINTS, 200)

    async def update(**compensation: Any) -> dict[str, Any]:
        return (await seller.gql(UPDATE, {"input": {"id": product["id"], "lateCompensation": compensation}}))["updateProduct"]

    amount = await update(kind="AMOUNT", amount="1.50")
    assert amount["product"]["deliveryPromise"] == {"minutes": 10, "lateCompensation": {
        "kind": "AMOUNT", "points": 0, "amount": {"amount": "1.50"}, "couponId": None}}
    assert codes(await update(kind="POINTS")) == [("INVALID_INPUT", "lateCompensation.points")]
    assert codes(await update(kind="POINTS", points=0)) == [("INVALID_INPUT", "lateCompensation.points")]
    assert codes(await update(kind="AMOUNT", amount="-1")) == [("INVALID_INPUT", "lateCompensation.amount")]
    assert codes(await update(kind="AMOUNT", amount="1000.01")) == [("INVALID_INPUT", "lateCompensation.amount")]
    now = datetime.now(UTC)
    foreign = await Coupon.create(code=f"X{uuid.uuid4().hex[:8]}", title="Platform", kind=CouponKind.FIXED,
                                  value=Decimal("5"), valid_from=now, valid_until=now + timedelta(days=1))
    assert codes(await update(kind="COUPON", couponId=gid("Coupon", foreign.id))) == [
        ("NOT_FOUND", "lateCompensation.couponId")]  # a platform coupon is not the shop's to give
    own = await Coupon.create(code=f"X{uuid.uuid4().hex[:8]}", title="Ours", kind=CouponKind.FIXED, value=Decimal("5"),
                              scope=CouponScope.PRODUCT, scope_id=pk(product["id"]), valid_from=now,
                              valid_until=now + timedelta(days=1))  # fmt: skip
    coupon = await update(kind="COUPON", couponId=gid("Coupon", own.id))
    assert coupon["product"]["deliveryPromise"]["lateCompensation"]["couponId"] == gid("Coupon", own.id)
    # Bad input changed nothing along the way; NONE removes it.
    assert (await Product.get(id=pk(product["id"]))).late_compensation == LateCompensation.COUPON
    none = (await seller.gql(UPDATE, {"input": {"id": product["id"], "lateCompensation": None}}))["updateProduct"]
    assert none["product"]["deliveryPromise"]["lateCompensation"]["kind"] == "NONE"


async def _delivered(shop_id: int, product: Product, minutes: float, promise: int, days_ago: float = 1) -> Order:
    delivered_at = datetime.now(UTC) - timedelta(days=days_ago)
    seconds = int(minutes * 60)
    return await Order.create(
        order_no=new_order_no(), buyer_id=None, product_id=product.id, merchant_id=shop_id, quantity=1,
        unit_price=Decimal("1.00"), total=Decimal("1.00"), idempotency_scope=f"g:{uuid.uuid4().hex}@example.com",
        idempotency_key=uuid.uuid4().hex, expires_at=delivered_at, status=OrderStatus.COMPLETED,
        paid_at=delivered_at - timedelta(seconds=seconds), delivered_at=delivered_at,
        delivery_seconds=seconds, promised_minutes=promise,
    )  # fmt: skip


async def test_shop_stats_on_generated_data(client: Client) -> None:
    shop, quiet = await make_merchant(), await make_merchant()
    product = await make_product(shop)
    # 20 deliveries of 1..20 minutes (shuffled), promise 10 minutes: nearest-rank median is the
    # 10th (600 s), the 95th percentile the 19th (1140 s), and 10 of 20 were on time.
    for minutes in (7, 3, 20, 12, 1, 15, 9, 18, 4, 11, 2, 16, 8, 19, 5, 13, 10, 6, 17, 14):
        await _delivered(shop.id, product, minutes, 10)
    await _delivered(shop.id, product, 500, 10, days_ago=31)  # outside the window: not counted
    await Order.create(
        order_no=new_order_no(), product_id=product.id, merchant_id=shop.id, quantity=1, unit_price=Decimal("1"),
        total=Decimal("1"), idempotency_scope="g:x@example.com", idempotency_key=uuid.uuid4().hex,
        expires_at=datetime.now(UTC), status=OrderStatus.PAID, paid_at=datetime.now(UTC),
    )  # paid, not delivered: not counted  # fmt: skip
    with count_queries() as counter:
        data = await client.gql(STATS, {"a": gid("Merchant", shop.id), "b": gid("Merchant", quiet.id)})
    assert data["a"]["deliveryStats"] == {"deliveredOrders": 20, "medianSeconds": 600, "p95Seconds": 1140, "onTimeShare": 0.5}
    assert data["b"]["deliveryStats"] == {"deliveredOrders": 0, "medianSeconds": None, "p95Seconds": None, "onTimeShare": None}
    assert sum("ROW_NUMBER()" in statement for statement in counter.statements) == 1  # both shops, one query
