"""Friend-pay in the graph: askFriendToPay, withdrawFriendPay, friendPayRequest and payForFriend."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from models.commerce.friendpay import FriendPayRequest as RequestModel
from models.commerce.friendpay import FriendPayStatus as FriendPayStatusValue
from models.commerce.orders import OrderStatus
from resolvers.commerce import friendpay
from schema.base import Money, UserError, decode_id, describe_values, errors_field, mutation
from schema.context import Info

FriendPayStatus = describe_values(
    strawberry.enum(FriendPayStatusValue, name="FriendPayStatus", description="Where a friend-pay request is."),
    OPEN="Waiting for a friend to pay, until `expiresAt`.",
    PAID="A friend paid the order.",
    WITHDRAWN="The buyer took the request back; its code no longer pays.",
)


@strawberry.type(description="The buyer's request that a friend pay their order: pass `code` on.")
class FriendPayRequest:
    code: str = strawberry.field(description="The share code: whoever holds it (signed in) may pay the order.")
    status: FriendPayStatus = strawberry.field(description="Open, paid or withdrawn.")
    expires_at: datetime = strawberry.field(description="The order's payment deadline: the code pays until then.")
    paid_at: datetime | None = strawberry.field(description="When the friend paid; null until then.")

    @classmethod
    def from_model(cls, request: RequestModel) -> FriendPayRequest:
        return cls(code=request.code, status=request.status, expires_at=request.expires_at, paid_at=request.paid_at)


@strawberry.type(description="What a friend-pay code asks you to pay. Names no contact data of the buyer, and never "
                             "the order's keys: they go to the buyer.")
class FriendPayInvitation:
    status: FriendPayStatus = strawberry.field(description="Open, paid or withdrawn.")
    product_title: str = strawberry.field(description="The product ordered.")
    quantity: int = strawberry.field(description="How many.")
    amount: Money = strawberry.field(description="What you would pay: the order's total.")
    requester_nickname: str = strawberry.field(description="The buyer's public nickname.")
    expires_at: datetime = strawberry.field(description="Until when it can be paid.")
    payable: bool = strawberry.field(description="Whether paying it now can succeed (open and the order still unpaid).")

    @classmethod
    def from_view(cls, view: friendpay.FriendPayView) -> FriendPayInvitation:
        order = view.order
        open_ = view.request.status == FriendPayStatusValue.OPEN and order.status == OrderStatus.PENDING_PAYMENT
        return cls(
            status=view.request.status, product_title=view.product_title, quantity=order.quantity,
            amount=Money(amount=order.total, currency=order.currency), requester_nickname=view.requester_nickname,
            expires_at=view.request.expires_at, payable=open_ and order.expires_at > datetime.now(order.expires_at.tzinfo),
        )


@strawberry.input(description="The unpaid order a friend should pay.")
class FriendPayOrderInput:
    order_id: strawberry.ID = strawberry.field(description="Your order's global ID.")


@strawberry.input(description="The friend-pay code to pay.")
class PayForFriendInput:
    code: str = strawberry.field(description="The code the buyer shared.")


@strawberry.type(description="Result of `askFriendToPay` and `withdrawFriendPay`.")
class FriendPayRequestPayload:
    errors: list[UserError] = errors_field()
    request: FriendPayRequest | None = strawberry.field(default=None, description="The request; null on failure.")


@strawberry.type(description="Result of `payForFriend`.")
class PayForFriendPayload:
    errors: list[UserError] = errors_field()
    invitation: FriendPayInvitation | None = strawberry.field(
        default=None, description="What was paid (status PAID); null on failure.")


@strawberry.type(description="Mutations of friend-pay (好友代付).")
class FriendPayMutations:
    @mutation(description="Ask a friend to pay your unpaid order: a share code valid until the order's payment "
                          "deadline (the same code when asked again).")
    async def ask_friend_to_pay(self, info: Info, input: FriendPayOrderInput) -> FriendPayRequestPayload:
        request = await friendpay.ask(info.context.actor, decode_id(input.order_id, "Order", "orderId"))
        return FriendPayRequestPayload(request=FriendPayRequest.from_model(request))

    @mutation(description="Take a friend-pay request back: its code no longer pays (asking again makes a new code).")
    async def withdraw_friend_pay(self, info: Info, input: FriendPayOrderInput) -> FriendPayRequestPayload:
        request = await friendpay.withdraw(info.context.actor, decode_id(input.order_id, "Order", "orderId"))
        return FriendPayRequestPayload(request=FriendPayRequest.from_model(request))

    @mutation(description="Pay a friend's order from your wallet. They receive the delivery; if the order is refunded "
                          "(failed delivery, a refund by the shop), the money comes back to your wallet.")
    async def pay_for_friend(self, info: Info, input: PayForFriendInput) -> PayForFriendPayload:
        view = await friendpay.pay(info.context.actor, input.code)
        return PayForFriendPayload(invitation=FriendPayInvitation.from_view(view))


@strawberry.type(description="Queries of friend-pay.")
class FriendPayQueries:
    @strawberry.field(description="What a friend-pay code asks the signed-in user to pay.")
    async def friend_pay_request(
        self, info: Info, code: Annotated[str, strawberry.argument(description="The shared code.")]
    ) -> FriendPayInvitation:
        return FriendPayInvitation.from_view(await friendpay.view(info.context.actor, code))
