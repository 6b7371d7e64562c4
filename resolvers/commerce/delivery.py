"""Delivery: a paid order becomes a delivered one, exactly once; or it fails and is refunded.

``deliver_order`` is sent through the outbox by the payment's own transaction, and may run
more than once (at-least-once brokers, the stuck-order sweep, a worker killed mid-way): each
step is conditional on the order's status, and the keys are bound in the same transaction
that marks the order DELIVERED, so a re-run delivers the same keys, never more.

By kind: CARD_KEY sells the reserved keys at once; DIRECT_TOPUP calls the merchant's
supplier (``SupplierUnavailable`` propagates so that the job is retried with backoff, then
``give_up`` refunds); MANUAL waits for the merchant's ``fulfill_order`` until a deadline,
after which the overdue sweep refunds.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from kameng.settings import get_settings
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.merchants import Merchant
from models.commerce.orders import ORDER_WITH_PRODUCT, Order, OrderStatus
from resolvers.accounts import notifications
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce import inventory, orders, settlement, suppliers
from resolvers.commerce.access import actor_label
from resolvers.commerce.suppliers import SupplierRefused
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import jobs, outbox

log = logging.getLogger(__name__)


class NotEnoughKeys(Exception):
    pass


async def deliver_order(order_id: int) -> None:
    """Deliver a paid order (idempotent). Raises ``SupplierUnavailable`` to be retried."""
    order = await ORDER_WITH_PRODUCT.first(order_id)
    if order is None or order.awaiting_claim:
        return  # a gift is delivered when its recipient claims it (resolvers/commerce/gifts.py)
    product: Product = order.product
    if product.delivery_kind == DeliveryKind.CARD_KEY:
        if order.status in (OrderStatus.PAID, OrderStatus.DELIVERING):
            await _deliver_card_keys(order)
        return
    if order.status == OrderStatus.PAID:
        async with outbox.atomic():
            await orders.transition(order, OrderStatus.DELIVERING, note="delivery started")
        order = await Order.get(id=order_id)
    if order.status != OrderStatus.DELIVERING:
        return  # delivered, failed or refunded already: nothing to do again
    if product.delivery_kind == DeliveryKind.DIRECT_TOPUP:
        await _deliver_topup(order, product)
    else:
        await _await_manual(order, product)


async def _deliver_card_keys(order: Order) -> None:
    """PAID -> DELIVERING -> DELIVERED in one transaction: the sale waits on nothing outside the
    database, so DELIVERING need not be committed on its own (one commit and one publication
    per order instead of two; the buyer still sees both events, in order). Of two runs of one
    order, the second's conditional update waits for the first and finds it moved on."""
    try:
        async with outbox.atomic():
            if order.status == OrderStatus.PAID and not await orders.transition(
                order, OrderStatus.DELIVERING, note="delivery started"
            ):
                return  # another run moved it first
            now = datetime.now(UTC)
            sold = await inventory.sell_keys(order, now)
            if sold != order.quantity:
                raise NotEnoughKeys(f"order {order.id}: {sold} of {order.quantity} keys")
            if not await orders.transition(order, OrderStatus.DELIVERED, note="card keys delivered", delivered_at=now):
                return  # another run finished it first: its keys are the ones sold, this run changed none
            await inventory.count_sold(order)
    except NotEnoughKeys as exc:
        log.warning("delivery: %s", exc)
        await fail_and_refund(order.id, "out of stock at delivery")


async def _deliver_topup(order: Order, product: Product) -> None:
    try:
        receipt = await call_supplier(await suppliers.target_for(product), order, product)
    except SupplierRefused as exc:
        await fail_and_refund(order.id, f"supplier refused: {exc}"[:300])
        return
    # SupplierUnavailable propagates: the job retries with backoff, then give_up refunds.
    async with outbox.atomic():
        if await orders.transition(
            order, OrderStatus.DELIVERED, note=f"topped up (supplier ref {receipt})"[:300], delivered_at=datetime.now(UTC)
        ):
            await inventory.count_sold(order)


