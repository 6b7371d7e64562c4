"""Plan renewals: each period of a plan is an ordinary order, priced, reserved, paid from the
wallet, delivered and posted to the ledger by the commerce use cases (orders.create_order,
payments.pay_order), created exactly once per (plan, period).

Exactly once, across crashes, re-runs and concurrent jobs:

* the sweep claims due plans (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite
  has one writer) and writes one ``PlanRenewal`` per (plan, period), unique, with its
  ``renew_plan`` job, in one transaction;
* an attempt's order has the idempotency key ``plan-<plan>-<period>-<attempt>``: a re-run of
  the same attempt finds the same order, and paying it is keyed by the order (escrow holds
  once), so it is charged at most once;
* a failed attempt cancels its unpaid order before the next attempt (a new key) may start,
  and only the job whose conditional update moves the renewal on records the outcome.

A failure (no balance, sold out, product withdrawn) is retried after
``KAMENG_RENEWAL_RETRY_DAYS`` with a notification each time, then the plan lapses. The buyer
may renew by hand at any time (``renew_now``), a lapsed plan too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise import connections

from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.orders import Order, OrderStatus
from models.commerce.payments import PaymentMethod
from models.repurchase.plans import PlanRenewal, PlanStatus, ProductPlan, RenewalState, RenewalStatus
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor
from resolvers.commerce import orders, payments
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import jobs, outbox

#: Orders in these statuses were paid (the period is charged, whatever happened after).
_UNPAID = (OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED)


@dataclass(frozen=True)
class Outcome:
    status: RenewalStatus
    error: UserFacingError | None = None
    order_id: int | None = None


def order_key(plan_id: int, period: int, attempt: int) -> str:
    return f"plan-{plan_id}-{period}-{attempt}"


def _is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


# -- claiming -------------------------------------------------------------------------------


async def claim_due(now: datetime | None = None) -> int:
    """Claim the plans due for renewal, in batches, each with its renewal row and job."""
    total = 0
    while True:
        claimed = await _claim_batch(now or datetime.now(UTC))
        total += claimed
        if claimed < get_settings().renewal_claim_batch:
            return total


async def _claim_batch(now: datetime) -> int:
    settings = get_settings()
    lease = now + timedelta(seconds=settings.renewal_lease_seconds)
    async with outbox.atomic():
        query = ProductPlan.filter(
            status=PlanStatus.ACTIVE, auto_renew=True, renewal_state=RenewalState.IDLE, next_renewal_at__lte=now
        ).order_by("next_renewal_at", "id").limit(settings.renewal_claim_batch)
        if _is_postgres():
            query = query.select_for_update(skip_locked=True)
        # Whole rows: Tortoise drops FOR UPDATE from values_list() queries.
        due = [(plan.id, plan.period) for plan in await query]
        if not due:
            return 0
        ids = [plan_id for plan_id, _ in due]
        # Locked by us (PostgreSQL) or alone (SQLite): the conditional update takes them all.
        await ProductPlan.filter(id__in=ids, renewal_state=RenewalState.IDLE).update(
            renewal_state=RenewalState.RENEWING, updated_at=now
        )
        # A period closed unpaid earlier (the plan was paused or set not to renew while it
        # retried) is reopened: its attempts' orders were all cancelled unpaid.
        closed = await PlanRenewal.filter(plan_id__in=ids, status=RenewalStatus.LAPSED).values_list(
            "id", "plan_id", "period"
        )
        next_period = {plan_id: period + 1 for plan_id, period in due}
        reopen = [rid for rid, plan_id, period in closed if next_period[plan_id] == period]
        if reopen:
            await PlanRenewal.filter(id__in=reopen).update(
                status=RenewalStatus.PENDING, manual=False, next_attempt_at=now, leased_until=lease, updated_at=now
            )
        reopened = {plan_id for _, plan_id, period in closed if next_period[plan_id] == period}
        await PlanRenewal.bulk_create([
            PlanRenewal(plan_id=plan_id, period=period, next_attempt_at=now, leased_until=lease)
            for plan_id, period in next_period.items() if plan_id not in reopened
        ])
        # One open renewal per RENEWING plan: these are the ones just claimed.
        created = await PlanRenewal.filter(plan_id__in=ids, status=RenewalStatus.PENDING).values_list("id", flat=True)
        for renewal_id in created:
            await outbox.enqueue(jobs.renew_plan(renewal_id))
    return len(due)


async def resend_due(now: datetime | None = None) -> int:
    """Send the job again for open renewals whose retry is due or whose job was lost."""
    now = now or datetime.now(UTC)
    lease = now + timedelta(seconds=get_settings().renewal_lease_seconds)
    sent = 0
    async with outbox.atomic():
        due = await PlanRenewal.filter(status=RenewalStatus.PENDING, next_attempt_at__lte=now).limit(
            get_settings().renewal_claim_batch
        ).values_list("id", "leased_until")
        for renewal_id, leased_until in due:
            if leased_until is not None and leased_until > now:
                continue
            if await PlanRenewal.filter(id=renewal_id, status=RenewalStatus.PENDING, leased_until=leased_until).update(
                leased_until=lease
            ):
                await outbox.enqueue(jobs.renew_plan(renewal_id))
                sent += 1
    return sent


async def lapse_unrenewed(now: datetime | None = None) -> int:
    """Plans without auto-renew end when their period does (LAPSED, renewable by hand)."""
    now = now or datetime.now(UTC)
    ended = 0
    for plan in await ProductPlan.filter(
        status=PlanStatus.ACTIVE, auto_renew=False, renewal_state=RenewalState.IDLE, next_renewal_at__lte=now
    ).limit(get_settings().renewal_claim_batch):
        async with outbox.atomic():
            if await ProductPlan.filter(
                id=plan.id, status=PlanStatus.ACTIVE, auto_renew=False, renewal_state=RenewalState.IDLE
            ).update(status=PlanStatus.LAPSED, ended_at=now, updated_at=now):
                ended += 1
                await notifications.notify(
                    plan.buyer_id, "PLAN_ENDED", "Your plan has ended", "Renew it at any time.",
                    {"planId": plan.id}, dedupe_key=f"plan:{plan.id}:ended:{plan.period}",
                )
    return ended


async def sweep() -> None:
    await claim_due()
    await resend_due()
    await lapse_unrenewed()


# -- one renewal ----------------------------------------------------------------------------


async def renew(renewal_id: int, *, now_please: bool = False) -> Outcome:
    """Charge one period of a plan (the ``renew_plan`` job, and a renewal by hand, which
    does not wait for the retry time: ``now_please``). Safe to run twice, or concurrently:
    see the module docstring."""
    renewal = await PlanRenewal.filter(id=renewal_id).first()
    if renewal is None:
        return Outcome(RenewalStatus.LAPSED)
    if renewal.status != RenewalStatus.PENDING:
        return Outcome(renewal.status, order_id=renewal.order_id)
    if renewal.next_attempt_at > datetime.now(UTC) and not now_please:
        return Outcome(RenewalStatus.PENDING)  # a late duplicate of a job: the retry is not due yet
    plan = await ProductPlan.get(id=renewal.plan_id)
    if not renewal.manual and (plan.status != PlanStatus.ACTIVE or not plan.auto_renew):
        await _close(renewal, plan, "the plan was paused, cancelled or set not to renew")
        return Outcome(RenewalStatus.LAPSED)
    buyer = await User.get(id=plan.buyer_id)
    actor = Actor(user=buyer)
    request = orders.NewOrder(
        product_id=plan.pending_product_id or plan.product_id,
        quantity=plan.pending_quantity or plan.quantity,
        idempotency_key=order_key(plan.id, renewal.period, renewal.attempts),
        topup_account=plan.topup_account or None,
    )
    order: Order | None = None
    failure: UserFacingError | None = None
    try:
        order = await orders.create_order(actor, request)
        if order.status == OrderStatus.PENDING_PAYMENT:
            await payments.pay_order(actor, order.id, PaymentMethod.WALLET)
    except UserFacingError as error:
        failure = error
    if order is None:
        # A crash may have left this attempt's order behind with another product or quantity.
        order = await Order.filter(idempotency_scope=f"u:{buyer.id}", idempotency_key=request.idempotency_key).first()
    if order is not None:
        order = await Order.get(id=order.id)
        if order.status == OrderStatus.PENDING_PAYMENT:
            await _cancel_unpaid(actor, order)
            order = await Order.get(id=order.id)
        if order.status == OrderStatus.PENDING_PAYMENT:
            return Outcome(RenewalStatus.PENDING, failure)  # undecided: the lease sends it again
        if order.status not in _UNPAID:
            return await _succeeded(renewal, plan, order)
    failure = failure or UserFacingError(ErrorCode.INVALID_STATE, "The renewal could not be paid.")
    return await _failed(renewal, plan, failure)


async def _cancel_unpaid(actor: Actor, order: Order) -> None:
    try:
        await orders.cancel_order(actor, order.id)
    except UserFacingError:
        pass  # paid (or cancelled) meanwhile: the caller reads what it became


async def _succeeded(renewal: PlanRenewal, plan: ProductPlan, order: Order) -> Outcome:
    now = datetime.now(UTC)
    async with outbox.atomic():
        # PENDING, or LAPSED by a cancellation racing a payment: the money moved, the period is paid.
        moved = await PlanRenewal.filter(
            id=renewal.id, status__in=[RenewalStatus.PENDING, RenewalStatus.LAPSED]
        ).update(status=RenewalStatus.PAID, order_id=order.id, leased_until=None, updated_at=now)
        if moved != 1:
            current = await PlanRenewal.get(id=renewal.id)
            return Outcome(current.status, order_id=current.order_id)
        on_time = plan.status == PlanStatus.ACTIVE and renewal.attempts == 0
        start = plan.next_renewal_at if on_time else max(now, plan.next_renewal_at)
        days = plan.pending_period_days or plan.period_days
        changes = {
            "period": renewal.period, "next_renewal_at": start + timedelta(days=days), "period_days": days,
            "product_id": order.product_id, "quantity": order.quantity, "pending_product_id": None,
            "pending_quantity": None, "pending_period_days": None, "renewal_state": RenewalState.IDLE,
            "updated_at": now,
        }
        if plan.status == PlanStatus.LAPSED:
            changes.update(status=PlanStatus.ACTIVE, ended_at=None)
        await ProductPlan.filter(id=plan.id, period=renewal.period - 1).update(**changes)
        await notifications.notify(
            plan.buyer_id, "PLAN_RENEWED", f"Your plan is renewed: order {order.order_no}",
            f"Paid {order.total} {order.currency}; the next renewal is due in {days} days.",
            {"planId": plan.id, "orderId": order.id, "period": renewal.period},
            dedupe_key=f"plan:{plan.id}:renewed:{renewal.period}",
        )
    return Outcome(RenewalStatus.PAID, order_id=order.id)


async def _failed(renewal: PlanRenewal, plan: ProductPlan, failure: UserFacingError) -> Outcome:
    now = datetime.now(UTC)
    schedule = get_settings().renewal_retry_schedule
    attempt = renewal.attempts
    reason = failure.message[:200]
    # A renewal by hand (or a plan's first period) is tried once: the buyer sees the error.
    final = attempt >= len(schedule) or renewal.manual
    async with outbox.atomic():
        query = PlanRenewal.filter(id=renewal.id, status=RenewalStatus.PENDING, attempts=attempt)
        if not final:
            retry_at = now + timedelta(days=schedule[attempt])
            if not await query.update(attempts=attempt + 1, next_attempt_at=retry_at, leased_until=None,
                                      last_error=reason, updated_at=now):
                return Outcome((await PlanRenewal.get(id=renewal.id)).status, failure)
            await notifications.notify(
                plan.buyer_id, "PLAN_RENEWAL_FAILED", "Your plan could not be renewed",
                f"{reason} We will try again on {retry_at:%Y-%m-%d}; you can also renew by hand now.",
                {"planId": plan.id, "period": renewal.period, "retryAt": retry_at.isoformat()},
                dedupe_key=f"plan:{plan.id}:{renewal.period}:failed:{attempt}",
            )
            return Outcome(RenewalStatus.PENDING, failure)
        if not await query.update(status=RenewalStatus.LAPSED, attempts=attempt + 1, leased_until=None,
                                  last_error=reason, updated_at=now):
            return Outcome((await PlanRenewal.get(id=renewal.id)).status, failure)
        plan_changes: dict[str, object] = {"renewal_state": RenewalState.IDLE, "updated_at": now}
        if plan.status == PlanStatus.ACTIVE and not renewal.manual:
            plan_changes.update(status=PlanStatus.LAPSED, ended_at=now)
        await ProductPlan.filter(id=plan.id).update(**plan_changes)
        if not renewal.manual:
            await notifications.notify(
                plan.buyer_id, "PLAN_LAPSED", "Your plan has lapsed",
                f"{reason} Renew it by hand at any time.", {"planId": plan.id, "period": renewal.period},
                dedupe_key=f"plan:{plan.id}:{renewal.period}:lapsed",
            )
    return Outcome(RenewalStatus.LAPSED, failure)


async def _close(renewal: PlanRenewal, plan: ProductPlan, reason: str) -> None:
    """An open renewal of a plan that no longer renews: closed unpaid (its attempts'
    orders were cancelled before each next attempt, so nothing is charged)."""
    now = datetime.now(UTC)
    async with outbox.atomic():
        if await PlanRenewal.filter(id=renewal.id, status=RenewalStatus.PENDING).update(
            status=RenewalStatus.LAPSED, leased_until=None, last_error=reason, updated_at=now
        ):
            await ProductPlan.filter(id=plan.id).update(renewal_state=RenewalState.IDLE, updated_at=now)


async def open_renewal(plan: ProductPlan, *, manual: bool) -> PlanRenewal | None:
    """The plan's open renewal (period + 1): the one in progress, or a new one claimed now
    (a LAPSED one of that period is reopened: its orders were all cancelled unpaid). Inside
    a transaction. None if the plan is claimed by someone else right now."""
    now = datetime.now(UTC)
    period = plan.period + 1
    if plan.renewal_state == RenewalState.RENEWING:
        return await PlanRenewal.filter(plan_id=plan.id, period=period, status=RenewalStatus.PENDING).first()
    if not await ProductPlan.filter(id=plan.id, renewal_state=RenewalState.IDLE, period=plan.period).update(
        renewal_state=RenewalState.RENEWING, updated_at=now
    ):
        return None
    existing = await PlanRenewal.filter(plan_id=plan.id, period=period).first()
    if existing is None:
        return await PlanRenewal.create(plan_id=plan.id, period=period, next_attempt_at=now, manual=manual,
                                        leased_until=now + timedelta(seconds=get_settings().renewal_lease_seconds))
    if existing.status != RenewalStatus.LAPSED:
        return None
    await PlanRenewal.filter(id=existing.id, status=RenewalStatus.LAPSED).update(
        status=RenewalStatus.PENDING, manual=manual, next_attempt_at=now, updated_at=now
    )
    return await PlanRenewal.get(id=existing.id)
