"""Payments: paying an order from the wallet or through a provider, provider callbacks,
late payments, confirmation and settlement, refunds and staff wallet adjustments.

Every movement of money is one ledger posting keyed so that it cannot happen twice:

=====================  ===========================  ===========================================
reason                 reference                    legs
=====================  ===========================  ===========================================
order.pay              order id                     wallet:<buyer> or gateway:<p>  -> escrow
order.settle           order id                     escrow -> merchant:<m> + platform:fees
order.refund           order id                     escrow -> wallet:<buyer> (guests: gateway:<p>)
payment.late_refund    payment id                   gateway:<p> -> wallet:<buyer>
                                                    (guests: gateway:<p>:refunds, paid back
                                                    through the provider by an operator)
wallet.adjust          uuid                         platform:adjustments <-> wallet:<user>
=====================  ===========================  ===========================================

``order.pay`` is keyed by the order, whatever the method: an order's escrow is held once,
so two payments of one order can never both land in escrow; the second one is returned.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

import orjson
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from kameng import kpay
from kameng.settings import get_settings
from models.accounts.users import STAFF_ROLES, Role, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.inventory import CardKeyStatus
from models.commerce.orders import Order, OrderEvent, OrderStatus
from models.commerce.payments import Payment, PaymentMethod, PaymentStatus
from resolvers.commerce import escrow, ledger, orders
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import outbox
from subscriptions import jobs

log = logging.getLogger(__name__)

#: Where providers send callbacks (app.py routes it); ``{provider}`` is the plugin name.
CALLBACK_PATH = "/payments/{provider}/callback"
CALLBACK_MAX_BYTES = 16 * 1024
REASON_MIN, REASON_MAX = 3, 200
#: The largest single staff adjustment, either way: a typo guard, not a policy.
MAX_ADJUSTMENT = Decimal("100000.00")
#: The wallet ledger is kept in one currency (account codes carry none).
WALLET_CURRENCY = "CNY"


def gateway_refunds(provider: str) -> str:
    """Money a guest paid too late, owed back to them through ``provider``."""
    return f"{ledger.gateway(provider)}:refunds"


def callback_url(base_url: str, provider: str) -> str:
    return base_url.rstrip("/") + CALLBACK_PATH.format(provider=provider)


# -- paying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paid:
    order: Order
    payment: Payment


async def pay_order(
    actor: Actor,
    order_id: int,
    method: PaymentMethod,
    *,
    order_no: str | None = None,
    query_password: str | None = None,
    base_url: str = "",
) -> Paid:
    """Pay an order awaiting payment.

    WALLET (signed-in buyers): the total moves from the wallet into escrow, the order becomes
    PAID and delivery is queued, all in one transaction. EXTERNAL: a pending Payment and the
    provider's pay link; the provider's callback completes it (``handle_callback``).

    Who: the signed-in buyer; for a guest order, whoever proves the order's lookup
    credentials (``order_no`` and ``query_password``, rate-limited like ``orderLookup``) or
    made the order in this same request (``actor.guest_order_id``).
    """
    order = await _own_order(actor, order_id, order_no, query_password)
    if method == PaymentMethod.WALLET and order.buyer_id is None:
        raise invalid("method", "Guest orders are paid with EXTERNAL; sign in to pay from a wallet.")
    _still_payable(order)
    if method == PaymentMethod.WALLET:
        return await _pay_from_wallet(order)
    return await _pay_external(order, base_url)


async def _own_order(actor: Actor, order_id: int, order_no: str | None, query_password: str | None) -> Order:
    has_credentials = bool(order_no and query_password)
    if actor.user is None and actor.guest_order_id is None and not has_credentials:
        require(actor)  # UNAUTHENTICATED, before saying anything about the order
    order = await Order.filter(id=order_id).first()
    if order is not None and orders.is_buyer(actor, order):
        return order
    if order is not None and order.buyer_id is None and has_credentials:
        found = await orders.lookup(actor, order_no or "", query_password or "")
        if found is not None and found.id == order.id:
            return order
    raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")


def _still_payable(order: Order) -> None:
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"An order that is {order.status.value} cannot be paid.")
    if order.expires_at <= datetime.now(UTC):
        # The expiry job cancels it and releases its stock; order again.
        raise UserFacingError(ErrorCode.INVALID_STATE, "The time to pay this order has run out.")


async def _pay_from_wallet(order: Order) -> Paid:
    now = datetime.now(UTC)
    async with outbox.atomic():
        # The conditional transition decides between concurrent payments; the loser's
        # transaction (and anything it posted) rolls back.
        if not await orders.transition(
            order, OrderStatus.PAID, actor=f"user:{order.buyer_id}", note="paid from the wallet", paid_at=now
        ):
            raise UserFacingError(ErrorCode.INVALID_STATE, "This order is no longer awaiting payment.")
        # Keyed by the order: even a second winner could not hold twice. INSUFFICIENT_BALANCE
        # raised here rolls the transition back too.
        if not await escrow.hold(order, ledger.wallet(order.buyer_id)):
            raise UserFacingError(ErrorCode.INVALID_STATE, "This order has already been paid.")
        payment = await Payment.create(
            order_id=order.id,
            method=PaymentMethod.WALLET,
            provider="wallet",
            amount=order.total,
            currency=order.currency,
            status=PaymentStatus.SUCCEEDED,
            paid_at=now,
        )
        await outbox.enqueue(jobs.deliver_order(order.id))
    return Paid(order, payment)


async def _pay_external(order: Order, base_url: str, provider_name: str = "kpay") -> Paid:
    provider = kpay.provider(provider_name)
    if not provider.configured:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Paying through the payment provider is not available now.")
    # One pending payment per order and provider: asking again returns the same pay link.
    existing = await Payment.filter(
        order_id=order.id, method=PaymentMethod.EXTERNAL, provider=provider.name, status=PaymentStatus.PENDING
    ).order_by("id").first()
    if existing is not None:
        return Paid(order, existing)
    notify_url = callback_url(base_url, provider.name)
    async with in_transaction():
        payment = await Payment.create(
            order_id=order.id,
            method=PaymentMethod.EXTERNAL,
            provider=provider.name,
            amount=order.total,
            currency=order.currency,
            status=PaymentStatus.PENDING,
        )
        payment.pay_url = provider.create_payment(order, payment, notify_url=notify_url)
        if len(payment.pay_url) > 500:
            raise UserFacingError(ErrorCode.INVALID_STATE, "The payment link could not be made.")
        await Payment.filter(id=payment.id).update(pay_url=payment.pay_url)
    return Paid(order, payment)


# -- provider callbacks ----------------------------------------------------------------------


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
            # Locked (PostgreSQL) against the expiry job and a concurrent wallet payment.
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
        # Even past expires_at: until the expiry job ran, the stock is still reserved.
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
    """Cancelled by the expiry job (not by the buyer) and still inside the grace window."""
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
    product = await Product.get(id=order.product_id)
    try:
        async with in_transaction():
            if product.delivery_kind == DeliveryKind.CARD_KEY:
                taken = await orders.take_keys(product.id, order.id, order.quantity, CardKeyStatus.RESERVED)
                if taken != order.quantity:
                    raise _NoStock
            elif product.stock_limit is not None:
                updated = await Product.filter(id=product.id, stock_limit__gte=order.quantity).update(
                    stock_limit=F("stock_limit") - order.quantity
                )
                if updated != 1:
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


# -- completion and settlement ----------------------------------------------------------------


async def confirm_receipt(actor: Actor, order_id: int) -> Order:
    """The signed-in buyer confirms a DELIVERED order: COMPLETED, and escrow is settled to the
    merchant less the platform fee, in one transaction. Guest orders complete automatically."""
    user = require(actor)
    order = await Order.filter(id=order_id).first()
    if order is None or order.buyer_id != user.id:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    async with outbox.atomic():
        if not await orders.transition(
            order, OrderStatus.COMPLETED, actor=f"user:{user.id}", note="receipt confirmed",
            completed_at=datetime.now(UTC),
        ):
            raise UserFacingError(
                ErrorCode.INVALID_STATE, f"An order that is {order.status.value} cannot be confirmed."
            )
        await escrow.settle(order)
    return order


async def complete_delivered_orders(limit: int = 500) -> int:
    """The auto-complete sweep: orders DELIVERED more than ``auto_complete_days`` ago become
    COMPLETED and are settled. Idempotent and safe to run concurrently (conditional
    transitions, settlement keyed by order). There is no dispute concept yet: nothing holds
    an order back from auto-completion."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=get_settings().auto_complete_days)
    due = await Order.filter(status=OrderStatus.DELIVERED, delivered_at__lte=cutoff).order_by("id").limit(limit)
    completed = 0
    for order in due:
        async with outbox.atomic():
            if await orders.transition(
                order, OrderStatus.COMPLETED, note="completed automatically", completed_at=now
            ):
                await escrow.settle(order)
                completed += 1
    return completed


