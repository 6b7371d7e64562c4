"""Orders in the graph: the Order type, checkout, cancellation, manual fulfilment, guest
lookup, and live order tracking."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry import relay

from kameng import runtime
from models.commerce.orders import Order as OrderModel
from models.commerce.orders import OrderStatus as OrderStatusValue
from resolvers.accounts.auth import Actor
from resolvers.commerce import delivery, inventory, orders, pricing
from resolvers.errors import UserFacingError
from resolvers.trust import tickets as ticket_rules
from resolvers.trust import tradelog
from schema.base import Money, UserError, decode_id, describe_values, errors_field, in_graph, mutation
from schema.commerce.catalog import Product
from schema.commerce.merchants import Merchant
from schema.commerce.pricing import PriceLine, price_lines
from schema.context import Info
from schema.trust.tickets import Ticket
from schema.trust.tradelog import TradeLogEntry


OrderStatus = describe_values(
    strawberry.enum(
        OrderStatusValue, name="OrderStatus",
        description="Where an order is in its life: PENDING_PAYMENT → PAID → DELIVERING → DELIVERED → COMPLETED, "
                    "or CANCELLED, FAILED, REFUNDED.",
    ),
    PENDING_PAYMENT="Placed, stock reserved, waiting for payment until `expiresAt`.",
    PAID="Paid; delivery is about to start (the money is held in escrow).",
    DELIVERING="Being delivered (a top-up in progress, or a MANUAL order waiting for its merchant).",
    DELIVERED="Delivered: card keys can be read. Completes when the buyer confirms receipt, or by itself later.",
    COMPLETED="Closed and settled to the merchant. Final.",
    CANCELLED="Cancelled by the buyer or expired unpaid; its stock went back on sale. Final.",
    FAILED="Delivery failed; a refund follows.",
    REFUNDED="The payment went back to where it came from. Final.",
)


@strawberry.type(description="One status transition of an order.")
class OrderEvent:
    status: OrderStatus = strawberry.field(description="The status the order entered.")
    at: datetime = strawberry.field(description="When it did.")
    note: str = strawberry.field(description="Why, in a few words (e.g. \"cancelled by the buyer\"); may be empty.")


@strawberry.type(description="A delivered card key (卡密).")
class CardKey:
    id: strawberry.ID = strawberry.field(
        description="The key's global ID (\"CardKey\"): name it in `reportOrderProblem` when it does not work."
    )
    secret: str = strawberry.field(description="The secret as the shop imported it: show it to the buyer verbatim.")


@strawberry.type(description="One showing of an order's delivered card keys (the reveal audit); never the secret.")
class CardKeyReveal:
    at: datetime = strawberry.field(description="When the keys were shown.")
    key_number: int = strawberry.field(
        description="Which of the order's keys was shown: its position (1, 2, ...) in `cardKeys`."
    )
    by_buyer: bool = strawberry.field(
        description="True when the order's buyer (or the guest holding its lookup credentials) read it."
    )
    ip: str = strawberry.field(description="The client address it was shown to; empty if unknown.")


@in_graph
@strawberry.type(
    description="A purchase of one product. Visible to its buyer (or a guest holding its lookup credentials), "
                "the product's merchant and staff."
)
class Order(relay.Node):
    id: relay.NodeID[int]
    order_no: str = strawberry.field(description="The order number shown to people, e.g. for guest lookup.")
    status: OrderStatus = strawberry.field(description="Where the order is in its life.")
    quantity: int = strawberry.field(description="Units bought.")
    unit_price: Money = strawberry.field(description="Price of one unit as charged (after wholesale tiers).")
    total: Money = strawberry.field(description="What the buyer pays: subtotal less every discount.")
    created_at: datetime = strawberry.field(description="When the order was placed.")
    expires_at: datetime = strawberry.field(description="An unpaid order is cancelled at this time.")
    paid_at: datetime | None = strawberry.field(description="When it was paid; null before.")
    delivered_at: datetime | None = strawberry.field(description="When it was delivered; null before.")
    completed_at: datetime | None = strawberry.field(description="When it completed; null before.")
    delivery_due_at: datetime | None = strawberry.field(
        description="MANUAL products: the merchant must deliver by then; null otherwise or before payment."
    )
    delivery_seconds: int | None = strawberry.field(
        description="Seconds from payment to delivery, recorded at delivery (late past the product's promise "
                    "then, which pays its compensation); null before."
    )
    _model: strawberry.Private[OrderModel]

    @strawberry.field(description="The product bought.")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")]:
        product = await info.context.loaders.product.load(self._model.product_id)
        return Product.from_model(product)

    @strawberry.field(description="The shop that sold it.")
    async def merchant(self, info: Info) -> Annotated[Merchant, strawberry.lazy("schema.commerce.merchants")]:
        merchant = await info.context.loaders.merchant.load(self._model.merchant_id)
        return Merchant.from_model(merchant)

    @strawberry.field(description="Every transition, oldest first.")
    async def events(self, info: Info) -> list[OrderEvent]:
        rows = await info.context.loaders.order_events.load(self.id)
        return [OrderEvent(status=e.status, at=e.at, note=e.note) for e in rows]

    @strawberry.field(description="What was delivered is valid until then (the product's validity from delivery; "
                                  "not `expiresAt`, the end of the time to pay); null: no validity, or not delivered.")
    def valid_until(self) -> datetime | None:
        return self._model.valid_until

    @strawberry.field(description="unitPrice x quantity, before member, coupon and points discounts.")
    def subtotal(self) -> Money:
        return Money(amount=(self._model.unit_price * self._model.quantity).quantize(Decimal("0.01")),
                     currency=self._model.currency)

    @strawberry.field(description="Member-tier discount (zero if none).")
    def tier_discount(self) -> Money:
        return Money(amount=self._model.tier_discount, currency=self._model.currency)

    @strawberry.field(description="Coupon discount (zero if none).")
    def coupon_discount(self) -> Money:
        return Money(amount=self._model.coupon_discount, currency=self._model.currency)

    @strawberry.field(description="Loyalty points spent on the order (0 if none).")
    def points_used(self) -> int:
        return self._model.points_used

    @strawberry.field(description="What the points spent were worth.")
    def points_discount(self) -> Money:
        return Money(amount=self._model.points_discount, currency=self._model.currency)

    @strawberry.field(description="The price breakdown, line by line: the pricing engine's, as charged.")
    def price_lines(self) -> list[Annotated[PriceLine, strawberry.lazy("schema.commerce.pricing")]]:
        return price_lines(pricing.order_lines(self._model), self._model.currency)

    @strawberry.field(description="Global ID of the post the order was placed from; null if none.")
    def from_post_id(self) -> strawberry.ID | None:
        post = self._model.from_post_id
        return strawberry.ID(str(relay.GlobalID("Post", str(post)))) if post is not None else None

    @strawberry.field(description="The account to top up (DIRECT_TOPUP); empty for other kinds.")
    def topup_account(self) -> str:
        return self._model.topup_account

    @strawberry.field(
        description="The delivered card secrets: to the buyer only, after delivery; every reveal is audited."
    )
    async def card_keys(self, info: Info) -> list[CardKey]:
        keys = await inventory.reveal_keys(self._actor(info), self._model)
        return [CardKey(id=strawberry.ID(str(relay.GlobalID("CardKey", str(pk)))), secret=s) for pk, s in keys]

    @strawberry.field(
        description="Every time this order's card keys were shown, oldest first: to its buyer and staff; "
                    "empty for anyone else."
    )
    async def card_key_reveals(self, info: Info) -> list[CardKeyReveal]:
        if not inventory.may_read_reveals(self._actor(info), self._model):
            return []
        rows = await info.context.loaders.card_key_reveals.load(self.id)
        numbers = {key: n for n, key in enumerate(sorted({r.card_key_id for r in rows}), start=1)}
        buyer = self._model.buyer_id
        return [
            CardKeyReveal(at=r.at, key_number=numbers[r.card_key_id], ip=r.ip,
                          by_buyer=r.user_id == buyer if buyer is not None else r.user_id is None)
            for r in rows
        ]

    @strawberry.field(
        description="The order's leaves in the verifiable trade log (its transitions and postings), oldest first: "
                    "for its buyer, the shop's owner and staff; null for anyone else."
    )
    async def trade_record(self, info: Info) -> list[TradeLogEntry] | None:
        merchant = await info.context.loaders.merchant.load(self._model.merchant_id)
        owner = merchant.owner_id if merchant is not None else None
        if not tradelog.may_read_record(info.context.actor, self._model.buyer_id, owner):
            return None
        return [TradeLogEntry.from_model(leaf) for leaf in await info.context.loaders.trade_record.load(self.id)]

    @strawberry.field(
        description="After-sales tickets about this order, oldest first: for its buyer, the shop's owner and staff; "
                    "empty for anyone else."
    )
    async def tickets(self, info: Info) -> list[Ticket]:
        merchant = await info.context.loaders.merchant.load(self._model.merchant_id)
        owner = merchant.owner_id if merchant is not None else None
        rows = await info.context.loaders.order_tickets.load(self.id)
        return [Ticket.from_model(t) for t in rows if ticket_rules.role_of(info.context.actor.user, t, owner)]

    def _actor(self, info: Info) -> Actor:
        # A guest who proved the lookup credentials acts as the buyer of this one order.
        guest_order = info.context.guest_order_id
        if guest_order == self.id:
            return Actor(user=None, ip=info.context.actor.ip, guest_order_id=self.id)
        return info.context.actor

    @classmethod
    def from_model(cls, order: OrderModel) -> Order:
        return cls(
            id=order.id,
            order_no=order.order_no,
            status=order.status,
            quantity=order.quantity,
            unit_price=Money(amount=order.unit_price, currency=order.currency),
            total=Money(amount=order.total, currency=order.currency),
            created_at=order.created_at,
            expires_at=order.expires_at,
            paid_at=order.paid_at,
            delivered_at=order.delivered_at,
            completed_at=order.completed_at,
            delivery_due_at=order.delivery_due_at,
            delivery_seconds=order.delivery_seconds,
            _model=order,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Order | None]:
        found = await orders.visible_orders(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(order) if order is not None else None for order in found]


@strawberry.type(description="An order's status, live: its state on subscribing, then each transition.")
class OrderStatusEvent:
    status: OrderStatus = strawberry.field(description="The status the order is in (entered).")
    at: datetime = strawberry.field(description="When it entered that status.")
    note: str = strawberry.field(description="Why, in a few words; may be empty.")
    _order_id: strawberry.Private[int]

    @strawberry.field(description="The order as it is now (read only when asked for).")
    async def order(self, info: Info) -> Order:
        return Order.from_model(await orders.current(self._order_id))


@strawberry.input(description="Checkout: an order of one product. Signed in, or a guest with contact details.")
class CreateOrderInput:
    product_id: strawberry.ID = strawberry.field(description="The product's global ID.")
    quantity: int = strawberry.field(default=1, description="Units, within the product's min and max quantity.")
    idempotency_key: str = strawberry.field(description="Same key, same order: safe to retry.")
    contact_email: str | None = strawberry.field(default=None, description="Guests: where to send the order.")
    query_password: str | None = strawberry.field(default=None, description="Guests: to look the order up later.")
    topup_account: str | None = strawberry.field(default=None, description="DIRECT_TOPUP: the account to top up.")
    coupon_code: str | None = strawberry.field(default=None, description="A coupon the buyer holds (claimCoupon).")
    points_to_use: int = strawberry.field(default=0, description="Points as part payment (see priceQuote's maxPointsUsable).")
    from_post_id: strawberry.ID | None = strawberry.field(default=None, description="The post the order is placed from: credits its author.")


@strawberry.type(description="Result of `createOrder`.")
class CreateOrderPayload:
    errors: list[UserError] = errors_field()
    order: Order | None = strawberry.field(
        default=None, description="The order, PENDING_PAYMENT (pay it with `payOrder`); null on failure."
    )


@strawberry.input(description="Names one order.")
class OrderIdInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")


@strawberry.type(description="An order after a mutation.")
class OrderPayload:
    errors: list[UserError] = errors_field()
    order: Order | None = strawberry.field(default=None, description="The order as it is now; null on failure.")


@strawberry.input(description="A MANUAL order delivered by hand.")
class FulfillOrderInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")
    note: str = strawberry.field(default="", description="What was delivered, shown to the buyer in its events.")


@strawberry.input(description="A guest's credentials for one order.")
class OrderLookupInput:
    order_no: str = strawberry.field(description="The order number (`orderNo`).")
    password: str = strawberry.field(description="The query password chosen at checkout.")


@strawberry.type(description="Queries about orders.")
class OrderQueries:
    @strawberry.field(description="Visible to the buyer, the product's merchant and staff; null otherwise.")
    async def order(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The order's global ID.")]
    ) -> Order | None:
        try:
            order_id = decode_id(id, "Order", "id")
        except UserFacingError:
            return None
        order = await orders.visible_order(info.context.actor, order_id)
        return Order.from_model(order) if order is not None else None

    @strawberry.field(description="Guest lookup by order number and query password (rate-limited).")
    async def order_lookup(
        self, info: Info,
        input: Annotated[OrderLookupInput, strawberry.argument(description="The order number and query password.")],
    ) -> Order | None:
        order = await orders.lookup(info.context.actor, input.order_no, input.password)
        if order is None:
            return None
        info.context.guest_order_id = order.id
        return Order.from_model(order)


@strawberry.type(description="Mutations of orders.")
class OrderMutations:
    @mutation(description="Place an order: prices it, reserves stock and holds any coupon and points until it is "
                          "paid or expires. Idempotent per `idempotencyKey`.")
    async def create_order(self, info: Info, input: CreateOrderInput) -> CreateOrderPayload:
        request = orders.NewOrder(
            product_id=decode_id(input.product_id, "Product", "productId"),
            quantity=input.quantity,
            idempotency_key=input.idempotency_key,
            contact_email=input.contact_email,
            query_password=input.query_password,
            topup_account=input.topup_account,
            coupon_code=input.coupon_code,
            points_to_use=input.points_to_use,
            from_post_id=decode_id(input.from_post_id, "Post", "fromPostId") if input.from_post_id else None,
        )
        order = await orders.create_order(info.context.actor, request)
        if info.context.actor.user is None:
            info.context.guest_order_id = order.id
        return CreateOrderPayload(order=Order.from_model(order))

    @mutation(description="The buyer cancels an unpaid order; its stock, coupon and points are released.")
    async def cancel_order(self, info: Info, input: OrderIdInput) -> OrderPayload:
        order_id = decode_id(input.order_id, "Order", "orderId")
        return OrderPayload(order=Order.from_model(await orders.cancel_order(info.context.actor, order_id)))

    @mutation(description="MANUAL products: the merchant marks the order delivered.")
    async def fulfill_order(self, info: Info, input: FulfillOrderInput) -> OrderPayload:
        order_id = decode_id(input.order_id, "Order", "orderId")
        order = await delivery.fulfill_order(info.context.actor, order_id, input.note)
        return OrderPayload(order=Order.from_model(order))


@strawberry.type(description="Subscriptions about orders.")
class OrderSubscriptions:
    @strawberry.subscription(
        description=(
            "Live status of one order: first its current state, then every transition. For the "
            "buyer, the merchant and staff, or a guest passing the order's lookup credentials."
        )
    )
    async def order_status_changed(
        self, info: Info,
        order_id: Annotated[strawberry.ID, strawberry.argument(description="The order's global ID.")],
        lookup: Annotated[
            OrderLookupInput | None, strawberry.argument(description="Guests: the order's lookup credentials.")
        ] = None,
    ) -> AsyncGenerator[OrderStatusEvent, None]:
        key = decode_id(order_id, "Order", "orderId")
        credentials = (lookup.order_no, lookup.password) if lookup is not None else None
        await orders.order_to_follow(info.context.actor, key, credentials)
        async with runtime.bus().subscribe(orders.topic_for(key)) as events:
            # Listening already: read the current state now, and nothing can fall in between.
            current = await orders.current(key)
            last = await orders.last_event(key)
            last_id = last.id if last is not None else 0
            yield OrderStatusEvent(
                status=current.status,
                at=last.at if last is not None else current.created_at,
                note=last.note if last is not None else "",
                _order_id=key,
            )
            async for event in events:
                if int(event.data["event"]) <= last_id:
                    continue
                last_id = int(event.data["event"])
                # Everything a transition says travels in the event: no database read per
                # subscriber unless the client asks for the order itself.
                yield OrderStatusEvent(
                    status=OrderStatusValue(event.data["status"]),
                    at=datetime.fromisoformat(event.data["at"]),
                    note=event.data["note"],
                    _order_id=key,
                )

