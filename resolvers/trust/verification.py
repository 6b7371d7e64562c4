"""Key verification (卡密二次验证): did the platform sell this card key, and to whom?

The secret is never stored, logged or sent to the database: it is turned into the HMAC
fingerprints the inventory already keys card keys by (kameng.crypto binds the product id
into each fingerprint, so one secret has one fingerprint per CARD_KEY product) and looked up
by those. Only a SOLD key counts: an AVAILABLE or RESERVED key answers exactly like a string
nobody ever imported, so that nobody can probe a shop's unsold stock. Only the key's buyer
learns which order it was. Calls are rate-limited per user and per client address.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kameng import crypto, runtime
from kameng.settings import get_settings
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.orders import Order
from resolvers.accounts.auth import Actor
from resolvers.commerce.inventory import MAX_KEY_LENGTH, clean_keys
from resolvers.errors import ErrorCode, UserFacingError, invalid

#: Fingerprints per lookup query: keeps the IN lists (and bound parameters) small.
_BATCH = 500


class Verdict(StrEnum):
    SOLD_AND_DELIVERED = "SOLD_AND_DELIVERED"
    NEVER_SOLD_BY_US = "NEVER_SOLD_BY_US"


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: Verdict
    order: Order | None = None  # only when the caller bought the key


async def verify_card_key(actor: Actor, secret: str, *, product_id: int | None = None) -> Verification:
    """Whether the platform sold ``secret`` (trimmed as imports trim it), optionally within one
    product. RATE_LIMITED past either limit (counted before anything else, so that refused
    calls learn nothing), INVALID_INPUT (field ``secret``) for an empty or malformed key."""
    await _count(actor)
    key = _clean(secret)
    box = crypto.box()
    if product_id is not None:
        candidates = [product_id]
    else:
        candidates = await Product.filter(delivery_kind=DeliveryKind.CARD_KEY).order_by("id").values_list("id", flat=True)
    sold: list[CardKey] = []
    for start in range(0, len(candidates), _BATCH):
        expected = {box.fingerprint(key, product_id=p): p for p in candidates[start : start + _BATCH]}
        rows = await CardKey.filter(
            product_id__in=list(expected.values()), fingerprint__in=list(expected),
            status__in=[CardKeyStatus.SOLD, CardKeyStatus.INVALID],  # INVALID: sold, then reported by its buyer
        ).select_related("order")
        # (product, fingerprint) pairs, not either IN list alone: an HMAC made for one product
        # matching a key of another would be a collision, but checking costs nothing.
        sold.extend(row for row in rows if expected.get(row.fingerprint) == row.product_id)
    if not sold:
        return Verification(Verdict.NEVER_SOLD_BY_US)
    user_id = actor.user_id
    mine = [row.order for row in sold if row.order is not None and user_id is not None and row.order.buyer_id == user_id]
    return Verification(Verdict.SOLD_AND_DELIVERED, order=mine[0] if mine else None)


def _clean(secret: str) -> str:
    key = secret.strip()
    if not key:
        raise invalid("secret", "Enter the card key to verify.")
    if len(key) > MAX_KEY_LENGTH:
        raise invalid("secret", f"A card key is at most {MAX_KEY_LENGTH} characters.")
    try:
        clean_keys([key])  # the import's own rules: a key that could never be imported is refused
    except UserFacingError:
        raise invalid("secret", "The card key contains control characters.") from None
    return key


async def _count(actor: Actor) -> None:
    settings = get_settings()
    limiter = runtime.limiter()
    ip_ok = await limiter.hit(settings.card_key_verify_limit_per_ip, "verify-key:ip", actor.ip or "-")
    user_ok = True
    if actor.user_id is not None:
        user_ok = await limiter.hit(settings.card_key_verify_limit_per_user, "verify-key:user", str(actor.user_id))
    if not (ip_ok and user_ok):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many key checks; wait a minute and try again.")