# -- refunds ----------------------------------------------------------------------------------


async def refund_order(order: Order, note: str, *, actor: str = "system") -> bool:
    """REFUNDED, and the escrowed total back where it came from (the wallet of a signed-in
    buyer, the provider for a guest), in one transaction. Stock of an undelivered order is
    released. Returns False if the order was refunded already; INVALID_STATE if it cannot be."""
    async with outbox.atomic():
        current = await Order.filter(id=order.id).select_for_update().get()
        if current.status == OrderStatus.REFUNDED:
            return False
        previous = current.status
        if not await orders.transition(current, OrderStatus.REFUNDED, actor=actor, note=note[:300]):
            raise UserFacingError(
                ErrorCode.INVALID_STATE, f"An order that is {current.status.value} cannot be refunded."
            )
        await escrow.refund(current, escrow.refund_destination(current, await _paid_from(current)))
        if previous != OrderStatus.DELIVERED:
            await orders.release_stock(current)
    order.status = current.status
    return True


async def _paid_from(order: Order) -> str:
    payment = await Payment.filter(order_id=order.id, status=PaymentStatus.SUCCEEDED).order_by("id").first()
    if payment is not None and payment.method == PaymentMethod.EXTERNAL:
        return ledger.gateway(payment.provider)
    if order.buyer_id is None:
        raise RuntimeError(f"guest order {order.id} has no successful external payment to refund")
    return ledger.wallet(order.buyer_id)


