"""Card-key import on PostgreSQL: COPY into a staging table, dedupe by fingerprint in SQL.

Per chunk, in one short transaction:

1. the product's import lock (``pg_advisory_xact_lock``): concurrent imports into one
   product take turns per chunk (two chunks inserting overlapping keys in different orders
   would otherwise each wait on the other's uncommitted rows in the unique index);
2. ``CREATE TEMPORARY TABLE ... ON COMMIT DROP`` and asyncpg's ``copy_records_to_table``
   (binary COPY) of (seq, key_id, ciphertext, fingerprint), through the connection Tortoise
   holds for the transaction;
3. one ``INSERT INTO card_key ... SELECT DISTINCT ON (fingerprint) ... ORDER BY seq
   ON CONFLICT DO NOTHING``: duplicates inside the chunk go by DISTINCT ON (the first one
   wins), keys already stored (or stored by an earlier chunk, or a concurrent import) by the
   unique index; rows keep the input order (keys are sold oldest first); ``RETURNING`` counts
   what was new.

Fingerprints (HMAC-SHA256, computed by the caller to dedupe the batch) and sealing (AES-GCM)
are the CPU cost (~2 µs a key each, measured); sealing runs in a worker thread, one chunk
ahead of the database, so the event loop keeps serving requests and the COPY of one chunk
overlaps the sealing of the next. DISTINCT ON still guards the staging table, so a caller
passing duplicates stores each key once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from kameng import crypto
from models.commerce.inventory import CardKeyStatus

#: First half of the advisory lock key of imports (the second half: the product id).
IMPORT_LOCK = 0x4B4B  # "KK"

#: Memory for the sorts of one chunk (this transaction only).
WORK_MEM = "64MB"
_STAGING = "card_key_staging"
_CREATE = (
    f'CREATE TEMPORARY TABLE "{_STAGING}" '
    "(seq integer NOT NULL, key_id varchar(32) NOT NULL, ciphertext text NOT NULL, fingerprint varchar(64) NOT NULL) "
    "ON COMMIT DROP"
)
_MOVE = f"""
WITH inserted AS (
  INSERT INTO "card_key" ("product_id", "key_id", "ciphertext", "fingerprint", "status", "created_at")
  SELECT $1, s.key_id, s.ciphertext, s.fingerprint, $2, $3
  FROM (SELECT DISTINCT ON (fingerprint) seq, key_id, ciphertext, fingerprint
        FROM "{_STAGING}" ORDER BY fingerprint, seq) AS s
  ORDER BY s.seq
  ON CONFLICT ("product_id", "fingerprint") DO NOTHING
  RETURNING 1
)
SELECT COUNT(*) FROM inserted
"""

Record = tuple[int, str, str, str]


async def lock_product(connection: BaseDBAsyncClient, product_id: int) -> None:
    """Take the product's import lock for the rest of the transaction (PostgreSQL)."""
    await connection.execute_query("SELECT pg_advisory_xact_lock($1, $2)", [IMPORT_LOCK, product_id % 2**31])


def seal_chunk(box: crypto.SecretBox, product_id: int, items: Sequence[tuple[str, str]]) -> list[Record]:
    """(seq, key_id, ciphertext, fingerprint) of each (fingerprint, key), in order (CPU only:
    a worker thread's job)."""
    records: list[Record] = []
    for seq, (fingerprint, key) in enumerate(items):
        sealed = box.seal(key, product_id=product_id)
        records.append((seq, sealed.key_id, sealed.ciphertext, fingerprint))
    return records


async def copy_chunk(product_id: int, records: list[Record]) -> int:
    """Store the sealed records new for the product, in one transaction; how many were new."""
    from models.commerce.inventory import CardKey

    created_at = CardKey._meta.fields_map["created_at"].to_db_value(datetime.now(UTC), CardKey)
    async with in_transaction() as connection:
        await lock_product(connection, product_id)
        async with connection.acquire_connection() as raw:  # the transaction's asyncpg connection
            # The chunk's two sorts (DISTINCT ON, then input order) stay in memory (the default
            # 4 MB spilled 25,000 rows to disk: ~10% of the chunk's time, measured).
            await raw.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            await raw.execute(_CREATE)
            await raw.copy_records_to_table(
                _STAGING, records=records, columns=["seq", "key_id", "ciphertext", "fingerprint"]
            )
            count: Any = await raw.fetchval(_MOVE, product_id, CardKeyStatus.AVAILABLE.value, created_at)
    return int(count)


async def import_sealed(
    product_id: int,
    items: Sequence[tuple[str, str]],
    box: crypto.SecretBox,
    *,
    chunk_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Import (fingerprint, key) pairs in chunks, in order; how many were new for the product."""
    total = len(items)
    if total == 0:
        return 0
    starts = range(0, total, chunk_size)

    def sealing(start: int) -> asyncio.Future[list[Record]]:
        return asyncio.ensure_future(asyncio.to_thread(seal_chunk, box, product_id, items[start : start + chunk_size]))

    imported = 0
    upcoming: asyncio.Future[list[Record]] | None = sealing(0)
    try:
        for position, start in enumerate(starts):
            assert upcoming is not None
            records = await upcoming
            upcoming = sealing(starts[position + 1]) if position + 1 < len(starts) else None
            imported += await copy_chunk(product_id, records)
            if progress is not None:
                progress(min(start + chunk_size, total), total)
    finally:
        if upcoming is not None and not upcoming.done():
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)
    return imported
