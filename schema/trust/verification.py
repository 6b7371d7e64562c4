"""Key verification in the graph: the verifyCardKey mutation.

A mutation, not a query, though it changes no data: each call spends the caller's rate
limit, and a query could travel in a GET URL (queries are allowed over GET), where the
secret would land in access logs, proxies and browser history. Mutations only go in a POST
body and are never cached.
"""

from __future__ import annotations

import strawberry

from resolvers.trust import verification
from resolvers.trust.verification import Verdict
from schema.base import UserError, decode_id, describe_values, errors_field, mutation
from schema.commerce.orders import Order
from schema.context import Info

CardKeyVerdict = describe_values(
    strawberry.enum(Verdict, name="CardKeyVerdict", description="What the platform knows of a card key."),
    SOLD_AND_DELIVERED="Sold and delivered through this platform.",
    NEVER_SOLD_BY_US="Not sold by this platform: never imported, or not sold yet (the two are not told apart).",
)


@strawberry.input(description="A card key to verify.")
class VerifyCardKeyInput:
    secret: str = strawberry.field(
        description="The card key as received (trimmed; at most 500 characters). Never stored or logged."
    )
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="The product's global ID, to check within one product only; null checks every product."
    )


@strawberry.type(description="Result of `verifyCardKey`.")
class VerifyCardKeyPayload:
    errors: list[UserError] = errors_field()
    verdict: CardKeyVerdict | None = strawberry.field(default=None, description="Whether the platform sold the key.")
    order: Order | None = strawberry.field(
        default=None, description="The order that delivered the key: only for the key's buyer, null for anyone else."
    )


@strawberry.type(description="Trust tools for buyers.")
class TrustMutations:
    @mutation(
        description="Anyone (guests too) checks whether a card key was sold by this platform (卡密二次验证); "
                    "rate-limited per user and per address. Only the key's buyer learns the order."
    )
    async def verify_card_key(self, info: Info, input: VerifyCardKeyInput) -> VerifyCardKeyPayload:
        product_id = decode_id(input.product_id, "Product", "productId") if input.product_id is not None else None
        result = await verification.verify_card_key(info.context.actor, input.secret, product_id=product_id)
        order = Order.from_model(result.order) if result.order is not None else None
        return VerifyCardKeyPayload(verdict=result.verdict, order=order)
