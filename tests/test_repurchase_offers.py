"""Repurchase (issue 13, items 1, 3 and 7): a product's validity gives a delivered order its
``validUntil`` and the buyer a list of what runs out; reminders and renewal offers are sent
exactly once and one click renews; the birthday benefit is granted once per year; the
first-order offer shows at checkout without asking."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.accounts.notifications import Notification
from models.commerce.catalog import Product
from models.commerce.orders import Order, OrderStatus
from models.loyalty.coupons import Coupon, CouponKind
from models.loyalty.points import PointsEntry
from models.repurchase.birthdays import Birthday, BirthdayGrant
from models.repurchase.plans import ProductPlan
from models.repurchase.reminders import RenewalReminder
from resolvers.repurchase import birthdays, reminders
from tests.conftest import Client, eventually
from tests.factories import make_merchant, make_product, token_for
from tests.test_renewals import buyer, gid, pk, plan_product, subscribe, wallet

TERMS = """mutation($input: SetProductRenewalTermsInput!) { setProductRenewalTerms(input: $input) {
  errors { code field } product { validityDays planMinDays planMaxDays } } }"""
BUY = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { errors { code } } }"""
ORDER = """query($id: ID!) { order(id: $id) { status deliveredAt validUntil expiresAt } }"""
RENEW_ITEM = """mutation($input: RenewItemInput!) { renewItem(input: $input) { errors { code field }
  order { id status total { amount } } } }"""
QUOTE = """query($input: PriceQuoteInput!) { priceQuote(input: $input) { errors { code }
  quote { total { amount } couponCode offers { kind couponCode title total { amount } saving { amount } } } } }"""


async def merchant_client(make_client: Any, product: Product) -> Client:
    client = make_client()
    client.token = await token_for(await (await product.merchant).owner)
    return client


async def bought(client: Client, product_id: int) -> int:
    """A wallet-paid order, once delivered; its id."""
    made = (await client.gql(BUY, {"input": {"productId": gid("Product", product_id), "quantity": 1,
                                             "idempotencyKey": uuid.uuid4().hex}}))["createOrder"]
    order_id = pk(made["order"]["id"])
    assert (await client.gql(PAY, {"input": {"orderId": made["order"]["id"], "method": "WALLET"}}))["payOrder"] == {
        "errors": []}

    async def delivered() -> bool:
        return (await Order.get(id=order_id)).status == OrderStatus.DELIVERED

    await eventually(delivered)
    return order_id


