"""Least privilege (issue 10): the permission table (resolvers/accounts/permissions.py),
walked against the live API. For every action and every role (anonymous, BUYER, the MERCHANT
who owns the thing, another MERCHANT, MODERATOR, ADMIN) one request, on fresh data, whose
outcome must be what the table says: allowed and done, or refused (UNAUTHENTICATED /
FORBIDDEN) with nothing changed."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from strawberry.relay import GlobalID

from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.inventory import CardKey
from models.commerce.merchants import Category, Merchant, MerchantStatus
from models.commerce.orders import Order, OrderEvent, OrderStatus
from models.community.posts import ContentStatus, Post, PostKind
from models.lifecycle.campaigns import AudienceKind, Campaign
from models.lifecycle.experiments import Experiment
from models.lifecycle.segments import BuyerRfm, SegmentRule, Stage
from models.loyalty.coupons import Coupon, CouponKind, UserCoupon
from models.trust.tickets import Ticket, TicketEntry, TicketReason, TicketStatus
from kameng.settings import get_settings
from models.commerce.onboarding import ApplicationStatus, MerchantApplication
from models.commerce.promotions import MerchantCoupon
from models.commerce.suppliers import SupplierConfig
from models.commerce.withdrawals import Withdrawal, WithdrawalStatus
from resolvers.commerce import withdrawals
from models.trust.claims import Claim, ClaimReason, ClaimStatus
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import TABLE, Action, permits
from resolvers.commerce import ledger, orders, payments
from resolvers.loyalty import coupons
from resolvers.trust import tickets
from subscriptions import outbox
from tests.conftest import Client, eventually
from tests.factories import fund, make_merchant, make_product, make_user, token_for
from tests.test_tickets import delivered_order
from resolvers.trust import claims
from tests.test_claims import undelivered_order

ROLES = ("anonymous", "BUYER", "MERCHANT owner", "MERCHANT other", "MODERATOR", "ADMIN")
REFUSED = {"UNAUTHENTICATED", "FORBIDDEN"}


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


@dataclass
class People:
    owner: User
    other: User
    buyer: User
    moderator: User
    admin: User

    def of(self, role: str) -> User | None:
        return {"anonymous": None, "BUYER": self.buyer, "MERCHANT owner": self.owner, "MERCHANT other": self.other,
                "MODERATOR": self.moderator, "ADMIN": self.admin}[role]


@dataclass
class Probe:
    """One request for an action: the document, its ``$input`` (made fresh for each role),
    and how to tell that it happened."""

    document: str
    prepare: Callable[[People], Awaitable[tuple[dict[str, Any], Any]]]
    done: Callable[[dict[str, Any], Any], Awaitable[bool]]


def mutation(name: str, input_type: str, selection: str = "") -> str:
    return f"mutation($input: {input_type}!) {{ result: {name}(input: $input) {{ errors {{ code field }} {selection} }} }}"


async def paid_order(people: People, kind: DeliveryKind, settle_at: OrderStatus) -> Order:
    """A wallet-paid order of a fresh product of the owner's shop, once it reached ``settle_at``."""
    shop = await make_merchant(people.owner)
    product = await make_product(shop, kind=kind, keys=2 if kind == DeliveryKind.CARD_KEY else 0)
    await fund(people.buyer, "10.00")
    order = await orders.create_order(Actor(user=people.buyer), orders.NewOrder(
        product_id=product.id, quantity=1, idempotency_key=uuid.uuid4().hex))
    await payments.pay_order(Actor(user=people.buyer), order.id, payments.PaymentMethod.WALLET)

    async def settled() -> bool:
        current = await Order.get(id=order.id)
        return current.status == settle_at and (kind != DeliveryKind.MANUAL or current.delivery_due_at is not None)

    await eventually(settled)
    return await Order.get(id=order.id)


async def failed_order(people: People) -> Order:
    order = await paid_order(people, DeliveryKind.MANUAL, OrderStatus.DELIVERING)
    async with outbox.atomic():
        assert await orders.transition(order, OrderStatus.FAILED, note="supplier down")
    return order


async def status_is(order_id: int, status: OrderStatus) -> bool:
    return (await Order.get(id=order_id)).status == status


async def refund_vars(order: Order) -> tuple[dict[str, Any], Any]:
    return {"orderId": gid("Order", order.id), "reason": "the buyer asked"}, order.id


