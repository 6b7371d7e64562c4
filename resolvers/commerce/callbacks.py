"""Payment provider callbacks: a verified callback pays its order, revives an order that
expired inside the grace window, or gives a late payment back.

=====================  ===========================  ===========================================
reason                 reference                    legs
=====================  ===========================  ===========================================
order.pay              order id                     gateway:<p>  -> escrow
payment.late_refund    payment id                   gateway:<p> -> wallet:<buyer>
                                                    (guests: gateway:<p>:refunds, paid back
                                                    through the provider by an operator)
=====================  ===========================  ===========================================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import orjson
from tortoise.exceptions import IntegrityError

from kameng import kpay
from kameng.settings import get_settings
from models.commerce.orders import Order, OrderEvent, OrderStatus
from models.commerce.payments import Payment, PaymentMethod, PaymentStatus
from resolvers.accounts import notifications
from resolvers.commerce import escrow, inventory, ledger, orders
from subscriptions import jobs, outbox

log = logging.getLogger(__name__)

#: Where providers send callbacks (app.py routes it); ``{provider}`` is the plugin name.
CALLBACK_PATH = "/payments/{provider}/callback"
CALLBACK_MAX_BYTES = 16 * 1024


def gateway_refunds(provider: str) -> str:
    """Money a guest paid too late, owed back to them through ``provider``."""
    return f"{ledger.gateway(provider)}:refunds"


def callback_url(base_url: str, provider: str) -> str:
    return base_url.rstrip("/") + CALLBACK_PATH.format(provider=provider)


@dataclass(frozen=True)
class CallbackAnswer:
    status_code: int
    body: str


def _refused(status: int, reason: str) -> CallbackAnswer:
    return CallbackAnswer(status, orjson.dumps({"ok": False, "error": reason}).decode())


def parse_callback_body(body: bytes) -> dict[str, str]:
    """Form-encoded parameters; a repeated or undecodable parameter refuses the callback."""
    if len(body) > CALLBACK_MAX_BYTES:
        raise kpay.CallbackRefused(413, "callback too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise kpay.CallbackRefused(400, "malformed callback") from None
    params = dict(pairs)
    if len(params) != len(pairs):
        raise kpay.CallbackRefused(400, "repeated parameter")
    return params


async def handle_callback(provider_name: str, body: bytes | Mapping[str, str]) -> CallbackAnswer:
    """Apply a provider's payment callback, at most once per provider transaction.

    Refused (and nothing changes) unless the provider is configured, the signature holds,
    and the signed payment id, order number, amount and currency all match our Payment. A
    replay of an applied callback answers exactly what the first one got.
    """
    try:
        provider = kpay.provider(provider_name)
    except KeyError:
        return _refused(404, "unknown payment provider")
    try:
        params = parse_callback_body(body) if isinstance(body, bytes) else dict(body)
        callback = provider.verify(params)
        return await _apply_callback(provider, callback)
    except kpay.CallbackRefused as refused:
        log.warning("payment callback refused (%s): %s", provider_name, refused.reason)
        return _refused(refused.status, refused.reason)


async def _apply_callback(provider: kpay.Provider, callback: kpay.VerifiedCallback) -> CallbackAnswer:
    payment = await Payment.filter(
        id=callback.payment_id, provider=provider.name, method=PaymentMethod.EXTERNAL
    ).first()
    if payment is None:
        raise kpay.CallbackRefused(404, "unknown payment")
    order = await Order.filter(id=payment.order_id).first()
    if order is None or order.order_no != callback.order_no:
        raise kpay.CallbackRefused(400, "the order number does not match the payment")
    # Decimal against Decimal, both exact to the cent: never floats.
    if callback.amount != payment.amount or callback.amount != order.total or callback.currency != payment.currency:
        raise kpay.CallbackRefused(400, "the amount does not match the payment")
    if payment.provider_txn_id is None:
        try:
            return await _complete(provider, payment, callback)
        except _Claimed:
            payment = await Payment.get(id=payment.id)  # a concurrent callback won: answer as it did
    if payment.provider_txn_id == callback.txn_id and payment.callback_response:
        return CallbackAnswer(200, payment.callback_response)  # a replay: nothing changes
    raise kpay.CallbackRefused(409, "the payment was completed by another provider transaction")


class _Claimed(Exception):
    """Another callback claimed this payment first."""


class _NoStock(Exception):
    pass


async def _complete(provider: kpay.Provider, payment: Payment, callback: kpay.VerifiedCallback) -> CallbackAnswer:
    now = datetime.now(UTC)
    try:
        async with outbox.atomic():
            claimed = await Payment.filter(id=payment.id, status=PaymentStatus.PENDING, provider_txn_id=None).update(
                provider_txn_id=callback.txn_id, paid_at=now
            )
            if claimed != 1:
                raise _Claimed
            # Locked (PostgreSQL) against the expiry sweep and a concurrent wallet payment.
            order = await Order.filter(id=payment.order_id).select_for_update().get()
            outcome = await _credit(provider.name, order, payment, now)
            answer = orjson.dumps({"ok": True, "payment": str(payment.id), "outcome": outcome.value}).decode()
            await Payment.filter(id=payment.id).update(status=outcome, callback_response=answer)
    except IntegrityError:
        raise _Claimed from None  # the same provider transaction, applied concurrently
    log.info("payment %s: %s (order %s, %s)", payment.id, outcome.value, order.order_no, callback.txn_id)
    return CallbackAnswer(200, answer)


async def _credit(provider: str, order: Order, payment: Payment, now: datetime) -> PaymentStatus:
    """Inside the callback's transaction: pay the order, revive it, or give the money back."""
    source = ledger.gateway(provider)
    actor = f"gateway:{provider}"
    if order.status == OrderStatus.PENDING_PAYMENT:
        # Even past expires_at: until the expiry sweep ran, the stock is still reserved.
        paid = await orders.transition(order, OrderStatus.PAID, actor=actor, note="paid", paid_at=now)
    elif order.status == OrderStatus.CANCELLED and await _late_but_in_time(order, now):
        paid = await _revive(order, actor, now)
    else:
        paid = False
    if paid:
        if not await escrow.hold(order, source, reference=str(order.id)):
            raise RuntimeError(f"order {order.id} changed to PAID but its escrow was already held")
        await outbox.enqueue(jobs.deliver_order(order.id))
        return PaymentStatus.SUCCEEDED
    await _return_late_payment(provider, order, payment)
    return PaymentStatus.REFUNDED_LATE


