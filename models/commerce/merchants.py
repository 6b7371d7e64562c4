"""Shops (merchants) and the categories their products are filed under."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.accounts.users import User


class MerchantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    # Approved through onboarding, its deposit not yet held: unlisted until it is.
    PENDING_DEPOSIT = "PENDING_DEPOSIT"


class Merchant(Model):
    """A shop, owned by one MERCHANT user. Its deposit and earnings live in the ledger."""

    id = fields.BigIntField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "kameng.User", related_name="merchants", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=80, unique=True)
    description = fields.TextField(default="")
    status = fields.CharEnumField(MerchantStatus, max_length=16, default=MerchantStatus.ACTIVE)
    # Upstream supplier for DIRECT_TOPUP products (called by resolvers/commerce/delivery.py).
    supplier_url = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "merchant"


class Category(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=60)
    slug = fields.CharField(max_length=60, unique=True)
    parent: fields.ForeignKeyNullableRelation[Category] = fields.ForeignKeyField(
        "kameng.Category", related_name="children", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "category"
