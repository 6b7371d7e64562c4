"""Gifts and friend-pay move money and keys to the right people only: a gift is delivered to
whoever claims it (once, whatever the races), never shown to its sender, and refunded to the
sender when unclaimed; a friend's payment delivers to the buyer, never shows the friend a key,
and any refund goes back to the friend's wallet."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.accounts.users import Role
from models.commerce.catalog import DeliveryKind
from models.commerce.gifts import Gift, GiftStatus
from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.orders import Order, OrderStatus
from resolvers.commerce import delivery, gifts, ledger, settlement
from tests.conftest import Client, eventually
from tests.factories import add_keys, make_merchant, make_product, make_user
from tests.factories import fund, token_for
from tests.test_delivery import ORDER, delivered, gid, pk
from tests.test_ledger import assert_ledger_consistent

SEND = """mutation($input: SendGiftInput!) { sendGift(input: $input) { errors { code field }
  gift { id status claimCode message recipient { id } } } }"""
CLAIM = """mutation($input: ClaimGiftInput!) { claimGift(input: $input) { errors { code field }
  gift { id status claimCode recipient { id } } } }"""
MINE = """query($sent: Boolean!) { myGifts(sent: $sent) { id status claimCode message product { id }
  sender { id } recipient { id } } }"""
BY_CODE = """query($code: String!) { giftByCode(code: $code) { id status message sender { id } } }"""
NODE_ORDER = """query($id: ID!) { node(id: $id) { id } }"""
ASK = """mutation($input: FriendPayOrderInput!) { askFriendToPay(input: $input) { errors { code field }
  request { code status expiresAt } } }"""
WITHDRAW = """mutation($input: FriendPayOrderInput!) { withdrawFriendPay(input: $input) { errors { code }
  request { status } } }"""
VIEW = """query($code: String!) { friendPayRequest(code: $code) { status productTitle quantity
  amount { amount } requesterNickname payable } }"""
PAY_FOR = """mutation($input: PayForFriendInput!) { payForFriend(input: $input) { errors { code field }
  invitation { status payable } } }"""
CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id } } }"""


async def buyer_client(make_client, balance: str = "100.00") -> tuple[Client, Any]:  # type: ignore[no-untyped-def]
    user = await make_user()
    if Decimal(balance):
        await fund(user, balance)
    client = make_client()
    client.token = await token_for(user)
    return client, user


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["errors"]]


async def wallet(user: Any) -> Decimal:
    return await ledger.balance(ledger.wallet(user.id))


async def gift_product(price: str = "20.00", keys: int = 3) -> Any:
    product = await make_product(await make_merchant(await make_user(Role.MERCHANT)), price=price)
    await add_keys(product, keys)
    return product


async def send(client: Client, product: Any, **extra: Any) -> dict[str, Any]:
    variables = {"input": {"productId": gid("Product", product.id), "idempotencyKey": uuid.uuid4().hex, **extra}}
    return (await client.gql(SEND, variables))["sendGift"]


# -- gifts ----------------------------------------------------------------------------------


