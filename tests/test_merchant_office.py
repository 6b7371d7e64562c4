"""The merchant back office (issue 13, item 8): onboarding, the shop's order list, sales
statistics and withdrawals, through the live API on the real stack."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from strawberry.relay import GlobalID

from kameng.settings import get_settings
from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.merchants import Merchant, MerchantStatus
from models.commerce.orders import Order, OrderStatus
from models.commerce.withdrawals import Withdrawal, WithdrawalStatus
from resolvers.commerce import ledger, withdrawals
from tests.conftest import Client, count_queries
from tests.factories import fund, make_merchant, make_product, make_user, token_for
from tests.test_ledger import assert_ledger_consistent


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def signed_in(make_client: Any, user: User) -> Client:  # noqa: ANN401
    client = make_client()
    client.token = await token_for(user)
    return client


# -- onboarding --------------------------------------------------------------------------------

APPLY = """mutation($input: ApplyForMerchantInput!) { applyForMerchant(input: $input) {
  errors { code field } application { id status shopName merchantId } } }"""
APPROVE = """mutation($input: ReviewMerchantApplicationInput!) { approveMerchantApplication(input: $input) {
  errors { code } application { status merchantId reviewNote } } }"""
REJECT = """mutation($input: ReviewMerchantApplicationInput!) { rejectMerchantApplication(input: $input) {
  errors { code field } application { status merchantId reviewNote } } }"""
PAY_DEPOSIT = """mutation($input: PayMerchantDepositInput!) { payMerchantDeposit(input: $input) {
  errors { code } merchant { status deposit { amount } } } }"""
QUEUE = "{ merchantApplications(first: 100) { edges { node { id shopName } } } }"


async def apply(client: Client, name: str) -> dict[str, Any]:
    return (await client.gql(APPLY, {"input": {"shopName": name, "contact": "wechat: shop-owner",
                                                "description": "Game cards"}}))["applyForMerchant"]


async def test_onboarding_approve_holds_the_deposit_or_waits_for_it(make_client) -> None:  # type: ignore[no-untyped-def]
    deposit = get_settings().merchant_deposit
    admin = await signed_in(make_client, await make_user(Role.ADMIN))
    rich, poor = await make_user(), await make_user()
    await fund(rich, str(deposit + 5))
    rich_client, poor_client = await signed_in(make_client, rich), await signed_in(make_client, poor)

    name = f"Rich {uuid.uuid4().hex[:8]}"
    applied = await apply(rich_client, name)
    assert applied["errors"] == [] and applied["application"]["status"] == "PENDING"
    assert [e["code"] for e in (await apply(rich_client, f"Other {uuid.uuid4().hex[:6]}"))["errors"]] == ["DUPLICATE"]
    queued = [e["node"]["shopName"] for e in (await admin.gql(QUEUE))["merchantApplications"]["edges"]]
    assert name in queued
    assert "errors" in (await rich_client.post(QUEUE)).json()  # the queue is for ADMINs

    refused = (await rich_client.gql(APPROVE, {"input": {"applicationId": applied["application"]["id"]}}))
    assert [e["code"] for e in refused["approveMerchantApplication"]["errors"]] == ["FORBIDDEN"]
    approved = (await admin.gql(APPROVE, {"input": {"applicationId": applied["application"]["id"]}}))
    result = approved["approveMerchantApplication"]
    assert result["errors"] == [] and result["application"]["status"] == "APPROVED"
    shop = await Merchant.get(id=pk(result["application"]["merchantId"]))
    assert shop.owner_id == rich.id and shop.name == name and shop.status == MerchantStatus.ACTIVE
    assert (await User.get(id=rich.id)).role == Role.MERCHANT
    assert await ledger.balance(ledger.merchant_deposit(shop.id)) == deposit
    assert await ledger.balance(ledger.wallet(rich.id)) == Decimal("5.00")
    again = await admin.gql(APPROVE, {"input": {"applicationId": applied["application"]["id"]}})
    assert [e["code"] for e in again["approveMerchantApplication"]["errors"]] == ["INVALID_STATE"]

    # A short wallet: the shop exists but stays unlisted until its owner pays the deposit.
    poor_app = await apply(poor_client, f"Poor {uuid.uuid4().hex[:8]}")
    result = (await admin.gql(APPROVE, {"input": {"applicationId": poor_app["application"]["id"]}}))[
        "approveMerchantApplication"]
    poor_shop = await Merchant.get(id=pk(result["application"]["merchantId"]))
    assert poor_shop.status == MerchantStatus.PENDING_DEPOSIT
    assert await ledger.balance(ledger.merchant_deposit(poor_shop.id)) == Decimal("0.00")
    short = await poor_client.gql(PAY_DEPOSIT, {"input": {"merchantId": gid("Merchant", poor_shop.id)}})
    assert [e["code"] for e in short["payMerchantDeposit"]["errors"]] == ["INSUFFICIENT_BALANCE"]
    await fund(poor, str(deposit))
    paid = (await poor_client.gql(PAY_DEPOSIT, {"input": {"merchantId": gid("Merchant", poor_shop.id)}}))
    assert paid["payMerchantDeposit"]["errors"] == []
    assert paid["payMerchantDeposit"]["merchant"]["status"] == "ACTIVE"
    assert Decimal(paid["payMerchantDeposit"]["merchant"]["deposit"]["amount"]) == deposit
    twice = await poor_client.gql(PAY_DEPOSIT, {"input": {"merchantId": gid("Merchant", poor_shop.id)}})
    assert [e["code"] for e in twice["payMerchantDeposit"]["errors"]] == ["INVALID_STATE"]
    await assert_ledger_consistent()


async def test_onboarding_reject_changes_nothing_but_the_application(make_client) -> None:  # type: ignore[no-untyped-def]
    admin = await signed_in(make_client, await make_user(Role.ADMIN))
    user = await make_user()
    client = await signed_in(make_client, user)
    applied = await apply(client, f"Maybe {uuid.uuid4().hex[:8]}")
    ident = applied["application"]["id"]
    no_note = await admin.gql(REJECT, {"input": {"applicationId": ident}})
    assert [e["field"] for e in no_note["rejectMerchantApplication"]["errors"]] == ["note"]
    rejected = (await admin.gql(REJECT, {"input": {"applicationId": ident, "note": "Tell us what you sell"}}))
    result = rejected["rejectMerchantApplication"]
    assert result["errors"] == [] and result["application"]["status"] == "REJECTED"
    assert result["application"]["merchantId"] is None
    assert not await Merchant.filter(owner_id=user.id).exists()
    assert (await User.get(id=user.id)).role == Role.BUYER
    mine = await client.gql("{ myMerchantApplications { status reviewNote } }")
    assert mine["myMerchantApplications"] == [{"status": "REJECTED", "reviewNote": "Tell us what you sell"}]
    assert (await apply(client, f"Again {uuid.uuid4().hex[:8]}"))["errors"] == []  # may apply again


# -- the shop's orders and statistics ---------------------------------------------------------


async def an_order(product: Product, buyer: User | None, status: OrderStatus, *, total: str = "10.00",
                   paid_at: datetime | None = None, due_in: timedelta | None = None,
                   delivery_seconds: int | None = None) -> Order:
    now = datetime.now(UTC)
    return await Order.create(
        order_no=uuid.uuid4().hex[:20], buyer=buyer, product=product, merchant_id=product.merchant_id, quantity=1,
        unit_price=Decimal(total), total=Decimal(total), status=status, idempotency_scope=f"t:{uuid.uuid4().hex}",
        idempotency_key=uuid.uuid4().hex, expires_at=now + timedelta(minutes=15),
        paid_at=paid_at, delivery_due_at=now + due_in if due_in is not None else None,
        delivery_seconds=delivery_seconds,
    )


ORDERS = """query($id: ID!, $filter: MerchantOrderFilter, $first: Int, $after: String) {
  merchant(id: $id) { orders(filter: $filter, first: $first, after: $after) {
    totalCount edges { cursor node { orderNo } } pageInfo { hasNextPage endCursor } } } }"""


async def all_pages(client: Client, shop: Merchant, filter: dict[str, Any] | None = None, size: int = 2) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        data = await client.gql(ORDERS, {"id": gid("Merchant", shop.id), "filter": filter, "first": size, "after": after})
        page = data["merchant"]["orders"]
        seen += [e["node"]["orderNo"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]


async def test_a_merchant_lists_only_their_orders_manual_due_first(make_client) -> None:  # type: ignore[no-untyped-def]
    shop, other_shop = await make_merchant(), await make_merchant()
    cards = await make_product(shop)
    manual = await make_product(shop, kind=DeliveryKind.MANUAL)
    elsewhere = await make_product(other_shop)
    buyer = await make_user()
    paid = datetime.now(UTC)
    old = await an_order(cards, buyer, OrderStatus.COMPLETED, paid_at=paid)
    late_due = await an_order(manual, buyer, OrderStatus.DELIVERING, paid_at=paid, due_in=timedelta(hours=5))
    refunded = await an_order(cards, buyer, OrderStatus.REFUNDED, paid_at=paid)
    soon_due = await an_order(manual, buyer, OrderStatus.DELIVERING, paid_at=paid, due_in=timedelta(minutes=20))
    pending = await an_order(cards, buyer, OrderStatus.PENDING_PAYMENT)
    await an_order(elsewhere, buyer, OrderStatus.COMPLETED, paid_at=paid)

    owner = await signed_in(make_client, await User.get(id=shop.owner_id))
    expected = [soon_due, late_due, pending, refunded, old]
    assert await all_pages(owner, shop) == [o.order_no for o in expected]  # keyset pages of 2
    assert await all_pages(owner, shop, size=100) == [o.order_no for o in expected]
    assert await all_pages(owner, shop, {"status": "REFUNDED"}) == [refunded.order_no]
    assert await all_pages(owner, shop, {"deliveryKind": "MANUAL"}) == [soon_due.order_no, late_due.order_no]
    assert await all_pages(owner, shop, {"productId": gid("Product", cards.id)}) == [
        pending.order_no, refunded.order_no, old.order_no]
    since = (await Order.get(id=refunded.id)).created_at
    window = {"from": since.isoformat(), "to": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}
    assert set(await all_pages(owner, shop, window)) <= {o.order_no for o in expected} - {old.order_no, late_due.order_no}
    assert await all_pages(owner, shop, {"to": "2000-01-01T00:00:00+00:00"}) == []
    counted = await owner.gql(ORDERS, {"id": gid("Merchant", shop.id), "first": 1})
    assert counted["merchant"]["orders"]["totalCount"] == 5

    stranger = await signed_in(make_client, await User.get(id=other_shop.owner_id))
    assert (await stranger.gql(ORDERS, {"id": gid("Merchant", shop.id)}))["merchant"]["orders"] is None
    staff = await signed_in(make_client, await make_user(Role.MODERATOR))
    assert len(await all_pages(staff, shop, size=10)) == 5
    bad = (await owner.post(ORDERS, {"id": gid("Merchant", shop.id), "after": "bm90LWEtY3Vyc29y"})).json()
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


STATS = """query($id: ID!, $since: DateTime, $until: DateTime) { merchant(id: $id) { salesStats(since: $since, until: $until) {
  total { orders gmv { amount } refunds refunded { amount } averageDeliverySeconds buyers repeatBuyers repurchaseRate }
  days { day figures { orders gmv { amount } refunds } }
  products { productId figures { orders gmv { amount } buyers repeatBuyers repurchaseRate averageDeliverySeconds } } } } }"""


async def test_sales_stats_match_the_orders_in_a_bounded_number_of_queries(make_client) -> None:  # type: ignore[no-untyped-def]
    shop = await make_merchant()
    a, b = await make_product(shop), await make_product(shop)
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    day1 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    day2 = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    await an_order(a, alice, OrderStatus.COMPLETED, total="10.00", paid_at=day1, delivery_seconds=60)
    await an_order(a, alice, OrderStatus.DELIVERED, total="12.50", paid_at=day2, delivery_seconds=120)
    await an_order(a, bob, OrderStatus.REFUNDED, total="10.00", paid_at=day2)
    await an_order(b, bob, OrderStatus.COMPLETED, total="30.00", paid_at=day1, delivery_seconds=300)
    await an_order(b, carol, OrderStatus.COMPLETED, total="5.00", paid_at=day2, delivery_seconds=30)
    await an_order(b, None, OrderStatus.COMPLETED, total="1.00", paid_at=day2)  # a guest
    await an_order(b, carol, OrderStatus.PENDING_PAYMENT, total="99.00")  # unpaid: not counted
    await an_order(b, carol, OrderStatus.COMPLETED, total="7.00", paid_at=day2 + timedelta(days=5))  # outside

    owner = await signed_in(make_client, await User.get(id=shop.owner_id))
    window = {"id": gid("Merchant", shop.id), "since": "2026-03-01T00:00:00+00:00", "until": "2026-03-03T00:00:00+00:00"}
    with count_queries() as counter:
        stats = (await owner.gql(STATS, window))["merchant"]["salesStats"]
    assert counter.count <= 12, counter.statements  # five aggregates plus the request's own (auth, the shop)
    total = stats["total"]
    assert total["orders"] == 6 and Decimal(total["gmv"]["amount"]) == Decimal("68.50")
    assert total["refunds"] == 1 and Decimal(total["refunded"]["amount"]) == Decimal("10.00")
    assert total["averageDeliverySeconds"] == round((60 + 120 + 300 + 30) / 4)
    # alice 2 orders, bob 2 orders (one refunded), carol 1 in the window: two of three came back
    assert (total["buyers"], total["repeatBuyers"]) == (3, 2)
    assert abs(total["repurchaseRate"] - 2 / 3) < 1e-9
    days = {d["day"]: d["figures"] for d in stats["days"]}
    assert list(days) == ["2026-03-01", "2026-03-02"]
    assert days["2026-03-01"]["orders"] == 2 and Decimal(days["2026-03-01"]["gmv"]["amount"]) == Decimal("40.00")
    assert days["2026-03-02"]["orders"] == 4 and days["2026-03-02"]["refunds"] == 1
    products = {pk(p["productId"]): p["figures"] for p in stats["products"]}
    assert products[a.id]["orders"] == 3 and Decimal(products[a.id]["gmv"]["amount"]) == Decimal("32.50")
    assert (products[a.id]["buyers"], products[a.id]["repeatBuyers"]) == (2, 1)  # alice bought a twice
    assert (products[b.id]["buyers"], products[b.id]["repeatBuyers"]) == (2, 0)
    assert products[b.id]["averageDeliverySeconds"] == 165

    stranger = await signed_in(make_client, await make_user(Role.MERCHANT))
    assert (await stranger.gql(STATS, window))["merchant"]["salesStats"] is None


# -- withdrawals -------------------------------------------------------------------------------

REQUEST = """mutation($input: RequestWithdrawalInput!) { requestWithdrawal(input: $input) {
  errors { code field } withdrawal { id status amount { amount } fee { amount } payout { amount } } } }"""
APPROVE_W = """mutation($input: ApproveWithdrawalInput!) { approveWithdrawal(input: $input) {
  errors { code } withdrawal { status } } }"""
PAID_W = """mutation($input: MarkWithdrawalPaidInput!) { markWithdrawalPaid(input: $input) {
  errors { code } withdrawal { status payoutReference } } }"""
REJECT_W = """mutation($input: RejectWithdrawalInput!) { rejectWithdrawal(input: $input) {
  errors { code } withdrawal { status } } }"""


async def earn(shop: Merchant, amount: str) -> None:
    """Settled earnings in the shop's available balance."""
    await ledger.post("test.earn", uuid.uuid4().hex,
                      [(ledger.ADJUSTMENTS, -Decimal(amount)), (ledger.merchant_balance(shop.id), Decimal(amount))])