async def _late_but_in_time(order: Order, now: datetime) -> bool:
    """Cancelled by the expiry sweep (not by the buyer) and still inside the grace window."""
    grace = timedelta(seconds=get_settings().late_payment_grace_seconds)
    if now > order.expires_at + grace:
        return False
    cancelled = await OrderEvent.filter(order_id=order.id, status=OrderStatus.CANCELLED).order_by("-id").first()
    return cancelled is not None and cancelled.actor == "system"


async def _revive(order: Order, actor: str, now: datetime) -> bool:
    """Take the order's stock again, all of it or none, and make it PAID; a savepoint undoes
    a partial take. An order that used a coupon or points is not revived: they went back to
    the buyer when it expired, so its late payment is returned instead."""
    if order.user_coupon_id is not None or order.points_used:
        return False
    try:
        async with outbox.atomic():
            if not await inventory.take_again(order):
                raise _NoStock
            if not await orders.transition(
                order, OrderStatus.PAID, actor=actor, note="paid late, inside the grace window", paid_at=now
            ):
                raise _NoStock
    except _NoStock:
        return False
    return True


async def _return_late_payment(provider: str, order: Order, payment: Payment) -> None:
    destination = ledger.wallet(order.buyer_id) if order.buyer_id is not None else gateway_refunds(provider)
    await ledger.post(
        "payment.late_refund",
        str(payment.id),
        [(ledger.gateway(provider), -payment.amount), (destination, payment.amount)],
        memo=f"late payment {payment.id} of order {order.order_no} ({order.status.value}) returned",
    )
    if order.buyer_id is not None:
        await notifications.notify(
            order.buyer_id,
            "PAYMENT_RETURNED",
            f"Your payment for order {order.order_no} was returned to your wallet",
            "It arrived after the order was closed.",
            {"orderId": order.id, "paymentId": payment.id},
            dedupe_key=f"payment:{payment.id}:returned",
        )
