"""Checkout: idempotency, reservation under concurrency, guests, cancellation, expiry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from strawberry.relay import GlobalID

from models.commerce.catalog import DeliveryKind
from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.orders import Order, OrderEvent, OrderStatus
from models.outbox import OutboxEntry, OutboxKind
from tests.conftest import Client, eventually
from tests.factories import make_product, make_user, make_users, token_for
from resolvers.commerce import orders

CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) {
  errors { code field message } order { id orderNo status quantity total { amount currency } unitPrice { amount }
  events { status note } product { id title } } } }"""
CANCEL = "mutation($input: OrderIdInput!) { cancelOrder(input: $input) { errors { code } order { status } } }"
LOOKUP = """query($input: OrderLookupInput!) { orderLookup(input: $input) { orderNo status total { amount } } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def order_input(product_id: int, **extra: object) -> dict[str, object]:
    return {"input": {"productId": gid("Product", product_id), "quantity": 1, "idempotencyKey": uuid.uuid4().hex, **extra}}


async def signed_in(client: Client) -> Client:
    client.token = await token_for(await make_user())
    return client


async def test_create_order_reserves_keys_and_is_idempotent(client: Client) -> None:
    await signed_in(client)
    product = await make_product(keys=5, price="12.50")
    variables = order_input(product.id, quantity=2)
    first = (await client.gql(CREATE, variables))["createOrder"]
    assert first["errors"] == []
    order = first["order"]
    assert order["status"] == "PENDING_PAYMENT"
    assert order["total"] == {"amount": "25.00", "currency": "CNY"}
    assert [e["status"] for e in order["events"]] == ["PENDING_PAYMENT"]
    again = (await client.gql(CREATE, variables))["createOrder"]
    assert again["order"]["id"] == order["id"]  # same key, same order
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.RESERVED).count() == 2
    # The same key with a different request is refused, not silently reused.
    variables["input"]["quantity"] = 3
    clash = (await client.gql(CREATE, variables))["createOrder"]
    assert clash["errors"][0]["code"] == "DUPLICATE"


async def test_wholesale_tier_price(client: Client) -> None:
    await signed_in(client)
    product = await make_product(keys=20, price="10.00", wholesale_tiers=[{"minQuantity": 10, "unitPrice": "9.50"}])
    order = (await client.gql(CREATE, order_input(product.id, quantity=10)))["createOrder"]["order"]
    assert order["unitPrice"]["amount"] == "9.50" and order["total"]["amount"] == "95.00"


async def test_bad_orders_change_nothing(client: Client) -> None:
    await signed_in(client)
    product = await make_product(keys=3, max_quantity=2)
    topup = await make_product(kind=DeliveryKind.DIRECT_TOPUP)
    cases = [
        ({"quantity": 0}, "INVALID_INPUT"),
        ({"quantity": 3}, "INVALID_INPUT"),
        ({"idempotencyKey": "short"}, "INVALID_INPUT"),
        ({"productId": gid("Product", 987654321)}, "NOT_FOUND"),
        ({"productId": gid("User", product.id)}, "INVALID_INPUT"),
        ({"productId": "garbage"}, "INVALID_INPUT"),
    ]
    orders_before = await Order.all().count()
    for extra, code in cases:
        payload = (await client.gql(CREATE, order_input(product.id, **extra)))["createOrder"]
        assert payload["errors"][0]["code"] == code, (extra, payload)
        assert payload["order"] is None
    missing_account = (await client.gql(CREATE, order_input(topup.id)))["createOrder"]
    assert missing_account["errors"][0] == {"code": "INVALID_INPUT", "field": "topupAccount", "message": missing_account["errors"][0]["message"]}
    assert await Order.all().count() == orders_before
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 3


async def test_sold_out_and_insufficient_stock(client: Client) -> None:
    await signed_in(client)
    product = await make_product(keys=2)
    too_many = (await client.gql(CREATE, order_input(product.id, quantity=3)))["createOrder"]
    assert too_many["errors"][0]["code"] == "INSUFFICIENT_STOCK"
    assert (await client.gql(CREATE, order_input(product.id, quantity=2)))["createOrder"]["errors"] == []
    sold_out = (await client.gql(CREATE, order_input(product.id)))["createOrder"]
    assert sold_out["errors"][0]["code"] == "SOLD_OUT"


async def test_concurrent_buyers_never_share_a_key(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(keys=50)
    buyers = await make_users(200)
    clients = []
    for user in buyers:
        c = make_client()
        c.token = await token_for(user)
        clients.append(c)
    results = await asyncio.gather(*(c.gql(CREATE, order_input(product.id)) for c in clients))
    codes = [r["createOrder"]["errors"][0]["code"] if r["createOrder"]["errors"] else "OK" for r in results]
    assert codes.count("OK") == 50
    assert set(codes) <= {"OK", "SOLD_OUT", "INSUFFICIENT_STOCK"}
    reserved = await CardKey.filter(product_id=product.id).values_list("order_id", flat=True)
    assert len(reserved) == 50 and len(set(reserved)) == 50 and None not in reserved


async def test_guest_checkout_and_lookup(client: Client) -> None:
    product = await make_product(keys=2)
    guest = order_input(product.id, contactEmail="Guest@Example.com", queryPassword="s3cret-pass")
    payload = (await client.gql(CREATE, guest))["createOrder"]
    assert payload["errors"] == []
    order_no = payload["order"]["orderNo"]
    stored = await Order.get(order_no=order_no)
    assert stored.buyer_id is None and stored.contact_email == "guest@example.com"
    assert "s3cret-pass" not in stored.query_password_hash
    found = (await client.gql(LOOKUP, {"input": {"orderNo": order_no, "password": "s3cret-pass"}}))["orderLookup"]
    assert found["orderNo"] == order_no
    wrong = (await client.gql(LOOKUP, {"input": {"orderNo": order_no, "password": "guess-guess"}}))["orderLookup"]
    assert wrong is None
    no_password = (await client.gql(CREATE, order_input(product.id, contactEmail="g@example.com")))["createOrder"]
    assert no_password["errors"][0]["code"] == "INVALID_INPUT"


async def test_order_lookup_is_rate_limited(make_client) -> None:  # type: ignore[no-untyped-def]
    guesser = make_client()
    responses = []
    for _ in range(12):
        responses.append(await guesser.post(LOOKUP, {"input": {"orderNo": "K20260101-AAAAAAAAAA", "password": "x"}}))
    codes = [r.json().get("errors", [{}])[0].get("extensions", {}).get("code") for r in responses]
    assert codes[:10] == [None] * 10
    assert codes[10:] == ["RATE_LIMITED"] * 2


async def test_cancel_releases_the_reservation(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    await signed_in(client)
    product = await make_product(keys=1)
    order = (await client.gql(CREATE, order_input(product.id)))["createOrder"]["order"]
    stranger = await signed_in(make_client())
    refused = (await stranger.gql(CANCEL, {"input": {"orderId": order["id"]}}))["cancelOrder"]
    assert refused["errors"][0]["code"] == "NOT_FOUND"
    done = (await client.gql(CANCEL, {"input": {"orderId": order["id"]}}))["cancelOrder"]
    assert done == {"errors": [], "order": {"status": "CANCELLED"}}
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 1
    twice = (await client.gql(CANCEL, {"input": {"orderId": order["id"]}}))["cancelOrder"]
    assert twice["errors"][0]["code"] == "INVALID_STATE"


async def test_unpaid_orders_expire_and_release_stock(client: Client) -> None:
    await signed_in(client)
    product = await make_product(keys=1)
    limited = await make_product(kind=DeliveryKind.MANUAL, stock_limit=3)
    order = (await client.gql(CREATE, order_input(product.id)))["createOrder"]["order"]
    manual = (await client.gql(CREATE, order_input(limited.id, quantity=2)))["createOrder"]["order"]
    assert (await limited.refresh_from_db()) is None and limited.stock_limit == 1
    past = datetime.now(UTC) - timedelta(seconds=1)
    numbers = [order["orderNo"], manual["orderNo"]]
    await Order.filter(order_no__in=numbers).update(expires_at=past)
    assert await orders.sweep_expired() >= 2
    assert await orders.sweep_expired() == 0  # idempotent
    for no in numbers:
        expired = await Order.get(order_no=no)
        assert expired.status == OrderStatus.CANCELLED
        assert await OrderEvent.filter(order_id=expired.id, status=OrderStatus.CANCELLED).count() == 1
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 1
    await limited.refresh_from_db()
    assert limited.stock_limit == 3


async def test_the_sweep_expires_batch_after_batch(client: Client) -> None:
    """Orders are expired by the sweep alone, so one sweep goes on until a batch comes back short:
    checkouts abandoned faster than a batch per sweep do not pile up holding stock."""
    await signed_in(client)
    product = await make_product(keys=5)
    made = [(await client.gql(CREATE, order_input(product.id)))["createOrder"]["order"]["orderNo"]
            for _ in range(5)]
    await Order.filter(order_no__in=made).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await orders.sweep_expired(batch=2) >= 5
    assert await Order.filter(order_no__in=made, status=OrderStatus.CANCELLED).count() == 5
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 5


async def test_the_running_sweep_expires_an_order_that_has_no_timer(client: Client, rt) -> None:  # type: ignore[no-untyped-def]
    """An order writes no timer job: the sweep of the process that runs jobs (every
    KAMENG_SWEEP_SECONDS) cancels it once its time is up, and releases its stock."""
    await signed_in(client)
    product = await make_product(keys=1)
    last_row = await OutboxEntry.all().order_by("-id").first().values_list("id", flat=True) or 0
    created = (await client.gql(CREATE, order_input(product.id)))["createOrder"]["order"]
    order = await Order.get(order_no=created["orderNo"])
    jobs = await OutboxEntry.filter(kind=OutboxKind.JOB, id__gt=last_row).values_list("topic", "payload")
    assert [topic for topic, payload in jobs if payload["kwargs"].get("order_id") == order.id] == []
    await Order.filter(id=order.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    async def cancelled() -> bool:
        return (await Order.get(id=order.id)).status == OrderStatus.CANCELLED

    await eventually(cancelled, timeout=3 * rt.settings.sweep_seconds)
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 1
