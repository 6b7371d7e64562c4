"""Product plans (issue 13, item 2): a plan renews exactly once per period across a crashed
job, re-runs and concurrent jobs; a failed renewal is retried on schedule with a notice each
time, then the plan lapses and can be renewed by hand; pause, resume, skip, change and
cancel do what they say. Driven through the API, with the renewal job (``renewals.renew``)
and the sweep called the way the workers call them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from strawberry.relay import GlobalID

from models.accounts.notifications import Notification
from models.accounts.users import User
from models.commerce.catalog import Product
from models.commerce.ledger import Posting
from models.commerce.orders import Order, OrderStatus
from models.repurchase.plans import PlanRenewal, PlanStatus, ProductPlan, RenewalState, RenewalStatus
from resolvers.accounts.auth import Actor
from resolvers.commerce import inventory, ledger, orders
from resolvers.repurchase import renewals
from tests.conftest import Client
from tests.factories import fund, make_merchant, make_product, make_user, token_for
from tests.test_ledger import assert_ledger_consistent

SUBSCRIBE = """mutation($input: SubscribeToProductInput!) { subscribeToProduct(input: $input) {
  errors { code field message } order { id status total { amount } }
  plan { id status period periodDays quantity autoRenew nextRenewalAt renewing } } }"""
PLAN_FIELDS = "errors { code field message } plan { id status period nextRenewalAt pausedAt pendingQuantity " \
              "pendingPeriodDays pendingProduct { id } renewals { period status } } order { id status }"


def gid(kind: str, key: int) -> str:
    return str(GlobalID(kind, str(key)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def plan_product(price: str = "10.00", keys: int = 20, **terms: Any) -> Product:
    product = await make_product(await make_merchant(), price=price, keys=keys)
    await Product.filter(id=product.id).update(**({"plan_min_days": 7, "plan_max_days": 365} | terms))
    return await Product.get(id=product.id)


async def buyer(make_client: Any, balance: str) -> tuple[Client, int]:
    user = await make_user()
    if Decimal(balance):
        await fund(user, balance)  # (a posting of nothing would be an empty posting)
    client = make_client()
    client.token = await token_for(user)
    return client, user.id


async def subscribe(client: Client, product: Product, period_days: int = 30, **extra: Any) -> dict[str, Any]:
    data = await client.gql(SUBSCRIBE, {"input": {"productId": gid("Product", product.id), "periodDays": period_days,
                                                  "idempotencyKey": uuid.uuid4().hex, **extra}})
    return data["subscribeToProduct"]


async def act(client: Client, name: str, input: dict[str, Any]) -> dict[str, Any]:
    input_type = {"changePlan": "ChangePlanInput", "setPlanAutoRenew": "SetPlanAutoRenewInput"}.get(name, "PlanInput")
    data = await client.gql(f"mutation($input: {input_type}!) {{ r: {name}(input: $input) {{ {PLAN_FIELDS} }} }}",
                            {"input": input})
    return data["r"]


async def wallet(user_id: int) -> Decimal:
    return await ledger.balance(ledger.wallet(user_id))


async def make_due(plan_id: int) -> datetime:
    """Time passes: the plan's period has ended a second ago. Returns its end."""
    due = datetime.now(UTC) - timedelta(seconds=1)
    await ProductPlan.filter(id=plan_id).update(next_renewal_at=due)
    return due


async def open_renewal(plan_id: int, period: int) -> PlanRenewal:
    """Claimed by our sweep (or the stack's own, running in the background)."""
    await renewals.claim_due()
    return await PlanRenewal.get(plan_id=plan_id, period=period)


async def paid_orders_of(plan_id: int, period: int) -> list[Order]:
    return list(await Order.filter(idempotency_key__startswith=f"plan-{plan_id}-{period}-",
                                   paid_at__isnull=False))


