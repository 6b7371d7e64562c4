"""The merchant back office (issue 13, item 8), part two: a DIRECT_TOPUP supplier configured
through the API delivers end to end (its secret never shown), and who pays for discounts —
merchant coupons by the shop, platform discounts by the platform's subsidy account."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models.accounts.users import Role, Tier, User
from models.commerce.catalog import DeliveryKind
from models.commerce.orders import Order, OrderEvent, OrderStatus
from models.commerce.suppliers import SupplierConfig
from resolvers.accounts.auth import Actor
from resolvers.commerce import escrow, ledger, promotions
from resolvers.loyalty import coupons
from models.loyalty.coupons import CouponKind
from tests.conftest import Client, eventually, free_port
from tests.factories import fund, make_merchant, make_product, make_user
from tests.test_ledger import assert_ledger_consistent
from tests.test_merchant_office import gid, pk, signed_in

SECRET_A = "shop-secret-7f3kQ9zA1B2"
SECRET_B = "product-secret-Xy88C3D4"


class SignedSupplier:
    """A stand-in supplier that checks Kameng's signature with the secret it shares."""

    def __init__(self) -> None:
        self.secrets = {"/a": SECRET_A, "/b": SECRET_B}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # path, idempotency key, body

    async def topup(self, request: Request) -> JSONResponse:
        raw = await request.body()
        stamp = request.headers.get("x-kameng-timestamp", "")
        expected = hmac.new(self.secrets[request.url.path].encode(), stamp.encode() + b"." + raw,
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-kameng-signature", "")):
            return JSONResponse({"status": "error", "reason": "bad signature"}, status_code=401)
        body = json.loads(raw)
        self.calls.append((request.url.path, request.headers.get("idempotency-key", ""), body))
        if body.get("type") == "ping":
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "ok", "supplierRef": f"SUP-{body['reference']}"})


