"""Delivery promises that pay out: a late order gets its product's compensation, once,
paid by the shop.

What counts as late is recorded at delivery (resolvers/commerce/promises.py), which queues
``compensate_late_delivery``; ``sweep_late_deliveries`` catches what a lost message or a
shop short of money left behind. Exactly once: the ``LateDeliveryCompensation`` row is
unique per order and written in the transaction that pays, and each payment carries a
unique reference of its own (ledger posting, points entry), so a re-run pays nothing.

Who pays: an AMOUNT goes from the shop's balance to the buyer's wallet, from its deposit
when the balance is short; POINTS are credited to the buyer and their value charged to the
shop the same way (to ``platform:points``); a COUPON is one of the shop's own coupons, whose
discount the shop bears when it is used. If the shop cannot pay yet (or the coupon has run
out), nothing is written and the sweep tries again while the order is inside the window.
"""

from __future__ import annotations

from decimal import Decimal

import structlog
from tortoise import connections
from tortoise.exceptions import IntegrityError

from kameng.settings import get_settings
from models.commerce.catalog import LateCompensation, Product
from models.commerce.orders import Order
from models.trust.promises import LateDeliveryCompensation
from models.statements import placeholders
from resolvers.commerce import ledger
from resolvers.commerce.promises import is_late, since_db_value
from resolvers.errors import UserFacingError
from resolvers.loyalty import coupons, points
from subscriptions import outbox

log = structlog.get_logger("kameng.promises")

REASON = "late_delivery"
POINTS_ACCOUNT = "platform:points"


def reference(order_id: int) -> str:
    return f"order:{order_id}"


class _CannotPay(Exception):
    """The shop cannot pay yet (or the coupon ran out): roll back, try again later."""


async def compensate_late_delivery(order_id: int) -> LateDeliveryCompensation | None:
    """Pay a late order's compensation if it is owed and not paid yet; the row, or None."""
    order = await Order.filter(id=order_id).first()
    if order is None or order.buyer_id is None or not is_late(order):
        return None
    product = await Product.get(id=order.product_id)
    if product.late_compensation == LateCompensation.NONE:
        return None
    if await LateDeliveryCompensation.filter(order_id=order.id).exists():
        return None
    try:
        async with outbox.atomic():
            row = await LateDeliveryCompensation.create(
                order_id=order.id, merchant_id=order.merchant_id, buyer_id=order.buyer_id, kind=product.late_compensation
            )
            await _pay(row, order, product)
            await row.save()
            return row
    except IntegrityError:  # paid concurrently by another run
        return None
    except _CannotPay as why:
        log.warning("promises.compensation_deferred", order=order.id, reason=str(why))
        return None


async def _pay(row: LateDeliveryCompensation, order: Order, product: Product) -> None:
    buyer = order.buyer_id
    assert buyer is not None
    memo = f"late delivery of order {order.order_no}"
    if product.late_compensation == LateCompensation.AMOUNT:
        row.amount = product.late_compensation_amount
        row.paid_from = await _charge_shop(order, ledger.wallet(buyer), row.amount, memo)
    elif product.late_compensation == LateCompensation.POINTS:
        row.points = product.late_compensation_points
        await points.post(buyer, REASON, reference(order.id), row.points, memo)
        row.paid_from = await _charge_shop(order, POINTS_ACCOUNT, points.points_value(row.points), memo)
    elif product.late_compensation == LateCompensation.COUPON:
        coupon_id = product.late_compensation_coupon_id
        issued = await coupons.issue_one(coupon_id, buyer, REASON) if coupon_id is not None else None
        if issued is None:
            raise _CannotPay("the compensation coupon is gone or used up")
        row.user_coupon_id = issued.id


async def _charge_shop(order: Order, to: str, amount: Decimal, memo: str) -> str:
    """Move ``amount`` from the shop's balance, else its deposit, to ``to``; the account charged."""
    if amount <= 0:
        return ""
    for source in (ledger.merchant_balance(order.merchant_id), ledger.merchant_deposit(order.merchant_id)):
        try:
            async with outbox.atomic():  # a savepoint: a short account rolls back only this try
                if not await ledger.post(REASON, reference(order.id), [(source, -amount), (to, amount)], memo):
                    raise IntegrityError("late delivery already paid")
                return source
        except UserFacingError:
            continue
    raise _CannotPay("the shop's balance and deposit are both short")


_OWED = """
SELECT o.id FROM orders o
JOIN product p ON p.id = o.product_id
LEFT JOIN late_delivery_compensation c ON c.order_id = o.id
WHERE o.delivered_at >= {since} AND o.buyer_id IS NOT NULL AND o.delivery_seconds > o.promised_minutes * 60
  AND p.late_compensation <> 'NONE' AND c.id IS NULL
ORDER BY o.id LIMIT 500
"""


async def sweep_late_deliveries() -> int:
    """Pay every late order in the window still owed its compensation; how many were paid."""
    connection = connections.get("default")
    (mark,) = placeholders(connection.capabilities.dialect, 1)
    since = since_db_value(get_settings().delivery_promise_window_days)
    _, rows = await connection.execute_query(_OWED.format(since=mark), [since])
    paid = 0
    for row in rows:
        if await compensate_late_delivery(int(row["id"])) is not None:
            paid += 1
    return paid
