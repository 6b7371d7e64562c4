"""Friend-pay (好友代付): the buyer of an unpaid order shares a code; a signed-in friend who
holds it sees what the order is (product, quantity, amount, the buyer's nickname — never the
buyer's contact data or the order's keys) and pays it from their own wallet.

The friend's payment is an ordinary wallet payment of the order (resolvers/commerce/payments.py
``pay_from_wallet``) whose ``Payment.payer_id`` is the friend: the buyer gets the delivery, and
every refund path (cancellation after payment, failed delivery, a refund by the shop) returns
the money to the friend's wallet (settlement.py ``_paid_from``). A request lives as long as the
order's payment reservation; paying it after that is INVALID_STATE.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError

from models.accounts.users import User
from models.commerce.catalog import Product
from models.commerce.friendpay import FriendPayRequest, FriendPayStatus
from models.commerce.orders import Order, OrderStatus
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.commerce import payments
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import outbox

CODE_MAX = 32


@dataclass(frozen=True)
class FriendPayView:
    """What a code shows to the friend asked to pay."""

    request: FriendPayRequest
    order: Order
    product_title: str
    requester_nickname: str


def _not_found() -> UserFacingError:
    return UserFacingError(ErrorCode.NOT_FOUND, "No such friend-pay request.", "code")


def _payable(order: Order) -> None:
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"An order that is {order.status.value} cannot be paid.")
    if order.expires_at <= datetime.now(UTC):
        raise UserFacingError(ErrorCode.INVALID_STATE, "The time to pay this order has run out.")


async def ask(actor: Actor, order_id: int) -> FriendPayRequest:
    """The buyer's share code for an unpaid order (the same one when asked again)."""
    user = require(actor)
    order = await Order.filter(id=order_id).first()
    if order is None or order.buyer_id != user.id:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    _payable(order)
    found = await FriendPayRequest.filter(order_id=order.id).first()
    if found is not None:
        if found.status == FriendPayStatus.WITHDRAWN:
            # Reopened with a new code: whoever held the old one can no longer pay.
            await FriendPayRequest.filter(id=found.id, status=FriendPayStatus.WITHDRAWN).update(
                status=FriendPayStatus.OPEN, code=secrets.token_urlsafe(16)
            )
            found = await FriendPayRequest.get(id=found.id)
        return found
    try:
        async with outbox.atomic():
            return await FriendPayRequest.create(
                order_id=order.id, requester_id=user.id, code=secrets.token_urlsafe(16), expires_at=order.expires_at
            )
    except IntegrityError:  # asked twice at once: the other request made it
        return await FriendPayRequest.get(order_id=order.id)


async def withdraw(actor: Actor, order_id: int) -> FriendPayRequest:
    user = require(actor)
    found = await FriendPayRequest.filter(order_id=order_id, requester_id=user.id).first()
    if found is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such friend-pay request.", "orderId")
    if not await FriendPayRequest.filter(id=found.id, status=FriendPayStatus.OPEN).update(
        status=FriendPayStatus.WITHDRAWN
    ):
        raise UserFacingError(ErrorCode.INVALID_STATE, f"This request is {found.status.value} already.")
    return await FriendPayRequest.get(id=found.id)


def _clean_code(code: str) -> str:
    code = (code or "").strip()
    if not code or len(code) > CODE_MAX:
        raise invalid("code", f"A friend-pay code has 1 to {CODE_MAX} characters.")
    return code


async def view(actor: Actor, code: str) -> FriendPayView:
    """What the code asks the signed-in friend to pay."""
    require(actor)
    request = await FriendPayRequest.filter(code=_clean_code(code)).first()
    if request is None:
        raise _not_found()
    order = await Order.get(id=request.order_id)
    title = await Product.filter(id=order.product_id).first().values_list("title", flat=True)
    nickname = await User.filter(id=request.requester_id).first().values_list("nickname", flat=True)
    return FriendPayView(request, order, str(title or ""), str(nickname or ""))


async def pay(actor: Actor, code: str) -> FriendPayView:
    """The friend pays the order from their wallet, once: of concurrent payers (or the buyer
    paying it themselves meanwhile) exactly one wins, the others change nothing."""
    friend = require(actor)
    request = await FriendPayRequest.filter(code=_clean_code(code)).first()
    if request is None or request.status == FriendPayStatus.WITHDRAWN:
        raise _not_found()
    if request.requester_id == friend.id:
        raise invalid("code", "This is your own order: pay it with payOrder.")
    if request.status == FriendPayStatus.PAID:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This order has been paid already.")
    order = await Order.get(id=request.order_id)
    _payable(order)
    async with outbox.atomic():
        if not await FriendPayRequest.filter(id=request.id, status=FriendPayStatus.OPEN).update(
            status=FriendPayStatus.PAID, payer_id=friend.id, paid_at=datetime.now(UTC)
        ):
            raise UserFacingError(ErrorCode.INVALID_STATE, "This order has been paid already.")
        await payments.pay_from_wallet(order, friend.id, note=f"paid by a friend (user:{friend.id})")
        await notifications.notify(
            order.buyer_id, "FRIEND_PAID", f"{friend.nickname} paid your order {order.order_no}",
            data={"orderId": order.id}, dedupe_key=f"friendpay:{request.id}",
        )
    return await view(actor, code)

