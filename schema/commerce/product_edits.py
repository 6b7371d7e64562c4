"""Product mutations in the graph: a shop's owner (or staff) adds and changes products."""

from __future__ import annotations

import contextlib
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from resolvers.commerce import catalog
from resolvers.commerce.catalog import UNCHANGED, ProductFields
from schema.base import UserError, decode_id, errors_field, mutation
from schema.commerce.catalog import DeliveryKind, Product, ProductStatus
from schema.commerce.promises import LateCompensationInput
from schema.context import Info

# -- mutations --------------------------------------------------------------------------


@strawberry.input(description="A volume discount of a product.")
class WholesaleTierInput:
    min_quantity: int = strawberry.field(description="From this many units per order on (above the minimum).")
    unit_price: str = strawberry.field(description='A decimal string below the list price, e.g. "9.50".')


_UNSET: Any = strawberry.UNSET


@strawberry.input(description="A new product. Fields left out take the defaults stated.")
class CreateProductInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop that sells it (global ID).")
    title: str = strawberry.field(description="The product's name.")
    price: str = strawberry.field(description='A decimal string, e.g. "9.90": positive, at most two decimals.')
    delivery_kind: DeliveryKind = strawberry.field(description="How orders of it are delivered.")
    description: str | None = strawberry.field(default=_UNSET, description="Plain text; default empty.")
    category_id: strawberry.ID | None = strawberry.field(default=_UNSET, description="Its category; default none.")
    wholesale_tiers: list[WholesaleTierInput] | None = strawberry.field(
        default=_UNSET, description="Volume discounts; default none."
    )
    min_quantity: int | None = strawberry.field(default=_UNSET, description="Fewest units per order. Default 1.")
    max_quantity: int | None = strawberry.field(default=_UNSET, description="Most units per order. Default 100.")
    delivery_promise_minutes: int | None = strawberry.field(
        default=_UNSET, description="Delivery promise, minutes after payment. Default 10."
    )
    stock_limit: int | None = strawberry.field(
        default=_UNSET, description="DIRECT_TOPUP and MANUAL only: units on sale (null: unlimited)."
    )
    status: ProductStatus | None = strawberry.field(default=_UNSET, description="Listed or not. Default ACTIVE.")
    late_compensation: LateCompensationInput | None = strawberry.field(
        default=_UNSET, description="What a late delivery gives the buyer, paid by the shop. Default none."
    )


@strawberry.input(description="Fields left out keep their value; null clears categoryId and stockLimit.")
class UpdateProductInput:
    id: strawberry.ID = strawberry.field(description="The product's global ID.")
    title: str | None = strawberry.field(default=_UNSET, description="New name.")
    price: str | None = strawberry.field(default=_UNSET, description='New list price, a decimal string ("9.90").')
    delivery_kind: DeliveryKind | None = strawberry.field(
        default=_UNSET, description="Only while the product has no keys and no orders."
    )
    description: str | None = strawberry.field(default=_UNSET, description="New text.")
    category_id: strawberry.ID | None = strawberry.field(default=_UNSET, description="New category; null: none.")
    wholesale_tiers: list[WholesaleTierInput] | None = strawberry.field(
        default=_UNSET, description="Replaces every volume discount; an empty list removes them."
    )
    min_quantity: int | None = strawberry.field(default=_UNSET, description="New fewest units per order.")
    max_quantity: int | None = strawberry.field(default=_UNSET, description="New most units per order.")
    delivery_promise_minutes: int | None = strawberry.field(default=_UNSET, description="New promise, minutes.")
    stock_limit: int | None = strawberry.field(
        default=_UNSET, description="DIRECT_TOPUP and MANUAL only: units on sale; null: unlimited."
    )
    status: ProductStatus | None = strawberry.field(default=_UNSET, description="List or unlist it.")
    late_compensation: LateCompensationInput | None = strawberry.field(
        default=_UNSET, description="New compensation for a late delivery; null (or kind NONE): none."
    )


@strawberry.type(description="Result of `createProduct`.")
class CreateProductPayload:
    errors: list[UserError] = errors_field()
    product: Product | None = strawberry.field(default=None, description="The new product; null on failure.")


@strawberry.type(description="Result of `updateProduct`.")
class UpdateProductPayload:
    errors: list[UserError] = errors_field()
    product: Product | None = strawberry.field(
        default=None, description="The product as it is now; null on failure."
    )


def forget(loader: DataLoader[Any, Any], key: Any) -> None:
    """Drop a value this request may have loaded before changing it."""
    with contextlib.suppress(KeyError):
        loader.clear(key)


def _given(value: Any) -> Any:
    return UNCHANGED if value is strawberry.UNSET else value


def _compensation(value: LateCompensationInput | None) -> Any:
    if value is strawberry.UNSET:
        return UNCHANGED
    return value.spec() if value is not None else None


def _product_fields(data: CreateProductInput | UpdateProductInput) -> ProductFields:
    category = _given(data.category_id)
    if category is not UNCHANGED and category is not None:
        category = decode_id(category, "Category", "categoryId")
    tiers = _given(data.wholesale_tiers)
    if tiers is not UNCHANGED and tiers is not None:
        tiers = [{"minQuantity": t.min_quantity, "unitPrice": t.unit_price} for t in tiers]
    return ProductFields(
        title=_given(data.title),
        description=_given(data.description),
        price=_given(data.price),
        delivery_kind=_given(data.delivery_kind),
        category_id=category,
        wholesale_tiers=tiers,
        min_quantity=_given(data.min_quantity),
        max_quantity=_given(data.max_quantity),
        delivery_promise_minutes=_given(data.delivery_promise_minutes),
        stock_limit=_given(data.stock_limit),
        status=_given(data.status),
        late_compensation=_compensation(data.late_compensation),
    )


@strawberry.type(description="Mutations of products.")
class CatalogMutations:
    @mutation(description="The shop's owner (or staff) adds a product.")
    async def create_product(self, info: Info, input: CreateProductInput) -> CreateProductPayload:
        merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
        product = await catalog.create_product(info.context.actor, merchant_id, _product_fields(input))
        return CreateProductPayload(product=Product.from_model(product))

    @mutation(description="The shop's owner (or staff) changes a product.")
    async def update_product(self, info: Info, input: UpdateProductInput) -> UpdateProductPayload:
        product_id = decode_id(input.id, "Product", "id")
        product = await catalog.update_product(info.context.actor, product_id, _product_fields(input))
        forget(info.context.loaders.product, product.id)
        return UpdateProductPayload(product=Product.from_model(product))
