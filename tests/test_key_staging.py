"""Card-key import's bulk path: dedupe by fingerprint across chunks, against stored keys and
under concurrent imports, in input order (on PostgreSQL: COPY into a staging table and
one INSERT ... SELECT DISTINCT ON per chunk; on SQLite: multi-row INSERTs)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from tortoise import connections

from kameng import crypto
from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.inventory import CardKey
from models.commerce.merchants import Merchant
from resolvers.commerce import inventory, key_staging
from tests.conftest import Stack


async def _product() -> Product:
    owner = await User.create(email=f"{uuid.uuid4().hex[:12]}@example.com", nickname="Keys", password_hash="-",
                              role=Role.MERCHANT)
    merchant = await Merchant.create(owner=owner, name=f"Staging {uuid.uuid4().hex[:8]}")
    return await Product.create(merchant=merchant, title="Keys", price=Decimal("10"), delivery_kind=DeliveryKind.CARD_KEY)


async def _stored(product: Product) -> list[str]:
    """The product's secrets, decrypted, in id order (the order they are sold in)."""
    box = crypto.box()
    rows = await CardKey.filter(product_id=product.id).order_by("id")
    return [box.open(row.key_id, row.ciphertext, product_id=product.id) for row in rows]


async def test_dedupe_across_chunks_and_stored_keys_keeps_input_order(stack: Stack) -> None:
    product = await _product()
    tag = uuid.uuid4().hex[:6]
    first = await inventory.import_card_keys(None, product.id, [f"{tag}-{n}" for n in (1, 2, 3)], limit=None)
    assert (first.imported, first.duplicates) == (3, 0)
    # Duplicates inside a chunk, across chunks (chunk_size 4) and of stored keys, blanks.
    batch = [f"{tag}-{n}" for n in (9, 2, 4, 9, 5, 6, 4, 1, 7, 8, 7, 10)] + ["  ", f" {tag}-11 "]
    progress: list[tuple[int, int]] = []
    result = await inventory.import_card_keys(
        None, product.id, batch, limit=None, chunk_size=4, progress=lambda done, total: progress.append((done, total))
    )
    assert (result.imported, result.duplicates, result.blank) == (8, 5, 1)
    assert progress == [(4, 10), (8, 10), (10, 10)]  # distinct keys of the batch, by chunk
    assert await _stored(product) == [f"{tag}-{n}" for n in (1, 2, 3, 9, 4, 5, 6, 7, 8, 10, 11)]
    fingerprints = await CardKey.filter(product_id=product.id).values_list("fingerprint", flat=True)
    assert len(set(fingerprints)) == len(fingerprints) == 11
    again = await inventory.import_card_keys(None, product.id, batch, limit=None)  # default chunk size
    assert (again.imported, again.duplicates) == (0, 13)


async def test_a_chunk_with_duplicates_stores_each_key_once(stack: Stack) -> None:
    """The write path itself dedupes within a chunk (the first occurrence wins), whoever calls it."""
    product = await _product()
    box = crypto.box()
    secrets = ["a", "b", "a", "c", "b"]
    items = [(box.fingerprint(s, product_id=product.id), s) for s in secrets]
    if connections.get("default").capabilities.dialect == "postgres":
        records = key_staging.seal_chunk(box, product.id, items)
        assert [r[0] for r in records] == [0, 1, 2, 3, 4]
        assert await key_staging.copy_chunk(product.id, records) == 3
        assert await key_staging.copy_chunk(product.id, records) == 0
    else:
        assert await inventory._insert_chunk(product.id, items, box) == 3
        assert await inventory._insert_chunk(product.id, items, box) == 0
    assert await _stored(product) == ["a", "b", "c"]


async def test_concurrent_overlapping_bulk_imports_count_exactly(stack: Stack) -> None:
    product = await _product()
    tag = uuid.uuid4().hex[:6]
    keys = [f"{tag}-{n}" for n in range(120)]
    batches = [keys[:80], list(reversed(keys[40:])), keys[20:100:2] + keys[:10]]
    results = await asyncio.gather(
        *(inventory.import_card_keys(None, product.id, batch, limit=None, chunk_size=size)
          for batch, size in zip(batches, (7, 11, 13), strict=True))
    )
    assert sum(r.imported for r in results) == 120
    assert sum(r.imported + r.duplicates for r in results) == sum(len(b) for b in batches)
    assert sorted(await _stored(product)) == sorted(keys)
