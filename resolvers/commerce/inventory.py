"""Inventory: every stock movement, and card keys' import and audited reveal.

Stock moves only here: an order reserves it (card keys or stock units), an unpaid order
releases it, a late-paid order takes it again, delivery sells the keys, and a delivered
order counts as sold. Every movement is conditional (on a key still being available, on
enough units being left), so concurrent orders never take the same stock twice; the caller
holds the transaction that binds the movement to the order's transition.

Secrets are sealed with AES-GCM (kameng.crypto) bound to their product, and deduplicated by
an HMAC fingerprint under the unique index (product_id, fingerprint): the database decides
what is new (INSERT ... ON CONFLICT DO NOTHING, counted), so counts stay exact when imports
of overlapping batches run at once. Imports go in chunks, each its own short transaction, so
that a large import never holds the API's writers up for long: on PostgreSQL 25,000 keys per
chunk, COPYed into a temporary staging table and moved into ``card_key`` by one INSERT ...
SELECT that dedupes by fingerprint in SQL (resolvers/commerce/key_staging.py); elsewhere
1,000 keys per multi-row INSERT. Sealing (AES-GCM, ~2 µs a key, as much again for the HMAC
fingerprint, measured) runs in a worker thread, one chunk ahead of the database.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Count
from tortoise import connections
from tortoise.transactions import in_transaction

from kameng import crypto
from models.commerce.catalog import SOLD_COUNT, DeliveryKind, Product
from models.commerce.merchants import MerchantStatus
from models.commerce.inventory import KEYS_OF_ORDER, CardKey, CardKeyReveal, CardKeyStatus
from models.commerce.orders import Order
from models.statements import placeholders
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce import key_staging
from resolvers.commerce.access import is_buyer
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import cache_tags, outbox

#: One GraphQL import at most; the command line has no limit (it reads a file in chunks).
MAX_KEYS_PER_REQUEST = 10_000
MAX_KEY_LENGTH = 500
#: Keys per INSERT and per transaction: short write transactions leave room for the API.
CHUNK_SIZE = 1_000
#: Keys per transaction on PostgreSQL's COPY path (resolvers/commerce/key_staging.py).
COPY_CHUNK_SIZE = 25_000
#: 6 parameters per key: 5,000 keys stay below PostgreSQL's 32,767 parameters per statement.
MAX_CHUNK_SIZE = 5_000

#: Control characters (Unicode category Cc) other than tab; a regex, as this runs per key.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

#: ``progress(done, total)`` after each chunk: keys handled so far, of how many.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: int  # new keys stored
    duplicates: int  # repeated within the batch, or already stored for the product
    blank: int  # empty lines dropped


def clean_keys(raw: Iterable[str], *, limit: int | None = None) -> tuple[list[str], int]:
    """Trimmed, non-blank keys in input order, and how many blanks were dropped.

    INVALID_INPUT (field ``keys``) for more than ``limit`` keys, a key over 500 characters,
    or control characters other than tab.
    """
    keys: list[str] = []
    blank = 0
    for position, item in enumerate(raw, start=1):
        if limit is not None and position > limit:
            raise invalid("keys", f"Import at most {limit} keys at once (the command line takes more).")
        key = item.strip()
        if not key:
            blank += 1
            continue
        if len(key) > MAX_KEY_LENGTH:
            raise invalid("keys", f"Key {position} is longer than {MAX_KEY_LENGTH} characters.")
        if _CONTROL.search(key):
            raise invalid("keys", f"Key {position} contains control characters.")
        keys.append(key)
    return keys, blank


async def card_key_product(actor: Actor | None, product_id: int) -> Product:
    """The CARD_KEY product keys may be imported into: by its shop's owner only
    (``actor`` None is the system, e.g. the command line run by an operator)."""
    user = permissions.require_signed_in(actor) if actor is not None else None
    product = await Product.filter(id=product_id).select_related("merchant").first()
    if product is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", "productId")
    if user is not None:
        if not permissions.permits(user, Action.IMPORT_CARD_KEYS, owner_id=product.merchant.owner_id):
            raise UserFacingError(ErrorCode.FORBIDDEN, "Only the shop's owner imports its keys.", "productId")
        if product.merchant.status != MerchantStatus.ACTIVE:
            raise UserFacingError(ErrorCode.INVALID_STATE, "This shop is suspended.", "productId")
    if product.delivery_kind != DeliveryKind.CARD_KEY:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Only CARD_KEY products hold card keys.", "productId")
    return product


async def import_card_keys(
    actor: Actor | None,
    product_id: int,
    keys: Iterable[str],
    *,
    limit: int | None = MAX_KEYS_PER_REQUEST,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import card keys: trim, drop blanks, dedupe in the batch and against stored keys.

    Everything is validated before the first write, so bad input changes nothing. Then each
    chunk (``chunk_size`` keys; by default 25,000 on PostgreSQL, 1,000 elsewhere) is written
    in its own short transaction; between chunks the event loop runs other work. A retried
    or overlapping import only adds what is new.
    """
    if chunk_size is not None and not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
    product = await card_key_product(actor, product_id)
    cleaned, blank = clean_keys(keys, limit=limit)
    box = crypto.box()
    # Deduplicated within the batch first (fingerprints in a worker thread for big batches),
    # so progress counts distinct keys; the database dedupes against what is stored.
    fingerprints = functools.partial(_by_fingerprint, box, product.id, cleaned)
    unique = await asyncio.to_thread(fingerprints) if len(cleaned) > CHUNK_SIZE else fingerprints()
    items = list(unique.items())
    if connections.get("default").capabilities.dialect == "postgres":
        imported = await key_staging.import_sealed(
            product.id, items, box, chunk_size=chunk_size or COPY_CHUNK_SIZE, progress=progress
        )
        if imported:
            cache_tags.touch(cache_tags.stock(product.id))  # the response cache's stock of this product
        return ImportResult(imported=imported, duplicates=len(cleaned) - imported, blank=blank)
    chunk_size = chunk_size or CHUNK_SIZE
    total = len(items)
    imported = 0
    for start in range(0, total, chunk_size):
        imported += await _insert_chunk(product.id, items[start : start + chunk_size], box)
        if progress is not None:
            progress(min(start + chunk_size, total), total)
        await asyncio.sleep(0)  # let the API's other requests in between chunks
    return ImportResult(imported=imported, duplicates=len(cleaned) - imported, blank=blank)


