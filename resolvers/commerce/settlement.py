"""Settlement: an order completes (the buyer confirms, or the sweep after
``auto_complete_days``) and its escrow goes to the merchant less the platform fee; or it is
refunded (delivery failed, staff decided) and the escrow goes back where it came from. Also
staff wallet adjustments. Each movement is one ledger posting keyed so that it cannot
happen twice:

=====================  ===========================  ===========================================
reason                 reference                    legs
=====================  ===========================  ===========================================
order.settle           order id                     escrow -> merchant:<m> + platform:fees (*)
order.refund           order id                     escrow -> wallet:<buyer> (guests: gateway:<p>)
wallet.adjust          uuid                         platform:adjustments <-> wallet:<user>
=====================  ===========================  ===========================================

(*) plus the discounts the platform funds (tier, points, platform coupons) from
``platform:promotions`` to the merchant: ``promotions.platform_discount``.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tortoise.expressions import Subquery

from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.catalog import DeliveryKind
from models.commerce.orders import Order, OrderStatus
from models.commerce.payments import Payment, PaymentMethod, PaymentStatus
from models.trust.tickets import ACTIVE as ACTIVE_TICKETS
from models.trust.tickets import Ticket
from resolvers.accounts import notifications
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor, allowed, require
from resolvers.accounts.permissions import Action
from resolvers.commerce import escrow, inventory, ledger, orders
from resolvers.decimals import DecimalTextError, strict_decimal
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import outbox

REASON_MIN, REASON_MAX = 3, 200
#: The largest single staff adjustment, either way: a typo guard, not a policy.
MAX_ADJUSTMENT = Decimal("100000.00")
#: The wallet ledger is kept in one currency (account codes carry none).
WALLET_CURRENCY = "CNY"


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
    transitions, settlement keyed by order).

    A dispute holds the money: an order with an active after-sales ticket
    (models/trust/tickets.ACTIVE) stays DELIVERED, its total in escrow, until the ticket is
    resolved or closed. Race-free: the order's row is locked before the tickets are looked
    at, and opening a ticket takes the same lock first (resolvers/trust/tickets.open_ticket),
    so either the ticket is committed before this sees it, or the order is COMPLETED before
    the ticket is written (and then it holds nothing). SQLite runs one transaction at a time.
    """
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=get_settings().auto_complete_days)
    disputed = Subquery(Ticket.filter(status__in=list(ACTIVE_TICKETS)).values("order_id"))
    due = await Order.filter(status=OrderStatus.DELIVERED, delivered_at__lte=cutoff).exclude(
        id__in=disputed).order_by("id").limit(limit)
    completed = 0
    for order in due:
        async with outbox.atomic():
            current = await Order.filter(id=order.id, status=OrderStatus.DELIVERED).select_for_update().first()
            if current is None or await Ticket.filter(order_id=order.id, status__in=list(ACTIVE_TICKETS)).exists():
                continue
            if await orders.transition(
                current, OrderStatus.COMPLETED, note="completed automatically", completed_at=now
            ):
                await escrow.settle(current)
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
            await inventory.release(current)
    order.status = current.status
    return True


async def _paid_from(order: Order) -> str:
    payment = await Payment.filter(order_id=order.id, status=PaymentStatus.SUCCEEDED).order_by("id").first()
    if payment is not None and payment.method == PaymentMethod.EXTERNAL:
        return ledger.gateway(payment.provider)
    if payment is not None and payment.payer_id is not None:
        return ledger.wallet(payment.payer_id)  # a friend's payment, a gift's sender
    if order.buyer_id is None:
        raise RuntimeError(f"guest order {order.id} has no successful external payment to refund")
    return ledger.wallet(order.buyer_id)


async def refund_by_staff(actor: Actor, order_id: int, reason: str) -> Order:
    """The shop's owner or an ADMIN refunds a PAID, FAILED or DELIVERED order, with a reason
    (kept in the order's history). A DELIVERED card-key order is ADMIN only: its buyer keeps
    the key they have seen, so the refund is a gift that the after-sales desk decides."""
    permissions.require_signed_in(actor)
    order = await Order.filter(id=order_id).select_related("merchant", "product").first()
    if order is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    staff = permissions.require(actor, Action.REFUND_ORDER, owner_id=order.merchant.owner_id)
    if order.status == OrderStatus.DELIVERED and order.product.delivery_kind == DeliveryKind.CARD_KEY:
        permissions.require(actor, Action.REFUND_DELIVERED_CARD_KEYS)
    reason = _reason(reason)
    if not await refund_order(order, f"refunded by user:{staff.id} ({staff.role.value}): {reason}",
                              actor=f"user:{staff.id}"):
        raise UserFacingError(ErrorCode.INVALID_STATE, "This order was refunded already.")
    return order


# -- wallets --------------------------------------------------------------------------------


def may_see_wallet(actor: Actor, user_id: int) -> bool:
    """A wallet's balance is for its owner and staff."""
    return allowed(actor, owner_id=user_id)


async def adjust_wallet(actor: Actor, user_id: int, amount: Decimal, reason: str) -> tuple[User, Decimal]:
    """An admin credits (or, for a correction, debits) a user's wallet, never below zero.

    ADMIN only: an adjustment creates or removes money, unlike a refund. The posting's memo
    records who did it and why. Returns the user and the new balance.
    """
    admin = permissions.require(actor, Action.ADJUST_WALLET)
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
        value = amount if isinstance(amount, Decimal) and amount.is_finite() else strict_decimal(amount)
    except DecimalTextError:
        raise invalid("amount", "Give an amount such as \"10.00\" or \"-2.50\".") from None
    if abs(value) > MAX_ADJUSTMENT:
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
