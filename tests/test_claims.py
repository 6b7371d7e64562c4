"""Self-service claims (issue 14, item 3): an invalid key replaced once however many times it
is reported at once; refunds from escrow, the shop's balance or its deposit as the order's
state requires, each one posting; an undelivered order past its promise refunded; who may
file, contest and decide; hostile input refused with nothing changed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.inventory import CardKey, CardKeyReveal, CardKeyStatus
from models.commerce.ledger import Posting
from models.commerce.orders import Order, OrderStatus
from models.trust.claims import Claim, ClaimReason, ClaimStatus
from resolvers.accounts.auth import Actor
from resolvers.commerce import escrow, ledger, settlement
from resolvers.commerce.orders import new_order_no
from subscriptions import outbox
from tests.conftest import Client, eventually
from tests.factories import add_keys, fund, make_merchant, make_product, make_user, token_for
from tests.test_delivery import buy, delivered, gid, pk
from tests.test_delivery_promises import fund_shop
from tests.test_ledger import assert_ledger_consistent

KEYS = """query($id: ID!) { order(id: $id) { status cardKeys { id secret } } }"""
REPORT = """mutation($input: ReportOrderProblemInput!) { reportOrderProblem(input: $input) {
  errors { code field } claim { id status outcome automatic rule paidFrom amount { amount } } } }"""
CONTEST = """mutation($input: ContestClaimInput!) { contestClaim(input: $input) {
  errors { code field } claim { status } } }"""
DECIDE = """mutation($input: DecideClaimInput!) { decideClaim(input: $input) {
  errors { code field } claim { status outcome } } }"""


async def signed_in(make_client, user: User) -> Client:  # type: ignore[no-untyped-def]
    client = make_client()
    client.token = await token_for(user)
    return client


async def card_order(make_client, *, stock: int, quantity: int = 1, price: str = "10.00"):  # type: ignore[no-untyped-def]
    """A delivered CARD_KEY order whose keys the buyer has seen, ``stock`` keys left over."""
    owner = await make_user(Role.MERCHANT)
    shop = await make_merchant(owner)
    product = await make_product(shop, price=price)
    await add_keys(product, quantity + stock)
    buyer = await make_user()
    await fund(buyer, str(Decimal(price) * quantity))
    api = await signed_in(make_client, buyer)
    order_id = pk((await buy(api, product.id, quantity=quantity))["order"]["id"])
    await eventually(lambda: delivered(order_id))
    keys = (await api.gql(KEYS, {"id": gid("Order", order_id)}))["order"]["cardKeys"]
    assert len(keys) == quantity
    return api, buyer, owner, shop, order_id, keys


async def report(api: Client, order_id: int, reason: str = "KEY_INVALID", **extra: Any) -> dict[str, Any]:
    body = (await api.post(REPORT, {"input": {"orderId": gid("Order", order_id), "reason": reason, **extra}})).json()
    assert "errors" not in body, body
    return body["data"]["reportOrderProblem"]


async def undelivered_order(kind: DeliveryKind, *, paid_minutes_ago: float, buyer: User | None = None,
                            shop: Any = None, price: str = "8.00") -> Order:
    """A paid order still DELIVERING (the supplier or the shop has not delivered), its money
    in escrow; made directly so that no delivery job or sweep decides it first."""
    product = await make_product(shop or await make_merchant(), kind=kind, price=price)
    await Product.filter(id=product.id).update(delivery_promise_minutes=10)
    buyer = buyer or await make_user()
    await fund(buyer, price)
    now = datetime.now(UTC)
    order = await Order.create(
        order_no=new_order_no(), buyer=buyer, product=product, merchant_id=product.merchant_id, quantity=1,
        unit_price=Decimal(price), total=Decimal(price), status=OrderStatus.DELIVERING,
        idempotency_scope=f"u:{buyer.id}", idempotency_key=uuid.uuid4().hex, expires_at=now,
        paid_at=now - timedelta(minutes=paid_minutes_ago),
    )
    async with outbox.atomic():
        await escrow.hold(order, ledger.wallet(buyer.id))
    return order


async def test_an_invalid_key_is_replaced_once_under_concurrent_reports(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=2)
    reported = keys[0]
    results = await asyncio.gather(*(report(api, order_id, cardKeyId=reported["id"], message="does not redeem")
                                     for _ in range(6)))
    assert all(r["errors"] == [] for r in results), results
    assert len({r["claim"]["id"] for r in results}) == 1  # one claim for all six reports
    claim = results[0]["claim"]
    assert (claim["status"], claim["outcome"], claim["automatic"], claim["rule"]) == \
        ("RESOLVED", "REPLACEMENT", True, "key-invalid")
    assert await Claim.filter(order_id=order_id).count() == 1
    statuses = sorted(s.value for s in await CardKey.filter(order_id=order_id).values_list("status", flat=True))
    assert statuses == ["INVALID", "SOLD"]  # the old key marked, exactly one replacement
    assert await CardKey.filter(product_id=(await Order.get(id=order_id)).product_id,
                                status=CardKeyStatus.AVAILABLE).count() == 1
    now_shown = (await api.gql(KEYS, {"id": gid("Order", order_id)}))["order"]["cardKeys"]
    assert len(now_shown) == 1 and now_shown[0]["secret"] != reported["secret"]
    # The replacement cost the shop a key, not money: nothing was posted for the claim.
    assert not await Posting.filter(reference=f"claim:{pk(claim['id'])}").exists()
    assert await ledger.balance(ledger.escrow(order_id)) == Decimal("10.00")
    again = await report(api, order_id, cardKeyId=reported["id"])
    assert again["claim"]["id"] == claim["id"]
    await assert_ledger_consistent()


async def test_out_of_stock_refunds_from_escrow_and_the_order_never_settles(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=0)
    claim = (await report(api, order_id))["claim"]
    assert (claim["status"], claim["outcome"], claim["paidFrom"], claim["amount"]["amount"]) == \
        ("RESOLVED", "REFUND", "escrow", "10.00")
    order = await Order.get(id=order_id)
    assert order.status == OrderStatus.REFUNDED
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("10.00")
    assert await ledger.balance(ledger.escrow(order_id)) == Decimal("0.00")
    assert await CardKey.filter(order_id=order_id).values_list("status", flat=True) == [CardKeyStatus.INVALID]
    await Order.filter(id=order_id).update(delivered_at=datetime.now(UTC) - timedelta(days=30))
    await settlement.complete_delivered_orders()
    assert (await Order.get(id=order_id)).status == OrderStatus.REFUNDED
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("0.00")
    assert not await Posting.filter(reason="order.settle", reference=str(order_id)).exists()
    await assert_ledger_consistent()


async def test_one_key_of_two_refunded_from_escrow_and_only_the_rest_settles(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=0, quantity=2)
    claim = (await report(api, order_id, cardKeyId=keys[1]["id"]))["claim"]
    assert (claim["outcome"], claim["paidFrom"], claim["amount"]["amount"]) == ("REFUND", "escrow", "10.00")
    assert (await Order.get(id=order_id)).status == OrderStatus.DELIVERED
    confirmed = (await api.gql("""mutation($input: ConfirmReceiptInput!) { confirmReceipt(input: $input) {
      errors { code } } }""", {"input": {"orderId": gid("Order", order_id)}}))["confirmReceipt"]
    assert confirmed["errors"] == []
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("9.50")  # 10.00 less the 5% fee
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("10.00")
    await assert_ledger_consistent()


async def settled_card_order(make_client, **kwargs: Any):  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=0, **kwargs)
    await settlement.confirm_receipt(Actor(user=buyer), order_id)
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("9.50")
    return api, buyer, shop, order_id


async def test_after_settlement_the_refund_comes_from_the_shops_balance(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, shop, order_id = await settled_card_order(make_client)
    await fund_shop(shop.id, "5.00")
    claim = (await report(api, order_id))["claim"]
    assert (claim["outcome"], claim["paidFrom"]) == ("REFUND", ledger.merchant_balance(shop.id))
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("4.50")
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("10.00")
    assert (await Order.get(id=order_id)).status == OrderStatus.COMPLETED
    assert await Posting.filter(reason="claim.refund").filter(reference=f"claim:{pk(claim['id'])}").count() == 1
    await assert_ledger_consistent()


async def test_a_short_balance_is_made_up_from_the_deposit_or_left_to_staff(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, shop, order_id = await settled_card_order(make_client)
    await fund_shop(shop.id, "20.00", deposit=True)
    claim = (await report(api, order_id))["claim"]
    assert claim["paidFrom"] == f"{ledger.merchant_balance(shop.id)}+{ledger.merchant_deposit(shop.id)}"
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("0.00")
    assert await ledger.balance(ledger.merchant_deposit(shop.id)) == Decimal("19.50")
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("10.00")

    # A shop holding too little in both: nothing moves, the claim waits for staff.
    api2, buyer2, shop2, order2 = await settled_card_order(make_client)
    await ledger.post("test.drain", uuid.uuid4().hex,
                      [(ledger.merchant_balance(shop2.id), Decimal("-9.50")), (ledger.ADJUSTMENTS, Decimal("9.50"))])
    waiting = (await report(api2, order2))["claim"]
    assert (waiting["status"], waiting["outcome"], waiting["rule"]) == ("PENDING_REVIEW", "NONE", "shop-cannot-pay")
    assert await ledger.balance(ledger.wallet(buyer2.id)) == Decimal("0.00")
    assert await CardKey.filter(order_id=order2).values_list("status", flat=True) == [CardKeyStatus.SOLD]
    await assert_ledger_consistent()


async def test_not_received_past_the_promise_is_refunded_and_not_before(make_client) -> None:  # type: ignore[no-untyped-def]
    for kind in (DeliveryKind.DIRECT_TOPUP, DeliveryKind.MANUAL):
        early = await undelivered_order(kind, paid_minutes_ago=2)
        api = await signed_in(make_client, await User.get(id=early.buyer_id))
        refused = await report(api, early.id, "NOT_RECEIVED")
        assert [e["code"] for e in refused["errors"]] == ["INVALID_STATE"] and refused["claim"] is None
        assert not await Claim.filter(order_id=early.id).exists()
        assert (await Order.get(id=early.id)).status == OrderStatus.DELIVERING

        late = await undelivered_order(kind, paid_minutes_ago=30)
        api = await signed_in(make_client, await User.get(id=late.buyer_id))
        claim = (await report(api, late.id, "NOT_RECEIVED"))["claim"]
        assert (claim["status"], claim["outcome"], claim["rule"], claim["paidFrom"]) == \
            ("RESOLVED", "REFUND", "not-received", "escrow")
        assert (await Order.get(id=late.id)).status == OrderStatus.REFUNDED
        assert await ledger.balance(ledger.wallet(late.buyer_id)) == Decimal("8.00")
        assert await Posting.filter(reason="order.refund", reference=str(late.id)).count() == 1
    await assert_ledger_consistent()


async def test_strangers_and_merchants_cannot_file_for_others(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=1)
    for user in (await make_user(), owner, await make_user(Role.ADMIN)):
        other = await signed_in(make_client, user)
        refused = await report(other, order_id, cardKeyId=keys[0]["id"])
        assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"], user.role
    anonymous = await report(make_client(), order_id, cardKeyId=keys[0]["id"])
    assert [e["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]
    assert not await Claim.filter(order_id=order_id).exists()
    assert await CardKey.filter(order_id=order_id).values_list("status", flat=True) == [CardKeyStatus.SOLD]


async def test_the_shop_contests_and_staff_reverse_once(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=1)
    claim_id = (await report(api, order_id))["claim"]["id"]
    merchant = await signed_in(make_client, owner)
    stranger = await signed_in(make_client, await make_user(Role.MERCHANT))
    admin = await signed_in(make_client, await make_user(Role.ADMIN))
    contest = {"input": {"claimId": claim_id, "reason": "the key was redeemed by the buyer"}}
    assert (await stranger.gql(CONTEST, contest))["contestClaim"]["errors"][0]["code"] == "FORBIDDEN"
    assert (await api.gql(CONTEST, contest))["contestClaim"]["errors"][0]["code"] == "FORBIDDEN"
    assert (await merchant.gql(CONTEST, contest))["contestClaim"] == {"errors": [], "claim": {"status": "CONTESTED"}}
    assert (await merchant.gql(CONTEST, contest))["contestClaim"]["errors"][0]["code"] == "INVALID_STATE"

    decide = {"input": {"claimId": claim_id, "decision": "REVERSE", "note": "redeemed before the report"}}
    assert (await merchant.gql(DECIDE, decide))["decideClaim"]["errors"][0]["code"] == "FORBIDDEN"
    await fund(buyer, "3.00")  # the buyer holds 3.00 of the 10.00: the platform covers the rest
    results = await asyncio.gather(*(admin.gql(DECIDE, decide) for _ in range(3)))
    outcomes = sorted(r["decideClaim"]["errors"][0]["code"] if r["decideClaim"]["errors"] else "OK" for r in results)
    assert outcomes == ["INVALID_STATE", "INVALID_STATE", "OK"]
    assert (await Claim.get(id=pk(claim_id))).status == ClaimStatus.REVERSED
    assert await Posting.filter(reason="claim.reverse", reference=f"claim:{pk(claim_id)}").count() == 1
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("0.00")
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("9.50")  # the key's price less the fee
    await assert_ledger_consistent()


async def test_staff_uphold_a_contest_and_decide_claims_outside_the_rules(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=1)
    claim_id = (await report(api, order_id))["claim"]["id"]
    merchant = await signed_in(make_client, owner)
    admin = await signed_in(make_client, await make_user(Role.ADMIN))
    await merchant.gql(CONTEST, {"input": {"claimId": claim_id, "reason": "not convinced"}})
    upheld = (await admin.gql(DECIDE, {"input": {"claimId": claim_id, "decision": "UPHOLD", "note": "keys vary"}}))
    assert upheld["decideClaim"] == {"errors": [], "claim": {"status": "RESOLVED", "outcome": "REPLACEMENT"}}
    again = await merchant.gql(CONTEST, {"input": {"claimId": claim_id, "reason": "once more"}})
    assert again["contestClaim"]["errors"][0]["code"] == "INVALID_STATE"

    # A report after the window goes to staff; staff refund it from escrow.
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=0)
    await CardKey.filter(order_id=order_id).update(sold_at=datetime.now(UTC) - timedelta(days=5))
    waiting = (await report(api, order_id))["claim"]
    assert (waiting["status"], waiting["rule"]) == ("PENDING_REVIEW", "late-report")
    queue = (await admin.gql("{ claimsToDecide(first: 100) { id } }"))["claimsToDecide"]
    assert waiting["id"] in [c["id"] for c in queue]
    contest = await (await signed_in(make_client, owner)).gql(
        CONTEST, {"input": {"claimId": waiting["id"], "reason": "not automatic"}})
    assert contest["contestClaim"]["errors"][0]["code"] == "INVALID_STATE"  # only automatic outcomes
    refund = (await admin.gql(DECIDE, {"input": {"claimId": waiting["id"], "decision": "REFUND", "note": "fair"}}))
    assert refund["decideClaim"] == {"errors": [], "claim": {"status": "RESOLVED", "outcome": "REFUND"}}
    assert (await Order.get(id=order_id)).status == OrderStatus.REFUNDED
    assert await ledger.balance(ledger.wallet(buyer.id)) == Decimal("10.00")
    await assert_ledger_consistent()


async def test_a_buyer_with_many_recent_claims_goes_to_staff(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=1)
    other = await Order.get(id=order_id)
    for n in range(2):  # earlier claims of the buyer (on this order's other subjects)
        await Claim.create(order=other, subject=f"test:{n}", buyer_id=buyer.id, merchant_id=shop.id,
                           reason=ClaimReason.KEY_INVALID, status=ClaimStatus.REJECTED)
    claim = (await report(api, order_id))["claim"]
    assert (claim["status"], claim["outcome"], claim["rule"]) == ("PENDING_REVIEW", "NONE", "claim-rate")
    assert await CardKey.filter(order_id=order_id).values_list("status", flat=True) == [CardKeyStatus.SOLD]


async def test_hostile_input_is_refused_and_changes_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer, owner, shop, order_id, keys = await card_order(make_client, stock=1, quantity=2)
    _, _, _, _, other_order, other_keys = await card_order(make_client, stock=0)
    manual = await undelivered_order(DeliveryKind.MANUAL, paid_minutes_ago=30, buyer=buyer)
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"orderId": "bm90LWFuLWlk", "reason": "KEY_INVALID"}, "INVALID_INPUT", "orderId"),
        ({"orderId": gid("Product", order_id), "reason": "KEY_INVALID"}, "INVALID_INPUT", "orderId"),
        ({"orderId": gid("Order", 2**62), "reason": "KEY_INVALID"}, "NOT_FOUND", "orderId"),
        ({"orderId": gid("Order", order_id), "reason": "KEY_INVALID"}, "INVALID_INPUT", "cardKeyId"),  # which key?
        ({"orderId": gid("Order", order_id), "reason": "KEY_INVALID", "cardKeyId": other_keys[0]["id"]},
         "NOT_FOUND", "cardKeyId"),
        ({"orderId": gid("Order", order_id), "reason": "KEY_INVALID", "cardKeyId": gid("CardKey", 2**62)},
         "NOT_FOUND", "cardKeyId"),
        ({"orderId": gid("Order", order_id), "reason": "NOT_RECEIVED"}, "INVALID_INPUT", "reason"),
        ({"orderId": gid("Order", manual.id), "reason": "KEY_INVALID"}, "INVALID_INPUT", "reason"),
        ({"orderId": gid("Order", order_id), "reason": "KEY_INVALID", "cardKeyId": keys[0]["id"],
          "message": "x" * 501}, "INVALID_INPUT", "message"),
        ({"orderId": gid("Order", order_id), "reason": "KEY_INVALID", "cardKeyId": keys[0]["id"],
          "message": "bad\x07bell"}, "INVALID_INPUT", "message"),
    ]
    for variables, code, field in cases:
        body = (await api.post(REPORT, {"input": variables})).json()
        assert "errors" not in body, body
        errors = body["data"]["reportOrderProblem"]["errors"]
        assert [(e["code"], e["field"]) for e in errors] == [(code, field)], (variables, errors)
    # A key its buyer never opened cannot be reported (nobody knows it does not work).
    await CardKeyReveal.filter(order_id=order_id).delete()
    body = await report(api, order_id, cardKeyId=keys[0]["id"])
    assert [e["code"] for e in body["errors"]] == ["INVALID_STATE"]
    bad_decide = await (await signed_in(make_client, await make_user(Role.ADMIN))).post(
        DECIDE, {"input": {"claimId": gid("Claim", 2**62), "decision": "REJECT", "note": "nothing"}})
    assert bad_decide.json()["data"]["decideClaim"]["errors"][0]["code"] == "NOT_FOUND"
    assert not await Claim.filter(order_id__in=[order_id, other_order, manual.id]).exists()
    assert sorted(await CardKey.filter(order_id=order_id).values_list("status", flat=True)) == [CardKeyStatus.SOLD] * 2
    assert (await Order.get(id=manual.id)).status == OrderStatus.DELIVERING
    await assert_ledger_consistent()


async def test_a_key_invalid_ticket_goes_through_self_service(make_client) -> None:  # type: ignore[no-untyped-def]
    """Opening a KEY_INVALID ticket runs the same rules as reportOrderProblem: the replacement
    is delivered at once, the claim names the ticket, and the ticket says so."""
    from models.trust.tickets import Ticket, TicketEntry

    api, _, _, _, order_id, keys = await card_order(make_client, stock=1)
    opened = (await api.gql(
        """mutation($input: OpenTicketInput!) { openTicket(input: $input) { errors { code } ticket { id } } }""",
        {"input": {"orderId": gid("Order", order_id), "reason": "KEY_INVALID", "message": "used already"}},
    ))["openTicket"]
    assert opened["errors"] == []
    ticket = await Ticket.get(order_id=order_id)
    claim = await Claim.get(order_id=order_id)
    assert claim.ticket_id == ticket.id and claim.status.value == "RESOLVED" and claim.outcome.value == "REPLACEMENT"
    notes = await TicketEntry.filter(ticket_id=ticket.id, author_role="SYSTEM").values_list("body", flat=True)
    assert notes == ["A replacement key was delivered to your order."]
    shown = (await api.gql(KEYS, {"id": gid("Order", order_id)}))["order"]["cardKeys"]
    assert len(shown) == 1 and shown[0]["secret"] != keys[0]["secret"]
    await assert_ledger_consistent()
