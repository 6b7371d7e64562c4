"""Payments in the graph: Payment, Wallet, payOrder, confirmReceipt, refundOrder, adjustWallet."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay

from models.commerce.payments import Payment as PaymentModel
from models.commerce.payments import PaymentMethod as PaymentMethodValue
from models.commerce.payments import PaymentStatus as PaymentStatusValue
from resolvers.commerce import ledger, orders, payments
from resolvers.accounts.auth import allowed
from schema.accounts.users import User
from schema.base import Money, UserError, decode_id, run_mutation
from schema.context import Info
from schema.commerce.orders import Order

PaymentMethod = strawberry.enum(PaymentMethodValue, name="PaymentMethod")
PaymentStatus = strawberry.enum(
    PaymentStatusValue,
    name="PaymentStatus",
    description="REFUNDED_LATE: the money arrived after the order closed and was given back.",
)


@strawberry.type(description="A user's wallet: money to pay orders with (refunds land here).")
class Wallet:
    balance: Money


async def wallet_of(info: Info, user_id: int) -> Wallet | None:
    """`User.wallet`: the user themself and staff only; batched across users."""
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    balance = await info.context.loaders.account_balance.load(ledger.wallet(user_id))
    return Wallet(balance=Money(amount=balance, currency=payments.WALLET_CURRENCY))


@strawberry.type
class Payment(relay.Node):
    id: relay.NodeID[int]
    method: PaymentMethod
    status: PaymentStatus
    provider: str
    amount: Money
    created_at: datetime
    paid_at: datetime | None
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
        ids = [int(i) for i in node_ids]
        found = {p.id: p for p in await PaymentModel.filter(id__in=ids)}
        result: list[Payment | None] = []
        for i in ids:
            payment = found.get(i)
            visible = payment is not None and await orders.visible_order(info.context.actor, payment.order_id)
            result.append(cls.from_model(payment) if visible and payment is not None else None)
        return result


@strawberry.input
class PayOrderInput:
    order_id: strawberry.ID
    method: PaymentMethod
    order_no: str | None = strawberry.field(default=None, description="Guest orders: the order number.")
    query_password: str | None = strawberry.field(default=None, description="Guest orders: the query password.")


@strawberry.type
class PayOrderPayload:
    errors: list[UserError]
    order: Order | None = None
    payment: Payment | None = None


@strawberry.input
class ConfirmReceiptInput:
    order_id: strawberry.ID


@strawberry.type
class ConfirmReceiptPayload:
    errors: list[UserError]
    order: Order | None = None


@strawberry.input
class RefundOrderInput:
    order_id: strawberry.ID
    reason: str


@strawberry.type
class RefundOrderPayload:
    errors: list[UserError]
    order: Order | None = None


@strawberry.input
class AdjustWalletInput:
    user_id: strawberry.ID
    amount: Decimal = strawberry.field(description="Negative for a correction; the wallet never goes below zero.")
    reason: str = strawberry.field(description="3 to 200 characters, kept with the posting.")


@strawberry.type
class AdjustWalletPayload:
    errors: list[UserError]
    user: User | None = None
    wallet: Wallet | None = None


@strawberry.type
class PaymentMutations:
    @strawberry.mutation(
        description=(
            "Pay an order awaiting payment. WALLET: at once, from the signed-in buyer's wallet. "
            "EXTERNAL: returns a pending payment whose `payUrl` the buyer follows; the order "
            "becomes PAID when the provider confirms. Guests pay EXTERNAL, giving `orderNo` and "
            "`queryPassword` (unless they created the order in this same request)."
        )
    )
    async def pay_order(self, info: Info, input: PayOrderInput) -> PayOrderPayload:
        async def action() -> dict[str, Any]:
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
            return {"order": Order.from_model(paid.order), "payment": Payment.from_model(paid.payment)}

        return await run_mutation(PayOrderPayload, action())

    @strawberry.mutation(description="The buyer confirms a DELIVERED order: COMPLETED, and the merchant is paid.")
    async def confirm_receipt(self, info: Info, input: ConfirmReceiptInput) -> ConfirmReceiptPayload:
        async def action() -> dict[str, Any]:
            order_id = decode_id(input.order_id, "Order", "orderId")
            return {"order": Order.from_model(await payments.confirm_receipt(info.context.actor, order_id))}

        return await run_mutation(ConfirmReceiptPayload, action())

    @strawberry.mutation(description="Staff: refund a PAID, FAILED or DELIVERED order to where it was paid from.")
    async def refund_order(self, info: Info, input: RefundOrderInput) -> RefundOrderPayload:
        async def action() -> dict[str, Any]:
            order_id = decode_id(input.order_id, "Order", "orderId")
            order = await payments.refund_by_staff(info.context.actor, order_id, input.reason)
            return {"order": Order.from_model(order)}

        return await run_mutation(RefundOrderPayload, action())

    @strawberry.mutation(description="Admins: credit or debit a user's wallet, with a reason.")
    async def adjust_wallet(self, info: Info, input: AdjustWalletInput) -> AdjustWalletPayload:
        async def action() -> dict[str, Any]:
            user_id = decode_id(input.user_id, "User", "userId")
            user, balance = await payments.adjust_wallet(info.context.actor, user_id, input.amount, input.reason)
            return {
                "user": User.from_model(user),
                "wallet": Wallet(balance=Money(amount=balance, currency=payments.WALLET_CURRENCY)),
            }

        return await run_mutation(AdjustWalletPayload, action())
