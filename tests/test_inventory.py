"""Card keys: import over GraphQL and from the command line (trim, blanks, dedupe in the batch
and against stored keys, exact counts under concurrent overlapping imports), limits and
permissions, encryption at rest, and the audited reveal to an order's buyer."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from tortoise import connections

from kameng import crypto
from service.cli import read_key_file
from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.merchants import Merchant
from models.commerce.inventory import CardKey, CardKeyReveal, CardKeyStatus
from models.commerce.orders import Order, OrderStatus
from resolvers.commerce import inventory
from resolvers.accounts.auth import Actor
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.commerce.orders import new_order_no
from tests.conftest import Client, Stack
from tests.test_catalog import codes, create_product, gid, merchant_client, pk, signed_in

ROOT = Path(__file__).resolve().parent.parent
IMPORT = """mutation($input: ImportCardKeysInput!) { importCardKeys(input: $input) {
  errors { code field message } imported duplicates blank product { id stock } } }"""


async def import_keys(client: Client, product_id: str, keys: list[str]) -> dict[str, Any]:
    return (await client.gql(IMPORT, {"input": {"productId": product_id, "keys": keys}}))["importCardKeys"]


async def keys_of(product_id: str) -> int:
    return await CardKey.filter(product_id=pk(product_id)).count()


# -- import over GraphQL ----------------------------------------------------------------


async def test_import_trims_drops_blanks_and_dedupes(make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    product = await create_product(seller, shop["id"])
    first = await import_keys(seller, product["id"], ["  AAAA-1111 ", "BBBB-2222", "", "   ", "AAAA-1111", "\tCCCC-3333\n"])
    assert first == {"errors": [], "imported": 3, "duplicates": 1, "blank": 2,
                     "product": {"id": product["id"], "stock": 3}}  # fmt: skip
    # Against what is stored: only the new key goes in.
    second = await import_keys(seller, product["id"], ["CCCC-3333", "DDDD-4444", "AAAA-1111"])
    assert (second["imported"], second["duplicates"], second["product"]["stock"]) == (1, 2, 4)
    # Dedupe is per product: the same secret may be sold by another product.
    other = await create_product(seller, shop["id"])
    assert (await import_keys(seller, other["id"], ["AAAA-1111"]))["imported"] == 1
    # Case and inner spaces are part of a key.
    assert (await import_keys(seller, product["id"], ["aaaa-1111", "AAAA 1111"]))["imported"] == 2
    assert await keys_of(product["id"]) == 6


async def test_only_the_owner_imports_into_card_key_products(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    product = await create_product(seller, shop["id"])
    assert codes(await import_keys(client, product["id"], ["K"])) == [("UNAUTHENTICATED", None)]
    rival, _ = await merchant_client(make_client)
    assert codes(await import_keys(rival, product["id"], ["K"])) == [("FORBIDDEN", "productId")]
    staff = await signed_in(make_client(), Role.ADMIN)
    assert codes(await import_keys(staff, product["id"], ["K"])) == [("FORBIDDEN", "productId")]
    buyer = await signed_in(make_client())
    assert codes(await import_keys(buyer, product["id"], ["K"])) == [("FORBIDDEN", "productId")]

    manual = await create_product(seller, shop["id"], deliveryKind="MANUAL")
    assert codes(await import_keys(seller, manual["id"], ["K"])) == [("INVALID_STATE", "productId")]
    assert codes(await import_keys(seller, gid("Product", 10**12), ["K"])) == [("NOT_FOUND", "productId")]
    assert codes(await import_keys(seller, shop["id"], ["K"])) == [("INVALID_INPUT", "productId")]

    moderator = await signed_in(make_client(), Role.MODERATOR)
    await moderator.gql(
        "mutation($input: SetMerchantStatusInput!) { setMerchantStatus(input: $input) { errors { code } } }",
        {"input": {"merchantId": shop["id"], "status": "SUSPENDED"}},
    )
    assert codes(await import_keys(seller, product["id"], ["K"])) == [("INVALID_STATE", "productId")]
    assert await keys_of(product["id"]) == 0 and await keys_of(manual["id"]) == 0


async def test_limits_reject_the_whole_batch(make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    product = await create_product(seller, shop["id"])
    tag = uuid.uuid4().hex[:8]
    for keys, message in [
        ([f"{tag}-{i}" for i in range(10_001)], "at most 10000"),
        (["fine", "x" * 501, "also fine"], "Key 2 is longer than 500"),
        (["fine", "bell\u0007"], "Key 2 contains control characters"),
    ]:
        payload = await import_keys(seller, product["id"], keys)
        assert codes(payload) == [("INVALID_INPUT", "keys")]
        assert message in payload["errors"][0]["message"]
        assert payload["imported"] is None
    assert await keys_of(product["id"]) == 0  # nothing of a rejected batch is stored

    edge = await import_keys(seller, product["id"], [f"{tag}-{i}" for i in range(9_999)] + ["y" * 500])
    assert (edge["errors"], edge["imported"], edge["product"]["stock"]) == ([], 10_000, 10_000)


async def test_concurrent_overlapping_imports_count_exactly(make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    product = await create_product(seller, shop["id"])
    tag = uuid.uuid4().hex[:8]
    # Four batches of 600 overlapping by half: 1,500 distinct keys in all.
    batches = [[f"{tag}-{n:05d}" for n in range(i * 300, i * 300 + 600)] for i in range(4)]
    results = await asyncio.gather(*(import_keys(seller, product["id"], batch) for batch in batches))
    assert all(r["errors"] == [] for r in results)
    assert all(r["imported"] + r["duplicates"] == 600 for r in results)
    assert sum(r["imported"] for r in results) == 1_500
    assert await keys_of(product["id"]) == 1_500


async def test_concurrent_chunked_imports_in_opposite_orders(make_client) -> None:  # type: ignore[no-untyped-def]
    """Small chunks, reversed and shuffled batches: many interleaved transactions over the same
    keys, and still every key is counted once (no deadlock, no double count)."""
    import random

    seller, shop = await merchant_client(make_client)
    product_id = pk((await create_product(seller, shop["id"]))["id"])
    keys = [f"{uuid.uuid4().hex[:6]}-{n}" for n in range(1_200)]
    batches = [keys, list(reversed(keys)), random.sample(keys, len(keys)), keys[::2] + keys[1::2]]
    results = await asyncio.gather(
        *(inventory.import_card_keys(None, product_id, batch, limit=None, chunk_size=37) for batch in batches)
    )
    assert sum(r.imported for r in results) == 1_200
    assert all(r.imported + r.duplicates == 1_200 for r in results)
    assert await CardKey.filter(product_id=product_id).count() == 1_200


# -- encryption at rest -----------------------------------------------------------------


async def test_secrets_are_encrypted_at_rest(make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    product = await create_product(seller, shop["id"])
    product_id = pk(product["id"])
    secret = f"STEAM-{uuid.uuid4().hex.upper()}"
    assert (await import_keys(seller, product["id"], [secret]))["imported"] == 1

    # No column of the stored row holds the plaintext, in any encoding we can think of.
    rows = await connections.get("default").execute_query_dict(
        'SELECT * FROM "card_key" WHERE "product_id" = ' + ("$1" if _postgres() else "?"), [product_id]
    )
    assert len(rows) == 1
    stored = rows[0]
    for value in stored.values():
        assert secret not in str(value) and secret.lower() not in str(value).lower()
    raw = base64.b64decode(stored["ciphertext"])
    assert secret.encode() not in raw

    box = crypto.box()
    assert stored["key_id"] == box.active
    assert stored["fingerprint"] == box.fingerprint(secret, product_id=product_id)
    assert box.open(stored["key_id"], stored["ciphertext"], product_id=product_id) == secret
    with pytest.raises(InvalidTag):  # moved to another product, it does not decrypt
        box.open(stored["key_id"], stored["ciphertext"], product_id=product_id + 1)
    # Two seals of one secret differ (random nonce): equal ciphertexts reveal nothing.
    assert box.seal(secret, product_id=product_id).ciphertext != box.seal(secret, product_id=product_id).ciphertext


def _postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


# -- the command line -------------------------------------------------------------------


async def _run_cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KAMENG_") and k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}  # fmt: skip
    env.update(KAMENG_DATA_DIR=str(stack.settings.data_dir), KAMENG_LOG_LEVEL="WARNING",
               KAMENG_SECRET_KEY=stack.settings.secret_key.get_secret_value())  # type: ignore[union-attr]  # fmt: skip
    if stack.settings.database_url:
        env["DATABASE_URL"] = stack.settings.database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "keys", "import", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_imports_text_and_csv_files(stack: Stack, make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    product = await create_product(seller, shop["id"])
    product_id = pk(product["id"])
    tag = uuid.uuid4().hex[:8]

    csv_file = tmp_path / "keys.csv"
    csv_file.write_text(f'secret,note\n"{tag}-A,1",first\n{tag}-B,second\n,empty\n {tag}-B ,again\n', encoding="utf-8")
    code, out, err = await _run_cli(stack, str(csv_file), "--product", str(product_id), "--skip-header")
    assert code == 0, err
    assert "imported 2, duplicates 1, blank 1" in out

    text_file = tmp_path / "keys.txt"
    lines = [f"{tag}-A,1", f"{tag}-C", "", f"{tag}-{'D' * 3}"] + [f"{tag}-bulk-{n}" for n in range(2_500)]
    text_file.write_text("\ufeff" + "\r\n".join(lines) + "\n", encoding="utf-8")  # a BOM and CRLFs, as editors write
    code, out, err = await _run_cli(stack, str(text_file), "--product", product["id"], "--chunk-size", "1000")
    assert code == 0, err
    assert "imported 2502, duplicates 1, blank 1" in out
    assert await CardKey.filter(product_id=product_id, status=CardKeyStatus.AVAILABLE).count() == 2_504

    box = crypto.box()
    stored = await CardKey.filter(product_id=product_id, fingerprint=box.fingerprint(f"{tag}-A,1", product_id=product_id)).first()
    assert stored is not None and box.open(stored.key_id, stored.ciphertext, product_id=product_id) == f"{tag}-A,1"

    again_code, again, _ = await _run_cli(stack, str(text_file), "--product", str(product_id))
    assert again_code == 0 and "imported 0, duplicates 2503" in again  # re-running adds nothing

    manual = await create_product(seller, shop["id"], deliveryKind="MANUAL")
    code, _, err = await _run_cli(stack, str(csv_file), "--product", str(pk(manual["id"])))
    assert code == 2 and "INVALID_STATE" in err
    code, _, err = await _run_cli(stack, str(csv_file), "--product", "nonsense")
    assert code == 2 and "--product" in err


def test_read_key_file(tmp_path: Path) -> None:
    csv_file = tmp_path / "k.CSV"
    csv_file.write_text('key\n"a,b",x\n\nc\n', encoding="utf-8")
    assert read_key_file(csv_file) == ["key", "a,b", "", "c"]
    assert read_key_file(csv_file, skip_header=True) == ["a,b", "", "c"]
    text = tmp_path / "k.txt"
    text.write_bytes("\ufeffone\r\ntwo, three\n\n".encode())
    assert read_key_file(text) == ["one", "two, three", ""]


# -- reveal -----------------------------------------------------------------------------


async def _user(role: Role = Role.BUYER) -> User:
    return await User.create(email=f"{uuid.uuid4().hex[:12]}@example.com", nickname="Reveal", password_hash="-", role=role)


async def _order(product: Product, buyer: User | None, status: OrderStatus = OrderStatus.DELIVERED) -> Order:
    return await Order.create(
        order_no=new_order_no(), buyer_id=buyer.id if buyer else None, product_id=product.id,
        merchant_id=product.merchant_id, quantity=2, unit_price=Decimal("10.00"), total=Decimal("20.00"),
        idempotency_scope=f"u:{buyer.id}" if buyer else f"g:{uuid.uuid4().hex}@example.com",
        idempotency_key=uuid.uuid4().hex, expires_at=datetime.now(UTC) + timedelta(minutes=15), status=status,
    )  # fmt: skip


async def _bind(product: Product, order: Order, secrets: list[str], status: CardKeyStatus) -> None:
    box = crypto.box()
    fingerprints = [box.fingerprint(s, product_id=product.id) for s in secrets]
    await CardKey.filter(product_id=product.id, fingerprint__in=fingerprints).update(status=status, order_id=order.id)


async def _reveal_setup() -> tuple[Product, User, User, Order, list[str]]:
    owner = await _user(Role.MERCHANT)
    merchant = await Merchant.create(owner=owner, name=f"Reveal {uuid.uuid4().hex[:8]}")
    product = await Product.create(merchant=merchant, title="Keys", price=Decimal("10"), delivery_kind=DeliveryKind.CARD_KEY)
    tag = uuid.uuid4().hex[:6]
    secrets = [f"{tag}-sold-1", f"{tag}-sold-2", f"{tag}-reserved", f"{tag}-other", f"{tag}-free"]
    result = await inventory.import_card_keys(None, product.id, secrets, limit=None)
    assert result.imported == 5
    buyer = await _user()
    order = await _order(product, buyer)
    await _bind(product, order, secrets[:2], CardKeyStatus.SOLD)
    await _bind(product, order, secrets[2:3], CardKeyStatus.RESERVED)  # not delivered: never shown
    other_order = await _order(product, await _user())
    await _bind(product, other_order, secrets[3:4], CardKeyStatus.SOLD)
    return product, owner, buyer, order, secrets


async def test_reveal_shows_the_buyer_their_sold_keys_and_audits_each_time(stack: Stack) -> None:
    _, _, buyer, order, secrets = await _reveal_setup()
    actor = Actor(user=buyer, ip="203.0.113.9")
    assert await inventory.reveal_card_keys(actor, order) == secrets[:2]  # SOLD ones only, in key order
    audit = await CardKeyReveal.filter(order_id=order.id).order_by("id")
    assert len(audit) == 2 and {r.user_id for r in audit} == {buyer.id} and {r.ip for r in audit} == {"203.0.113.9"}
    assert await inventory.reveal_card_keys(actor, order) == secrets[:2]
    assert await CardKeyReveal.filter(order_id=order.id).count() == 4  # one row per key per reveal
    revealed_keys = set(await CardKeyReveal.filter(order_id=order.id).values_list("card_key__order_id", flat=True))
    assert revealed_keys == {order.id}


async def test_reveal_shows_nothing_to_anyone_else(stack: Stack) -> None:
    _, owner, _, order, _ = await _reveal_setup()
    staff = await _user(Role.ADMIN)
    stranger = await _user()
    for actor in (Actor(), Actor(user=owner), Actor(user=staff), Actor(user=stranger), Actor(guest_order_id=order.id)):
        assert await inventory.reveal_card_keys(actor, order) == []
    assert await CardKeyReveal.filter(order_id=order.id).count() == 0


async def test_reveal_to_a_guest_buyer_and_before_delivery(stack: Stack) -> None:
    product, _, _, _, _ = await _reveal_setup()
    secret = f"guest-{uuid.uuid4().hex[:8]}"
    await inventory.import_card_keys(None, product.id, [secret], limit=None)
    guest_order = await _order(product, None)
    await _bind(product, guest_order, [secret], CardKeyStatus.SOLD)
    guest = Actor(ip="198.51.100.4", guest_order_id=guest_order.id)  # proved the lookup credentials
    assert await inventory.reveal_card_keys(guest, guest_order) == [secret]
    row = await CardKeyReveal.get(order_id=guest_order.id)
    assert row.user_id is None and row.ip == "198.51.100.4"

    buyer = await _user()
    unpaid = await _order(product, buyer, OrderStatus.PENDING_PAYMENT)
    assert await inventory.reveal_card_keys(Actor(user=buyer), unpaid) == []  # nothing sold yet


async def test_reveal_fails_loudly_on_a_tampered_ciphertext(stack: Stack) -> None:
    _, _, buyer, order, _ = await _reveal_setup()
    key = await CardKey.filter(order_id=order.id, status=CardKeyStatus.SOLD).order_by("id").first()
    assert key is not None
    # The row moved to another product: its ciphertext no longer authenticates (the product id
    # is bound in as associated data), and the reveal fails instead of showing anything.
    source = await Product.get(id=key.product_id)
    elsewhere = await Product.create(merchant_id=source.merchant_id, title="Other", price=Decimal("1"),
                                     delivery_kind=DeliveryKind.CARD_KEY)  # fmt: skip
    await CardKey.filter(id=key.id).update(product_id=elsewhere.id)
    with pytest.raises(InvalidTag):
        await inventory.reveal_card_keys(Actor(user=buyer), order)
    assert await CardKeyReveal.filter(order_id=order.id).count() == 0  # nothing audited, nothing shown


async def test_import_resolver_validates_before_writing(stack: Stack) -> None:
    owner = await _user(Role.MERCHANT)
    merchant = await Merchant.create(owner=owner, name=f"Direct {uuid.uuid4().hex[:8]}")
    product = await Product.create(merchant=merchant, title="Keys", price=Decimal("10"), delivery_kind=DeliveryKind.CARD_KEY)
    with pytest.raises(UserFacingError) as refused:
        await inventory.import_card_keys(None, product.id, ["ok"] * 3 + ["z" * 501], limit=None, chunk_size=1)
    assert refused.value.code == ErrorCode.INVALID_INPUT
    assert await CardKey.filter(product_id=product.id).count() == 0
    with pytest.raises(ValueError):
        await inventory.import_card_keys(None, product.id, ["ok"], chunk_size=10_000)
    progress: list[tuple[int, int]] = []
    result = await inventory.import_card_keys(
        None, product.id, [f"p-{n}" for n in range(25)] + ["p-0"], limit=None, chunk_size=10,
        progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    assert (result.imported, result.duplicates) == (25, 1)
    assert progress == [(10, 25), (20, 25), (25, 25)]