def _by_fingerprint(box: crypto.SecretBox, product_id: int, keys: list[str]) -> dict[str, str]:
    unique: dict[str, str] = {}
    for key in keys:
        unique.setdefault(box.fingerprint(key, product_id=product_id), key)
    return unique


_COLUMNS = ("product_id", "key_id", "ciphertext", "fingerprint", "status", "created_at")


async def _insert_chunk(product_id: int, items: Sequence[tuple[str, str]], box: crypto.SecretBox) -> int:
    """Insert (fingerprint, secret) pairs that are new for the product, in the given order
    (keys are sold oldest first); return how many were new.

    No separate "which of these exist?" query first: the INSERT's ON CONFLICT answers that
    exactly and uses the unique index, where a 1,000-value IN list on a table that just grew
    (no planner statistics yet) made PostgreSQL scan the product's keys (measured 2 s per
    chunk, 13x slower overall).
    """
    created_at = CardKey._meta.fields_map["created_at"].to_db_value(datetime.now(UTC), CardKey)
    rows = []
    for fingerprint, secret in items:  # sealed before the transaction: it stays short
        sealed = box.seal(secret, product_id=product_id)
        rows.append((product_id, sealed.key_id, sealed.ciphertext, fingerprint, CardKeyStatus.AVAILABLE.value, created_at))
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            # Concurrent imports into one product take turns per chunk. Without this, two
            # chunks inserting overlapping keys in different orders would each wait on the
            # other's uncommitted rows in the unique index: a deadlock. (Stock taking and
            # other products are not affected; SQLite writes one transaction at a time.)
            await key_staging.lock_product(connection, product_id)
        inserted = await _insert_new(connection, rows)
    if inserted:
        cache_tags.touch(cache_tags.stock(product_id))
    return inserted


async def _insert_new(connection: BaseDBAsyncClient, rows: list[tuple[Any, ...]]) -> int:
    dialect = connection.capabilities.dialect
    if dialect in ("sqlite", "postgres"):
        # ON CONFLICT DO NOTHING: the unique index skips keys already stored (or being stored
        # by a concurrent import); the affected-row count is exactly what was new.
        width = len(_COLUMNS)
        if dialect == "postgres":
            groups = (
                "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(len(rows))
            )
        else:
            groups = ("(" + ", ".join("?" * width) + ")" for _ in rows)
        columns = ", ".join(f'"{c}"' for c in _COLUMNS)
        sql = (
            f'INSERT INTO "card_key" ({columns}) VALUES {", ".join(groups)} '
            'ON CONFLICT ("product_id", "fingerprint") DO NOTHING'
        )
        values = [value for row in rows for value in row]
        if dialect == "postgres":
            # Counted by RETURNING: Tortoise's asyncpg client reads an INSERT's status tag
            # ("INSERT 0 n") at the wrong position, so the affected-row count it gives is 0.
            counted = f'WITH inserted AS ({sql} RETURNING 1) SELECT COUNT(*) AS "n" FROM inserted'
            _, result = await connection.execute_query(counted, values)
            return int(result[0]["n"])
        count, _ = await connection.execute_query(sql, values)  # SQLite: its changes() count
        return count
    # Any other backend: one savepoint per key (slower, equally exact).
    inserted = 0
    for row in rows:
        try:
            async with outbox.atomic():
                await CardKey.create(**dict(zip(_COLUMNS[:-1], row[:-1], strict=True)))
            inserted += 1
        except IntegrityError:
            pass
    return inserted


