"""Product plans, the buyer's side: subscribe with a period of their choice within the
product's bounds, a quantity and auto-renew on or off; pause and resume (the next renewal
moves by the pause), skip the next renewal, change product, quantity or period (from the
next period), cancel, and renew by hand. The renewals themselves: renewals.py.

Every change is a conditional update on the state read, so two concurrent requests cannot
both apply. A plan with a renewal in progress (``RENEWING``: claimed, or failed and waiting
for its retry) can be cancelled, changed or renewed by hand, not paused or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from models.commerce.catalog import DeliveryKind, Product, ProductStatus
from models.commerce.orders import Order
from models.repurchase.plans import PlanRenewal, PlanStatus, ProductPlan, RenewalState, RenewalStatus
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.repurchase import renewals
from subscriptions import outbox

MAX_LISTED = 100


@dataclass(frozen=True)
class NewPlan:
    product_id: int
    period_days: int
    quantity: int
    idempotency_key: str
    auto_renew: bool = True
    topup_account: str | None = None


async def _plannable(product_id: int, field: str = "productId") -> Product:
    product = await Product.filter(id=product_id).first()
    if product is None or product.status != ProductStatus.ACTIVE:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", field)
    if product.plan_min_days is None or product.plan_max_days is None:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This product is not sold as a plan.", field)
    return product


def _check_terms(product: Product, period_days: int, quantity: int) -> None:
    if not product.plan_min_days <= period_days <= product.plan_max_days:  # type: ignore[operator]
        raise invalid("periodDays", f"Choose a period of {product.plan_min_days} to {product.plan_max_days} days.")
    if not product.min_quantity <= quantity <= product.max_quantity:
        raise invalid("quantity", f"Choose {product.min_quantity} to {product.max_quantity} units.")


async def subscribe(actor: Actor, request: NewPlan) -> ProductPlan:
    """Start a plan: its first period is charged now, through the same renewal path. The
    same idempotency key returns the same plan. On a failed first charge (no balance, sold
    out) the plan is not kept and the error says why."""
    user = require(actor)
    key = request.idempotency_key.strip()
    if not 8 <= len(key) <= 80:
        raise invalid("idempotencyKey", "The idempotency key must be 8 to 80 characters.")
    existing = await ProductPlan.filter(buyer_id=user.id, idempotency_key=key).first()
    if existing is not None:
        return existing
    product = await _plannable(request.product_id)
    _check_terms(product, request.period_days, request.quantity)
    topup = (request.topup_account or "").strip()
    if product.delivery_kind == DeliveryKind.DIRECT_TOPUP and not 1 <= len(topup) <= 120:
        raise invalid("topupAccount", "Give the account to top up (at most 120 characters).")
    now = datetime.now(UTC)
    try:
        async with outbox.atomic():
            plan = await ProductPlan.create(
                buyer_id=user.id, product_id=product.id, quantity=request.quantity, period_days=request.period_days,
                auto_renew=request.auto_renew, topup_account=topup, idempotency_key=key, next_renewal_at=now,
            )
            renewal = await renewals.open_renewal(plan, manual=True)
    except IntegrityError:
        existing = await ProductPlan.filter(buyer_id=user.id, idempotency_key=key).first()
        if existing is None:
            raise
        return existing
    assert renewal is not None
    outcome = await renewals.renew(renewal.id, now_please=True)
    if outcome.status != RenewalStatus.PAID:
        await ProductPlan.filter(id=plan.id).delete()  # its renewal row goes with it (cascade)
        raise outcome.error or UserFacingError(ErrorCode.INVALID_STATE, "The first period could not be paid.")
    return await ProductPlan.get(id=plan.id)


async def own_plan(actor: Actor, plan_id: int) -> ProductPlan:
    user = require(actor)
    plan = await ProductPlan.filter(id=plan_id, buyer_id=user.id).first()
    if plan is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such plan.", "planId")
    return plan


async def _update(plan: ProductPlan, expected: dict[str, Any], message: str, **changes: Any) -> ProductPlan:
    changes["updated_at"] = datetime.now(UTC)
    if await ProductPlan.filter(id=plan.id, **expected).update(**changes) != 1:
        raise UserFacingError(ErrorCode.INVALID_STATE, message, "planId")
    return await ProductPlan.get(id=plan.id)


def _idle_active(plan: ProductPlan, what: str) -> dict[str, Any]:
    if plan.status != PlanStatus.ACTIVE:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"Only an active plan can be {what}.", "planId")
    if plan.renewal_state != RenewalState.IDLE:
        raise UserFacingError(
            ErrorCode.INVALID_STATE, f"A renewal is in progress: renew by hand or cancel; it cannot be {what} now.",
            "planId",
        )
    return {"status": PlanStatus.ACTIVE, "renewal_state": RenewalState.IDLE, "period": plan.period}


async def pause(actor: Actor, plan_id: int) -> ProductPlan:
    plan = await own_plan(actor, plan_id)
    expected = _idle_active(plan, "paused")
    return await _update(plan, expected, "The plan changed meanwhile; try again.",
                         status=PlanStatus.PAUSED, paused_at=datetime.now(UTC))


async def resume(actor: Actor, plan_id: int) -> ProductPlan:
    """The next renewal moves by as long as the plan was paused."""
    plan = await own_plan(actor, plan_id)
    if plan.status != PlanStatus.PAUSED or plan.paused_at is None:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Only a paused plan can be resumed.", "planId")
    paused_for = datetime.now(UTC) - plan.paused_at
    return await _update(plan, {"status": PlanStatus.PAUSED, "paused_at": plan.paused_at},
                         "The plan changed meanwhile; try again.", status=PlanStatus.ACTIVE, paused_at=None,
                         next_renewal_at=plan.next_renewal_at + paused_for)


async def skip_next(actor: Actor, plan_id: int) -> ProductPlan:
    """The next period is not charged (nor delivered): its renewal row is SKIPPED, so it can
    never be charged later, and the next charge comes one period later."""
    plan = await own_plan(actor, plan_id)
    expected = _idle_active(plan, "skipped")
    async with outbox.atomic():
        plan = await _update(plan, expected, "The plan changed meanwhile; try again.", period=plan.period + 1,
                             next_renewal_at=plan.next_renewal_at + timedelta(days=plan.period_days))
        try:
            async with outbox.atomic():
                await PlanRenewal.create(plan_id=plan.id, period=plan.period, status=RenewalStatus.SKIPPED,
                                         next_attempt_at=datetime.now(UTC))
        except IntegrityError:
            raise UserFacingError(ErrorCode.INVALID_STATE, "This period has been renewed already.", "planId") from None
    return plan


async def change(
    actor: Actor, plan_id: int, *, product_id: int | None = None, quantity: int | None = None,
    period_days: int | None = None,
) -> ProductPlan:
    """Change product, quantity or period length from the next period on (the current one
    is paid already). Checked against the new product's bounds now, charged at renewal."""
    plan = await own_plan(actor, plan_id)
    if plan.status == PlanStatus.CANCELLED:
        raise UserFacingError(ErrorCode.INVALID_STATE, "A cancelled plan cannot be changed.", "planId")
    if product_id is None and quantity is None and period_days is None:
        raise invalid("planId", "Give a product, a quantity or a period to change.")
    target_id = product_id or plan.pending_product_id or plan.product_id
    product = await _plannable(target_id)
    if product_id is not None and product.delivery_kind == DeliveryKind.DIRECT_TOPUP and not plan.topup_account:
        raise invalid("productId", "A top-up product needs an account to top up: start a new plan for it.")
    new_quantity = quantity or plan.pending_quantity or plan.quantity
    new_days = period_days or plan.pending_period_days or plan.period_days
    _check_terms(product, new_days, new_quantity)
    return await _update(
        plan, {"status": plan.status, "updated_at": plan.updated_at}, "The plan changed meanwhile; try again.",
        pending_product_id=None if product.id == plan.product_id else product.id,
        pending_quantity=None if new_quantity == plan.quantity else new_quantity,
        pending_period_days=None if new_days == plan.period_days else new_days,
    )


