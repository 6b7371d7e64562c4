"""What a notification is about, typed: one GraphQL type per family of notification kinds.

Producers write ``kind`` and a small ``data`` object (ids as numbers) with the change that
causes the notification; here each kind's data becomes an object of the graph. The objects
are read when asked for and through the types' own ``resolve_nodes``, so a notification never
shows what its reader may not see (an order they lost access to answers null). A kind this
module does not know, or data it cannot read, gives ``UnknownNotification``: a new producer
never breaks a client, it only shows up untyped until it is added here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from models.accounts.notifications import Notification as NotificationModel
from resolvers.accounts import notifications
from schema.accounts import notification_payloads_loop as loop
from schema.accounts.notification_nodes import key as _key
from schema.accounts.notification_nodes import node as _node
from schema.base import Money
from schema.context import Info
from schema.loyalty.tiers import Tier

if TYPE_CHECKING:
    from schema.accounts.users import User
    from schema.commerce.catalog import Product
    from schema.commerce.merchants import Merchant
    from schema.commerce.orders import Order
    from schema.commerce.payments import Payment
    from schema.community.types import Comment, Post

WALLET_CURRENCY = "CNY"


@strawberry.type(description="About one of the reader's orders: paid, delivered, failed, refunded, completed "
                             "(kinds ORDER_*), or, for a merchant, an order to deliver by hand (ORDER_TO_FULFIL).")
class OrderNotification:
    _order_id: strawberry.Private[int]

    @strawberry.field(description="The order; null if the reader may no longer see it.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        return await _node(info, "Order", self._order_id)


@strawberry.type(description="A payment arrived after its order had closed and was credited to the reader's wallet "
                             "(PAYMENT_RETURNED).")
class PaymentReturnedNotification:
    _order_id: strawberry.Private[int]
    _payment_id: strawberry.Private[int]

    @strawberry.field(description="The closed order; null if the reader may no longer see it.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        return await _node(info, "Order", self._order_id)

    @strawberry.field(description="The late payment (status REFUNDED_LATE); null if not visible.")
    async def payment(self, info: Info) -> Annotated[Payment, strawberry.lazy("schema.commerce.payments")] | None:
        return await _node(info, "Payment", self._payment_id)


@strawberry.type(description="A new session was opened on the reader's account (NEW_SIGNIN): if it was not them, "
                             "they should change their password and `logout(everywhere: true)`.")
class SignInNotification:
    session_id: str = strawberry.field(description="The session's id (the part of its refresh token before the dot).")

    @strawberry.field(description="The address it signed in from; null if the session no longer exists or "
                                  "the address was not known.")
    async def ip(self, info: Info) -> str | None:
        session = await notifications.own_session(info.context.actor, self.session_id)
        return (session.ip or None) if session is not None else None

    @strawberry.field(description="The device's User-Agent; null if unknown or the session no longer exists.")
    async def user_agent(self, info: Info) -> str | None:
        session = await notifications.own_session(info.context.actor, self.session_id)
        return (session.user_agent or None) if session is not None else None

    @strawberry.field(description="When the session was opened; null if it no longer exists.")
    async def signed_in_at(self, info: Info) -> datetime | None:
        session = await notifications.own_session(info.context.actor, self.session_id)
        return session.created_at if session is not None else None


@strawberry.type(description="People liked one of the reader's posts (LIKES). One notification per post while "
                             "unread: new likes update it.")
class LikesNotification:
    like_count: int = strawberry.field(description="The post's likes when the notification was last updated.")
    _post_id: strawberry.Private[int]

    @strawberry.field(description="The post liked; null if the reader may no longer see it.")
    async def post(self, info: Info) -> Annotated[Post, strawberry.lazy("schema.community.types")] | None:
        return await _node(info, "Post", self._post_id)


@strawberry.type(description="A comment concerning the reader: a reply to their post or comment (REPLY), a "
                             "mention (MENTION), or their answer accepted (ANSWER_ACCEPTED).")
class CommentNotification:
    _post_id: strawberry.Private[int]
    _comment_id: strawberry.Private[int]

    @strawberry.field(description="The post commented on; null if no longer visible.")
    async def post(self, info: Info) -> Annotated[Post, strawberry.lazy("schema.community.types")] | None:
        return await _node(info, "Post", self._post_id)

    @strawberry.field(description="The comment; null if no longer visible.")
    async def comment(self, info: Info) -> Annotated[Comment, strawberry.lazy("schema.community.types")] | None:
        return await _node(info, "Comment", self._comment_id)


@strawberry.type(description="The author of a DEMAND chose the reader's reply and product (DEMAND_FULFILLED).")
class DemandFulfilledNotification:
    _post_id: strawberry.Private[int]
    _comment_id: strawberry.Private[int]
    _product_id: strawberry.Private[int]

    @strawberry.field(description="The DEMAND post; null if no longer visible.")
    async def post(self, info: Info) -> Annotated[Post, strawberry.lazy("schema.community.types")] | None:
        return await _node(info, "Post", self._post_id)

    @strawberry.field(description="The reader's chosen reply; null if no longer visible.")
    async def comment(self, info: Info) -> Annotated[Comment, strawberry.lazy("schema.community.types")] | None:
        return await _node(info, "Comment", self._comment_id)

    @strawberry.field(description="The product chosen; null if no longer visible.")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _node(info, "Product", self._product_id)


@strawberry.type(description="Someone followed the reader (FOLLOW).")
class FollowNotification:
    _user_id: strawberry.Private[int]

    @strawberry.field(description="The new follower; null if their account was deactivated.")
    async def follower(self, info: Info) -> Annotated[User, strawberry.lazy("schema.accounts.users")] | None:
        return await _node(info, "User", self._user_id)


@strawberry.type(description="The reader's membership tier changed (TIER_CHANGED).")
class TierChangedNotification:
    from_tier: Tier = strawberry.field(description="The tier before.")
    to_tier: Tier = strawberry.field(description="The tier now.")


@strawberry.type(description="Staff credited or debited the reader's wallet (WALLET_ADJUSTED); the reason is "
                             "the notification's `body`.")
class WalletAdjustedNotification:
    amount: Money = strawberry.field(description="Positive for a credit, negative for a debit.")


@strawberry.type(description="A moderator hid the reader's post or comment (CONTENT_HIDDEN); the reason is the "
                             "notification's `body`.")
class ContentHiddenNotification:
    _post_id: strawberry.Private[int | None]
    _comment_id: strawberry.Private[int | None]

    @strawberry.field(description="The hidden post (its author still sees it); null if a comment was hidden.")
    async def post(self, info: Info) -> Annotated[Post, strawberry.lazy("schema.community.types")] | None:
        return await _node(info, "Post", self._post_id)

    @strawberry.field(description="The hidden comment; null if a post was hidden or it is not visible.")
    async def comment(self, info: Info) -> Annotated[Comment, strawberry.lazy("schema.community.types")] | None:
        return await _node(info, "Comment", self._comment_id)


@strawberry.type(description="Staff suspended the reader's shop (MERCHANT_SUSPENDED) or reinstated it "
                             "(MERCHANT_ACTIVE).")
class MerchantStatusNotification:
    suspended: bool = strawberry.field(description="True if suspended, false if active again.")
    _merchant_id: strawberry.Private[int]

    @strawberry.field(description="The shop, with its current `status`.")
    async def merchant(self, info: Info) -> Annotated[Merchant, strawberry.lazy("schema.commerce.merchants")] | None:
        return await _node(info, "Merchant", self._merchant_id)


@strawberry.type(description="Sent once, when the account is created (WELCOME).")
class WelcomeNotification:
    _user_id: strawberry.Private[int]

    @strawberry.field(description="The new account: the reader.")
    async def user(self, info: Info) -> Annotated[User, strawberry.lazy("schema.accounts.users")] | None:
        return await _node(info, "User", self._user_id)


@strawberry.type(description="A kind this version of the schema has no type for (or data it cannot read): show "
                             "the notification's title and body. New kinds may appear at any time.")
class UnknownNotification:
    kind: str = strawberry.field(description="The notification's kind.")
    data: JSON = strawberry.field(description="The notification's raw data: an object, undocumented.")


NotificationPayload = Annotated[
    OrderNotification | PaymentReturnedNotification | SignInNotification | LikesNotification | CommentNotification
    | DemandFulfilledNotification | FollowNotification | TierChangedNotification | WalletAdjustedNotification
    | ContentHiddenNotification | MerchantStatusNotification | WelcomeNotification | loop.GiftNotification
    | loop.FriendPaidNotification | loop.InvitationRewardedNotification | loop.TicketNotification
    | loop.PlanNotification | loop.RenewalReminderNotification | loop.ClaimNotification | loop.BirthdayNotification
    | UnknownNotification,
    strawberry.union(
        "NotificationPayload",
        description="What a notification is about, by its kind; `UnknownNotification` for any kind not listed "
                    "(select `... on UnknownNotification` so a new kind still shows).",
    ),
]

ORDER_KINDS = frozenset(
    {"ORDER_PAID", "ORDER_DELIVERED", "ORDER_FAILED", "ORDER_REFUNDED", "ORDER_COMPLETED", "ORDER_TO_FULFIL"}
)
COMMENT_KINDS = frozenset({"REPLY", "MENTION", "ANSWER_ACCEPTED"})


def _typed(note: NotificationModel) -> Any:
    """The payload of ``note``; raises KeyError/ValueError/TypeError on data it cannot read."""
    kind, data = note.kind, note.data
    if not isinstance(data, dict):
        raise TypeError(kind)
    if kind in ORDER_KINDS:
        return OrderNotification(_order_id=_key(data, "orderId"))
    if kind == "PAYMENT_RETURNED":
        return PaymentReturnedNotification(_order_id=_key(data, "orderId"), _payment_id=_key(data, "paymentId"))
    if kind == "NEW_SIGNIN":
        if not isinstance(data["sessionId"], str):
            raise TypeError(kind)
        return SignInNotification(session_id=data["sessionId"])
    if kind == "LIKES":
        return LikesNotification(_post_id=_key(data, "postId"), like_count=_key(data, "likeCount"))
    if kind in COMMENT_KINDS:
        return CommentNotification(_post_id=_key(data, "postId"), _comment_id=_key(data, "commentId"))
    if kind == "DEMAND_FULFILLED":
        return DemandFulfilledNotification(
            _post_id=_key(data, "postId"), _comment_id=_key(data, "commentId"), _product_id=_key(data, "productId")
        )
    if kind == "FOLLOW":
        return FollowNotification(_user_id=_key(data, "userId"))
    if kind == "TIER_CHANGED":
        return TierChangedNotification(from_tier=Tier(data["from"]), to_tier=Tier(data["to"]))
    if kind == "WALLET_ADJUSTED":
        amount = Decimal(str(data["amount"]))
        return WalletAdjustedNotification(amount=Money(amount=amount, currency=WALLET_CURRENCY))
    if kind == "CONTENT_HIDDEN":
        target, key = data["kind"], _key(data, "id")
        if target not in ("POST", "COMMENT"):
            raise ValueError(kind)
        return ContentHiddenNotification(
            _post_id=key if target == "POST" else None, _comment_id=key if target == "COMMENT" else None
        )
    if kind in ("MERCHANT_ACTIVE", "MERCHANT_SUSPENDED"):
        return MerchantStatusNotification(suspended=kind == "MERCHANT_SUSPENDED", _merchant_id=_key(data, "merchantId"))
    if kind == "WELCOME":
        return WelcomeNotification(_user_id=note.user_id)
    return loop.typed(kind, data)  # the kinds of issues 11 to 14; KeyError for any other


def payload_of(note: NotificationModel) -> Any:
    """The typed payload of a notification, or ``UnknownNotification`` when it cannot be typed."""
    try:
        return _typed(note)
    except (KeyError, ValueError, TypeError, InvalidOperation):
        return UnknownNotification(kind=note.kind, data=note.data)
