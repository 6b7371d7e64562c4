from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.statements import Update


class CardKeyStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    RESERVED = "RESERVED"  # held by an unpaid order until it expires
    SOLD = "SOLD"  # bound to a delivered order
    INVALID = "INVALID"  # sold, reported invalid by its buyer and replaced or refunded (trust/claims)


class CardKey(Model):
    """A card secret (卡密), encrypted at rest and deduplicated by an HMAC fingerprint."""

    id = fields.BigIntField(primary_key=True)
    product: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Product", related_name="card_keys", on_delete=fields.RESTRICT
    )
    key_id = fields.CharField(max_length=32)  # which encryption key sealed it
    ciphertext = fields.TextField()  # base64(nonce || AES-GCM ciphertext)
    fingerprint = fields.CharField(max_length=64)  # HMAC-SHA256 of the normalised secret
    status = fields.CharEnumField(CardKeyStatus, max_length=16, default=CardKeyStatus.AVAILABLE)
    order: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.Order", related_name="card_keys", null=True, on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    sold_at = fields.DatetimeField(null=True)

    class Meta:
        table = "card_key"
        unique_together = (("product_id", "fingerprint"),)
        indexes = (("product_id", "status", "id"), ("order_id",))


class CardKeyReveal(Model):
    """Audit: every time a secret was shown, to whom."""

    id = fields.BigIntField(primary_key=True)
    card_key: fields.ForeignKeyRelation[CardKey] = fields.ForeignKeyField(
        "kameng.CardKey", related_name="reveals", on_delete=fields.CASCADE
    )
    order: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Order", related_name="reveals", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.User", related_name="reveals", null=True, on_delete=fields.SET_NULL
    )
    ip = fields.CharField(max_length=64, default="")
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "card_key_reveal"


#: Delivery's RESERVED -> SOLD (resolvers/commerce/inventory.py ``sell_keys``), a fixed statement.
KEYS_OF_ORDER = Update(CardKey, "order_id", "status")