async def refund_by_staff(actor: Actor, order_id: int, reason: str) -> Order:
    """Staff (moderators and admins) refund a PAID, FAILED or DELIVERED order: the money
    only goes back where it came from, so support may do it."""
    staff = require(actor, roles=STAFF_ROLES)
    reason = _reason(reason)
    order = await Order.filter(id=order_id).first()
    if order is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    if not await refund_order(order, f"refunded by staff: {reason}", actor=f"user:{staff.id}"):
        raise UserFacingError(ErrorCode.INVALID_STATE, "This order was refunded already.")
    return order


# -- wallets --------------------------------------------------------------------------------


async def adjust_wallet(actor: Actor, user_id: int, amount: Decimal, reason: str) -> tuple[User, Decimal]:
    """An admin credits (or, for a correction, debits) a user's wallet, never below zero.

    ADMIN only: an adjustment creates or removes money, unlike a refund. The posting's memo
    records who did it and why. Returns the user and the new balance.
    """
    admin = require(actor, roles=[Role.ADMIN])
    amount = _adjustment(amount)
    reason = _reason(reason)
    user = await User.filter(id=user_id).first()
    if user is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such user.", "userId")
    reference = uuid.uuid4().hex
    async with outbox.atomic():
        await ledger.post(
            "wallet.adjust",
            reference,
            [(ledger.ADJUSTMENTS, -amount), (ledger.wallet(user.id), amount)],
            memo=f"by user:{admin.id}: {reason}",
        )
        await notifications.notify(
            user.id,
            "WALLET_ADJUSTED",
            f"Your wallet was {'credited' if amount > 0 else 'debited'} {abs(amount)} {WALLET_CURRENCY}",
            reason,
            {"amount": str(amount)},
            dedupe_key=f"wallet.adjust:{reference}",
        )
    return user, await ledger.balance(ledger.wallet(user.id))


def _adjustment(amount: Decimal | str) -> Decimal:
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise invalid("amount", "Give an amount such as \"10.00\" or \"-2.50\".") from None
    if not value.is_finite() or abs(value) > MAX_ADJUSTMENT:
        raise invalid("amount", f"An adjustment is at most {MAX_ADJUSTMENT} either way.")
    value = ledger.money(value)
    if value == 0:
        raise invalid("amount", "An adjustment is not zero.")
    return value


def _reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not REASON_MIN <= len(text) <= REASON_MAX or any(unicodedata.category(c) == "Cc" for c in text):
        raise invalid("reason", f"Give a reason of {REASON_MIN} to {REASON_MAX} characters.")
    return text
