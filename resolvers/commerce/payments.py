"""Paying an order: from the buyer's wallet at once, or through a payment provider whose
callback (resolvers/commerce/callbacks.py) completes it.

``order.pay`` is keyed by the order, whatever the method: an order's escrow is held once,
so two payments of one order can never both land in escrow; the second one is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kameng import kpay
from models.commerce.orders import ORDER_BY_ID, Order, OrderStatus
from models.commerce.payments import PAYMENTS, Payment, PaymentMethod, PaymentStatus
from resolvers.accounts.auth import Actor, require
from resolvers.commerce import escrow, ledger, orders
from resolvers.commerce.access import is_buyer
from resolvers.commerce.callbacks import callback_url
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import jobs, outbox


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
    order = await ORDER_BY_ID.first(order_id)
    if order is not None and is_buyer(actor, order):
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
        # The expiry sweep cancels it and releases its stock; order again.
        raise UserFacingError(ErrorCode.INVALID_STATE, "The time to pay this order has run out.")


async def _pay_from_wallet(order: Order) -> Paid:
    # The posting makes the new escrow account itself (ledger.post), as for gifts and friend-pay.
    async with outbox.atomic():
        return await pay_from_wallet(order, order.buyer_id)


async def pay_from_wallet(order: Order, payer_id: int, *, note: str = "paid from the wallet") -> Paid:
    """In the caller's ``outbox.atomic()``: PAID, the total from ``payer_id``'s wallet into
    escrow, and delivery queued. The payer is the buyer, or a friend (friend-pay) or a gift's
    sender, whose wallet a refund goes back to (``Payment.payer_id``)."""
    now = datetime.now(UTC)
    # The conditional transition decides between concurrent payments; the loser's
    # transaction (and anything it posted) rolls back.
    if not await orders.transition(order, OrderStatus.PAID, actor=f"user:{payer_id}", note=note, paid_at=now):
        raise UserFacingError(ErrorCode.INVALID_STATE, "This order is no longer awaiting payment.")
    # Written with the outbox's rows at commit (its id set then): nothing here reads it back.
    payment = Payment(
        order_id=order.id,
        method=PaymentMethod.WALLET,
        provider="wallet" if payer_id == order.buyer_id else "friend",
        payer_id=payer_id,
        amount=order.total,
        currency=order.currency,
        status=PaymentStatus.SUCCEEDED,
        paid_at=now,
    )
    outbox.insert_at_commit(PAYMENTS, payment)
    await outbox.enqueue(jobs.deliver_order(order.id))
    # Last, so that the wallet's row lock is held only until the commit, not while the rest
    # of the transaction runs. Keyed by the order: even a second winner could not hold twice.
    # INSUFFICIENT_BALANCE raised here rolls the transition (and everything above) back too.
    if not await escrow.hold(order, ledger.wallet(payer_id)):
        raise UserFacingError(ErrorCode.INVALID_STATE, "This order has already been paid.")
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
    async with outbox.atomic():
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


async def visible_payments(actor: Actor, payment_ids: list[int]) -> list[Payment | None]:
    """Payments by id, in the order asked, None where missing or where the actor may not see
    the order: two queries whatever the number of ids."""
    found = {p.id: p for p in await Payment.filter(id__in=payment_ids)}
    wanted = [found[i] for i in payment_ids if i in found]
    visible_orders = await orders.visible_orders(actor, [p.order_id for p in wanted])
    visible = {p.id for p, o in zip(wanted, visible_orders, strict=True) if o is not None}
    return [found[i] if i in visible else None for i in payment_ids]
