"""Product plans in the graph: the ProductPlan type (not `Subscription`, GraphQL's root of
live streams), the buyer's plans, and subscribe, pause, resume, skip, change, auto-renew,
cancel and renew-by-hand mutations (resolvers/repurchase/plans.py decides)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.relay import GlobalID

from models.repurchase.plans import PlanRenewal as PlanRenewalModel
from models.repurchase.plans import PlanStatus as PlanStatusValue
from models.repurchase.plans import ProductPlan as ProductPlanModel
from models.repurchase.plans import RenewalStatus as RenewalStatusValue
from resolvers.repurchase import plans
from schema.base import UserError, decode_id, describe_values, errors_field, in_graph, mutation
from schema.commerce.catalog import Product
from schema.commerce.orders import Order
from schema.context import Info

PlanStatus = describe_values(
    strawberry.enum(PlanStatusValue, name="PlanStatus", description="Where a product plan is in its life."),
    ACTIVE="Renews at `nextRenewalAt` (auto-renew on), or ends then (off).",
    PAUSED="Not renewing; resuming moves the next renewal by the pause.",
    CANCELLED="Cancelled by the buyer; no more renewals.",
    LAPSED="Ended unrenewed (its retries used up, or auto-renew off); `renewPlanNow` starts it again.",
)
PlanRenewalStatus = describe_values(
    strawberry.enum(RenewalStatusValue, name="PlanRenewalStatus", description="What became of one period."),
    PENDING="Being charged, or failed and waiting for its next attempt.",
    PAID="Charged: `order` is its order.",
    SKIPPED="Skipped by the buyer: never charged.",
    LAPSED="Not charged: retries used up, or the plan stopped renewing meanwhile.",
)


@strawberry.type(description="One period of a plan and its renewal.")
class PlanRenewal:
    period: int = strawberry.field(description="The period's number (1 is the first, paid when subscribing).")
    status: PlanRenewalStatus = strawberry.field(description="Charged, skipped, pending or lapsed.")
    attempts: int = strawberry.field(description="Failed attempts so far.")
    next_attempt_at: datetime = strawberry.field(description="When a PENDING renewal is tried (again).")
    last_error: str | None = strawberry.field(description="Why the last attempt failed; null if none did.")
    _order_id: strawberry.Private[int | None]

    @strawberry.field(description="The period's order, once charged.")
    async def order(self, info: Info) -> Order | None:
        if self._order_id is None:
            return None
        return Order.from_model(await info.context.loaders.plan_order.load(self._order_id))

    @classmethod
    def from_model(cls, r: PlanRenewalModel) -> PlanRenewal:
        return cls(period=r.period, status=r.status, attempts=r.attempts, next_attempt_at=r.next_attempt_at,
                   last_error=r.last_error or None, _order_id=r.order_id)


@in_graph  # notification payloads build it by name (schema/accounts/notification_payloads_loop.py)
@strawberry.type(description="A buyer's plan of a product (a flexible product subscription): each period is an "
                             "ordinary order, paid from the wallet.")
class ProductPlan:
    id: strawberry.ID = strawberry.field(description="The plan's global ID.")
    status: PlanStatus = strawberry.field(description="Active, paused, cancelled or lapsed.")
    quantity: int = strawberry.field(description="Units per period.")
    period_days: int = strawberry.field(description="Days per period, within the product's plan bounds.")
    auto_renew: bool = strawberry.field(description="Renews by itself at `nextRenewalAt` (else ends then).")
    period: int = strawberry.field(description="The last period paid or skipped (0 before the first).")
    next_renewal_at: datetime = strawberry.field(description="The current period ends, and the next is due, then.")
    renewing: bool = strawberry.field(description="A renewal is in progress (claimed, or retrying after a failure).")
    paused_at: datetime | None = strawberry.field(description="Since when it is paused; null if not.")
    pending_quantity: int | None = strawberry.field(description="Quantity from the next period; null: unchanged.")
    pending_period_days: int | None = strawberry.field(description="Period from the next period; null: unchanged.")
    ended_at: datetime | None = strawberry.field(description="When it was cancelled or lapsed; null if running.")
    created_at: datetime = strawberry.field(description="When the buyer subscribed.")
    _model: strawberry.Private[ProductPlanModel]

    @strawberry.field(description="The product renewed.")
    async def product(self, info: Info) -> Product:
        return Product.from_model(await info.context.loaders.product.load(self._model.product_id))

    @strawberry.field(description="The product from the next period, if the buyer changed it; null: unchanged.")
    async def pending_product(self, info: Info) -> Product | None:
        if self._model.pending_product_id is None:
            return None
        return Product.from_model(await info.context.loaders.product.load(self._model.pending_product_id))

    @strawberry.field(description="Every period's renewal, newest first.")
    async def renewals(self, info: Info) -> list[PlanRenewal]:
        rows = await info.context.loaders.plan_renewals.load(self._model.id)
        return [PlanRenewal.from_model(r) for r in rows]

    @classmethod
    def from_model(cls, p: ProductPlanModel) -> ProductPlan:
        return cls(
            id=strawberry.ID(str(GlobalID("ProductPlan", str(p.id)))), status=p.status, quantity=p.quantity,
            period_days=p.period_days, auto_renew=p.auto_renew, period=p.period, next_renewal_at=p.next_renewal_at,
            renewing=p.renewal_state.value == "RENEWING", paused_at=p.paused_at, pending_quantity=p.pending_quantity,
            pending_period_days=p.pending_period_days, ended_at=p.ended_at, created_at=p.created_at, _model=p,
        )


@strawberry.input(description="A plan to start: its first period is charged now from the wallet.")
class SubscribeToProductInput:
    product_id: strawberry.ID = strawberry.field(description="The product's global ID (one with plan bounds).")
    period_days: int = strawberry.field(description="Days per period, within the product's `planMinDays`-`planMaxDays`.")
    quantity: int = strawberry.field(default=1, description="Units per period.")
    auto_renew: bool = strawberry.field(default=True, description="Renew by itself at each period's end.")
    idempotency_key: str = strawberry.field(description="8-80 characters; the same key returns the same plan.")
    topup_account: str | None = strawberry.field(default=None, description="DIRECT_TOPUP products: the account.")


@strawberry.input(description="A plan to act on.")
class PlanInput:
    plan_id: strawberry.ID = strawberry.field(description="The plan's global ID.")


@strawberry.input(description="What to change from the next period on; null fields stay as they are.")
class ChangePlanInput:
    plan_id: strawberry.ID = strawberry.field(description="The plan's global ID.")
    product_id: strawberry.ID | None = strawberry.field(default=None, description="Another plan product.")
    quantity: int | None = strawberry.field(default=None, description="Units per period.")
    period_days: int | None = strawberry.field(default=None, description="Days per period.")


@strawberry.input(description="Auto-renew on or off.")
class SetPlanAutoRenewInput:
    plan_id: strawberry.ID = strawberry.field(description="The plan's global ID.")
    auto_renew: bool = strawberry.field(description="On: renews by itself; off: ends with its period.")


@strawberry.type(description="Result of a plan mutation.")
class ProductPlanPayload:
    errors: list[UserError] = errors_field()
    plan: ProductPlan | None = strawberry.field(default=None, description="The plan as it is now.")
    order: Order | None = strawberry.field(
        default=None, description="The order this mutation paid (subscribe, renew by hand); null otherwise."
    )


def _plan_id(raw: strawberry.ID) -> int:
    return decode_id(raw, "ProductPlan", "planId")


async def _payload(info: Info, plan: ProductPlanModel, order_id: int | None = None) -> ProductPlanPayload:
    order = await info.context.loaders.plan_order.load(order_id) if order_id is not None else None
    return ProductPlanPayload(plan=ProductPlan.from_model(plan), order=Order.from_model(order) if order else None)


@strawberry.type(description="The viewer's product plans.")
class PlanQueries:
    @strawberry.field(description="The signed-in buyer's plans, newest first (100 at most).")
    async def my_plans(
        self, info: Info,
        status: Annotated[PlanStatus | None, strawberry.argument(description="Only plans in this status.")] = None,
    ) -> list[ProductPlan]:
        return [ProductPlan.from_model(p) for p in await plans.list_for(info.context.actor, status)]


@strawberry.type(description="Mutations of product plans.")
class PlanMutations:
    @mutation(description="Subscribe to a product: a period of your choice within its bounds, a quantity, auto-renew "
                          "on or off. The first period is charged now from the wallet; nothing is kept if it fails.")
    async def subscribe_to_product(self, info: Info, input: SubscribeToProductInput) -> ProductPlanPayload:
        plan = await plans.subscribe(info.context.actor, plans.NewPlan(
            product_id=decode_id(input.product_id, "Product", "productId"), period_days=input.period_days,
            quantity=input.quantity, idempotency_key=input.idempotency_key, auto_renew=input.auto_renew,
            topup_account=input.topup_account,
        ))
        first = await plans.renewals_of([plan.id])
        order_id = next((r.order_id for r in first[0] if r.period == 1), None)
        return await _payload(info, plan, order_id)

    @mutation(description="Pause a plan: nothing renews until it is resumed.")
    async def pause_plan(self, info: Info, input: PlanInput) -> ProductPlanPayload:
        return await _payload(info, await plans.pause(info.context.actor, _plan_id(input.plan_id)))

    @mutation(description="Resume a paused plan: the next renewal moves by as long as it was paused.")
    async def resume_plan(self, info: Info, input: PlanInput) -> ProductPlanPayload:
        return await _payload(info, await plans.resume(info.context.actor, _plan_id(input.plan_id)))

    @mutation(description="Skip the next renewal: that period is never charged; the next charge is a period later.")
    async def skip_plan_renewal(self, info: Info, input: PlanInput) -> ProductPlanPayload:
        return await _payload(info, await plans.skip_next(info.context.actor, _plan_id(input.plan_id)))

    @mutation(description="Change product, quantity or period length from the next period on.")
    async def change_plan(self, info: Info, input: ChangePlanInput) -> ProductPlanPayload:
        product_id = decode_id(input.product_id, "Product", "productId") if input.product_id is not None else None
        plan = await plans.change(info.context.actor, _plan_id(input.plan_id), product_id=product_id,
                                  quantity=input.quantity, period_days=input.period_days)
        return await _payload(info, plan)

    @mutation(description="Turn auto-renew on or off (off: the plan ends with its period, after a renewal offer).")
    async def set_plan_auto_renew(self, info: Info, input: SetPlanAutoRenewInput) -> ProductPlanPayload:
        plan = await plans.set_auto_renew(info.context.actor, _plan_id(input.plan_id), input.auto_renew)
        return await _payload(info, plan)

    @mutation(description="Cancel a plan for good; what was paid stays paid, a retrying renewal is closed unpaid.")
    async def cancel_plan(self, info: Info, input: PlanInput) -> ProductPlanPayload:
        return await _payload(info, await plans.cancel(info.context.actor, _plan_id(input.plan_id)))

    @mutation(description="Renew by hand now: the renewal in progress, or the next period (a lapsed plan starts "
                          "again today). Charged from the wallet, once.")
    async def renew_plan_now(self, info: Info, input: PlanInput) -> ProductPlanPayload:
        plan, order_id = await plans.renew_now(info.context.actor, _plan_id(input.plan_id))
        return await _payload(info, plan, order_id)
