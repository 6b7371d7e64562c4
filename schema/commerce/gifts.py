"""Gifts in the graph: sendGift, claimGift, the Gift card, myGifts and giftByCode."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from models.commerce.gifts import Gift as GiftModel
from models.commerce.gifts import GiftStatus as GiftStatusValue
from resolvers.commerce import catalog, gifts
from schema.accounts.users import User
from schema.base import UserError, decode_id, describe_values, errors_field, in_graph, mutation
from schema.commerce.catalog import Product
from schema.context import Info

GiftStatus = describe_values(
    strawberry.enum(GiftStatusValue, name="GiftStatus", description="Where a gift is."),
    PENDING="Paid and waiting for its recipient to claim it.",
    CLAIMED="Claimed: the order is the recipient's and was delivered to them.",
    RETURNED="Not claimed in time: refunded to the sender's wallet.",
)


@in_graph
@strawberry.type(description="A card-key product bought for someone else. Visible to its sender and its recipient; "
                             "the keys go to the recipient only, through their order.")
class Gift(relay.Node):
    id: relay.NodeID[int]
    status: GiftStatus = strawberry.field(description="Pending, claimed or returned.")
    message: str = strawberry.field(description="The sender's message (plain text).")
    quantity: int = strawberry.field(description="How many of the product.")
    sent_at: datetime = strawberry.field(description="When it was bought.")
    expires_at: datetime = strawberry.field(description="Unclaimed by then, it goes back to the sender.")
    claimed_at: datetime | None = strawberry.field(description="When it was claimed; null until then.")
    _model: strawberry.Private[GiftModel]

    @classmethod
    def from_model(cls, gift: GiftModel) -> Gift:
        return cls(id=gift.id, status=gift.status, message=gift.message, quantity=gift.quantity,
                   sent_at=gift.created_at, expires_at=gift.expires_at, claimed_at=gift.claimed_at, _model=gift)

    @strawberry.field(description="The product given; null if it is no longer shown.")
    async def product(self, info: Info) -> Product | None:
        loaders = info.context.loaders
        product = await loaders.product.load(self._model.product_id)
        merchant = await loaders.merchant.load(product.merchant_id) if product is not None else None
        if product is None or merchant is None or not catalog.product_visible(info.context.actor, product, merchant):
            return None
        return Product.from_model(product)

    @strawberry.field(description="Who sent it.")
    async def sender(self, info: Info) -> User | None:
        user = await info.context.loaders.user.load(self._model.sender_id)
        return User.from_model(user) if user is not None else None

    @strawberry.field(description="Who it is for (or who claimed it); null for an unclaimed gift by claim code.")
    async def recipient(self, info: Info) -> User | None:
        if self._model.recipient_id is None:
            return None
        user = await info.context.loaders.user.load(self._model.recipient_id)
        return User.from_model(user) if user is not None else None

    @strawberry.field(description="The claim code to pass on: shown to the sender only, while the gift is pending.")
    def claim_code(self, info: Info) -> str | None:
        viewer = info.context.actor.user
        if viewer is None or viewer.id != self._model.sender_id or self._model.status != GiftStatusValue.PENDING:
            return None
        return gifts.claim_code(self._model.order_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Gift | None]:
        found = await gifts.visible_gifts(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(g) if g is not None else None for g in found]


@strawberry.input(description="A gift to buy and pay from the wallet at once.")
class SendGiftInput:
    product_id: strawberry.ID = strawberry.field(description="A card-key product's global ID.")
    idempotency_key: str = strawberry.field(description="8 to 80 characters: retrying with it returns the same gift.")
    quantity: int = strawberry.field(default=1, description="How many, within the product's bounds.")
    recipient_id: strawberry.ID | None = strawberry.field(
        default=None, description="A user to give it to; without one, pass the gift's `claimCode` to whoever it is for.")
    message: str = strawberry.field(default="", description="A message for the recipient, up to 200 characters.")


@strawberry.type(description="Result of `sendGift`.")
class SendGiftPayload:
    errors: list[UserError] = errors_field()
    gift: Gift | None = strawberry.field(default=None, description="The gift, paid and waiting to be claimed.")


@strawberry.input(description="The gift to claim: by its id (a gift to you) or by its claim code.")
class ClaimGiftInput:
    gift_id: strawberry.ID | None = strawberry.field(default=None, description="A gift addressed to you.")
    code: str | None = strawberry.field(default=None, description="A claim code someone passed you.")


@strawberry.type(description="Result of `claimGift`.")
class ClaimGiftPayload:
    errors: list[UserError] = errors_field()
    gift: Gift | None = strawberry.field(
        default=None, description="The claimed gift; the keys arrive through the order, now yours.")


@strawberry.type(description="Mutations of gifts.")
class GiftMutations:
    @mutation(description="Buy a card-key product for someone else, paid from your wallet at once. It is delivered "
                          "to the recipient when they claim it; unclaimed in time, it is refunded to you.")
    async def send_gift(self, info: Info, input: SendGiftInput) -> SendGiftPayload:
        recipient = decode_id(input.recipient_id, "User", "recipientId") if input.recipient_id is not None else None
        gift = await gifts.send(info.context.actor, gifts.NewGift(
            product_id=decode_id(input.product_id, "Product", "productId"), quantity=input.quantity,
            idempotency_key=input.idempotency_key, recipient_id=recipient, message=input.message,
        ))
        return SendGiftPayload(gift=Gift.from_model(gift))

    @mutation(description="Claim a gift, once: its order becomes yours and is delivered to you.")
    async def claim_gift(self, info: Info, input: ClaimGiftInput) -> ClaimGiftPayload:
        gift_id = decode_id(input.gift_id, "Gift", "giftId") if input.gift_id is not None else None
        gift = await gifts.claim(info.context.actor, gift_id=gift_id, code=input.code)
        return ClaimGiftPayload(gift=Gift.from_model(gift))


@strawberry.type(description="Queries of gifts.")
class GiftQueries:
    @strawberry.field(description="The signed-in user's gifts, newest first: those they sent, or those for them.")
    async def my_gifts(
        self, info: Info,
        sent: Annotated[bool, strawberry.argument(description="True: gifts sent; false: gifts received.")],
        first: Annotated[int, strawberry.argument(description="How many, 1 to 100.")] = 50,
    ) -> list[Gift]:
        return [Gift.from_model(g) for g in await gifts.mine(info.context.actor, sent=sent, first=first)]

    @strawberry.field(description="The gift a claim code names, to see before claiming it (rate-limited).")
    async def gift_by_code(
        self, info: Info, code: Annotated[str, strawberry.argument(description="The claim code.")]
    ) -> Gift:
        return Gift.from_model(await gifts.preview(info.context.actor, code))