def refunded(_: dict[str, Any], order_id: int) -> Awaitable[bool]:
    return status_is(order_id, OrderStatus.REFUNDED)


async def product_of_owner(people: People, kind: DeliveryKind = DeliveryKind.CARD_KEY) -> Product:
    return await make_product(await make_merchant(people.owner), kind=kind, price="10.00")


async def owner_post(people: People) -> Post:
    return await Post.create(author=people.owner, kind=PostKind.GUIDE, title="Guide", body="Body", body_html="<p>Body</p>")


async def a_coupon(people: People) -> Coupon:
    now = datetime.now(UTC)
    return await coupons.create(Actor(user=people.admin), coupons.NewCoupon(
        code=f"P{uuid.uuid4().hex[:10].upper()}", title="Five off", kind=CouponKind.FIXED, value=Decimal("5.00"),
        valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=30), min_spend=Decimal("10.00")))


def probes() -> dict[Action, Probe]:
    async def refund_failed(people: People) -> tuple[dict[str, Any], Any]:
        return await refund_vars(await failed_order(people))

    async def refund_delivered(people: People) -> tuple[dict[str, Any], Any]:
        return await refund_vars(await paid_order(people, DeliveryKind.CARD_KEY, OrderStatus.DELIVERED))

    async def adjust(people: People) -> tuple[dict[str, Any], Any]:
        return {"userId": gid("User", people.owner.id), "amount": "1.00", "reason": "goodwill"}, people.owner.id

    async def adjusted(_: dict[str, Any], user_id: int) -> bool:
        return await ledger.balance(ledger.wallet(user_id)) > 0

    async def deposit(people: People) -> tuple[dict[str, Any], Any]:
        shop = await make_merchant(people.owner)
        await fund(people.owner, "1.00")
        return {"merchantId": gid("Merchant", shop.id), "amount": "1.00"}, shop.id

    async def deposited(_: dict[str, Any], shop_id: int) -> bool:
        return await ledger.balance(ledger.merchant_deposit(shop_id)) == Decimal("1.00")

    async def new_coupon(people: People) -> tuple[dict[str, Any], Any]:
        code = f"C{uuid.uuid4().hex[:10].upper()}"
        now = datetime.now(UTC)
        return {"code": code, "title": "Five off", "kind": "FIXED", "value": "5.00", "minSpend": "10.00",
                "validFrom": (now - timedelta(days=1)).isoformat(), "validUntil": (now + timedelta(days=9)).isoformat()}, code

    async def coupon_made(_: dict[str, Any], code: str) -> bool:
        return await Coupon.filter(code=code).exists()

    async def issue(people: People) -> tuple[dict[str, Any], Any]:
        coupon = await a_coupon(people)
        return {"couponId": gid("Coupon", coupon.id), "userIds": [gid("User", people.buyer.id)]}, coupon.id

    async def issued(_: dict[str, Any], coupon_id: int) -> bool:
        return await UserCoupon.filter(coupon_id=coupon_id).exists()

    async def shop(people: People) -> tuple[dict[str, Any], Any]:
        name = f"Shop {uuid.uuid4().hex[:10]}"
        return {"name": name}, name

    async def shop_opened(payload: dict[str, Any], name: str) -> bool:
        # A MERCHANT has one shop: theirs already exists, and that answer is not a refusal.
        return await Merchant.filter(name=name).exists() or [e["code"] for e in payload["errors"]] == ["DUPLICATE"]

    async def category(people: People) -> tuple[dict[str, Any], Any]:
        slug = f"c-{uuid.uuid4().hex[:10]}"
        return {"name": "Games", "slug": slug}, slug

    async def category_made(_: dict[str, Any], slug: str) -> bool:
        return await Category.filter(slug=slug).exists()

    async def new_product(people: People) -> tuple[dict[str, Any], Any]:
        shop = await make_merchant(people.owner)
        return {"merchantId": gid("Merchant", shop.id), "title": "Card", "price": "9.00", "deliveryKind": "MANUAL"}, shop.id

    async def product_made(_: dict[str, Any], shop_id: int) -> bool:
        return await Product.filter(merchant_id=shop_id).exists()

    async def reprice(people: People) -> tuple[dict[str, Any], Any]:
        product = await product_of_owner(people)
        return {"id": gid("Product", product.id), "price": "0.01"}, product.id

    async def repriced(_: dict[str, Any], product_id: int) -> bool:
        return (await Product.get(id=product_id)).price == Decimal("0.01")

    async def keys(people: People) -> tuple[dict[str, Any], Any]:
        product = await product_of_owner(people)
        return {"productId": gid("Product", product.id), "keys": [f"K-{uuid.uuid4().hex}"]}, product.id

    async def keys_imported(_: dict[str, Any], product_id: int) -> bool:
        return await CardKey.filter(product_id=product_id).exists()

    async def fulfil(people: People) -> tuple[dict[str, Any], Any]:
        order = await paid_order(people, DeliveryKind.MANUAL, OrderStatus.DELIVERING)
        return {"orderId": gid("Order", order.id), "note": "sent"}, order.id

    async def fulfilled(_: dict[str, Any], order_id: int) -> bool:
        return await status_is(order_id, OrderStatus.DELIVERED)

    async def suspend(people: People) -> tuple[dict[str, Any], Any]:
        shop = await make_merchant(people.owner)
        return {"merchantId": gid("Merchant", shop.id), "status": "SUSPENDED"}, shop.id

    async def suspended(_: dict[str, Any], shop_id: int) -> bool:
        return (await Merchant.get(id=shop_id)).status == MerchantStatus.SUSPENDED

    async def hide(people: People) -> tuple[dict[str, Any], Any]:
        post = await Post.create(author=people.buyer, kind=PostKind.GUIDE, title="Guide", body="Body",
                                 body_html="<p>Body</p>")
        return {"targetId": gid("Post", post.id), "reason": "spam link"}, post.id

    async def hidden(_: dict[str, Any], post_id: int) -> bool:
        return (await Post.get(id=post_id)).status == ContentStatus.HIDDEN

    async def delete(people: People) -> tuple[dict[str, Any], Any]:
        post = await owner_post(people)
        return {"postId": gid("Post", post.id)}, post.id

    async def deleted(_: dict[str, Any], post_id: int) -> bool:
        return (await Post.get(id=post_id)).status == ContentStatus.DELETED

    async def owner_itself(people: People) -> tuple[dict[str, Any], Any]:
        return gid("User", people.owner.id), None  # type: ignore[return-value]

    async def email_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("email") is not None

    async def owner_shop(people: People) -> tuple[dict[str, Any], Any]:
        return gid("Merchant", (await make_merchant(people.owner)).id), None  # type: ignore[return-value]

    async def trend_window(_: People) -> tuple[dict[str, Any], Any]:
        return "DAY", None  # type: ignore[return-value]

    async def trends_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("window") == "DAY"

    async def balance_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("balance") is not None

    async def a_ticket(people: People) -> tuple[dict[str, Any], Any]:
        # The order's buyer is someone else: BUYER below is a stranger to the ticket.
        buyer = await make_user(Role.BUYER, "Ticket buyer")
        order = await delivered_order(buyer, await make_merchant(people.owner))
        ticket = await tickets.open_ticket(Actor(user=buyer), order.id, TicketReason.OTHER, "It broke")
        return {"ticketId": gid("Ticket", ticket.id), "message": "We are on it"}, ticket.id

    async def replied(_: dict[str, Any], ticket_id: int) -> bool:
        return await TicketEntry.filter(ticket_id=ticket_id).count() > 1

    async def ticket_to_decide(people: People) -> tuple[dict[str, Any], Any]:
        variables, ticket_id = await a_ticket(people)
        return {"ticketId": variables["ticketId"], "note": "decided"}, ticket_id

    async def decided(_: dict[str, Any], ticket_id: int) -> bool:
        return (await Ticket.get(id=ticket_id)).status == TicketStatus.RESOLVED

    async def experiment(people: People) -> tuple[dict[str, Any], Any]:
        key = f"probe-{uuid.uuid4().hex[:10]}"
        return {"key": key, "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}, key

    async def experiment_defined(_: dict[str, Any], key: str) -> bool:
        return await Experiment.filter(key=key).exists()

    async def known_experiment(people: People) -> tuple[dict[str, Any], Any]:
        return "recommendations", None  # type: ignore[return-value]

    async def results_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("srmPValue") is not None

    # -- the merchant back office (issue 13) --
    async def application(people: People) -> tuple[dict[str, Any], Any]:
        found = await MerchantApplication.create(applicant=await make_user(), shop_name=f"App {uuid.uuid4().hex[:10]}",
                                                 contact="mail me")
        return {"applicationId": gid("MerchantApplication", found.id)}, found.id

    async def approved(_: dict[str, Any], application_id: int) -> bool:
        return (await MerchantApplication.get(id=application_id)).status == ApplicationStatus.APPROVED

    async def unfunded_shop(people: People) -> tuple[dict[str, Any], Any]:
        shop = await make_merchant(people.owner)
        await Merchant.filter(id=shop.id).update(status=MerchantStatus.PENDING_DEPOSIT)
        await fund(people.owner, str(get_settings().merchant_deposit))
        return {"merchantId": gid("Merchant", shop.id)}, shop.id

    async def shop_funded(_: dict[str, Any], shop_id: int) -> bool:
        return (await Merchant.get(id=shop_id)).status == MerchantStatus.ACTIVE

    async def earning_shop(people: People) -> Merchant:
        shop = await make_merchant(people.owner)
        amount = get_settings().withdrawal_minimum
        await ledger.post("test.earn", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, -amount), (ledger.merchant_balance(shop.id), amount)])
        return shop

    async def withdraw(people: People) -> tuple[dict[str, Any], Any]:
        shop = await earning_shop(people)
        return {"merchantId": gid("Merchant", shop.id), "amount": str(get_settings().withdrawal_minimum)}, shop.id

    async def withdrawn(_: dict[str, Any], shop_id: int) -> bool:
        return await Withdrawal.filter(merchant_id=shop_id).exists()

    async def requested(people: People) -> tuple[dict[str, Any], Any]:
        shop = await earning_shop(people)
        found = await withdrawals.request(Actor(user=people.owner), shop.id, str(get_settings().withdrawal_minimum))
        return {"withdrawalId": gid("Withdrawal", found.id)}, found.id

    async def processed(_: dict[str, Any], withdrawal_id: int) -> bool:
        return (await Withdrawal.get(id=withdrawal_id)).status == WithdrawalStatus.APPROVED

    async def supplier(people: People) -> tuple[dict[str, Any], Any]:
        shop = await make_merchant(people.owner)
        return {"merchantId": gid("Merchant", shop.id), "endpoint": "http://127.0.0.1:9/topup",
                "secret": "a-secret-of-the-shop"}, shop.id

    async def supplier_set(_: dict[str, Any], shop_id: int) -> bool:
        return await SupplierConfig.filter(merchant_id=shop_id).exists()

    async def shop_coupon(people: People) -> tuple[dict[str, Any], Any]:
        shop = await make_merchant(people.owner)
        now = datetime.now(UTC)
        return {"merchantId": gid("Merchant", shop.id), "code": f"M{uuid.uuid4().hex[:10].upper()}", "title": "Two off",
                "kind": "FIXED", "value": "2.00", "validFrom": (now - timedelta(days=1)).isoformat(),
                "validUntil": (now + timedelta(days=9)).isoformat()}, shop.id

    async def shop_coupon_made(_: dict[str, Any], shop_id: int) -> bool:
        return await MerchantCoupon.filter(merchant_id=shop_id).exists()

    async def problem(people: People) -> tuple[dict[str, Any], Any]:
        # The MERCHANT owner is the buyer here (of another shop's top-up, overdue): the claim is theirs.
        order = await undelivered_order(DeliveryKind.DIRECT_TOPUP, paid_minutes_ago=60, buyer=people.owner)
        return {"orderId": gid("Order", order.id), "reason": "NOT_RECEIVED"}, order.id

    async def claimed(_: dict[str, Any], order_id: int) -> bool:
        return await Claim.filter(order_id=order_id).exists()

    async def automatic_claim(people: People) -> tuple[dict[str, Any], Any]:
        shop = await make_merchant(people.owner)
        order = await undelivered_order(DeliveryKind.MANUAL, paid_minutes_ago=60, shop=shop)
        claim = await claims.self_serve(Actor(user=await User.get(id=order.buyer_id)), order.id,
                                        ClaimReason.NOT_RECEIVED)
        return {"claimId": gid("Claim", claim.id), "reason": "it was delivered"}, claim.id

    async def contested(_: dict[str, Any], claim_id: int) -> bool:
        return (await Claim.get(id=claim_id)).status == ClaimStatus.CONTESTED

    async def claim_in_review(people: People) -> tuple[dict[str, Any], Any]:
        order = await paid_order(people, DeliveryKind.MANUAL, OrderStatus.DELIVERING)
        claim = await Claim.create(order=order, subject="test", buyer_id=people.buyer.id, merchant_id=order.merchant_id,
                                   reason=ClaimReason.NOT_RECEIVED, status=ClaimStatus.PENDING_REVIEW)
        return {"claimId": gid("Claim", claim.id), "decision": "REJECT", "note": "nothing owed"}, claim.id

    async def rejected(_: dict[str, Any], claim_id: int) -> bool:
        return (await Claim.get(id=claim_id)).status == ClaimStatus.REJECTED
    async def lifecycle_of_owner(people: People) -> tuple[dict[str, Any], Any]:
        now = datetime.now(UTC)
        await BuyerRfm.update_or_create(defaults=dict(
            recency_days=1, frequency=1, monetary=Decimal("10.00"), first_purchase_at=now, last_purchase_at=now,
            stage=Stage.NEW, computed_at=now), user_id=people.owner.id)
        return gid("User", people.owner.id), None  # type: ignore[return-value]

    async def lifecycle_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("frequency") is not None

    async def segment_rule(people: People) -> tuple[dict[str, Any], Any]:
        key = f"probe-{uuid.uuid4().hex[:10]}"
        return {"key": key, "name": "Probe", "frequencyMin": 99}, key

    async def rule_made(_: dict[str, Any], key: str) -> bool:
        return await SegmentRule.filter(key=key).exists()
    async def today(people: People) -> tuple[dict[str, Any], Any]:
        return datetime.now(UTC).date().isoformat(), None  # type: ignore[return-value]

    async def stats_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("days") is not None
    async def period(_: People) -> tuple[dict[str, Any], Any]:
        return {"since": "2019-01-01", "until": "2019-02-01"}, None

    async def analytics_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("analytics") is not None

    async def new_campaign(_: People) -> tuple[dict[str, Any], Any]:
        name = f"probe-{uuid.uuid4().hex[:10]}"
        return {"name": name, "title": "Probe", "audience": "NO_VISIT", "triggerDays": 7}, name

    async def campaign_made(_: dict[str, Any], name: str) -> bool:
        return await Campaign.filter(name=name).exists()

    async def a_campaign(_: People) -> tuple[dict[str, Any], Any]:
        made = await Campaign.create(name="Probe", title="Probe", audience=AudienceKind.NO_VISIT, trigger_days=7,
                                     starts_at=datetime.now(UTC))
        return gid("Campaign", made.id), None  # type: ignore[return-value]

    async def campaign_results_seen(payload: dict[str, Any], _: Any) -> bool:
        return payload.get("results") is not None

    return {
        Action.REPLY_TICKET: Probe(mutation("replyToTicket", "ReplyToTicketInput"), a_ticket, replied),
        Action.DECIDE_TICKET: Probe(mutation("resolveTicket", "FinishTicketInput"), ticket_to_decide, decided),
        Action.MANAGE_EXPERIMENTS: Probe(mutation("defineExperiment", "DefineExperimentInput"), experiment,
                                         experiment_defined),
        Action.READ_EXPERIMENT_RESULTS: Probe("query($input: String!) { result: experimentResults(key: $input) { srmPValue } }",
                                              known_experiment, results_seen),
        Action.REVIEW_MERCHANT_APPLICATION: Probe(
            mutation("approveMerchantApplication", "ReviewMerchantApplicationInput"), application, approved),
        Action.PAY_SHOP_DEPOSIT: Probe(mutation("payMerchantDeposit", "PayMerchantDepositInput"), unfunded_shop, shop_funded),
        Action.REQUEST_WITHDRAWAL: Probe(mutation("requestWithdrawal", "RequestWithdrawalInput"), withdraw, withdrawn),
        Action.PROCESS_WITHDRAWAL: Probe(mutation("approveWithdrawal", "ApproveWithdrawalInput"), requested, processed),
        Action.CONFIGURE_SUPPLIER: Probe(mutation("configureSupplier", "ConfigureSupplierInput"), supplier, supplier_set),
        Action.CREATE_MERCHANT_COUPON: Probe(
            mutation("createMerchantCoupon", "CreateMerchantCouponInput"), shop_coupon, shop_coupon_made),
        Action.REPORT_ORDER_PROBLEM: Probe(mutation("reportOrderProblem", "ReportOrderProblemInput"), problem, claimed),
        Action.CONTEST_CLAIM: Probe(mutation("contestClaim", "ContestClaimInput"), automatic_claim, contested),
        Action.DECIDE_CLAIM: Probe(mutation("decideClaim", "DecideClaimInput"), claim_in_review, rejected),
        Action.REFUND_ORDER: Probe(mutation("refundOrder", "RefundOrderInput"), refund_failed, refunded),
        Action.REFUND_DELIVERED_CARD_KEYS: Probe(mutation("refundOrder", "RefundOrderInput"), refund_delivered, refunded),
        Action.ADJUST_WALLET: Probe(mutation("adjustWallet", "AdjustWalletInput"), adjust, adjusted),
        Action.HOLD_MERCHANT_DEPOSIT: Probe(mutation("holdMerchantDeposit", "HoldMerchantDepositInput"), deposit, deposited),
        Action.CREATE_COUPON: Probe(mutation("createCoupon", "CreateCouponInput"), new_coupon, coupon_made),
        Action.ISSUE_COUPONS: Probe(mutation("issueCoupons", "IssueCouponsInput"), issue, issued),
        Action.OPEN_SHOP: Probe(mutation("createMerchant", "CreateMerchantInput"), shop, shop_opened),
        Action.CREATE_CATEGORY: Probe(mutation("createCategory", "CreateCategoryInput"), category, category_made),
        Action.CREATE_PRODUCT: Probe(mutation("createProduct", "CreateProductInput"), new_product, product_made),
        Action.UPDATE_PRODUCT: Probe(mutation("updateProduct", "UpdateProductInput"), reprice, repriced),
        Action.IMPORT_CARD_KEYS: Probe(mutation("importCardKeys", "ImportCardKeysInput"), keys, keys_imported),
        Action.FULFILL_ORDER: Probe(mutation("fulfillOrder", "FulfillOrderInput"), fulfil, fulfilled),
        Action.SET_MERCHANT_STATUS: Probe(mutation("setMerchantStatus", "SetMerchantStatusInput"), suspend, suspended),
        Action.MODERATE_CONTENT: Probe(mutation("hideContent", "HideContentInput"), hide, hidden),
        Action.DELETE_POST: Probe(mutation("deletePost", "DeletePostInput"), delete, deleted),
        Action.READ_PRIVATE: Probe("query($input: ID!) { result: node(id: $input) { ... on User { email } } }",
                                   owner_itself, email_seen),
        Action.READ_SHOP_PRIVATE: Probe("query($input: ID!) { result: merchant(id: $input) { balance { amount } } }",
                                        owner_shop, balance_seen),
        Action.READ_TRENDS: Probe("query($input: TrendWindow!) { result: trendingKeywords(window: $input) { window } }",
                                  trend_window, trends_seen),
        Action.READ_LIFECYCLE: Probe("query($input: ID!) { result: buyerLifecycle(userId: $input) { frequency } }",
                                     lifecycle_of_owner, lifecycle_seen),
        Action.MANAGE_SEGMENTS: Probe(mutation("createSegmentRule", "SegmentRuleInput"), segment_rule, rule_made),
        Action.READ_RECOMMENDATION_STATS: Probe(
            "query($input: Date!) { result: recommendationStats(from: $input, to: $input) { days { clicks } } }",
            today, stats_seen),
        Action.READ_ANALYTICS: Probe("query($input: RetentionAnalyticsInput) { result: retentionAnalytics(input: $input) "
                                     "{ errors { code field } analytics { minGroup } } }", period, analytics_seen),
        Action.MANAGE_CAMPAIGNS: Probe(mutation("createCampaign", "CreateCampaignInput"), new_campaign, campaign_made),
        Action.READ_CAMPAIGN_RESULTS: Probe("query($input: ID!) { result: campaignResults(id: $input) "
                                            "{ errors { code field } results { treatment { users } } } }",
                                            a_campaign, campaign_results_seen),
    }