async def call_supplier(target: suppliers.Target, order: Order, product: Product) -> str:
    """POST the top-up to the configured supplier (``suppliers.post``, signed with its
    secret); the order number is the idempotency key."""
    body = {
        "reference": order.order_no,
        "account": order.topup_account,
        "product": str(product.id),
        "quantity": order.quantity,
        "amount": str(order.total),
    }
    data = await suppliers.post(target, body, idempotency_key=order.order_no)
    return str(data.get("supplierRef", ""))[:80]


async def _await_manual(order: Order, product: Product) -> None:
    """MANUAL products: the merchant fulfils by hand before the deadline (fulfill_order)."""
    if order.delivery_due_at is not None:
        return
    due = datetime.now(UTC) + timedelta(minutes=product.delivery_promise_minutes)
    async with outbox.atomic():
        updated = await Order.filter(id=order.id, delivery_due_at=None).update(delivery_due_at=due)
        if updated:
            merchant = await Merchant.get(id=order.merchant_id)
            await notifications.notify(
                merchant.owner_id, "ORDER_TO_FULFIL", f"Order {order.order_no} awaits manual delivery",
                f"Deliver before {due:%Y-%m-%d %H:%M} UTC.", {"orderId": order.id},
                dedupe_key=f"order:{order.id}:to-fulfil",
            )


async def fulfill_order(actor: Actor, order_id: int, note: str) -> Order:
    """A MANUAL order delivered by hand: its shop's owner (or an ADMIN) marks it delivered."""
    permissions.require_signed_in(actor)
    order = await Order.filter(id=order_id).select_related("merchant", "product").first()
    if order is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    permissions.require(actor, Action.FULFILL_ORDER, owner_id=order.merchant.owner_id)
    if order.product.delivery_kind != DeliveryKind.MANUAL:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Only MANUAL orders are fulfilled by hand.", "orderId")
    if len(note) > 300:
        raise invalid("note", "The note has at most 300 characters.")
    async with outbox.atomic():
        if not await orders.transition(
            order, OrderStatus.DELIVERED, actor=actor_label(actor), note=note or "delivered by the merchant",
            delivered_at=datetime.now(UTC),
        ):
            raise UserFacingError(ErrorCode.INVALID_STATE, f"An order that is {order.status.value} cannot be fulfilled.")
        await inventory.count_sold(order)
    return order


# -- failure ------------------------------------------------------------------------------


async def fail_and_refund(order_id: int, note: str) -> None:
    """Mark the order FAILED and give the buyer's money back (each step idempotent)."""
    order = await Order.get(id=order_id)
    if order.status in (OrderStatus.PAID, OrderStatus.DELIVERING):
        async with outbox.atomic():
            await orders.transition(order, OrderStatus.FAILED, note=note)
        order = await Order.get(id=order_id)
    if order.status == OrderStatus.FAILED:
        await settlement.refund_order(order, note="automatic refund: " + note)


async def give_up(order_id: int) -> None:
    """Delivery used up its retries: the order fails and is refunded."""
    await fail_and_refund(order_id, "delivery failed after retries")


# -- sweeps: what a crash or a lost message left behind ----------------------------------


async def sweep_stuck_deliveries() -> int:
    """Paid orders whose delivery has not moved for a while get their job sent again."""
    cutoff = datetime.now(UTC) - timedelta(seconds=get_settings().stuck_delivery_seconds)
    stuck = await Order.filter(
        status__in=[OrderStatus.PAID, OrderStatus.DELIVERING], updated_at__lte=cutoff, delivery_due_at=None,
        awaiting_claim=False,
    ).limit(500).values_list("id", flat=True)
    for order_id in stuck:
        async with outbox.atomic():
            # Touch the order so that the next sweep gives this job its time again.
            await Order.filter(id=order_id).update(updated_at=datetime.now(UTC))
            await outbox.enqueue(jobs.deliver_order(order_id))
    return len(stuck)


async def sweep_overdue_manual() -> int:
    """MANUAL orders the merchant did not deliver before the deadline fail and are refunded."""
    now = datetime.now(UTC)
    overdue = await Order.filter(status=OrderStatus.DELIVERING, delivery_due_at__lte=now).limit(500).values_list(
        "id", flat=True
    )
    for order_id in overdue:
        await fail_and_refund(order_id, "the merchant did not deliver in time")
    return len(overdue)
