"""What a claim gives, and what reversing it takes back: a replacement key, a refund, a
reversal. Called by resolvers/trust/claims.py inside the claim's transaction, with the
order's row locked, so a claim and the order's settlement never interleave.

=================  ===============  ===========================================================
reason             reference        legs
=================  ===============  ===========================================================
order.refund       order id         the whole unsettled order: escrow -> wallet (order REFUNDED)
claim.refund       claim:<id>       part of an unsettled order: escrow -> wallet; a settled
                                    one: merchant:<m> (then deposit:<m> for the rest) -> wallet
claim.reverse      claim:<id>       wallet (platform:claims for what it lacks) -> back where the
                                    money came from (escrow refunds and replacements: merchant
                                    less the platform fee, as a sale would have settled)
=================  ===============  ===========================================================

Exactly once: the claim row is unique per (order, key or reason), and each posting is unique
per (reason, reference).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.ledger import Entry
from models.commerce.orders import ESCROWED, Order, OrderStatus
from models.trust.claims import Claim, ClaimOutcome
from resolvers.commerce import escrow, inventory, ledger, orders, settlement
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import outbox

REFUND_REASON = "claim.refund"
REVERSE_REASON = "claim.reverse"
#: The platform's own loss when a reversed claim's buyer no longer holds what they were given.
PLATFORM_CLAIMS = "platform:claims"
ESCROW = "escrow"


class CannotPay(Exception):
    """The shop's balance and deposit together are short: the claim waits for staff."""


def reference(claim: Claim) -> str:
    return f"claim:{claim.id}"


def key_share(order: Order) -> Decimal:
    """What one key of the order cost the buyer (rounded down to the cent)."""
    return (Decimal(order.total) / order.quantity).quantize(ledger.CENT, rounding=ROUND_DOWN)


async def replace_key(order: Order, key: CardKey) -> int | None:
    """Sell the order one fresh key of its product in place of ``key``, which is marked
    INVALID; the new key's id, or None when the product is out of stock (nothing changed)."""
    before = set(await CardKey.filter(order_id=order.id, status=CardKeyStatus.SOLD).values_list("id", flat=True))
    if await inventory.take_keys(order.product_id, order.id, 1, CardKeyStatus.SOLD) != 1:
        return None
    if not await mark_invalid(key):
        raise RuntimeError(f"card key {key.id} changed under a locked order")
    after = await CardKey.filter(order_id=order.id, status=CardKeyStatus.SOLD).values_list("id", flat=True)
    return next(i for i in after if i not in before)


async def mark_invalid(key: CardKey) -> bool:
    return await CardKey.filter(id=key.id, status=CardKeyStatus.SOLD).update(status=CardKeyStatus.INVALID) == 1


async def refund(claim: Claim, order: Order, amount: Decimal, note: str) -> str:
    """Pay the buyer ``amount``: from escrow while the order is unsettled (the whole order is
    refunded, so it never settles; a part leaves the rest to settle), else from the shop's
    balance and, for what it lacks, its deposit. The account(s) charged; CannotPay if short."""
    wallet = ledger.wallet(claim.buyer_id)
    if order.status in ESCROWED:
        held = await ledger.balance(ledger.escrow(order.id))
        if amount >= Decimal(order.total) and held == Decimal(order.total):
            if order.status == OrderStatus.DELIVERING:
                await orders.transition(order, OrderStatus.FAILED, note=note[:300])
            await settlement.refund_order(order, note, actor="system:claims")
            return ESCROW
        if held >= amount:
            await _post(REFUND_REASON, claim, [(ledger.escrow(order.id), -amount), (wallet, amount)], note)
            return ESCROW
    balance_code, deposit_code = ledger.merchant_balance(order.merchant_id), ledger.merchant_deposit(order.merchant_id)
    from_balance = min(max(await ledger.balance(balance_code), Decimal(0)), amount)
    from_deposit = amount - from_balance
    if from_deposit > await ledger.balance(deposit_code):
        raise CannotPay(f"the shop holds less than {amount}")
    legs = [(balance_code, -from_balance), (deposit_code, -from_deposit), (wallet, amount)]
    try:
        async with outbox.atomic():  # a savepoint: a concurrent spend rolls back only this
            await _post(REFUND_REASON, claim, legs, note)
    except UserFacingError as error:
        if error.code != ErrorCode.INSUFFICIENT_BALANCE:
            raise
        raise CannotPay("the shop's balance or deposit changed meanwhile") from None
    return "+".join(code for code, value in legs if value != 0 and code != wallet)


async def reverse(claim: Claim, note: str) -> None:
    """Give the shop back what the claim cost it: from the buyer's wallet, the platform
    covering what the wallet lacks. A refund the shop paid goes back to the accounts charged;
    an escrow refund or a replacement pays the shop as the sale would have (less the fee)."""
    amount = Decimal(claim.amount)
    if claim.outcome == ClaimOutcome.REFUND and claim.paid_from != ESCROW:
        charged = await Entry.filter(
            posting__reason=REFUND_REASON, posting__reference=reference(claim), amount__lt=0
        ).values_list("account__code", "amount")
        credits = [(code, -Decimal(value)) for code, value in charged]
    else:
        fee = escrow.fee_on(amount)
        credits = [(ledger.merchant_balance(claim.merchant_id), amount - fee), (ledger.PLATFORM_FEES, fee)]
    wallet = ledger.wallet(claim.buyer_id)
    from_wallet = min(max(await ledger.balance(wallet), Decimal(0)), amount)
    legs = [(wallet, -from_wallet), (PLATFORM_CLAIMS, -(amount - from_wallet)), *credits]
    await _post(REVERSE_REASON, claim, legs, note)


async def _post(reason: str, claim: Claim, legs: list[tuple[str, Decimal]], note: str) -> None:
    if not await ledger.post(reason, reference(claim), legs, memo=f"claim {claim.id}: {note}"):
        raise RuntimeError(f"{reason} of claim {claim.id} was posted already")