# -- stock movements --------------------------------------------------------------------


async def reserve(order: Order, product: Product) -> None:
    """Hold a new order's stock until it is paid or expires: its card keys, or its units.

    SOLD_OUT or INSUFFICIENT_STOCK if there is not enough; the caller's transaction then
    undoes a partial take.
    """
    if product.delivery_kind == DeliveryKind.CARD_KEY:
        taken = await take_keys(product.id, order.id, order.quantity, CardKeyStatus.RESERVED)
        if taken < order.quantity:
            if taken == 0 and not await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).exists():
                raise UserFacingError(ErrorCode.SOLD_OUT, "Sold out.", "productId")
            raise UserFacingError(ErrorCode.INSUFFICIENT_STOCK, "Not enough stock for this quantity.", "quantity")
    elif product.stock_limit is not None:
        if not await _take_units(product.id, order.quantity):
            code = ErrorCode.SOLD_OUT if product.stock_limit <= 0 else ErrorCode.INSUFFICIENT_STOCK
            raise UserFacingError(code, "Not enough stock for this quantity.", "quantity")


async def take_again(order: Order) -> bool:
    """A cancelled order paid late takes its stock again: True if all of it was there.

    On False the caller's savepoint must undo whatever part was taken.
    """
    product = await Product.get(id=order.product_id)
    if product.delivery_kind == DeliveryKind.CARD_KEY:
        return await take_keys(product.id, order.id, order.quantity, CardKeyStatus.RESERVED) == order.quantity
    if product.stock_limit is not None:
        return await _take_units(product.id, order.quantity)
    return True


async def _take_units(product_id: int, quantity: int) -> bool:
    updated = await Product.filter(id=product_id, stock_limit__gte=quantity).update(
        stock_limit=F("stock_limit") - quantity
    )
    if updated:
        cache_tags.touch(cache_tags.stock(product_id))
    return updated == 1


async def take_keys(product_id: int, order_id: int, quantity: int, status: CardKeyStatus) -> int:
    """Bind up to ``quantity`` available keys of a product to an order; returns how many.

    One statement, written once per dialect (it runs for every card-key order, issue 15): keys
    picked in id order (on PostgreSQL FOR UPDATE SKIP LOCKED: concurrent buyers take different
    keys without waiting), changed only while still available, counted by the rows changed."""
    connection = connections.get("default")
    sold = status == CardKeyStatus.SOLD
    values: list[Any] = [status.value, order_id]
    if sold:
        values.append(CardKey._meta.fields_map["sold_at"].to_db_value(datetime.now(UTC), None))
    values += [product_id, CardKeyStatus.AVAILABLE.value, quantity, CardKeyStatus.AVAILABLE.value]
    dialect = connection.capabilities.dialect
    taken, rows = await connection.execute_query(_take_sql(dialect, sold), values)
    if dialect == "postgres":  # a WITH statement comes back as rows, not as a count
        taken = len(rows)
    if taken:
        cache_tags.touch(cache_tags.stock(product_id))
    return taken


@functools.cache
def _take_sql(dialect: str, sold: bool) -> str:
    marks = iter(placeholders(dialect, 7))
    changes = f'"status" = {next(marks)}, "order_id" = {next(marks)}' + (f', "sold_at" = {next(marks)}' if sold else "")
    pick = (f'SELECT "id" FROM "card_key" WHERE "product_id" = {next(marks)} AND "status" = {next(marks)} '
            f'ORDER BY "id" LIMIT {next(marks)}')
    if dialect == "postgres":
        # The pick is materialised, so it runs (and locks) once: written as IN (subquery) the
        # planner may rescan it per row and bind more keys than asked.
        return (f'WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) UPDATE "card_key" k SET {changes} '
                f'FROM picked WHERE k."id" = picked."id" AND k."status" = {next(marks)} RETURNING k."id"')
    return f'UPDATE "card_key" SET {changes} WHERE "id" IN ({pick}) AND "status" = {next(marks)}'