def expected(user: User | None, action: Action, owner: User) -> bool:
    """What the table says (a delivered card-key refund is a refund first)."""
    if action == Action.REFUND_DELIVERED_CARD_KEYS:
        return permits(user, Action.REFUND_ORDER, owner_id=owner.id) and permits(user, action, owner_id=owner.id)
    return permits(user, action, owner_id=owner.id)


@pytest.fixture
async def people() -> People:
    return People(
        owner=await make_user(Role.MERCHANT, "Owner"), other=await make_user(Role.MERCHANT, "Other"),
        buyer=await make_user(Role.BUYER, "Buyer"), moderator=await make_user(Role.MODERATOR, "Mod"),
        admin=await make_user(Role.ADMIN, "Admin"),
    )


def test_every_action_has_a_rule_and_a_probe() -> None:
    assert set(TABLE) == set(Action) == set(probes())


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
async def test_the_table_holds_on_the_live_api(action: Action, people: People, make_client) -> None:  # type: ignore[no-untyped-def]
    probe = probes()[action]
    outcomes: dict[str, bool] = {}
    for role in ROLES:
        user = people.of(role)
        client: Client = make_client()
        if user is not None:
            client.token = await token_for(user)
        variables, handle = await probe.prepare(people)
        body = (await client.post(probe.document, {"input": variables})).json()
        assert "errors" not in body, body
        payload = (body.get("data") or {}).get("result") or {}
        codes = {e["code"] for e in payload.get("errors") or []}
        done = await probe.done(payload, handle)
        if expected(user, action, people.owner):
            assert not codes & REFUSED and done, (role, body)
        else:
            assert not done, (role, "the refused action happened anyway", body)
            if probe.document.startswith("mutation"):
                assert codes & REFUSED, (role, body)
        outcomes[role] = done
    # Nobody anonymous, and always someone: the table has no dead rows.
    assert outcomes["anonymous"] is False and any(outcomes.values()), outcomes


