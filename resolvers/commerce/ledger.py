"""Posting money: balanced, idempotent on (reason, reference), never below zero where it must not.

Call ``post`` inside the transaction of the state change it pays for. Account rows are
updated with conditional ``UPDATE ... SET balance = balance + x WHERE balance + x >= 0``
statements whose affected-row count is checked, so concurrent postings cannot overdraw.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from tortoise import connections

from models.commerce.ledger import Account, Entry, Posting
from models.commerce.orders import Order
from models.statements import InsertNew, placeholders
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import outbox

CENT = Decimal("0.01")
PLATFORM_FEES = "platform:fees"
ADJUSTMENTS = "platform:adjustments"
NEW_ACCOUNTS = InsertNew(Account)
NEW_POSTING = InsertNew(Posting)
#: Accounts that stand for the outside world or the platform's books, which may be negative.
_SYSTEM_PREFIXES = ("gateway:", "platform:")


def wallet(user_id: int) -> str:
    return f"wallet:{user_id}"


def merchant_balance(merchant_id: int) -> str:
    return f"merchant:{merchant_id}"


def merchant_deposit(merchant_id: int) -> str:
    return f"deposit:{merchant_id}"


def escrow(order_id: int) -> str:
    """Each order's escrow is an account of its own: payments do not queue on one hot row,
    and an order's escrow can never go below zero."""
    return f"escrow:{order_id}"


def gateway(provider: str) -> str:
    return f"gateway:{provider}"


def money(value: Decimal | str | int) -> Decimal:
    amount = Decimal(value)
    if amount != amount.quantize(CENT):
        raise UserFacingError(ErrorCode.INVALID_INPUT, "Amounts have at most two decimals.", "amount")
    return amount.quantize(CENT)


async def accounts(codes: Iterable[str], currency: str = "CNY") -> dict[str, Account]:
    """The accounts with these codes, those missing created: one SELECT when all exist, plus
    one INSERT ... ON CONFLICT DO NOTHING RETURNING for the new ones (an order's escrow, on
    every payment); only a row a concurrent creator took first is read again."""
    wanted = set(codes)
    found = {a.code: a for a in await Account.filter(code__in=wanted)}
    missing = sorted(wanted - found.keys())
    if missing:
        found.update({a.code: a for a in await NEW_ACCOUNTS.run(
            [Account(code=code, currency=currency, allow_negative=code.startswith(_SYSTEM_PREFIXES)) for code in missing])})
        if taken := [code for code in missing if code not in found]:
            found.update({a.code: a for a in await Account.filter(code__in=taken)})
    return found


async def account(code: str, currency: str = "CNY") -> Account:
    """The account with ``code``, created on first use."""
    return (await accounts([code], currency))[code]


async def post(reason: str, reference: str, legs: Iterable[tuple[str, Decimal]], memo: str = "",
               *, order_no: str | None = None) -> bool:
    """Post a balanced movement once. Returns False if (reason, reference) was already posted.

    ``order_no``: the number of the order whose escrow a leg moves, when the caller holds it
    (escrow.py does), so the trade-log leaf need not read it.

    Raises INSUFFICIENT_BALANCE if an account that may not go negative would. Inside a
    transaction it opens no savepoint: the error rolls back the caller's transaction, so a
    caller that recovers from it holds a savepoint of its own around the call.
    """
    legs = [(code, money(amount)) for code, amount in legs if Decimal(amount) != 0]
    if sum((amount for _, amount in legs), Decimal(0)) != 0:
        raise ValueError(f"unbalanced posting {reason}:{reference}: {legs}")
    # The caller's transaction when there is one, with no savepoint of its own (each costs two
    # round trips, SAVEPOINT and RELEASE, on every payment): a replay is the INSERT that
    # returns no row, and an error rolls back the caller's transaction, or the savepoint a
    # caller that recovers from it holds (onboarding, promises and remedies do).
    async with outbox.atomic(join=True):
        found = await accounts(code for code, _ in legs)
        made = await NEW_POSTING.run([Posting(reason=reason, reference=reference, memo=memo[:300])])
        if not made:
            return False
        posting = made[0]
        await Entry.bulk_create([Entry(posting=posting, account=found[code], amount=amount) for code, amount in legs])
        await _trade(posting, legs, found, order_no)
        # The balances last: their row locks are then held only until the caller commits (after
        # the outbox's two INSERTs, written just before), not across the posting's other
        # statements (an INSUFFICIENT_BALANCE still rolls all back).
        # One global order (by code), so concurrent postings lock account rows alike and
        # cannot deadlock each other.
        connection = connections.get("default")  # the caller's transaction
        dialect = connection.capabilities.dialect
        for code, amount in sorted(legs, key=lambda leg: leg[0]):
            acct = found[code]
            guarded = amount < 0 and not acct.allow_negative
            values = [amount, acct.id, -amount] if guarded else [amount, acct.id]
            updated, _ = await connection.execute_query(_balance_sql(dialect, guarded), values)
            if updated != 1:
                raise UserFacingError(ErrorCode.INSUFFICIENT_BALANCE, "The balance is not enough for this payment.")
        return True


@functools.cache
def _balance_sql(dialect: str, guarded: bool) -> str:
    """A balance moved by an amount, refused (no row) if ``guarded`` and it would go below zero.

    Written once per dialect, as the ORM wrote it (on SQLite the column is cast, as Tortoise
    does): it runs twice or more for every payment (issue 15)."""
    balance = '"balance"' if dialect == "postgres" else 'CAST("balance" AS NUMERIC)'
    marks = placeholders(dialect, 3)
    sql = f'UPDATE "ledger_account" SET "balance" = {balance} + {marks[0]} WHERE "id" = {marks[1]}'
    return sql + (f" AND {balance} >= {marks[2]}" if guarded else "")


async def _trade(posting: Posting, legs: list[tuple[str, Decimal]], found: dict[str, Account],
                 order_no: str | None = None) -> None:
    """The posting's trade-log leaf. Account codes name users, so a leg shows only its kind
    (wallet, escrow, merchant...); an escrow leg ties the posting to its order by number."""
    order_id = next((int(code[7:]) for code, _ in legs if code.startswith("escrow:") and code[7:].isdigit()), None)
    if order_id is None:
        order_no = None
    elif order_no is None:
        order_no = await Order.filter(id=order_id).first().values_list("order_no", flat=True)
    await outbox.trade(
        {"event": "posting", "posting": posting.id, "reason": posting.reason, "order": order_no,
         "amount": str(sum((amount for _, amount in legs if amount > 0), Decimal("0.00"))),
         "currency": found[legs[0][0]].currency if legs else "CNY",
         "legs": sorted([code.split(":", 1)[0], str(amount)] for code, amount in legs),
         "at": datetime.now(UTC).isoformat()},
        order_id=order_id,
    )


async def balance(code: str) -> Decimal:
    found = await Account.filter(code=code).first()
    return found.balance if found is not None else Decimal("0.00")


async def balances(codes: list[str]) -> list[Decimal]:
    """Batch load for DataLoaders."""
    found = {a.code: a.balance for a in await Account.filter(code__in=codes)}
    return [found.get(code, Decimal("0.00")) for code in codes]