async def set_auto_renew(actor: Actor, plan_id: int, on: bool) -> ProductPlan:
    """Off: the plan ends with its period (a renewal offer comes before). A renewal already
    retrying stops at its next attempt."""
    plan = await own_plan(actor, plan_id)
    if plan.status not in (PlanStatus.ACTIVE, PlanStatus.PAUSED):
        raise UserFacingError(ErrorCode.INVALID_STATE, "Renew the plan by hand first.", "planId")
    return await _update(plan, {"status": plan.status}, "The plan changed meanwhile; try again.", auto_renew=on)


async def cancel(actor: Actor, plan_id: int) -> ProductPlan:
    """For good: no renewal from now; a renewal retrying is closed unpaid. What was paid stays paid."""
    plan = await own_plan(actor, plan_id)
    if plan.status == PlanStatus.CANCELLED:
        return plan
    now = datetime.now(UTC)
    async with outbox.atomic():
        plan = await _update(plan, {"status": plan.status}, "The plan changed meanwhile; try again.",
                             status=PlanStatus.CANCELLED, ended_at=now, renewal_state=RenewalState.IDLE)
        await PlanRenewal.filter(plan_id=plan.id, status=RenewalStatus.PENDING).update(
            status=RenewalStatus.LAPSED, leased_until=None, last_error="cancelled by the buyer", updated_at=now
        )
    return plan


