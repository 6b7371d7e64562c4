"""Card keys in the graph: the importCardKeys mutation (the delivered keys themselves are
Order.cardKeys, schema/commerce/orders.py)."""

from __future__ import annotations

import strawberry

from resolvers.commerce import catalog, inventory
from schema.base import UserError, decode_id, mutation, errors_field
from schema.commerce.catalog import Product
from schema.commerce.product_edits import forget
from schema.context import Info


@strawberry.input(description="Card keys for a CARD_KEY product.")
class ImportCardKeysInput:
    product_id: strawberry.ID = strawberry.field(description="The product's global ID.")
    keys: list[str] = strawberry.field(
        description="One secret each (at most 10,000 per request, 500 characters each); trimmed, "
        "blanks dropped, duplicates skipped."
    )


@strawberry.type(description="Result of `importCardKeys`: counts of what happened to the keys sent.")
class ImportCardKeysPayload:
    errors: list[UserError] = errors_field()
    imported: int | None = strawberry.field(default=None, description="New keys stored.")
    duplicates: int | None = strawberry.field(
        default=None, description="Keys repeated in the request or already stored for the product."
    )
    blank: int | None = strawberry.field(default=None, description="Empty entries dropped.")
    product: Product | None = strawberry.field(default=None, description="The product, with its new `stock`.")


@strawberry.type(description="Mutations of card-key stock.")
class InventoryMutations:
    @mutation(description="The shop's owner imports card keys into a CARD_KEY product.")
    async def import_card_keys(self, info: Info, input: ImportCardKeysInput) -> ImportCardKeysPayload:
        product_id = decode_id(input.product_id, "Product", "productId")
        result = await inventory.import_card_keys(info.context.actor, product_id, input.keys)
        product = await catalog.get_product(product_id)
        forget(info.context.loaders.card_key_stock, product_id)
        return ImportCardKeysPayload(
            imported=result.imported,
            duplicates=result.duplicates,
            blank=result.blank,
            product=Product.from_model(product) if product is not None else None,
        )
