"""Posting money: balanced, idempotent on (reason, reference), never below zero where it must not.

Call ``post`` inside the transaction of the state change it pays for. A user's account is
lowered with a conditional ``UPDATE ... SET balance = balance + x WHERE balance >= -x
RETURNING id`` whose missing row refuses the posting, so concurrent postings cannot overdraw;
a credit is an ``INSERT ... ON CONFLICT DO UPDATE`` that makes the account on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise import connections

from models.commerce.ledger import Account, Entry, Posting
from models.commerce.orders import Order
from models.statements import Insert, InsertNew, placeholders
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import outbox

CENT = Decimal("0.01")
PLATFORM_FEES = "platform:fees"
ADJUSTMENTS = "platform:adjustments"
NEW_POSTING, ENTRIES = InsertNew(Posting), Insert(Entry)
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
        made = await NEW_POSTING.run([Posting(reason=reason, reference=reference, memo=memo[:300])])
        if not made:
            return False
        posting = made[0]
        # Each balance moved by one statement that also names the account's row (id, currency):
        # no read of the accounts first, and a new one (an order's escrow, on every payment)
        # made by the same statement. One global order (by code), so concurrent postings lock
        # account rows alike and cannot deadlock each other.
        connection = connections.get("default")  # the caller's transaction
        dialect = connection.capabilities.dialect
        found: dict[str, dict[str, Any]] = {}
        for code, amount in sorted(legs, key=lambda leg: leg[0]):
            if amount < 0 and not code.startswith(_SYSTEM_PREFIXES):
                rows = await connection.execute_query_dict(_debit_sql(dialect), [amount, code, -amount])
            else:
                rows = await connection.execute_query_dict(
                    _credit_sql(dialect), [code, "CNY", code.startswith(_SYSTEM_PREFIXES), amount])
            if not rows:  # a user's account that would go below zero, or that holds nothing yet
                raise UserFacingError(ErrorCode.INSUFFICIENT_BALANCE, "The balance is not enough for this payment.")
            found[code] = rows[0]
        # The entries go in with the outbox's rows at commit: nothing reads a posting's entries
        # in the transaction that makes it (balances are the accounts' rows; the readers of
        # entries, a replayed deposit and the reversals, read postings of earlier ones).
        outbox.insert_at_commit(ENTRIES, *(Entry(posting=posting, account_id=found[code]["id"], amount=amount)
                                           for code, amount in legs))
        await _trade(posting, legs, found[legs[0][0]]["currency"] if legs else "CNY", order_no)
        return True


@functools.cache
def _debit_sql(dialect: str) -> str:
    """A user's balance lowered by an amount, unless it would go below zero (no row then).

    Written once per dialect, as the ORM writes such updates (on SQLite the column is cast, as
    Tortoise does): one runs on every payment (issue 15)."""
    balance = '"balance"' if dialect == "postgres" else 'CAST("balance" AS NUMERIC)'
    amount, code, floor = placeholders(dialect, 3)
    return (f'UPDATE "ledger_account" SET "balance" = {balance} + {amount} '
            f'WHERE "code" = {code} AND ("allow_negative" OR {balance} >= {floor}) RETURNING "id", "currency"')


@functools.cache
def _credit_sql(dialect: str) -> str:
    """A balance raised (or a system account's moved either way), the account made with it if
    it is new: INSERT ... ON CONFLICT DO UPDATE, one statement either way. On PostgreSQL a
    conflicting INSERT still draws an id from the sequence, so account ids have gaps; nothing
    reads meaning into them."""
    held, added = '"ledger_account"."balance"', 'excluded."balance"'
    if dialect != "postgres":
        held, added = f"CAST({held} AS NUMERIC)", f"CAST({added} AS NUMERIC)"
    code, currency, allow_negative, amount = placeholders(dialect, 4)
    return (f'INSERT INTO "ledger_account" ("code", "currency", "allow_negative", "balance") '
            f"VALUES ({code}, {currency}, {allow_negative}, {amount}) "
            f'ON CONFLICT ("code") DO UPDATE SET "balance" = {held} + {added} RETURNING "id", "currency"')


async def _trade(posting: Posting, legs: list[tuple[str, Decimal]], currency: str,
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
         "currency": currency,
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
