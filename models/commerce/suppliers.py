"""Where a shop's DIRECT_TOPUP products are topped up: an upstream supplier endpoint with
its secret (sealed with AES-GCM, never stored or returned in clear) and timeout, for the
whole shop or for one product."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class SupplierConfig(Model):
    """``scope`` is "shop" for the shop's default, or "product:<id>" for one product."""

    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Merchant", related_name="supplier_configs", on_delete=fields.CASCADE
    )
    product_id = fields.BigIntField(null=True)
    scope = fields.CharField(max_length=40)
    endpoint = fields.CharField(max_length=500)
    secret_key_id = fields.CharField(max_length=40, default="")
    secret_ciphertext = fields.TextField(default="")
    secret_hint = fields.CharField(max_length=8, default="")
    timeout_seconds = fields.FloatField(default=5.0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "supplier_config"
        unique_together = (("merchant_id", "scope"),)