async def test_a_moderator_cannot_refund_reprice_or_fulfil(people: People, make_client) -> None:  # type: ignore[no-untyped-def]
    """The issue's done-when, said plainly whatever the table says."""
    moderator = make_client()
    moderator.token = await token_for(people.moderator)
    every = probes()
    for action in (Action.REFUND_ORDER, Action.REFUND_DELIVERED_CARD_KEYS, Action.UPDATE_PRODUCT,
                   Action.FULFILL_ORDER, Action.ADJUST_WALLET, Action.HOLD_MERCHANT_DEPOSIT):
        probe = every[action]
        variables, handle = await probe.prepare(people)
        payload = (await moderator.gql(probe.document, {"input": variables}))["result"]
        assert [e["code"] for e in payload["errors"]] == ["FORBIDDEN"], (action, payload)
        assert not await probe.done(payload, handle), action


async def test_a_delivered_card_key_refund_is_admin_only_and_keeps_its_reason(people: People, make_client) -> None:  # type: ignore[no-untyped-def]
    owner, admin = make_client(), make_client()
    owner.token, admin.token = await token_for(people.owner), await token_for(people.admin)
    order = await paid_order(people, DeliveryKind.CARD_KEY, OrderStatus.DELIVERED)
    refund = mutation("refundOrder", "RefundOrderInput", "order { status }")
    variables = {"orderId": gid("Order", order.id), "reason": "key was already used"}
    refused = (await owner.gql(refund, {"input": variables}))["result"]
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"] and await status_is(order.id, OrderStatus.DELIVERED)
    # The reason is required ...
    blank = (await admin.gql(refund, {"input": {**variables, "reason": "  "}}))["result"]
    assert [(e["code"], e["field"]) for e in blank["errors"]] == [("INVALID_INPUT", "reason")]
    # ... and kept in the order's history with who gave the money back.
    done = (await admin.gql(refund, {"input": variables}))["result"]
    assert done["errors"] == [] and done["order"]["status"] == "REFUNDED"
    event = await OrderEvent.filter(order_id=order.id, status=OrderStatus.REFUNDED).get()
    assert event.actor == f"user:{people.admin.id}"
    assert "key was already used" in event.note and "ADMIN" in event.note
