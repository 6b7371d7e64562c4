"""Withdrawals (提现): a shop's owner asks for a payout from the shop's available balance;
an ADMIN approves it, then marks it paid once the money has left, or rejects it.

Every movement is one ledger posting keyed by the withdrawal:

=====================  ============  ==========================================================
reason                 reference     legs
=====================  ============  ==========================================================
withdrawal.request     id            merchant:<m> -> withdrawing:<m>
withdrawal.paid        id            withdrawing:<m> -> gateway:payouts (amount - fee) + platform:fees (fee)
withdrawal.reject      id            withdrawing:<m> -> merchant:<m>
=====================  ============  ==========================================================

Only ``merchant:<m>`` (settled earnings) can be withdrawn: escrow (``escrow:<order>``) and
the deposit (``deposit:<m>``) are other accounts. The request's debit is a conditional
``UPDATE ... WHERE balance >= amount`` (``ledger.post``), so concurrent requests can never
take more than the balance: the ones that would overdraw fail with INSUFFICIENT_BALANCE and
leave nothing behind (their withdrawal row rolls back with them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from kameng.settings import get_settings
from models.commerce.merchants import Merchant
from models.commerce.withdrawals import Withdrawal, WithdrawalStatus
from resolvers.accounts import notifications, permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce import ledger
from resolvers.commerce.inputs import clean_text, parse_amount
from resolvers.commerce.merchants import find_merchant
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate
from subscriptions import outbox

PAYOUTS = "gateway:payouts"
MAX_WITHDRAWAL = Decimal("1000000.00")


def pending_account(merchant_id: int) -> str:
    return f"withdrawing:{merchant_id}"


async def request(actor: Actor, merchant_id: int, amount: str) -> Withdrawal:
    """The owner asks for ``amount`` (the fee included) to be paid out."""
    shop = await find_merchant(merchant_id)
    user = permissions.require(actor, Action.REQUEST_WITHDRAWAL, owner_id=shop.owner_id)
    settings = get_settings()
    value = parse_amount(amount, "amount")
    if value < settings.withdrawal_minimum:
        raise invalid("amount", f"The smallest withdrawal is {settings.withdrawal_minimum}.")
    if value > MAX_WITHDRAWAL or value <= settings.withdrawal_fee:
        raise invalid("amount", f"A withdrawal is more than its fee ({settings.withdrawal_fee}) and at most "
                                f"{MAX_WITHDRAWAL}.")
    try:
        async with outbox.atomic():
            withdrawal = await Withdrawal.create(
                merchant_id=shop.id, amount=value, fee=settings.withdrawal_fee, requested_by_id=user.id,
            )
            await ledger.post(
                "withdrawal.request", str(withdrawal.id),
                [(ledger.merchant_balance(shop.id), -value), (pending_account(shop.id), value)],
                memo=f"withdrawal {withdrawal.id} requested by user {user.id}",
            )
    except UserFacingError as error:
        if error.code == ErrorCode.INSUFFICIENT_BALANCE:
            raise UserFacingError(error.code, "The shop's available balance is less than this amount.",
                                  "amount") from None
        raise
    return withdrawal


async def _locked(withdrawal_id: int) -> Withdrawal:
    found = await Withdrawal.filter(id=withdrawal_id).select_for_update().first()
    if found is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such withdrawal.", "withdrawalId")
    return found


def _state(withdrawal: Withdrawal, verb: str) -> UserFacingError:
    return UserFacingError(ErrorCode.INVALID_STATE, f"A {withdrawal.status.value} withdrawal cannot be {verb}.")


async def approve(actor: Actor, withdrawal_id: int) -> Withdrawal:
    permissions.require(actor, Action.PROCESS_WITHDRAWAL)
    async with outbox.atomic():
        withdrawal = await _locked(withdrawal_id)
        if withdrawal.status != WithdrawalStatus.REQUESTED:
            raise _state(withdrawal, "approved")
        withdrawal.status, withdrawal.decided_at = WithdrawalStatus.APPROVED, datetime.now(UTC)
        await withdrawal.save(update_fields=["status", "decided_at"])
    return withdrawal


async def mark_paid(actor: Actor, withdrawal_id: int, payout_reference: str) -> Withdrawal:
    """The money has left the platform: out of the books, the fee to the platform."""
    admin = permissions.require(actor, Action.PROCESS_WITHDRAWAL)
    reference = clean_text(payout_reference, "payoutReference", minimum=1, maximum=120)
    async with outbox.atomic():
        withdrawal = await _locked(withdrawal_id)
        if withdrawal.status != WithdrawalStatus.APPROVED:
            raise _state(withdrawal, "marked paid (approve it first)" if withdrawal.status == WithdrawalStatus.REQUESTED
                         else "marked paid")
        amount, fee = Decimal(withdrawal.amount), Decimal(withdrawal.fee)
        await ledger.post(
            "withdrawal.paid", str(withdrawal.id),
            [(pending_account(withdrawal.merchant_id), -amount), (PAYOUTS, amount - fee), (ledger.PLATFORM_FEES, fee)],
            memo=f"withdrawal {withdrawal.id} paid by user {admin.id}: {reference}",
        )
        withdrawal.status, withdrawal.paid_at = WithdrawalStatus.PAID, datetime.now(UTC)
        withdrawal.payout_reference = reference
        await withdrawal.save(update_fields=["status", "paid_at", "payout_reference"])
        await _tell_owner(withdrawal, f"Your withdrawal of {amount} is paid", f"Reference {reference}.")
    return withdrawal


async def reject(actor: Actor, withdrawal_id: int, note: str) -> Withdrawal:
    """A REQUESTED or APPROVED withdrawal is refused: the money returns to the shop."""
    admin = permissions.require(actor, Action.PROCESS_WITHDRAWAL)
    note = clean_text(note, "note", minimum=3, maximum=300)
    async with outbox.atomic():
        withdrawal = await _locked(withdrawal_id)
        if withdrawal.status not in (WithdrawalStatus.REQUESTED, WithdrawalStatus.APPROVED):
            raise _state(withdrawal, "rejected")
        amount = Decimal(withdrawal.amount)
        await ledger.post(
            "withdrawal.reject", str(withdrawal.id),
            [(pending_account(withdrawal.merchant_id), -amount), (ledger.merchant_balance(withdrawal.merchant_id), amount)],
            memo=f"withdrawal {withdrawal.id} rejected by user {admin.id}",
        )
        withdrawal.status, withdrawal.decided_at, withdrawal.note = WithdrawalStatus.REJECTED, datetime.now(UTC), note
        await withdrawal.save(update_fields=["status", "decided_at", "note"])
        await _tell_owner(withdrawal, f"Your withdrawal of {amount} was declined", note)
    return withdrawal


async def _tell_owner(withdrawal: Withdrawal, title: str, body: str) -> None:
    owner_id = await Merchant.filter(id=withdrawal.merchant_id).values_list("owner_id", flat=True)
    await notifications.notify(int(owner_id[0]), f"WITHDRAWAL_{withdrawal.status.value}", title, body,
                               {"withdrawalId": withdrawal.id}, dedupe_key=f"withdrawal:{withdrawal.id}:{withdrawal.status}")


# -- reads ----------------------------------------------------------------------------------


async def of_merchant(actor: Actor, merchant: Merchant, *, first: int | None, after: str | None) -> Page[Withdrawal] | None:
    """A shop's withdrawals, newest first: for its owner and staff (None for others)."""
    if not permissions.allowed(actor, Action.READ_SHOP_PRIVATE, owner_id=merchant.owner_id):
        return None
    return await paginate(Withdrawal.filter(merchant_id=merchant.id), first=first, after=after)


async def queue(actor: Actor, status: WithdrawalStatus | None, *, first: int | None,
                after: str | None) -> Page[Withdrawal]:
    """ADMINs: withdrawals to process, oldest first."""
    permissions.require(actor, Action.PROCESS_WITHDRAWAL)
    query = Withdrawal.all() if status is None else Withdrawal.filter(status=status)
    return await paginate(query, first=first, after=after, newest_first=False)


async def pending_total(merchant_id: int) -> Decimal:
    return await ledger.balance(pending_account(merchant_id))
