"""Test data made directly with the ORM (fast, and independent of the mutations under test)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kameng.crypto import box
from kameng.security import AccessClaims, digest, hash_password, issue_access_token, new_refresh_secret
from kameng.settings import get_settings
from models.accounts.users import AuthSession, Role, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.merchants import Merchant
from models.commerce.inventory import CardKey
from resolvers.commerce import ledger

_PASSWORD_HASH: list[str] = []


def password_hash() -> str:
    # Hashing is deliberately slow: hash once, reuse for every factory user.
    if not _PASSWORD_HASH:
        _PASSWORD_HASH.append(hash_password("correct horse battery"))
    return _PASSWORD_HASH[0]


async def make_user(role: Role = Role.BUYER, nickname: str = "Buyer") -> User:
    return await User.create(
        email=f"{uuid.uuid4().hex[:14]}@example.com", nickname=nickname, password_hash=password_hash(), role=role
    )


async def make_users(count: int) -> list[User]:
    users = [
        User(email=f"{uuid.uuid4().hex[:14]}@example.com", nickname=f"Buyer {i}", password_hash=password_hash())
        for i in range(count)
    ]
    await User.bulk_create(users)
    emails = [u.email for u in users]
    return list(await User.filter(email__in=emails).order_by("id"))


async def token_for(user: User) -> str:
    """A real access token for ``user``, without going through login (no throttling)."""
    settings = get_settings()
    session = await AuthSession.create(
        id=uuid.uuid4(), user=user, refresh_hash=digest(new_refresh_secret()),
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    return issue_access_token(settings.signing_secret(), AccessClaims(user.id, session.id, user.role.value), 3600)


async def make_merchant(owner: User | None = None, supplier_url: str = "") -> Merchant:
    owner = owner or await make_user(Role.MERCHANT, "Merchant")
    return await Merchant.create(owner=owner, name=f"Shop {uuid.uuid4().hex[:8]}", supplier_url=supplier_url)


async def make_product(
    merchant: Merchant | None = None,
    *,
    kind: DeliveryKind = DeliveryKind.CARD_KEY,
    price: str = "10.00",
    keys: int = 0,
    stock_limit: int | None = None,
    max_quantity: int = 100,
    wholesale_tiers: list[dict[str, object]] | None = None,
) -> Product:
    merchant = merchant or await make_merchant()
    product = await Product.create(
        merchant=merchant, title=f"Card {uuid.uuid4().hex[:6]}", price=Decimal(price), delivery_kind=kind,
        stock_limit=stock_limit, max_quantity=max_quantity, wholesale_tiers=wholesale_tiers or [],
    )
    if keys:
        await add_keys(product, keys)
    return product


async def add_keys(product: Product, count: int) -> list[str]:
    secrets = [f"KEY-{product.id}-{uuid.uuid4().hex}" for _ in range(count)]
    sealer = box()
    rows = []
    for secret in secrets:
        sealed = sealer.seal(secret, product_id=product.id)
        rows.append(
            CardKey(product=product, key_id=sealed.key_id, ciphertext=sealed.ciphertext,
                    fingerprint=sealer.fingerprint(secret, product_id=product.id))
        )
    await CardKey.bulk_create(rows)
    return secrets


async def fund(user: User, amount: str) -> None:
    await ledger.post("test.fund", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, -Decimal(amount)), (ledger.wallet(user.id), Decimal(amount))])
