"""Settlement in the graph: confirmReceipt, refundOrder and adjustWallet."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from resolvers.commerce import settlement
from schema.accounts.users import User
from schema.base import Money, UserError, decode_id, mutation, errors_field
from schema.commerce.orders import Order
from schema.commerce.payments import Wallet
from schema.context import Info


@strawberry.input(description="The order whose receipt the buyer confirms.")
class ConfirmReceiptInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")


@strawberry.type(description="Result of `confirmReceipt`.")
class ConfirmReceiptPayload:
    errors: list[UserError] = errors_field()
    order: Order | None = strawberry.field(default=None, description="The order, COMPLETED; null on failure.")


@strawberry.input(description="An order to refund, and why.")
class RefundOrderInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")
    reason: str = strawberry.field(description="Why, kept in the order's events and the ledger.")


@strawberry.type(description="Result of `refundOrder`.")
class RefundOrderPayload:
    errors: list[UserError] = errors_field()
    order: Order | None = strawberry.field(default=None, description="The order, REFUNDED; null on failure.")


@strawberry.input(description="A correction of a user's wallet.")
class AdjustWalletInput:
    user_id: strawberry.ID = strawberry.field(description="The user's global ID.")
    amount: Decimal = strawberry.field(description="Negative for a correction; the wallet never goes below zero.")
    reason: str = strawberry.field(description="3 to 200 characters, kept with the posting.")


@strawberry.type(description="Result of `adjustWallet`.")
class AdjustWalletPayload:
    errors: list[UserError] = errors_field()
    user: User | None = strawberry.field(default=None, description="The user whose wallet changed; null on failure.")
    wallet: Wallet | None = strawberry.field(default=None, description="The wallet after the change; null on failure.")


@strawberry.type(description="Mutations that settle orders and correct wallets.")
class SettlementMutations:
    @mutation(description="The buyer confirms a DELIVERED order: COMPLETED, and the merchant is paid.")
    async def confirm_receipt(self, info: Info, input: ConfirmReceiptInput) -> ConfirmReceiptPayload:
        order_id = decode_id(input.order_id, "Order", "orderId")
        order = await settlement.confirm_receipt(info.context.actor, order_id)
        return ConfirmReceiptPayload(order=Order.from_model(order))

    @mutation(description="The shop's owner or an admin: refund a PAID, FAILED or DELIVERED order to where it was paid from, with a reason kept in its history. A delivered card-key order (the buyer holds the key) is refunded by an admin only.")
    async def refund_order(self, info: Info, input: RefundOrderInput) -> RefundOrderPayload:
        order_id = decode_id(input.order_id, "Order", "orderId")
        order = await settlement.refund_by_staff(info.context.actor, order_id, input.reason)
        return RefundOrderPayload(order=Order.from_model(order))

    @mutation(description="Admins: credit or debit a user's wallet, with a reason.")
    async def adjust_wallet(self, info: Info, input: AdjustWalletInput) -> AdjustWalletPayload:
        user_id = decode_id(input.user_id, "User", "userId")
        user, balance = await settlement.adjust_wallet(info.context.actor, user_id, input.amount, input.reason)
        wallet = Wallet(balance=Money(amount=balance, currency=settlement.WALLET_CURRENCY))
        return AdjustWalletPayload(user=User.from_model(user), wallet=wallet)
