"""The double-entry ledger: balanced, idempotent, never overdrawn; and the invariant checker
every money test ends with (``assert_ledger_consistent``)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from decimal import Decimal

import pytest

from models.commerce.ledger import Account, Entry, Posting
from resolvers.commerce import escrow, ledger
from resolvers.errors import ErrorCode, UserFacingError
from tests.conftest import Stack

ZERO = Decimal("0.00")


async def assert_ledger_consistent() -> None:
    """The ledger's invariants, over every account and posting in the database:

    * every posting's entries sum to zero, and so do all entries per currency;
    * each account's cached balance equals the sum of its entries;
    * no account that may not go negative is negative.
    """
    accounts = {a.id: a for a in await Account.all()}
    per_account: dict[int, Decimal] = defaultdict(lambda: ZERO)
    per_posting: dict[int, Decimal] = defaultdict(lambda: ZERO)
    per_currency: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for posting_id, account_id, amount in await Entry.all().values_list("posting_id", "account_id", "amount"):
        amount = Decimal(amount)
        per_account[account_id] += amount
        per_posting[posting_id] += amount
        per_currency[accounts[account_id].currency] += amount
    unbalanced = {p: total for p, total in per_posting.items() if total != 0}
    assert not unbalanced, f"unbalanced postings: {unbalanced}"
    assert all(total == 0 for total in per_currency.values()), f"entries do not sum to zero: {dict(per_currency)}"
    drift = {
        a.code: (a.balance, per_account[a.id]) for a in accounts.values() if Decimal(a.balance) != per_account[a.id]
    }
    assert not drift, f"cached balance != sum of entries (cached, entries): {drift}"
    negative = [a.code for a in accounts.values() if not a.allow_negative and a.balance < 0]
    assert not negative, f"accounts below zero: {negative}"
    empty = await Posting.filter(entries__id__isnull=True).values_list("reason", "reference")
    assert not empty, f"postings without entries: {empty}"


async def fund(code: str, amount: str) -> None:
    await ledger.post("test.fund", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, -Decimal(amount)), (code, Decimal(amount))])


def codes() -> tuple[str, str]:
    return ledger.wallet(10**12 + uuid.uuid4().int % 10**9), ledger.wallet(10**12 + uuid.uuid4().int % 10**9)


async def test_post_is_balanced_and_idempotent(stack: Stack) -> None:
    alice, _ = codes()
    reference = uuid.uuid4().hex
    legs = [(ledger.ADJUSTMENTS, Decimal("-12.50")), (alice, Decimal("12.50"))]
    assert await ledger.post("test.fund", reference, legs) is True
    assert await ledger.post("test.fund", reference, legs) is False  # a replay posts nothing
    assert await ledger.balance(alice) == Decimal("12.50")
    assert await Posting.filter(reason="test.fund", reference=reference).count() == 1
    await assert_ledger_consistent()


async def test_unbalanced_and_bad_amounts_are_refused(stack: Stack) -> None:
    alice, _ = codes()
    reference = uuid.uuid4().hex
    with pytest.raises(ValueError, match="unbalanced"):
        await ledger.post("test.bad", reference, [(ledger.ADJUSTMENTS, Decimal("-1.00")), (alice, Decimal("0.99"))])
    with pytest.raises(UserFacingError) as caught:
        await ledger.post("test.bad", reference, [(ledger.ADJUSTMENTS, Decimal("-1.001")), (alice, Decimal("1.001"))])
    assert caught.value.code == ErrorCode.INVALID_INPUT
    assert not await Posting.filter(reason="test.bad", reference=reference).exists()
    await assert_ledger_consistent()


async def test_overdraft_is_refused_and_rolls_back_the_whole_posting(stack: Stack) -> None:
    alice, bob = codes()
    await fund(alice, "5.00")
    reference = uuid.uuid4().hex
    with pytest.raises(UserFacingError) as caught:
        await ledger.post("test.move", reference, [(alice, Decimal("-5.01")), (bob, Decimal("5.01"))])
    assert caught.value.code == ErrorCode.INSUFFICIENT_BALANCE
    assert await ledger.balance(alice) == Decimal("5.00")
    assert await ledger.balance(bob) == ZERO
    assert not await Posting.filter(reason="test.move", reference=reference).exists()
    # System accounts stand for the outside world: they may go negative.
    await ledger.post("test.gw", uuid.uuid4().hex, [(ledger.gateway("test"), Decimal("-3.00")), (bob, Decimal("3.00"))])
    assert await ledger.balance(ledger.gateway("test")) <= Decimal("-3.00")
    await assert_ledger_consistent()


async def test_concurrent_debits_never_overdraw(stack: Stack) -> None:
    alice, bob = codes()
    await fund(alice, "10.00")

    async def spend() -> bool:
        try:
            legs = [(alice, Decimal("-1.00")), (bob, Decimal("1.00"))]
            return await ledger.post("test.spend", uuid.uuid4().hex, legs)
        except UserFacingError as error:
            assert error.code == ErrorCode.INSUFFICIENT_BALANCE
            return False

    results = await asyncio.gather(*(spend() for _ in range(25)))
    assert results.count(True) == 10
    assert await ledger.balance(alice) == ZERO
    assert await ledger.balance(bob) == Decimal("10.00")
    await assert_ledger_consistent()


async def test_a_posting_makes_the_accounts_it_credits_and_never_one_it_debits(stack: Stack) -> None:
    alice, bob = codes()
    # A debit from an account that holds nothing yet (has no row) is refused and makes none.
    with pytest.raises(UserFacingError) as caught:
        await ledger.post("test.move", uuid.uuid4().hex, [(alice, Decimal("-1.00")), (bob, Decimal("1.00"))])
    assert caught.value.code == ErrorCode.INSUFFICIENT_BALANCE
    assert not await Account.filter(code__in=[alice, bob]).exists()
    # Credited for the first time by many postings at once: one account, every credit on it.
    gateway = ledger.gateway(f"test{uuid.uuid4().hex[:8]}")
    await asyncio.gather(*(ledger.post("test.gw", uuid.uuid4().hex, [(gateway, Decimal("-2.00")), (alice, Decimal("2.00"))])
                           for _ in range(8)))
    made = {a.code: a for a in await Account.filter(code__in=[alice, gateway])}
    assert (made[alice].balance, made[alice].allow_negative, made[alice].currency) == (Decimal("16.00"), False, "CNY")
    # A system account (the outside world) may go negative, and is made so.
    assert (made[gateway].balance, made[gateway].allow_negative) == (Decimal("-16.00"), True)
    await assert_ledger_consistent()


async def test_balances_batch_in_order_with_zero_for_unknown(stack: Stack) -> None:
    alice, unknown = codes()
    await fund(alice, "2.00")
    assert await ledger.balances([unknown, alice, unknown]) == [ZERO, Decimal("2.00"), ZERO]


@pytest.mark.parametrize(
    ("total", "fee"),
    [("10.00", "0.50"), ("0.01", "0.00"), ("0.10", "0.01"), ("19.99", "1.00"), ("12345.67", "617.28")],
)
async def test_platform_fee_is_rounded_half_up_to_the_cent(stack: Stack, total: str, fee: str) -> None:
    from models.commerce.orders import Order

    assert stack.settings.platform_fee_rate == Decimal("0.05")
    assert escrow.fee(Order(total=Decimal(total))) == Decimal(fee)