async def release(order: Order) -> None:
    """Give back what an unpaid or undelivered order held (its reserved keys, or its units)."""
    released = await CardKey.filter(order_id=order.id, status=CardKeyStatus.RESERVED).update(
        status=CardKeyStatus.AVAILABLE, order_id=None
    )
    if released:
        cache_tags.touch(cache_tags.stock(order.product_id))
    if released == 0:
        product = await Product.get(id=order.product_id)
        if product.delivery_kind != DeliveryKind.CARD_KEY and product.stock_limit is not None:
            await Product.filter(id=product.id).update(stock_limit=F("stock_limit") + order.quantity)
            cache_tags.touch(cache_tags.stock(product.id))


async def sell_keys(order: Order, now: datetime) -> int:
    """At delivery: the keys reserved at checkout become SOLD, and a revived (late-paid) order
    that holds too few takes fresh ones. Returns how many keys the order now has sold; a
    re-run finds them sold already and takes no more."""
    sold = await KEYS_OF_ORDER.run({"status": CardKeyStatus.SOLD, "sold_at": now}, order.id, CardKeyStatus.RESERVED)
    if sold != order.quantity:  # a re-run, or a revived order: count what it holds
        sold = await CardKey.filter(order_id=order.id, status=CardKeyStatus.SOLD).count()
    if sold < order.quantity:
        sold += await take_keys(order.product_id, order.id, order.quantity - sold, CardKeyStatus.SOLD)
    return sold


async def count_sold(order: Order) -> None:
    """A delivered order adds to its product's sold count, once: in the DELIVERED transition's
    transaction, at its commit (a row every delivery of the product locks; issue 15)."""
    outbox.add_at_commit(SOLD_COUNT, order.product_id, order.quantity)
    cache_tags.touch(cache_tags.product(order.product_id), cache_tags.PRODUCT_LIST_BY_SALES)


# -- stock counts -----------------------------------------------------------------------


async def available_counts(product_ids: list[int]) -> list[int]:
    """Batch load for DataLoaders: available keys per product, in one grouped COUNT."""
    rows = (
        await CardKey.filter(product_id__in=product_ids, status=CardKeyStatus.AVAILABLE)
        .group_by("product_id")
        .annotate(n=Count("id"))
        .values_list("product_id", "n")
    )
    found = {product_id: n for product_id, n in rows}
    return [found.get(i, 0) for i in product_ids]


# -- reveal -----------------------------------------------------------------------------


async def reveal_card_keys(actor: Actor, order: Order) -> list[str]:
    """The secrets of an order's delivered (SOLD) keys, decrypted, for the order's buyer only.

    Anyone else gets an empty list (and nothing is decrypted). Every reveal is audited: one
    CardKeyReveal row per key, with who and from where, written before the secrets leave.
    """
    return [secret for _, secret in await reveal_keys(actor, order)]


async def reveal_keys(actor: Actor, order: Order) -> list[tuple[int, str]]:
    """``reveal_card_keys`` with each key's id (a buyer names the key they report by it)."""
    if not is_buyer(actor, order):
        return []
    keys = await CardKey.filter(order_id=order.id, status=CardKeyStatus.SOLD).order_by("id")
    if not keys:
        return []
    box = crypto.box()
    secrets = [box.open(key.key_id, key.ciphertext, product_id=key.product_id) for key in keys]
    await CardKeyReveal.bulk_create(
        [CardKeyReveal(card_key_id=key.id, order_id=order.id, user_id=actor.user_id, ip=actor.ip[:64]) for key in keys]
    )
    return [(key.id, secret) for key, secret in zip(keys, secrets, strict=True)]


async def reveals_of(order_ids: list[int]) -> list[list[CardKeyReveal]]:
    """Batch load for DataLoaders: every order's key reveals (the audit), oldest first, in
    one query. Who may read them is the caller's question (see ``may_read_reveals``)."""
    grouped: dict[int, list[CardKeyReveal]] = {i: [] for i in order_ids}
    for reveal in await CardKeyReveal.filter(order_id__in=order_ids).order_by("id"):
        grouped[reveal.order_id].append(reveal)
    return [grouped[i] for i in order_ids]


def may_read_reveals(actor: Actor, order: Order) -> bool:
    """The reveal audit of an order is its buyer's (and staff's): it names addresses."""
    if is_buyer(actor, order):
        return True
    return order.buyer_id is not None and permissions.allowed(actor, Action.READ_PRIVATE, owner_id=order.buyer_id)
