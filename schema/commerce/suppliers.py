"""Top-up suppliers in the graph: a shop's supplier configuration (never its secret), and
the mutations that set it and test it."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from models.commerce.suppliers import SupplierConfig as SupplierConfigModel
from resolvers.commerce import suppliers
from schema.base import UserError, decode_id, errors_field, mutation
from schema.context import Info


@strawberry.type(description="Where a shop's DIRECT_TOPUP products are topped up: for its owner and staff. The "
                             "secret is never shown, only whether one is set and its last characters.")
class SupplierConfig:
    product_id: strawberry.ID | None = strawberry.field(description="The product it is for; null: the shop's default.")
    endpoint: str = strawberry.field(description="The supplier's URL, called with a signed JSON POST.")
    has_secret: bool = strawberry.field(description="Whether a secret signs the calls.")
    secret_hint: str | None = strawberry.field(description='The secret\'s last 4 characters, e.g. "…a1b2"; null if none.')
    timeout_seconds: float = strawberry.field(description="How long a call may take before it is retried.")
    updated_at: datetime = strawberry.field(description="When it was last changed.")

    @classmethod
    def from_model(cls, c: SupplierConfigModel) -> SupplierConfig:
        return cls(
            product_id=strawberry.ID(str(relay.GlobalID("Product", str(c.product_id)))) if c.product_id else None,
            endpoint=c.endpoint, has_secret=bool(c.secret_ciphertext),
            secret_hint=f"…{c.secret_hint}" if c.secret_ciphertext else None, timeout_seconds=c.timeout_seconds,
            updated_at=c.updated_at,
        )


@strawberry.input(description="A shop's supplier, for the whole shop or one DIRECT_TOPUP product.")
class ConfigureSupplierInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop's global ID.")
    endpoint: str = strawberry.field(description="The supplier's http(s) URL.")
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="One product of the shop; null: the shop's default for all its top-ups.")
    secret: str | None = strawberry.field(
        default=None, description="The shared secret that signs calls (8 to 200 characters); null keeps the stored "
                                  'one, "" removes it. Stored encrypted, never returned.')
    timeout_seconds: float | None = strawberry.field(
        default=None, description="Per call (0.5 up to `KAMENG_SUPPLIER_TIMEOUT_MAX_SECONDS`); null: the default.")


@strawberry.type(description="Result of `configureSupplier`.")
class ConfigureSupplierPayload:
    errors: list[UserError] = errors_field()
    supplier: SupplierConfig | None = strawberry.field(default=None, description="The configuration; null on failure.")


@strawberry.input(description="Which supplier configuration to test.")
class TestSupplierConnectionInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop's global ID.")
    product_id: strawberry.ID | None = strawberry.field(default=None, description="The product's; null: the shop's.")


@strawberry.type(description="Result of `testSupplierConnection`.")
class TestSupplierConnectionPayload:
    errors: list[UserError] = errors_field()
    ok: bool | None = strawberry.field(default=None, description="Whether the supplier answered ok; null on failure.")
    message: str | None = strawberry.field(default=None, description="What happened, e.g. \"HTTP 401: ...\".")
    milliseconds: int | None = strawberry.field(default=None, description="How long the call took.")


def _product(raw: strawberry.ID | None) -> int | None:
    return decode_id(raw, "Product", "productId") if raw is not None else None


@strawberry.type(description="Mutations of top-up suppliers.")
class SupplierMutations:
    @mutation(description="A shop's owner sets the supplier its DIRECT_TOPUP orders are delivered through.")
    async def configure_supplier(self, info: Info, input: ConfigureSupplierInput) -> ConfigureSupplierPayload:
        config = await suppliers.configure(info.context.actor, suppliers.SupplierSpec(
            merchant_id=decode_id(input.merchant_id, "Merchant", "merchantId"), endpoint=input.endpoint,
            product_id=_product(input.product_id), secret=input.secret, timeout_seconds=input.timeout_seconds,
        ))
        return ConfigureSupplierPayload(supplier=SupplierConfig.from_model(config))

    @mutation(description='A shop\'s owner sends its supplier a signed `{"type": "ping"}` and sees the answer; '
                          "a few times a minute per shop (`RATE_LIMITED` beyond, with nothing sent).")
    async def test_supplier_connection(self, info: Info, input: TestSupplierConnectionInput) -> TestSupplierConnectionPayload:
        check = await suppliers.test_connection(
            info.context.actor, decode_id(input.merchant_id, "Merchant", "merchantId"), _product(input.product_id))
        return TestSupplierConnectionPayload(ok=check.ok, message=check.message, milliseconds=check.milliseconds)