async def renew_now(actor: Actor, plan_id: int) -> tuple[ProductPlan, int | None]:
    """Renew by hand: the renewal in progress is tried now, or the next period is charged now
    (an active plan's runs on from its current one; a lapsed plan starts again today).
    Returns the plan and the renewal's order; the payment's error if it fails."""
    plan = await own_plan(actor, plan_id)
    if plan.status == PlanStatus.CANCELLED:
        raise UserFacingError(ErrorCode.INVALID_STATE, "A cancelled plan cannot be renewed; start a new one.", "planId")
    if plan.status == PlanStatus.PAUSED:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Resume the plan first.", "planId")
    await _plannable(plan.pending_product_id or plan.product_id, "planId")
    async with outbox.atomic():
        renewal = await renewals.open_renewal(plan, manual=True)
    if renewal is None:
        raise UserFacingError(ErrorCode.INVALID_STATE, "The plan is being renewed right now; look again shortly.",
                              "planId")
    outcome = await renewals.renew(renewal.id, now_please=True)
    if outcome.status != RenewalStatus.PAID:
        raise outcome.error or UserFacingError(ErrorCode.INVALID_STATE, "The renewal is not settled yet.", "planId")
    return await ProductPlan.get(id=plan.id), outcome.order_id


async def list_for(actor: Actor, status: PlanStatus | None = None) -> list[ProductPlan]:
    user = require(actor)
    query = ProductPlan.filter(buyer_id=user.id)
    if status is not None:
        query = query.filter(status=status)
    return list(await query.order_by("-id").limit(MAX_LISTED))


async def renewals_of(plan_ids: list[int]) -> list[list[PlanRenewal]]:
    """Batch load: every plan's renewals, newest period first."""
    grouped: dict[int, list[PlanRenewal]] = {i: [] for i in plan_ids}
    for renewal in await PlanRenewal.filter(plan_id__in=plan_ids).order_by("-period"):
        grouped[renewal.plan_id].append(renewal)
    return [grouped[i] for i in plan_ids]


async def get_orders(order_ids: list[int]) -> list[Order | None]:
    """Batch load for DataLoaders: orders by id, in the order asked (callers show only the
    orders of the viewer's own plans)."""
    found = {o.id: o for o in await Order.filter(id__in=order_ids)}
    return [found.get(i) for i in order_ids]
