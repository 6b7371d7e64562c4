"""Loyalty events: points, task progress, creator credit and tiers, after the fact.

An event is a ``loyalty_event(user_id, event, reference, **extra)`` job, enqueued through the
outbox by the transaction that caused it: by the order transitions for ORDER_COMPLETED and
ORDER_REFUNDED (reference ``order:<id>``), and by the community for SHOWCASE_CREATED (extra
``order_id``), REVIEW_VERIFIED (reference ``review:product:<product>``: once per author and
product, whatever the posts), POST_CREATED, LIKE_RECEIVED (reference
``like:post:<post>:<liker>``), ANSWER_ACCEPTED and DEMAND_FULFILLED. ``handle`` is the one use
case its actor calls. It may run more than once: every award is keyed by (user, rule,
reference) and every task count by the event's reference, so a re-run changes nothing.

What needs the order's own transaction (a coupon and points given back on cancel, expiry and
refund) is not here: the order transition does it.

This module is the top of the loyalty resolvers: it drives points, tasks, creators and tiers,
and none of them imports it.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

from kameng.settings import get_settings
from models.commerce.orders import Order, OrderStatus
from resolvers.accounts import users
from resolvers.loyalty import coupons, creators, invitations, points, tasks, tiers
from subscriptions import outbox

ORDER_COMPLETED = "ORDER_COMPLETED"
ORDER_REFUNDED = "ORDER_REFUNDED"


async def handle(user_id: int, event: str, reference: str, **extra: Any) -> None:
    if event == ORDER_COMPLETED:
        await order_completed(user_id, reference)
    elif event == ORDER_REFUNDED:
        await order_refunded(user_id, reference)
    else:
        async with outbox.atomic():
            if not await users.hold(user_id):  # deleted since the event: nothing to record
                return
            awarded = await _award_for(user_id, event, reference, extra)
            await tasks.record_event(user_id, event, reference)
        if awarded:
            await tiers.recompute(user_id)


async def _award_for(user_id: int, event: str, reference: str, extra: dict[str, Any]) -> int:
    rule = points.EVENT_RULES.get(event)
    if rule is None:
        return 0
    if event == "SHOWCASE_CREATED":
        # Once per order, and only for the author's own delivered order.
        order = await Order.filter(id=int(extra.get("order_id") or 0)).first()
        if order is None or order.buyer_id != user_id or order.status not in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
            return 0
        reference = points.order_reference(order.id)
    return await points.award(user_id, rule, reference, event.lower()) or 0


def _order_id(reference: str) -> int | None:
    prefix, _, key = reference.partition(":")
    return int(key) if prefix == "order" and key.isdigit() else None


def purchase_points(order: Order) -> int:
    per_yuan = get_settings().points_per_yuan_paid
    return int((Decimal(order.total) * per_yuan).to_integral_value(rounding=ROUND_FLOOR))


async def order_completed(user_id: int, reference: str) -> None:
    """Purchase points, creator credit, task progress, then the buyer's tier."""
    order_id = _order_id(reference)
    order = await Order.filter(id=order_id).first() if order_id else None
    if order is None or order.buyer_id != user_id:
        return
    async with outbox.atomic():
        active = await users.hold(user_id)  # first: deletion also begins with the user's row
        await points.lock(user_id)  # serialised with a refund's reversal of the same order
        current = await Order.get(id=order.id)
        if current.status != OrderStatus.COMPLETED:
            return
        ref = points.order_reference(order.id)
        if await points.posted(user_id, "purchase_reversal", ref) is None:
            await points.post(user_id, "purchase", ref, purchase_points(current), f"order {current.order_no}")
        await creators.credit(current)  # the post's author earned it, whatever became of the buyer
        if active:
            await tasks.record_event(user_id, ORDER_COMPLETED, reference)
        await invitations.reward_first_order(user_id, current)
    await tiers.recompute(user_id)


async def order_refunded(user_id: int, reference: str) -> None:
    """Take back purchase points and creator credit if they were booked (and block them for
    later); the coupon and spent points went back with the refund itself (idempotent here)."""
    order_id = _order_id(reference)
    order = await Order.filter(id=order_id).first() if order_id else None
    if order is None or order.buyer_id != user_id:
        return
    async with outbox.atomic():
        await points.lock(user_id)
        current = await Order.get(id=order.id)
        if current.status != OrderStatus.REFUNDED:
            return
        ref = points.order_reference(order.id)
        booked = await points.posted(user_id, "purchase", ref)
        await points.post(
            user_id, "purchase_reversal", ref, -(booked.amount if booked else 0), f"order {current.order_no} refunded",
            clamp=True,
        )
        await creators.reverse(current)
        await coupons.give_back(current)
        await points.give_back_for_order(user_id, current.id)
    await tiers.recompute(user_id)
