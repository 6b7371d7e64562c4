"""Validity in the graph: what is about to run out for the viewer, and the shop's terms of a
product (validity, plan period bounds). ``Order.validUntil`` and ``Product.validityDays``
live on those types (schema/commerce)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.repurchase import validity
from schema.base import UserError, decode_id, errors_field, mutation
from schema.commerce.catalog import Product
from schema.commerce.orders import Order
from schema.context import Info


@strawberry.input(description="A product's repurchase terms; null clears each.")
class SetProductRenewalTermsInput:
    product_id: strawberry.ID = strawberry.field(description="The product's global ID.")
    validity_days: int | None = strawberry.field(
        default=None, description="Days a delivered unit stays valid (1-3660); null: no end."
    )
    plan_min_days: int | None = strawberry.field(
        default=None, description="Shortest plan period a buyer may choose (1-3660); null with `planMaxDays`: no plans."
    )
    plan_max_days: int | None = strawberry.field(default=None, description="Longest plan period (at least the shortest).")


@strawberry.type(description="Result of `setProductRenewalTerms`.")
class SetProductRenewalTermsPayload:
    errors: list[UserError] = errors_field()
    product: Product | None = strawberry.field(default=None, description="The product with its new terms.")


@strawberry.type(description="What is about to run out.")
class ValidityQueries:
    @strawberry.field(description="The signed-in buyer's delivered items whose validity runs out within `withinDays` "
                                  "days (and has not yet), soonest first (100 at most).")
    async def expiring_items(
        self, info: Info,
        within_days: Annotated[int, strawberry.argument(description="How far ahead to look, 1 to 366 days.")] = 7,
    ) -> list[Order]:
        return [Order.from_model(o) for o in await validity.expiring(info.context.actor, within_days)]


@strawberry.type(description="Mutations of products' repurchase terms.")
class ValidityMutations:
    @mutation(description="The shop's owner (or an ADMIN) sets how long a delivered unit stays valid and the period "
                          "bounds of its plans.")
    async def set_product_renewal_terms(
        self, info: Info, input: SetProductRenewalTermsInput
    ) -> SetProductRenewalTermsPayload:
        product = await validity.set_terms(
            info.context.actor, decode_id(input.product_id, "Product", "productId"),
            validity_days=input.validity_days, plan_min_days=input.plan_min_days, plan_max_days=input.plan_max_days,
        )
        return SetProductRenewalTermsPayload(product=Product.from_model(product))