@pytest.fixture(scope="module")
async def supplier() -> AsyncIterator[tuple[SignedSupplier, str]]:
    fake = SignedSupplier()
    port = free_port()
    app = Starlette(routes=[Route("/a", fake.topup, methods=["POST"]), Route("/b", fake.topup, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield fake, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


CONFIGURE = """mutation($input: ConfigureSupplierInput!) { configureSupplier(input: $input) {
  errors { code field } supplier { productId endpoint hasSecret secretHint timeoutSeconds } } }"""
TEST = """mutation($input: TestSupplierConnectionInput!) { testSupplierConnection(input: $input) {
  errors { code field } ok message milliseconds } }"""
SUPPLIERS = """query($id: ID!) { merchant(id: $id) { suppliers { productId endpoint hasSecret secretHint } } }"""
CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id total { amount } } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { errors { code } order { status } } }"""


async def buy(client: Client, product_id: int, **extra: Any) -> int:
    created = (await client.gql(CREATE, {"input": {"productId": gid("Product", product_id), "quantity": 1,
                                                    "idempotencyKey": uuid.uuid4().hex, **extra}}))["createOrder"]
    assert created["errors"] == [], created
    paid = (await client.gql(PAY, {"input": {"orderId": created["order"]["id"], "method": "WALLET"}}))["payOrder"]
    assert paid["errors"] == [], paid
    return pk(created["order"]["id"])


async def test_direct_topup_configured_through_the_api_delivers_end_to_end(make_client, supplier) -> None:  # type: ignore[no-untyped-def]
    fake, base = supplier
    shop = await make_merchant()  # no legacy supplier_url: only the API's configuration can deliver
    shop_wide = await make_product(shop, kind=DeliveryKind.DIRECT_TOPUP, price="20.00")
    own = await make_product(shop, kind=DeliveryKind.DIRECT_TOPUP, price="15.00")
    cards = await make_product(shop)
    owner = await signed_in(make_client, await User.get(id=shop.owner_id))
    shop_id = gid("Merchant", shop.id)
    texts: list[str] = []

    async def call(client: Client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(query, variables)
        texts.append(response.text)
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    # Refused: bad endpoint, a product that calls no supplier, anyone but the owner.
    bad = await call(owner, CONFIGURE, {"input": {"merchantId": shop_id, "endpoint": "ftp://x"}})
    assert [e["field"] for e in bad["configureSupplier"]["errors"]] == ["endpoint"]
    wrong_kind = await call(owner, CONFIGURE, {"input": {"merchantId": shop_id, "endpoint": f"{base}/a",
                                                         "productId": gid("Product", cards.id)}})
    assert [e["field"] for e in wrong_kind["configureSupplier"]["errors"]] == ["productId"]
    for role in (Role.ADMIN, Role.MERCHANT):
        someone = await signed_in(make_client, await make_user(role))
        refused = await call(someone, CONFIGURE, {"input": {"merchantId": shop_id, "endpoint": f"{base}/a",
                                                            "secret": SECRET_A}})
        assert [e["code"] for e in refused["configureSupplier"]["errors"]] == ["FORBIDDEN"]

    configured = await call(owner, CONFIGURE, {"input": {"merchantId": shop_id, "endpoint": f"{base}/a",
                                                         "secret": SECRET_A, "timeoutSeconds": 3}})
    assert configured["configureSupplier"]["supplier"] == {
        "productId": None, "endpoint": f"{base}/a", "hasSecret": True, "secretHint": "…A1B2", "timeoutSeconds": 3.0}
    # Wrong secret for the product first: the connection test says so.
    await call(owner, CONFIGURE, {"input": {"merchantId": shop_id, "productId": gid("Product", own.id),
                                            "endpoint": f"{base}/b", "secret": "not-the-right-one"}})
    failed = (await call(owner, TEST, {"input": {"merchantId": shop_id, "productId": gid("Product", own.id)}}))
    assert failed["testSupplierConnection"]["ok"] is False and "401" in failed["testSupplierConnection"]["message"]
    await call(owner, CONFIGURE, {"input": {"merchantId": shop_id, "productId": gid("Product", own.id),
                                            "endpoint": f"{base}/b", "secret": SECRET_B}})
    for product in (None, own.id):
        variables = {"merchantId": shop_id, **({"productId": gid("Product", product)} if product else {})}
        tested = (await call(owner, TEST, {"input": variables}))["testSupplierConnection"]
        assert tested["errors"] == [] and tested["ok"] is True, tested
    assert [(path, body["type"]) for path, _, body in fake.calls[-2:]] == [("/a", "ping"), ("/b", "ping")]
    # Changing only the endpoint keeps the stored secret.
    kept = await call(owner, CONFIGURE, {"input": {"merchantId": shop_id, "endpoint": f"{base}/a", "timeoutSeconds": 3}})
    assert kept["configureSupplier"]["supplier"]["hasSecret"] is True

    listed = (await call(owner, SUPPLIERS, {"id": shop_id}))["merchant"]["suppliers"]
    assert {s["secretHint"] for s in listed} == {"…A1B2", "…C3D4"}
    staff = await signed_in(make_client, await make_user(Role.MODERATOR))
    assert len((await call(staff, SUPPLIERS, {"id": shop_id}))["merchant"]["suppliers"]) == 2
    stranger = await signed_in(make_client, await make_user())
    assert (await call(stranger, SUPPLIERS, {"id": shop_id}))["merchant"]["suppliers"] is None

    # Orders: the shop's default supplier for one product, the product's own for the other.
    buyer = await make_user()
    await fund(buyer, "35.00")
    buyer_client = await signed_in(make_client, buyer)
    first = await buy(buyer_client, shop_wide.id, topupAccount="player-1")
    second = await buy(buyer_client, own.id, topupAccount="player-2")

    async def delivered() -> bool:
        return await Order.filter(id__in=[first, second], status=OrderStatus.DELIVERED).count() == 2

    await eventually(delivered, timeout=15)
    by_reference = {body.get("reference"): (path, key) for path, key, body in fake.calls}
    for order_id, path in ((first, "/a"), (second, "/b")):
        order = await Order.get(id=order_id)
        assert by_reference[order.order_no] == (path, order.order_no)  # signed, idempotency key = order number
        last = await OrderEvent.filter(order_id=order_id).order_by("-id").first()
        assert last is not None and f"SUP-{order.order_no}" in last.note

    # The secret is sealed at rest and was in no answer.
    for config in await SupplierConfig.filter(merchant_id=shop.id):
        assert SECRET_A not in config.secret_ciphertext and SECRET_B not in config.secret_ciphertext
    assert not [t for t in texts if SECRET_A in t or SECRET_B in t or "not-the-right-one" in t]
    await assert_ledger_consistent()


# -- who pays for a discount -----------------------------------------------------------------

CLAIM = """mutation($input: ClaimCouponInput!) { claimCoupon(input: $input) { errors { code } } }"""
CONFIRM = """mutation($input: ConfirmReceiptInput!) { confirmReceipt(input: $input) { errors { code } order { status } } }"""
MERCHANT_COUPON = """mutation($input: CreateMerchantCouponInput!) { createMerchantCoupon(input: $input) {
  errors { code field } coupon { code } } }"""


async def settled_gain(client: Client, shop_id: int, order_id: int) -> Decimal:
    """Confirm the delivered order and return what settlement added to the shop's balance."""
    async def delivered() -> bool:
        return await Order.filter(id=order_id, status=OrderStatus.DELIVERED).exists()

    await eventually(delivered)
    before = await ledger.balance(ledger.merchant_balance(shop_id))
    confirmed = (await client.gql(CONFIRM, {"input": {"orderId": gid("Order", order_id)}}))["confirmReceipt"]
    assert confirmed["errors"] == [], confirmed
    return await ledger.balance(ledger.merchant_balance(shop_id)) - before


async def test_connection_tests_are_limited_per_shop_before_anything_is_sent(make_client, supplier) -> None:  # type: ignore[no-untyped-def]
    from kameng.settings import get_settings

    fake, base = supplier
    limit = int(get_settings().supplier_test_limit.split("/")[0])
    shops = [await make_merchant() for _ in range(2)]
    owners = [await signed_in(make_client, await User.get(id=shop.owner_id)) for shop in shops]
    for shop, owner in zip(shops, owners, strict=True):
        configured = await owner.gql(CONFIGURE, {"input": {"merchantId": gid("Merchant", shop.id),
                                                           "endpoint": f"{base}/a", "secret": SECRET_A}})
        assert configured["configureSupplier"]["errors"] == []
    calls = len(fake.calls)
    first = {"input": {"merchantId": gid("Merchant", shops[0].id)}}
    answers = [(await owners[0].gql(TEST, first))["testSupplierConnection"] for _ in range(limit + 2)]
    assert all(answer["errors"] == [] and answer["ok"] for answer in answers[:limit]), answers[:limit]
    assert [[(e["code"], e["field"]) for e in answer["errors"]] for answer in answers[limit:]] == [
        [("RATE_LIMITED", None)]] * 2
    assert len(fake.calls) == calls + limit  # the refused ones sent nothing
    # Another shop has an allowance of its own.
    other = (await owners[1].gql(TEST, {"input": {"merchantId": gid("Merchant", shops[1].id)}}))["testSupplierConnection"]
    assert other["errors"] == [] and other["ok"] is True
    assert len(fake.calls) == calls + limit + 1


async def test_platform_discounts_are_subsidised_and_merchant_coupons_are_merchant_funded(make_client) -> None:  # type: ignore[no-untyped-def]
    shop = await make_merchant()
    product = await make_product(shop, price="100.00", keys=4)
    owner = await signed_in(make_client, await User.get(id=shop.owner_id))
    now = datetime.now(UTC)
    window = {"validFrom": (now - timedelta(days=1)).isoformat(), "validUntil": (now + timedelta(days=9)).isoformat()}
    shop_code = f"SHOP{uuid.uuid4().hex[:8].upper()}"
    made = await owner.gql(MERCHANT_COUPON, {"input": {"merchantId": gid("Merchant", shop.id), "code": shop_code,
                                                       "title": "Twenty off", "kind": "FIXED", "value": "20.00", **window}})
    assert made["createMerchantCoupon"]["errors"] == []
    other = await signed_in(make_client, await make_user(Role.MERCHANT))
    refused = await other.gql(MERCHANT_COUPON, {"input": {"merchantId": gid("Merchant", shop.id), "code": "X" + shop_code,
                                                          "title": "Not yours", "kind": "FIXED", "value": "1.00", **window}})
    assert [e["code"] for e in refused["createMerchantCoupon"]["errors"]] == ["FORBIDDEN"]
    platform_code = f"PLAT{uuid.uuid4().hex[:8].upper()}"
    admin = Actor(user=await make_user(Role.ADMIN))
    await coupons.create(admin, coupons.NewCoupon(code=platform_code, title="Ten off", kind=CouponKind.FIXED,
                                                  value=Decimal("10.00"), valid_from=now - timedelta(days=1),
                                                  valid_until=now + timedelta(days=9)))

    buyer = await make_user()
    await fund(buyer, "400.00")
    client = await signed_in(make_client, buyer)
    for code in (shop_code, platform_code):
        assert (await client.gql(CLAIM, {"input": {"code": code}}))["claimCoupon"]["errors"] == []
    promotions_before = await ledger.balance(promotions.PROMOTIONS)

    # A member-tier price is the platform's benefit (set before any completion can recompute it).
    await User.filter(id=buyer.id).update(tier=Tier.GOLD)
    tier_order = await buy(client, product.id)
    gain = await settled_gain(client, shop.id, tier_order)
    order = await Order.get(id=tier_order)
    assert order.tier_discount == Decimal("5.00") and order.total == Decimal("95.00")
    assert gain == Decimal("100.00") - escrow.fee(order)  # settled as if at list price
    subsidies = [order.tier_discount]

    platform_order = await buy(client, product.id, couponCode=platform_code)
    gain = await settled_gain(client, shop.id, platform_order)
    order = await Order.get(id=platform_order)
    assert order.coupon_discount == Decimal("10.00")
    assert gain == Decimal("100.00") - escrow.fee(order)  # the platform's coupon is made good
    subsidies.append(order.tier_discount + order.coupon_discount)

    shop_order = await buy(client, product.id, couponCode=shop_code)
    gain = await settled_gain(client, shop.id, shop_order)
    order = await Order.get(id=shop_order)
    assert order.coupon_discount == Decimal("20.00")
    assert gain == Decimal("100.00") - Decimal("20.00") - escrow.fee(order)  # the shop's own coupon is its cost
    subsidies.append(order.tier_discount)

    assert await ledger.balance(promotions.PROMOTIONS) - promotions_before == -sum(subsidies)
    await assert_ledger_consistent()


@pytest.fixture
def public_suppliers_only(stack):  # type: ignore[no-untyped-def]
    """The production default for this test: supplier endpoints must be public addresses."""
    from kameng.settings import configure, get_settings

    before = get_settings()
    configure(before.model_copy(update={"supplier_allow_private": False}))
    yield
    configure(before)


async def test_a_shop_cannot_point_its_supplier_at_the_platforms_own_network(  # type: ignore[no-untyped-def]
        make_client, supplier, public_suppliers_only) -> None:
    """SSRF: loopback, private, link-local (the cloud's metadata service) and unresolvable hosts
    are refused when configured, and a call to one already stored never leaves."""
    from resolvers.commerce import suppliers

    fake, base = supplier
    for url in ("http://127.0.0.1:6379/", "http://localhost/x", "http://10.1.2.3/", "http://192.168.0.10/",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0.0.0.0/",
                "http://[::ffff:127.0.0.1]/", "http://no-such-host.invalid/"):
        assert await suppliers.not_public(url) is not None, url
    for url in ("http://8.8.8.8/topup", "https://[2001:4860:4860::8888]/topup"):
        assert await suppliers.not_public(url) is None, url
    # At call time a host that does not resolve (DNS down) is retried like a connection error, not refused.
    with pytest.raises(suppliers.SupplierUnavailable):
        await suppliers.post(suppliers.Target("http://no-such-host.invalid/", None, 1.0), {"type": "ping"})

    shop = await make_merchant()
    owner = await signed_in(make_client, await User.get(id=shop.owner_id))
    shop_id = gid("Merchant", shop.id)
    for url in ("http://169.254.169.254/latest/meta-data/", f"{base}/a"):
        refused = (await owner.gql(CONFIGURE, {"input": {"merchantId": shop_id, "endpoint": url}}))["configureSupplier"]
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID_INPUT", "endpoint")], url
    assert not await SupplierConfig.filter(merchant_id=shop.id).exists()

    # Stored while private addresses were allowed: the call is refused before it leaves.
    await SupplierConfig.create(merchant_id=shop.id, scope="shop", endpoint=f"{base}/a", timeout_seconds=3)
    calls = len(fake.calls)
    checked = (await owner.gql(TEST, {"input": {"merchantId": shop_id}}))["testSupplierConnection"]
    assert checked["errors"] == [] and checked["ok"] is False and "not a public address" in checked["message"]
    assert len(fake.calls) == calls
