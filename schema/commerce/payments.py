"""Payments in the graph: Payment, Wallet and payOrder. (confirmReceipt, refundOrder and
adjustWallet: schema/commerce/settlement.py.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from models.commerce.payments import Payment as PaymentModel
from models.commerce.payments import PaymentMethod as PaymentMethodValue
from models.commerce.payments import PaymentStatus as PaymentStatusValue
from resolvers.commerce import payments
from schema.base import Money, UserError, decode_id, describe_values, errors_field, in_graph, mutation
from schema.context import Info
from schema.commerce.orders import Order

PaymentMethod = describe_values(
    strawberry.enum(PaymentMethodValue, name="PaymentMethod", description="How an order is paid."),
    WALLET="From the signed-in buyer's Kameng wallet, at once.",
    EXTERNAL="Through a payment provider: the buyer follows `payUrl`; the order is PAID when the provider confirms.",
)
PaymentStatus = describe_values(
    strawberry.enum(
        PaymentStatusValue,
        name="PaymentStatus",
        description="REFUNDED_LATE: the money arrived after the order closed and was given back.",
    ),
    PENDING="Waiting for the provider's confirmation.",
    SUCCEEDED="The money arrived; the order is paid.",
    REFUNDED_LATE="The money arrived after the order was closed and was credited to the buyer's wallet.",
)


@in_graph
@strawberry.type(description="A user's wallet: money to pay orders with (refunds land here).")
class Wallet:
    balance: Money = strawberry.field(description="What the wallet holds now; never negative.")


@in_graph
@strawberry.type(description="One attempt to pay an order. Visible to whoever may see the order.")
class Payment(relay.Node):
    id: relay.NodeID[int]
    method: PaymentMethod = strawberry.field(description="How it is paid.")
    status: PaymentStatus = strawberry.field(description="Whether the money arrived.")
    provider: str = strawberry.field(description="The payment provider's name (`wallet` for WALLET).")
    amount: Money = strawberry.field(description="The amount charged: the order's total.")
    created_at: datetime = strawberry.field(description="When the payment was started.")
    paid_at: datetime | None = strawberry.field(description="When the money arrived; null while pending.")
    pay_url: str | None = strawberry.field(description="EXTERNAL, while pending: where the buyer goes to pay.")

    @classmethod
    def from_model(cls, payment: PaymentModel) -> Payment:
        pending = payment.status == PaymentStatusValue.PENDING
        return cls(
            id=payment.id,
            method=payment.method,
            status=payment.status,
            provider=payment.provider,
            amount=Money(amount=payment.amount, currency=payment.currency),
            created_at=payment.created_at,
            paid_at=payment.paid_at,
            pay_url=(payment.pay_url or None) if pending else None,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Payment | None]:
        found = await payments.visible_payments(info.context.actor, [int(i) for i in node_ids])
        return [cls.from_model(payment) if payment is not None else None for payment in found]


@strawberry.input(description="Which order to pay, and how.")
class PayOrderInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")
    method: PaymentMethod = strawberry.field(description="WALLET (signed-in buyers) or EXTERNAL.")
    order_no: str | None = strawberry.field(default=None, description="Guest orders: the order number.")
    query_password: str | None = strawberry.field(default=None, description="Guest orders: the query password.")


@strawberry.type(description="Result of `payOrder`.")
class PayOrderPayload:
    errors: list[UserError] = errors_field()
    order: Order | None = strawberry.field(
        default=None, description="The order: PAID after a WALLET payment, still PENDING_PAYMENT after EXTERNAL."
    )
    payment: Payment | None = strawberry.field(
        default=None, description="The payment; for EXTERNAL, send the buyer to its `payUrl`. Null on failure."
    )


@strawberry.type(description="Mutations of payments.")
class PaymentMutations:
    @mutation(
        description=(
            "Pay an order awaiting payment. WALLET: at once, from the signed-in buyer's wallet. "
            "EXTERNAL: returns a pending payment whose `payUrl` the buyer follows; the order "
            "becomes PAID when the provider confirms. Guests pay EXTERNAL, giving `orderNo` and "
            "`queryPassword` (unless they created the order in this same request)."
        )
    )
    async def pay_order(self, info: Info, input: PayOrderInput) -> PayOrderPayload:
        context = info.context
        actor = context.actor
        if actor.user is None and context.guest_order_id is not None:
            actor = dataclasses.replace(actor, guest_order_id=context.guest_order_id)
        paid = await payments.pay_order(
            actor,
            decode_id(input.order_id, "Order", "orderId"),
            PaymentMethodValue(input.method),
            order_no=input.order_no,
            query_password=input.query_password,
            base_url=str(context.request.base_url),
        )
        if actor.user is None:
            context.guest_order_id = paid.order.id  # the payload's order is read as its buyer
        return PayOrderPayload(order=Order.from_model(paid.order), payment=Payment.from_model(paid.payment))