async def test_a_plan_renews_once_per_period_across_a_crash_reruns_and_concurrent_jobs(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await plan_product()
    client, user_id = await buyer(make_client, "100.00")
    started = await subscribe(client, product, 30)
    assert started["errors"] == [] and started["plan"]["status"] == "ACTIVE" and started["plan"]["period"] == 1
    assert started["order"]["total"] == {"amount": "10.00"} and started["order"]["status"] != "PENDING_PAYMENT"
    plan_id = pk(started["plan"]["id"])
    assert await wallet(user_id) == Decimal("90.00")

    due = await make_due(plan_id)
    renewal = await open_renewal(plan_id, 2)
    # The worker crashed after creating the attempt's order, before paying it.
    user = await User.get(id=user_id)
    crashed = await orders.create_order(Actor(user=user), orders.NewOrder(
        product_id=product.id, quantity=1, idempotency_key=renewals.order_key(plan_id, 2, 0)))
    assert crashed.status == OrderStatus.PENDING_PAYMENT
    # The job runs again, several times at once (redelivery, the lease's resend, a second worker).
    outcomes = await asyncio.gather(*(renewals.renew(renewal.id) for _ in range(4)))
    assert {o.status for o in outcomes} == {RenewalStatus.PAID}
    await PlanRenewal.filter(id=renewal.id).update(leased_until=datetime.now(UTC) - timedelta(seconds=1))
    await renewals.resend_due()
    assert (await renewals.renew(renewal.id)).status == RenewalStatus.PAID

    (paid,) = await paid_orders_of(plan_id, 2)
    assert paid.id == crashed.id and paid.total == Decimal("10.00")
    assert await wallet(user_id) == Decimal("80.00")
    assert await Posting.filter(reference=str(paid.id), reason="order.pay").count() == 1
    plan = await ProductPlan.get(id=plan_id)
    assert (plan.period, plan.renewal_state) == (2, RenewalState.IDLE)
    assert plan.next_renewal_at == due + timedelta(days=30)  # periods stay aligned
    # Claiming again finds nothing due; the next period is claimed once it is due.
    await renewals.claim_due()
    assert await PlanRenewal.filter(plan_id=plan_id).count() == 2
    await make_due(plan_id)
    await asyncio.gather(renewals.claim_due(), renewals.claim_due())
    third = await PlanRenewal.get(plan_id=plan_id, period=3)
    await asyncio.gather(renewals.renew(third.id), renewals.renew(third.id))
    assert len(await paid_orders_of(plan_id, 3)) == 1 and await wallet(user_id) == Decimal("70.00")
    assert await PlanRenewal.filter(plan_id=plan_id).count() == 3
    await assert_ledger_consistent()


async def test_a_failed_renewal_is_retried_with_a_notice_each_time_then_lapses(make_client, stack) -> None:  # type: ignore[no-untyped-def]
    product = await plan_product(keys=5)
    client, user_id = await buyer(make_client, "10.00")  # the first period only
    plan_id = pk((await subscribe(client, product, 7))["plan"]["id"])
    await make_due(plan_id)
    renewal = await open_renewal(plan_id, 2)
    schedule = stack.settings.renewal_retry_schedule
    assert schedule == [1.0, 3.0, 5.0]
    for attempt in range(len(schedule)):
        before = datetime.now(UTC)
        await renewals.renew(renewal.id)
        current = await PlanRenewal.get(id=renewal.id)
        assert (current.status, current.attempts) == (RenewalStatus.PENDING, attempt + 1)
        assert "balance" in current.last_error.lower()
        wait = current.next_attempt_at - before
        assert timedelta(days=schedule[attempt]) <= wait < timedelta(days=schedule[attempt], minutes=5)
        # A late duplicate of the job, before the retry is due, changes nothing.
        await renewals.renew(renewal.id)
        assert (await PlanRenewal.get(id=renewal.id)).attempts == attempt + 1
        await PlanRenewal.filter(id=renewal.id).update(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    await renewals.renew(renewal.id)
    assert (await PlanRenewal.get(id=renewal.id)).status == RenewalStatus.LAPSED
    plan = await ProductPlan.get(id=plan_id)
    assert (plan.status, plan.renewal_state) == (PlanStatus.LAPSED, RenewalState.IDLE)
    kinds = await Notification.filter(user_id=user_id, kind__startswith="PLAN_").values_list("kind", flat=True)
    assert sorted(kinds) == ["PLAN_LAPSED"] + ["PLAN_RENEWAL_FAILED"] * 3 + ["PLAN_RENEWED"]
    # No attempt charged anything, each attempt's order was cancelled and its key released.
    attempts = await Order.filter(idempotency_key__startswith=f"plan-{plan_id}-2-")
    assert len(attempts) == 4 and {o.status for o in attempts} == {OrderStatus.CANCELLED}
    assert await wallet(user_id) == Decimal("0.00")
    assert (await inventory.available_counts([product.id])) == [4]

    # The buyer renews by hand: refused without money, done once with it.
    refused = await act(client, "renewPlanNow", {"planId": gid("ProductPlan", plan_id)})
    assert [e["code"] for e in refused["errors"]] == ["INSUFFICIENT_BALANCE"]
    assert (await ProductPlan.get(id=plan_id)).status == PlanStatus.LAPSED
    await fund(await User.get(id=user_id), "10.00")
    renewed = await act(client, "renewPlanNow", {"planId": gid("ProductPlan", plan_id)})
    assert renewed["errors"] == [] and renewed["plan"]["status"] == "ACTIVE" and renewed["plan"]["period"] == 2
    assert len(await paid_orders_of(plan_id, 2)) == 1 and await wallet(user_id) == Decimal("0.00")
    restarted = datetime.fromisoformat(renewed["plan"]["nextRenewalAt"]) - timedelta(days=7)
    assert abs(restarted - datetime.now(UTC)) < timedelta(minutes=5)  # a lapsed plan starts again today


async def test_sold_out_is_a_failed_renewal_too(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await plan_product(keys=1)
    client, _ = await buyer(make_client, "50.00")
    plan_id = pk((await subscribe(client, product, 7))["plan"]["id"])
    await make_due(plan_id)
    renewal = await open_renewal(plan_id, 2)
    outcome = await renewals.renew(renewal.id)
    assert outcome.status == RenewalStatus.PENDING and outcome.error is not None
    assert outcome.error.code.value == "SOLD_OUT"
    assert (await PlanRenewal.get(id=renewal.id)).attempts == 1


async def test_pause_resume_skip_change_and_cancel_do_what_they_say(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await plan_product()
    other = await plan_product(price="4.00", plan_min_days=1, plan_max_days=60)
    client, user_id = await buyer(make_client, "200.00")
    plan = (await subscribe(client, product, 30))["plan"]
    ref = {"planId": plan["id"]}
    plan_id = pk(plan["id"])
    first_due = (await ProductPlan.get(id=plan_id)).next_renewal_at

    paused = await act(client, "pausePlan", ref)
    assert paused["errors"] == [] and paused["plan"]["status"] == "PAUSED"
    assert [e["code"] for e in (await act(client, "pausePlan", ref))["errors"]] == ["INVALID_STATE"]
    # Paused: nothing renews even when the period is over.
    await ProductPlan.filter(id=plan_id).update(paused_at=datetime.now(UTC) - timedelta(days=2))
    await make_due(plan_id)
    await renewals.claim_due()
    assert not await PlanRenewal.filter(plan_id=plan_id, period=2).exists()
    await ProductPlan.filter(id=plan_id).update(next_renewal_at=first_due)
    resumed = await act(client, "resumePlan", ref)
    moved = datetime.fromisoformat(resumed["plan"]["nextRenewalAt"]) - first_due
    assert resumed["plan"]["status"] == "ACTIVE" and timedelta(days=2) <= moved < timedelta(days=2, minutes=5)

    skipped = await act(client, "skipPlanRenewal", ref)
    assert skipped["errors"] == [] and skipped["plan"]["period"] == 2
    assert skipped["plan"]["renewals"][0] == {"period": 2, "status": "SKIPPED"}
    assert datetime.fromisoformat(skipped["plan"]["nextRenewalAt"]) - first_due - moved == timedelta(days=30)
    assert await wallet(user_id) == Decimal("190.00")  # skipping charges nothing

    bad = await act(client, "changePlan", {**ref, "periodDays": 400})
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", "periodDays")]
    changed = await act(client, "changePlan", {**ref, "productId": gid("Product", other.id), "quantity": 2,
                                               "periodDays": 14})
    assert changed["errors"] == [] and changed["plan"]["pendingQuantity"] == 2
    assert changed["plan"]["pendingProduct"] == {"id": gid("Product", other.id)}
    # The change waits for the next period, which is charged for the new product and quantity.
    await make_due(plan_id)
    renewal = await open_renewal(plan_id, 3)
    assert (await renewals.renew(renewal.id)).status == RenewalStatus.PAID
    (order,) = await paid_orders_of(plan_id, 3)
    assert (order.product_id, order.quantity, order.total) == (other.id, 2, Decimal("8.00"))
    now_plan = await ProductPlan.get(id=plan_id)
    assert (now_plan.product_id, now_plan.quantity, now_plan.period_days) == (other.id, 2, 14)
    assert now_plan.pending_product_id is None and now_plan.pending_quantity is None

    off = await act(client, "setPlanAutoRenew", {**ref, "autoRenew": False})
    assert off["errors"] == []
    await make_due(plan_id)
    await renewals.claim_due()
    assert not await PlanRenewal.filter(plan_id=plan_id, period=4).exists()
    await renewals.lapse_unrenewed()
    assert (await ProductPlan.get(id=plan_id)).status == PlanStatus.LAPSED

    cancelled = await act(client, "cancelPlan", ref)
    assert cancelled["errors"] == [] and cancelled["plan"]["status"] == "CANCELLED"
    refused = await act(client, "renewPlanNow", ref)
    assert [e["code"] for e in refused["errors"]] == ["INVALID_STATE"]
    assert await wallet(user_id) == Decimal("182.00")


async def test_cancel_closes_a_retrying_renewal_unpaid_and_others_cannot_touch_a_plan(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await plan_product()
    client, user_id = await buyer(make_client, "10.00")
    plan_id = pk((await subscribe(client, product, 7))["plan"]["id"])
    await make_due(plan_id)
    renewal = await open_renewal(plan_id, 2)
    await renewals.renew(renewal.id)  # fails: no balance
    stranger, _ = await buyer(make_client, "1.00")
    for name in ("pausePlan", "cancelPlan", "renewPlanNow", "skipPlanRenewal"):
        assert [e["code"] for e in (await act(stranger, name, {"planId": gid("ProductPlan", plan_id)}))["errors"]] \
            == ["NOT_FOUND"]
    assert [e["code"] for e in (await act(client, "pausePlan", {"planId": gid("ProductPlan", plan_id)}))["errors"]] \
        == ["INVALID_STATE"]  # a renewal is in progress
    cancelled = await act(client, "cancelPlan", {"planId": gid("ProductPlan", plan_id)})
    assert cancelled["plan"]["status"] == "CANCELLED"
    assert (await PlanRenewal.get(id=renewal.id)).status == RenewalStatus.LAPSED
    await fund(await User.get(id=user_id), "50.00")
    await PlanRenewal.filter(id=renewal.id).update(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    assert (await renewals.renew(renewal.id)).status == RenewalStatus.LAPSED
    assert await paid_orders_of(plan_id, 2) == [] and await wallet(user_id) == Decimal("50.00")


async def test_subscribe_checks_the_product_bounds_and_keeps_nothing_it_cannot_charge(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await plan_product()
    plain = await make_product(await make_merchant(), keys=2)
    client, user_id = await buyer(make_client, "5.00")
    too_short = await subscribe(client, product, 3)
    assert [(e["code"], e["field"]) for e in too_short["errors"]] == [("INVALID_INPUT", "periodDays")]
    not_a_plan = await subscribe(client, plain, 30)
    assert [e["code"] for e in not_a_plan["errors"]] == ["INVALID_STATE"]
    poor = await subscribe(client, product, 30)
    assert [e["code"] for e in poor["errors"]] == ["INSUFFICIENT_BALANCE"] and poor["plan"] is None
    assert not await ProductPlan.filter(buyer_id=user_id).exists()
    assert not await Notification.filter(user_id=user_id, kind__startswith="PLAN_").exists()
    key = uuid.uuid4().hex
    await fund(await User.get(id=user_id), "20.00")
    twice = await asyncio.gather(*(client.gql(SUBSCRIBE, {"input": {
        "productId": gid("Product", product.id), "periodDays": 30, "idempotencyKey": key}}) for _ in range(3)))
    ids = {t["subscribeToProduct"]["plan"]["id"] for t in twice if t["subscribeToProduct"]["plan"]}
    assert len(ids) == 1 and await wallet(user_id) == Decimal("15.00")
    listed = await client.gql("{ myPlans { id status } }")
    assert listed["myPlans"] == [{"id": ids.pop(), "status": "ACTIVE"}]