async def test_concurrent_withdrawals_never_exceed_the_available_balance(make_client) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    minimum = settings.withdrawal_minimum
    shop = await make_merchant()
    await earn(shop, str(minimum * 5))
    owner_user = await User.get(id=shop.owner_id)
    clients = [await signed_in(make_client, owner_user) for _ in range(12)]
    results = await asyncio.gather(*(c.gql(REQUEST, {"input": {"merchantId": gid("Merchant", shop.id),
                                                               "amount": str(minimum)}}) for c in clients))
    codes = sorted(r["requestWithdrawal"]["errors"][0]["code"] if r["requestWithdrawal"]["errors"] else "OK"
                   for r in results)
    assert codes == ["INSUFFICIENT_BALANCE"] * 7 + ["OK"] * 5
    assert await ledger.balance(ledger.merchant_balance(shop.id)) == Decimal("0.00")
    assert await withdrawals.pending_total(shop.id) == minimum * 5
    assert await Withdrawal.filter(merchant_id=shop.id).count() == 5  # the refused left no row
    await assert_ledger_consistent()


async def test_withdrawal_lifecycle_in_the_ledger(make_client) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    minimum, fee = settings.withdrawal_minimum, settings.withdrawal_fee
    shop = await make_merchant()
    owner_user = await User.get(id=shop.owner_id)
    owner = await signed_in(make_client, owner_user)
    admin = await signed_in(make_client, await make_user(Role.ADMIN))
    shop_id = gid("Merchant", shop.id)

    # The deposit and escrow are not the shop's available balance.
    await fund(owner_user, str(minimum))
    await ledger.post("merchant.deposit", uuid.uuid4().hex, [(ledger.wallet(owner_user.id), -minimum),
                                                            (ledger.merchant_deposit(shop.id), minimum)])
    await ledger.post("test.escrow", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, -minimum), (ledger.escrow(10**12 + shop.id), minimum)])
    none_left = await owner.gql(REQUEST, {"input": {"merchantId": shop_id, "amount": str(minimum)}})
    assert [e["code"] for e in none_left["requestWithdrawal"]["errors"]] == ["INSUFFICIENT_BALANCE"]

    await earn(shop, str(minimum * 3))
    small = await owner.gql(REQUEST, {"input": {"merchantId": shop_id, "amount": str(minimum - Decimal("0.01"))}})
    assert [e["field"] for e in small["requestWithdrawal"]["errors"]] == ["amount"]
    other = await signed_in(make_client, await make_user(Role.MERCHANT))
    forbidden = await other.gql(REQUEST, {"input": {"merchantId": shop_id, "amount": str(minimum)}})
    assert [e["code"] for e in forbidden["requestWithdrawal"]["errors"]] == ["FORBIDDEN"]
    also_admin = await admin.gql(REQUEST, {"input": {"merchantId": shop_id, "amount": str(minimum)}})
    assert [e["code"] for e in also_admin["requestWithdrawal"]["errors"]] == ["FORBIDDEN"]

    first = (await owner.gql(REQUEST, {"input": {"merchantId": shop_id, "amount": str(minimum)}}))["requestWithdrawal"]
    assert first["errors"] == [] and first["withdrawal"]["status"] == "REQUESTED"
    assert Decimal(first["withdrawal"]["payout"]["amount"]) == minimum - fee
    second = (await owner.gql(REQUEST, {"input": {"merchantId": shop_id, "amount": str(minimum)}}))["requestWithdrawal"]
    first_id, second_id = first["withdrawal"]["id"], second["withdrawal"]["id"]

    early = await admin.gql(PAID_W, {"input": {"withdrawalId": first_id, "payoutReference": "BANK-1"}})
    assert [e["code"] for e in early["markWithdrawalPaid"]["errors"]] == ["INVALID_STATE"]
    by_owner = await owner.gql(APPROVE_W, {"input": {"withdrawalId": first_id}})
    assert [e["code"] for e in by_owner["approveWithdrawal"]["errors"]] == ["FORBIDDEN"]
    assert (await admin.gql(APPROVE_W, {"input": {"withdrawalId": first_id}}))["approveWithdrawal"]["withdrawal"][
        "status"] == "APPROVED"
    paid = (await admin.gql(PAID_W, {"input": {"withdrawalId": first_id, "payoutReference": "BANK-1"}}))
    assert paid["markWithdrawalPaid"]["withdrawal"] == {"status": "PAID", "payoutReference": "BANK-1"}
    rejected = await admin.gql(REJECT_W, {"input": {"withdrawalId": second_id, "note": "bank account unverified"}})
    assert rejected["rejectWithdrawal"]["withdrawal"]["status"] == "REJECTED"
    again = await admin.gql(REJECT_W, {"input": {"withdrawalId": first_id, "note": "too late now"}})
    assert [e["code"] for e in again["rejectWithdrawal"]["errors"]] == ["INVALID_STATE"]

    assert await ledger.balance(ledger.merchant_balance(shop.id)) == minimum * 2  # the rejected one came back
    assert await withdrawals.pending_total(shop.id) == Decimal("0.00")
    assert await ledger.balance(ledger.merchant_deposit(shop.id)) == minimum  # untouched
    statuses = await Withdrawal.filter(merchant_id=shop.id).order_by("id").values_list("status", flat=True)
    assert statuses == [WithdrawalStatus.PAID, WithdrawalStatus.REJECTED]
    listed = await owner.gql("""query($id: ID!) { merchant(id: $id) { pendingWithdrawals { amount }
      withdrawals(first: 10) { edges { node { status } } } } }""", {"id": shop_id})
    assert [e["node"]["status"] for e in listed["merchant"]["withdrawals"]["edges"]] == ["REJECTED", "PAID"]
    assert (await other.gql("""query($id: ID!) { merchant(id: $id) { withdrawals { totalCount } } }""",
                            {"id": shop_id}))["merchant"]["withdrawals"] is None
    await assert_ledger_consistent()