async def test_a_gift_to_a_user_is_delivered_to_them_only(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await gift_product()
    sender_client, sender = await buyer_client(make_client, "50.00")
    recipient_client, recipient = await buyer_client(make_client, "0.00")
    sent = await send(sender_client, product, recipientId=gid("User", recipient.id), message="生日快乐")
    assert sent["errors"] == [] and sent["gift"]["status"] == "PENDING" and sent["gift"]["claimCode"]
    gift = await Gift.get(id=pk(sent["gift"]["id"]))
    order = await Order.get(id=gift.order_id)
    assert order.status == OrderStatus.PAID and order.awaiting_claim and order.buyer_id == sender.id
    assert await wallet(sender) == Decimal("30.00")
    # Held: the delivery job (and the stuck-delivery sweep) leave it alone; no key is sold.
    await delivery.deliver_order(order.id)
    await delivery.sweep_stuck_deliveries()
    assert (await Order.get(id=order.id)).status == OrderStatus.PAID
    assert await CardKey.filter(order_id=order.id, status=CardKeyStatus.SOLD).count() == 0

    received = (await recipient_client.gql(MINE, {"sent": False}))["myGifts"]
    assert [(g["id"], g["claimCode"], g["message"]) for g in received] == [(sent["gift"]["id"], None, "生日快乐")]
    stranger = (await buyer_client(make_client))[0]
    assert codes((await stranger.gql(CLAIM, {"input": {"giftId": sent["gift"]["id"]}}))["claimGift"]) == ["NOT_FOUND"]
    assert codes((await sender_client.gql(CLAIM, {"input": {"giftId": sent["gift"]["id"]}}))["claimGift"]) == [
        "NOT_FOUND"]

    claimed = (await recipient_client.gql(CLAIM, {"input": {"giftId": sent["gift"]["id"]}}))["claimGift"]
    assert claimed["errors"] == [] and claimed["gift"]["status"] == "CLAIMED"
    await eventually(lambda: delivered(order.id), timeout=15)
    mine = (await recipient_client.gql(ORDER, {"id": gid("Order", order.id)}))["order"]
    assert mine["status"] == "DELIVERED" and len(mine["cardKeys"]) == 1 and mine["cardKeys"][0]["secret"]
    # The sender sees "claimed", by whom, but not the order nor its key.
    assert (await sender_client.gql(ORDER, {"id": gid("Order", order.id)}))["order"] is None
    seen = (await sender_client.gql(MINE, {"sent": True}))["myGifts"][0]
    assert seen["status"] == "CLAIMED" and seen["claimCode"] is None and seen["recipient"]["id"] == gid("User", recipient.id)
    again = (await recipient_client.gql(CLAIM, {"input": {"giftId": sent["gift"]["id"]}}))["claimGift"]
    assert codes(again) == ["INVALID_STATE"]
    # The delivery clock started at the claim, not at the payment.
    assert (await Order.get(id=order.id)).delivery_from is not None
    await assert_ledger_consistent()


async def test_a_claim_code_is_claimed_once_under_a_race(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await gift_product()
    sender_client, _ = await buyer_client(make_client, "50.00")
    sent = await send(sender_client, product)
    code = sent["gift"]["claimCode"]
    claimers = [(await buyer_client(make_client, "0.00"))[0] for _ in range(5)]
    preview = (await claimers[0].gql(BY_CODE, {"code": code}))["giftByCode"]
    assert preview["status"] == "PENDING"
    results = await asyncio.gather(*(c.gql(CLAIM, {"input": {"code": code}}) for c in claimers))
    outcomes = sorted(codes(r["claimGift"]) for r in results)
    assert outcomes == [[]] + [["INVALID_STATE"]] * 4
    gift = await Gift.get(id=pk(sent["gift"]["id"]))
    await eventually(lambda: delivered(gift.order_id), timeout=15)
    assert await CardKey.filter(order_id=gift.order_id, status=CardKeyStatus.SOLD).count() == 1
    # Guesses: wrong codes and the wrong shape are NOT_FOUND, never more.
    for guess in ["0" * 20, code[:-1] + ("0" if code[-1] != "0" else "1"), "short", ""]:
        response = await claimers[1].post(CLAIM, {"input": {"code": guess}})
        assert codes(response.json()["data"]["claimGift"]) == ["NOT_FOUND"], guess
    await assert_ledger_consistent()


async def test_an_unclaimed_gift_returns_to_its_sender_once(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await gift_product(price="12.50", keys=1)
    sender_client, sender = await buyer_client(make_client, "20.00")
    sent = await send(sender_client, product)
    gift = await Gift.get(id=pk(sent["gift"]["id"]))
    assert await wallet(sender) == Decimal("7.50")
    await Gift.filter(id=gift.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    returned = await asyncio.gather(gifts.return_unclaimed(), gifts.return_unclaimed())
    assert sum(returned) >= 1
    assert (await Gift.get(id=gift.id)).status == GiftStatus.RETURNED
    assert (await Order.get(id=gift.order_id)).status == OrderStatus.REFUNDED
    assert await wallet(sender) == Decimal("20.00")
    assert await gifts.return_unclaimed() == 0 and await wallet(sender) == Decimal("20.00")
    # The key went back to stock: someone else can buy it.
    other_client, _ = await buyer_client(make_client, "20.00")
    assert (await send(other_client, product))["errors"] == []
    claimer = (await buyer_client(make_client))[0]
    assert codes((await claimer.gql(CLAIM, {"input": {"code": sent["gift"]["claimCode"]}}))["claimGift"]) == [
        "INVALID_STATE"]
    await assert_ledger_consistent()


async def test_bad_gifts_change_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await gift_product(keys=2)
    topup = await make_product(price="5.00", kind=DeliveryKind.DIRECT_TOPUP)
    sender_client, sender = await buyer_client(make_client, "10.00")
    orders_before = await Order.filter(buyer_id=sender.id).count()
    assert codes(await send(sender_client, product)) == ["INSUFFICIENT_BALANCE"]  # 20.00 > 10.00
    assert [(e["code"], e["field"]) for e in (await send(sender_client, topup))["errors"]] == [
        ("INVALID_INPUT", "productId")]
    assert [(e["code"], e["field"]) for e in (await send(sender_client, product, recipientId=gid("User", sender.id)))[
        "errors"]] == [("INVALID_INPUT", "recipientId")]
    assert codes(await send(sender_client, product, recipientId=gid("User", 10**15))) == ["NOT_FOUND"]
    assert codes(await send(sender_client, product, message="x" * 201)) == ["INVALID_INPUT"]
    assert codes(await send(make_client(), product)) == ["UNAUTHENTICATED"]
    assert await Order.filter(buyer_id=sender.id).count() == orders_before
    assert await wallet(sender) == Decimal("10.00")
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 2
    # The same idempotency key twice gives the same gift, paid once.
    rich, rich_user = await buyer_client(make_client, "100.00")
    key = uuid.uuid4().hex
    variables = {"input": {"productId": gid("Product", product.id), "idempotencyKey": key}}
    first, second = await asyncio.gather(rich.gql(SEND, variables), rich.gql(SEND, variables))
    assert first["sendGift"]["gift"]["id"] == second["sendGift"]["gift"]["id"]
    assert await wallet(rich_user) == Decimal("80.00")
    await assert_ledger_consistent()


# -- friend-pay ----------------------------------------------------------------------------


async def unpaid_order(client: Client, product: Any) -> str:
    created = await client.gql(CREATE, {"input": {"productId": gid("Product", product.id),
                                                  "idempotencyKey": uuid.uuid4().hex}})
    return created["createOrder"]["order"]["id"]


async def test_a_friend_pays_and_the_buyer_gets_the_key(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await gift_product(price="15.00")
    buyer_client_, buyer = await buyer_client(make_client, "0.00")
    order_id = await unpaid_order(buyer_client_, product)
    asked = (await buyer_client_.gql(ASK, {"input": {"orderId": order_id}}))["askFriendToPay"]
    assert asked["errors"] == [] and asked["request"]["status"] == "OPEN"
    code = asked["request"]["code"]
    assert (await buyer_client_.gql(ASK, {"input": {"orderId": order_id}}))["askFriendToPay"]["request"]["code"] == code

    anonymous = await make_client().post(VIEW, {"code": code})
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    poor, poor_user = await buyer_client(make_client, "1.00")
    view = (await poor.gql(VIEW, {"code": code}))["friendPayRequest"]
    assert view == {"status": "OPEN", "productTitle": product.title, "quantity": 1, "amount": {"amount": "15.00"},
                    "requesterNickname": buyer.nickname, "payable": True}
    assert codes((await poor.gql(PAY_FOR, {"input": {"code": code}}))["payForFriend"]) == ["INSUFFICIENT_BALANCE"]
    assert await wallet(poor_user) == Decimal("1.00")
    assert [(e["code"], e["field"]) for e in (await buyer_client_.gql(PAY_FOR, {"input": {"code": code}}))[
        "payForFriend"]["errors"]] == [("INVALID_INPUT", "code")]

    friends = [await buyer_client(make_client, "20.00") for _ in range(3)]
    results = await asyncio.gather(*(c.gql(PAY_FOR, {"input": {"code": code}}) for c, _ in friends))
    outcomes = [codes(r["payForFriend"]) for r in results]
    assert sorted(outcomes) == [[]] + [["INVALID_STATE"]] * 2
    payer = friends[outcomes.index([])][1]
    assert sorted([await wallet(f) for _, f in friends]) == [Decimal("5.00"), Decimal("20.00"), Decimal("20.00")]
    assert await wallet(payer) == Decimal("5.00")

    order = pk(order_id)
    await eventually(lambda: delivered(order), timeout=15)
    mine = (await buyer_client_.gql(ORDER, {"id": order_id}))["order"]
    assert mine["status"] == "DELIVERED" and len(mine["cardKeys"]) == 1
    payer_client = friends[outcomes.index([])][0]
    assert (await payer_client.gql(ORDER, {"id": order_id}))["order"] is None  # the friend never sees a key
    assert (await payer_client.gql(NODE_ORDER, {"id": order_id}))["node"] is None

    # A refund (here by the desk) goes back to the friend who paid, not to the buyer.
    await settlement.refund_order(await Order.get(id=order), "test: refunded after a friend paid")
    assert await wallet(payer) == Decimal("20.00") and await wallet(buyer) == Decimal("0.00")
    await assert_ledger_consistent()


async def test_withdrawn_and_expired_requests_do_not_pay(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await gift_product(price="5.00")
    buyer_client_, _ = await buyer_client(make_client, "0.00")
    friend, friend_user = await buyer_client(make_client, "20.00")
    order_id = await unpaid_order(buyer_client_, product)
    code = (await buyer_client_.gql(ASK, {"input": {"orderId": order_id}}))["askFriendToPay"]["request"]["code"]
    withdrawn = (await buyer_client_.gql(WITHDRAW, {"input": {"orderId": order_id}}))["withdrawFriendPay"]
    assert withdrawn["request"]["status"] == "WITHDRAWN"
    assert codes((await friend.gql(PAY_FOR, {"input": {"code": code}}))["payForFriend"]) == ["NOT_FOUND"]
    fresh = (await buyer_client_.gql(ASK, {"input": {"orderId": order_id}}))["askFriendToPay"]["request"]["code"]
    assert fresh != code
    # Someone else's order cannot be shared; an expired one cannot be paid.
    assert codes((await friend.gql(ASK, {"input": {"orderId": order_id}}))["askFriendToPay"]) == ["NOT_FOUND"]
    await Order.filter(id=pk(order_id)).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert codes((await friend.gql(PAY_FOR, {"input": {"code": fresh}}))["payForFriend"]) == ["INVALID_STATE"]
    assert (await friend.gql(VIEW, {"code": fresh}))["friendPayRequest"]["payable"] is False
    for hostile in ["", "x" * 500, "' OR 1=1 --"]:
        response = await friend.post(PAY_FOR, {"input": {"code": hostile}})
        assert codes(response.json()["data"]["payForFriend"]) in (["INVALID_INPUT"], ["NOT_FOUND"])
    assert await wallet(friend_user) == Decimal("20.00")
    await assert_ledger_consistent()
