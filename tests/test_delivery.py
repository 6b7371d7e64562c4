"""Delivery end to end: the race for keys, who may see them, live tracking, top-ups through a
supplier, manual fulfilment, and re-runs that change nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.relay import GlobalID

from models.accounts.users import Role
from models.commerce.catalog import DeliveryKind
from models.commerce.inventory import CardKey, CardKeyReveal, CardKeyStatus
from models.commerce.orders import Order, OrderEvent, OrderStatus
from resolvers.commerce import delivery, ledger
from tests.conftest import Client, Stack, eventually, free_port
from tests.factories import add_keys, fund, make_merchant, make_product, make_user, make_users, token_for
from tests.test_ledger import assert_ledger_consistent
from tests.test_subscriptions import connect, recv
from workers import commerce

CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) {
  errors { code } order { id orderNo status } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { errors { code } order { status } } }"""
ORDER = """query($id: ID!) { order(id: $id) { status cardKeys { secret } events { status } } }"""
TRACK = """subscription($id: ID!, $lookup: OrderLookupInput) { orderStatusChanged(orderId: $id, lookup: $lookup) {
  status note order { orderNo } } }"""
FULFIL = """mutation($input: FulfillOrderInput!) { fulfillOrder(input: $input) { errors { code } order { status } } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


async def buy(client: Client, product_id: int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    created = (await client.gql(CREATE, {"input": {
        "productId": gid("Product", product_id), "quantity": quantity, "idempotencyKey": uuid.uuid4().hex, **extra}}))
    payload = created["createOrder"]
    if payload["errors"]:
        return {"code": payload["errors"][0]["code"]}
    paid = (await client.gql(PAY, {"input": {"orderId": payload["order"]["id"], "method": "WALLET"}}))["payOrder"]
    return {"code": paid["errors"][0]["code"] if paid["errors"] else "OK", "order": payload["order"]}


async def buyer_client(make_client, balance: str = "100.00") -> tuple[Client, Any]:  # type: ignore[no-untyped-def]
    user = await make_user()
    await fund(user, balance)
    client = make_client()
    client.token = await token_for(user)
    return client, user


async def delivered(order_id: int) -> bool:
    return (await Order.get(id=order_id)).status == OrderStatus.DELIVERED


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def test_200_buyers_race_for_50_keys(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(keys=50, price="3.00")
    clients = []
    for user in await make_users(200):
        await fund(user, "3.00")
        client = make_client()
        client.token = await token_for(user)
        clients.append(client)
    results = await asyncio.gather(*(buy(c, product.id) for c in clients))
    codes = [r["code"] for r in results]
    assert codes.count("OK") == 50, codes
    assert set(codes) <= {"OK", "SOLD_OUT", "INSUFFICIENT_STOCK"}
    paid = [pk(r["order"]["id"]) for r in results if r["code"] == "OK"]

    async def all_delivered() -> bool:
        return await Order.filter(id__in=paid, status=OrderStatus.DELIVERED).count() == 50

    await eventually(all_delivered, timeout=60)
    keys = await CardKey.filter(product_id=product.id).values_list("order_id", "status")
    assert len(keys) == 50
    assert {status for _, status in keys} == {CardKeyStatus.SOLD}
    assert sorted(order_id for order_id, _ in keys) == sorted(paid)  # one key each, none shared
    await product.refresh_from_db()
    assert product.sold_count == 50
    held = [await ledger.balance(ledger.escrow(order_id)) for order_id in paid]
    assert held == [Decimal("3.00")] * 50  # each delivered order's money waits in its escrow
    await assert_ledger_consistent()


async def test_card_keys_are_shown_to_the_buyer_only(make_client, http) -> None:  # type: ignore[no-untyped-def]
    merchant_owner = await make_user(Role.MERCHANT)
    merchant = await make_merchant(merchant_owner)
    product = await make_product(merchant, price="5.00")
    secrets = await add_keys(product, 2)
    buyer, _ = await buyer_client(make_client)
    result = await buy(buyer, product.id, quantity=2)
    order_id = result["order"]["id"]
    await eventually(lambda: delivered(pk(order_id)))

    seen = (await buyer.gql(ORDER, {"id": order_id}))["order"]
    assert sorted(k["secret"] for k in seen["cardKeys"]) == sorted(secrets)
    assert [e["status"] for e in seen["events"]] == ["PENDING_PAYMENT", "PAID", "DELIVERING", "DELIVERED"]
    assert await CardKeyReveal.filter(order_id=pk(order_id)).count() == 2  # every reveal audited

    merchant_client = make_client()
    merchant_client.token = await token_for(merchant_owner)
    as_merchant = (await merchant_client.gql(ORDER, {"id": order_id}))["order"]
    assert as_merchant["status"] == "DELIVERED" and as_merchant["cardKeys"] == []
    other, _ = await buyer_client(make_client)
    assert (await other.gql(ORDER, {"id": order_id}))["order"] is None
    anonymous = make_client()
    assert (await anonymous.gql(ORDER, {"id": order_id}))["order"] is None
    staff = make_client()
    staff.token = await token_for(await make_user(Role.ADMIN))
    assert (await staff.gql(ORDER, {"id": order_id}))["order"]["cardKeys"] == []
    assert await CardKeyReveal.filter(order_id=pk(order_id)).count() == 2
    stored = await CardKey.filter(order_id=pk(order_id)).values_list("ciphertext", flat=True)
    assert not any(secret in text for secret in secrets for text in stored)


async def test_tracking_streams_every_transition_in_order(stack: Stack, make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(keys=1, price="2.00")
    buyer, _ = await buyer_client(make_client)
    created = (await buyer.gql(CREATE, {"input": {"productId": gid("Product", product.id), "idempotencyKey": uuid.uuid4().hex}}))
    order = created["createOrder"]["order"]
    async with await connect(stack, "graphql-transport-ws", buyer.token) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": TRACK, "variables": {"id": order["id"]}}}))
        first = await recv(ws)
        assert first["payload"]["data"]["orderStatusChanged"]["status"] == "PENDING_PAYMENT"
        paid = (await buyer.gql(PAY, {"input": {"orderId": order["id"], "method": "WALLET"}}))["payOrder"]
        assert paid["errors"] == []
        statuses = [(await recv(ws, timeout=10))["payload"]["data"]["orderStatusChanged"]["status"] for _ in range(3)]
        assert statuses == ["PAID", "DELIVERING", "DELIVERED"]

    stranger, _ = await buyer_client(make_client)
    async with await connect(stack, "graphql-transport-ws", stranger.token) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": TRACK, "variables": {"id": order["id"]}}}))
        refused = await recv(ws)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_guest_tracks_with_lookup_credentials(stack: Stack, make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(keys=1)
    guest = make_client()
    created = (await guest.gql(CREATE, {"input": {
        "productId": gid("Product", product.id), "idempotencyKey": uuid.uuid4().hex,
        "contactEmail": "guest@example.com", "queryPassword": "open-sesame"}}))["createOrder"]["order"]
    async with await connect(stack, "graphql-transport-ws", None) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        lookup = {"orderNo": created["orderNo"], "password": "open-sesame"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": TRACK, "variables": {"id": created["id"], "lookup": lookup}}}))
        first = (await recv(ws))["payload"]["data"]["orderStatusChanged"]
        assert first["status"] == "PENDING_PAYMENT" and first["order"]["orderNo"] == created["orderNo"]
    async with await connect(stack, "graphql-transport-ws", None) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        wrong = {"orderNo": created["orderNo"], "password": "not-it-at-all"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": TRACK, "variables": {"id": created["id"], "lookup": wrong}}}))
        refused = await recv(ws)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_delivery_rerun_changes_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(keys=3)
    buyer, _ = await buyer_client(make_client)
    order_id = pk((await buy(buyer, product.id))["order"]["id"])
    await eventually(lambda: delivered(order_id))
    before = sorted(await CardKey.filter(order_id=order_id).values_list("id", flat=True))
    events = await OrderEvent.filter(order_id=order_id).count()
    for _ in range(3):
        await commerce.deliver_order(order_id)
    assert sorted(await CardKey.filter(order_id=order_id).values_list("id", flat=True)) == before
    assert await OrderEvent.filter(order_id=order_id).count() == events
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 2


class Supplier:
    """A stand-in upstream supplier: answers by account name, records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def topup(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.calls.append((request.headers.get("idempotency-key", ""), body))
        account = body["account"]
        if account == "refuse":
            return JSONResponse({"status": "error", "reason": "no such account"}, status_code=400)
        if account == "flaky" and len([c for c in self.calls if c[1]["account"] == "flaky"]) == 1:
            return JSONResponse({"status": "error"}, status_code=503)
        if account == "down":
            return JSONResponse({"status": "error"}, status_code=503)
        return JSONResponse({"status": "ok", "supplierRef": f"SUP-{body['reference']}"})


@pytest.fixture(scope="module")
async def supplier() -> AsyncIterator[tuple[Supplier, str]]:
    fake = Supplier()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        Starlette(routes=[Route("/topup", fake.topup, methods=["POST"])]), host="127.0.0.1", port=port,
        log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield fake, f"http://127.0.0.1:{port}/topup"
    server.should_exit = True
    await task


async def test_topup_delivers_through_the_supplier(make_client, supplier) -> None:  # type: ignore[no-untyped-def]
    fake, url = supplier
    product = await make_product(await make_merchant(supplier_url=url), kind=DeliveryKind.DIRECT_TOPUP, price="20.00")
    buyer, user = await buyer_client(make_client, "40.00")
    ok = await buy(buyer, product.id, topupAccount="player-42")
    order_id = pk(ok["order"]["id"])
    await eventually(lambda: delivered(order_id))
    order = await Order.get(id=order_id)
    assert fake.calls[-1][0] == order.order_no  # the order number is the idempotency key
    last = await OrderEvent.filter(order_id=order_id).order_by("-id").first()
    assert last is not None and f"SUP-{order.order_no}" in last.note

    refused = await buy(buyer, product.id, topupAccount="refuse")
    refused_id = pk(refused["order"]["id"])

    async def refunded() -> bool:
        return (await Order.get(id=refused_id)).status == OrderStatus.REFUNDED

    await eventually(refunded, timeout=10)
    statuses = await OrderEvent.filter(order_id=refused_id).order_by("id").values_list("status", flat=True)
    assert statuses[-2:] == [OrderStatus.FAILED, OrderStatus.REFUNDED]
    assert await ledger.balance(ledger.wallet(user.id)) == Decimal("20.00")  # the refused one came back
    await assert_ledger_consistent()


async def test_topup_retries_then_succeeds(make_client, supplier) -> None:  # type: ignore[no-untyped-def]
    fake, url = supplier
    product = await make_product(await make_merchant(supplier_url=url), kind=DeliveryKind.DIRECT_TOPUP)
    buyer, _ = await buyer_client(make_client)
    order_id = pk((await buy(buyer, product.id, topupAccount="flaky"))["order"]["id"])
    await eventually(lambda: delivered(order_id), timeout=15)
    keys = {key for key, body in fake.calls if body["account"] == "flaky"}
    assert len(keys) == 1  # the retry carried the same idempotency key


async def test_topup_that_never_succeeds_is_refunded_when_retries_run_out(make_client, supplier) -> None:  # type: ignore[no-untyped-def]
    fake, url = supplier
    product = await make_product(await make_merchant(supplier_url=url), kind=DeliveryKind.DIRECT_TOPUP, price="7.00")
    buyer, user = await buyer_client(make_client, "7.00")
    order_id = pk((await buy(buyer, product.id, topupAccount="down"))["order"]["id"])

    async def delivering() -> bool:
        return (await Order.get(id=order_id)).status == OrderStatus.DELIVERING

    await eventually(delivering)
    # What dramatiq calls once the retries are used up (they take minutes by design).
    await commerce.delivery_gave_up({"kwargs": {"order_id": order_id}}, {"retries": 6})
    assert (await Order.get(id=order_id)).status == OrderStatus.REFUNDED
    assert await ledger.balance(ledger.wallet(user.id)) == Decimal("7.00")
    await commerce.delivery_gave_up({"kwargs": {"order_id": order_id}}, {"retries": 6})  # idempotent
    assert await ledger.balance(ledger.wallet(user.id)) == Decimal("7.00")


async def test_manual_orders_are_fulfilled_by_their_merchant(make_client) -> None:  # type: ignore[no-untyped-def]
    owner = await make_user(Role.MERCHANT)
    product = await make_product(await make_merchant(owner), kind=DeliveryKind.MANUAL, price="9.00")
    buyer, user = await buyer_client(make_client, "18.00")
    first = pk((await buy(buyer, product.id))["order"]["id"])

    async def awaiting_merchant() -> bool:
        order = await Order.get(id=first)
        return order.status == OrderStatus.DELIVERING and order.delivery_due_at is not None

    await eventually(awaiting_merchant)
    stranger = make_client()
    stranger.token = await token_for(await make_user(Role.MERCHANT))
    denied = (await stranger.gql(FULFIL, {"input": {"orderId": gid("Order", first)}}))["fulfillOrder"]
    assert denied["errors"][0]["code"] == "FORBIDDEN"
    merchant = make_client()
    merchant.token = await token_for(owner)
    done = (await merchant.gql(FULFIL, {"input": {"orderId": gid("Order", first), "note": "sent by mail"}}))["fulfillOrder"]
    assert done == {"errors": [], "order": {"status": "DELIVERED"}}

    late = pk((await buy(buyer, product.id))["order"]["id"])

    async def waiting() -> bool:
        return (await Order.get(id=late)).delivery_due_at is not None

    await eventually(waiting)
    from datetime import UTC, datetime, timedelta

    await Order.filter(id=late).update(delivery_due_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await delivery.sweep_overdue_manual() >= 1
    assert (await Order.get(id=late)).status == OrderStatus.REFUNDED
    assert await ledger.balance(ledger.wallet(user.id)) == Decimal("9.00")
    await assert_ledger_consistent()


async def test_a_card_key_order_without_keys_at_delivery_fails_and_is_refunded(make_client) -> None:  # type: ignore[no-untyped-def]
    """Its delivery commits nothing half-way: the order goes from PAID to FAILED (never
    DELIVERING, which a card-key order commits only with its keys) and the money goes back."""
    product = await make_product(price="10.00", keys=1)
    buyer, user = await buyer_client(make_client, balance="30.00")
    created = (await buyer.gql(CREATE, {"input": {"productId": gid("Product", product.id),
                                                  "idempotencyKey": uuid.uuid4().hex}}))["createOrder"]
    order_id = pk(created["order"]["id"])
    # The reservation is lost before payment (the key went elsewhere) and no key is left.
    await CardKey.filter(order_id=order_id).update(order_id=None, status=CardKeyStatus.SOLD)
    paid = (await buyer.gql(PAY, {"input": {"orderId": created["order"]["id"], "method": "WALLET"}}))["payOrder"]
    assert paid["errors"] == []

    async def refunded() -> bool:
        return (await Order.get(id=order_id)).status == OrderStatus.REFUNDED

    await eventually(refunded)
    statuses = [e.status for e in await OrderEvent.filter(order_id=order_id).order_by("id")]
    assert statuses == [OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.FAILED, OrderStatus.REFUNDED]
    assert await ledger.balance(ledger.wallet(user.id)) == Decimal("30.00")
    assert await CardKey.filter(order_id=order_id).count() == 0
    await assert_ledger_consistent()