async def test_validity_gives_valid_until_and_the_buyer_sees_what_runs_out(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(await make_merchant(), keys=5)
    shop = await merchant_client(make_client, product)
    stranger, _ = await buyer(make_client, "0.00")
    set_terms = {"productId": gid("Product", product.id), "validityDays": 30, "planMinDays": 7, "planMaxDays": 90}
    refused = (await stranger.gql(TERMS, {"input": set_terms}))["setProductRenewalTerms"]
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    bad = (await shop.gql(TERMS, {"input": {**set_terms, "planMaxDays": 3}}))["setProductRenewalTerms"]
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", "planMaxDays")]
    done = (await shop.gql(TERMS, {"input": set_terms}))["setProductRenewalTerms"]
    assert done == {"errors": [], "product": {"validityDays": 30, "planMinDays": 7, "planMaxDays": 90}}

    client, user_id = await buyer(make_client, "50.00")
    order_id = await bought(client, product.id)
    seen = (await client.gql(ORDER, {"id": gid("Order", order_id)}))["order"]
    delivered_at = datetime.fromisoformat(seen["deliveredAt"])
    assert datetime.fromisoformat(seen["validUntil"]) == delivered_at + timedelta(days=30)
    assert seen["expiresAt"] != seen["validUntil"]  # the payment reservation's end is another field
    expiring = "query($d: Int!) { expiringItems(withinDays: $d) { id validUntil } }"
    assert (await client.gql(expiring, {"d": 7}))["expiringItems"] == []
    assert [o["id"] for o in (await client.gql(expiring, {"d": 31}))["expiringItems"]] == [gid("Order", order_id)]
    assert (await stranger.gql(expiring, {"d": 31}))["expiringItems"] == []
    # A product without validity: no validUntil.
    plain = await make_product(await make_merchant(), keys=1)
    other = await bought(client, plain.id)
    assert (await client.gql(ORDER, {"id": gid("Order", other)}))["order"]["validUntil"] is None


async def test_an_expiry_reminder_with_an_offer_is_sent_once_and_one_click_renews(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(await make_merchant(), price="12.00", keys=5)
    await Product.filter(id=product.id).update(validity_days=30)
    client, user_id = await buyer(make_client, "100.00")
    first = await bought(client, product.id)
    second = await bought(client, product.id)
    soon = datetime.now(UTC) + timedelta(days=1)
    await Order.filter(id=first).update(valid_until=soon)

    await asyncio.gather(reminders.sweep(), reminders.sweep(), reminders.sweep())
    await reminders.sweep()
    rows = await RenewalReminder.filter(user_id=user_id)
    assert [(r.kind.value, r.reference, r.offer_total) for r in rows] == [
        ("ITEM_EXPIRY", f"order:{first}", Decimal("12.00"))]
    (note,) = await Notification.filter(user_id=user_id, kind="RENEWAL_ITEM_EXPIRY")
    assert "Renew now for 12.00 CNY" in note.body and "bought" in note.body and "2 time(s)" in note.body
    assert "customer since" in note.body
    assert note.data["orderId"] == first and note.data["offerTotal"] == "12.00" and note.data["renewWith"] == "renewItem"

    renewed = (await client.gql(RENEW_ITEM, {"input": {"orderId": gid("Order", first)}}))["renewItem"]
    assert renewed["errors"] == [] and renewed["order"]["total"] == {"amount": "12.00"}
    again = (await client.gql(RENEW_ITEM, {"input": {"orderId": gid("Order", first)}}))["renewItem"]
    assert again["order"]["id"] == renewed["order"]["id"]  # one click, however many times
    assert await wallet(user_id) == Decimal("64.00")
    new_id = pk(renewed["order"]["id"])

    async def delivered() -> Order | None:
        order = await Order.get(id=new_id)
        return order if order.status == OrderStatus.DELIVERED else None

    new = await eventually(delivered)
    assert new.valid_until == soon + timedelta(days=30)  # runs on from the renewed item's: no day lost
    stranger, _ = await buyer(make_client, "50.00")
    theirs = (await stranger.gql(RENEW_ITEM, {"input": {"orderId": gid("Order", second)}}))["renewItem"]
    assert [e["code"] for e in theirs["errors"]] == ["NOT_FOUND"]


async def test_plan_reminders_before_renewal_and_before_the_end_are_sent_once(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await plan_product(price="6.00")
    client, user_id = await buyer(make_client, "100.00")
    renewing = pk((await subscribe(client, product, 30))["plan"]["id"])
    ending = pk((await subscribe(client, product, 30, autoRenew=False))["plan"]["id"])
    in_two_days = datetime.now(UTC) + timedelta(days=2)
    await ProductPlan.filter(id__in=[renewing, ending]).update(next_renewal_at=in_two_days)
    await asyncio.gather(reminders.sweep(), reminders.sweep())
    await reminders.sweep()
    kinds = sorted(await RenewalReminder.filter(user_id=user_id).values_list("kind", "reference"))
    assert kinds == [("PLAN_ENDING", f"plan:{ending}:2"), ("PLAN_RENEWAL", f"plan:{renewing}:2")]
    notes = await Notification.filter(user_id=user_id, kind__startswith="RENEWAL_PLAN").order_by("kind")
    assert [n.kind for n in notes] == ["RENEWAL_PLAN_ENDING", "RENEWAL_PLAN_RENEWAL"]
    assert "6.00 CNY will be paid" in notes[1].body and "Renew now for 6.00 CNY" in notes[0].body


async def test_the_birthday_benefit_is_granted_once_per_year(make_client, stack) -> None:  # type: ignore[no-untyped-def]
    client, user_id = await buyer(make_client, "0.00")
    set_birthday = """mutation($input: SetBirthdayInput!) { setBirthday(input: $input) {
      errors { code field } birthday { month day } } }"""
    bad = (await client.gql(set_birthday, {"input": {"month": 2, "day": 30}}))["setBirthday"]
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", "day")]
    done = (await client.gql(set_birthday, {"input": {"month": 2, "day": 29}}))["setBirthday"]
    assert done == {"errors": [], "birthday": {"month": 2, "day": 29}}
    changed = (await client.gql(set_birthday, {"input": {"month": 3, "day": 1}}))["setBirthday"]
    assert [e["code"] for e in changed["errors"]] == ["INVALID_STATE"]  # once a year
    assert (await client.gql("{ myBirthday { month day } }"))["myBirthday"] == {"month": 2, "day": 29}

    # 2031 is not a leap year: 29 February is celebrated on the 28th, once, however often swept.
    await asyncio.gather(birthdays.sweep(date(2031, 2, 28)), birthdays.sweep(date(2031, 2, 28)))
    await birthdays.sweep(date(2031, 2, 28))
    assert await BirthdayGrant.filter(user_id=user_id).values_list("year", flat=True) == [2031]
    points = stack.settings.points_birthday
    entries = await PointsEntry.filter(user_id=user_id, rule="birthday").values_list("amount", "reference")
    assert entries == [(points, "birthday:2031")]
    assert await Notification.filter(user_id=user_id, kind="BIRTHDAY").count() == 1
    # A change a year later does not grant 2031 again; 2032 (leap) is granted on the 29th.
    await Birthday.filter(user_id=user_id).update(changed_at=datetime.now(UTC) - timedelta(days=366))
    moved = (await client.gql(set_birthday, {"input": {"month": 3, "day": 1}}))["setBirthday"]
    assert moved["errors"] == []
    await birthdays.sweep(date(2031, 3, 1))
    await birthdays.sweep(date(2032, 3, 1))
    assert sorted(await BirthdayGrant.filter(user_id=user_id).values_list("year", flat=True)) == [2031, 2032]


async def test_the_first_order_offer_shows_at_checkout_without_asking(make_client) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    welcome = await Coupon.create(code=f"W{uuid.uuid4().hex[:10].upper()}", title="Welcome", kind=CouponKind.FIXED,
                                  value=Decimal("3.00"), new_users_only=True, valid_from=now - timedelta(days=1),
                                  valid_until=now + timedelta(days=1))
    try:
        product = await make_product(await make_merchant(), keys=3)
        client, user_id = await buyer(make_client, "50.00")
        ask = {"input": {"productId": gid("Product", product.id), "quantity": 1}}
        quote = (await client.gql(QUOTE, ask))["priceQuote"]["quote"]
        assert quote["total"] == {"amount": "10.00"} and quote["couponCode"] is None
        # (Other tests' new-user coupons may be offered too: the session shares one database.)
        mine = [offer for offer in quote["offers"] if offer["couponCode"] == welcome.code]
        assert mine == [{"kind": "FIRST_ORDER", "couponCode": welcome.code, "title": "Welcome",
                         "total": {"amount": "7.00"}, "saving": {"amount": "3.00"}}]
        totals = [Decimal(offer["total"]["amount"]) for offer in quote["offers"]]
        assert totals == sorted(totals) and {offer["kind"] for offer in quote["offers"]} == {"FIRST_ORDER"}
        # Taking it is the same engine: the quote and the order agree.
        applied = (await client.gql(QUOTE, {"input": {**ask["input"], "couponCode": welcome.code}}))["priceQuote"]
        assert applied["quote"]["total"] == {"amount": "7.00"} and applied["quote"]["offers"] == []
        # A guest is not offered it; after a first paid order nobody is.
        guest = make_client()
        assert (await guest.gql(QUOTE, ask))["priceQuote"]["quote"]["offers"] == []
        await bought(client, product.id)
        assert (await client.gql(QUOTE, ask))["priceQuote"]["quote"]["offers"] == []
        assert await wallet(user_id) == Decimal("40.00")
    finally:
        # Other tests' new users must not be offered it.
        await Coupon.filter(id=welcome.id).update(valid_until=now - timedelta(seconds=1))
