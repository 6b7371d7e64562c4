"""Escrow: the buyer's money is held between payment and completion, then settled to the
merchant less the platform fee, or returned. Each movement is one idempotent ledger posting
keyed by the order, so a replayed job or callback cannot move money twice."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from kameng.settings import get_settings
from models.commerce.orders import Order
from resolvers.commerce import ledger, promotions


def fee(order: Order) -> Decimal:
    return fee_on(Decimal(order.total))


def fee_on(amount: Decimal) -> Decimal:
    return (amount * get_settings().platform_fee_rate).quantize(ledger.CENT, rounding=ROUND_HALF_UP)


async def hold(order: Order, source: str, *, reference: str | None = None) -> bool:
    """Move the order total from ``source`` (a wallet or a gateway) into escrow."""
    return await ledger.post(
        "order.pay", reference or str(order.id), [(source, -order.total), (ledger.escrow(order.id), order.total)],
        memo=f"payment of order {order.order_no}", order_no=order.order_no,
    )


async def settle(order: Order) -> bool:
    """Release escrow to the merchant, the platform keeping its fee and paying the discounts
    that were its own (``promotions.platform_discount``) from ``platform:promotions``.

    What a self-service claim refunded out of escrow before completion (resolvers/trust/
    claims.py) is not settled: only what the escrow still holds, at most the order total, and
    the platform's subsidy in the same proportion."""
    total = Decimal(order.total)
    held = min(total, await ledger.balance(ledger.escrow(order.id)))
    platform = fee_on(held)
    subsidy = await promotions.platform_discount(order)
    if held < total and subsidy:
        subsidy = (subsidy * held / total).quantize(ledger.CENT, rounding=ROUND_HALF_UP) if total else Decimal(0)
    return await ledger.post(
        "order.settle",
        str(order.id),
        [
            (ledger.escrow(order.id), -held),
            (ledger.merchant_balance(order.merchant_id), held - platform + subsidy),
            (ledger.PLATFORM_FEES, platform),
            (promotions.PROMOTIONS, -subsidy),
        ],
        memo=f"settlement of order {order.order_no}" + (f" (platform subsidy {subsidy})" if subsidy else ""),
        order_no=order.order_no,
    )


def refund_destination(order: Order, paid_from: str) -> str:
    """Money paid from a wallet goes back to that wallet (the buyer's, or the friend's or gift
    sender's who paid); a signed-in buyer's gateway payment to their wallet; a guest's back
    through the gateway they paid with."""
    if paid_from.startswith(ledger.wallet(0)[:-1]):
        return paid_from
    return ledger.wallet(order.buyer_id) if order.buyer_id is not None else paid_from


async def refund(order: Order, destination: str) -> bool:
    """Return the escrowed total to ``destination``."""
    return await ledger.post(
        "order.refund", str(order.id), [(ledger.escrow(order.id), -order.total), (destination, order.total)],
        memo=f"refund of order {order.order_no}", order_no=order.order_no,
    )
