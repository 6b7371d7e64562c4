"""Users in the graph: the User type (with what other contexts say of a user) and viewer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from models.accounts.users import Role as RoleValue
from models.accounts.users import User as UserModel
from resolvers.accounts import notifications
from resolvers.accounts.auth import allowed
from resolvers.commerce import ledger, orders, settlement
from schema.accounts.notifications import Notification
from schema.base import After, Before, Connection, First, Last, Money, describe_values, graph_type, in_graph
from schema.context import Info
from schema.loyalty.coupons import UserCoupon, UserCouponStatus, coupons_of
from schema.loyalty.creators import CreatorStats, creator_stats_of
from schema.loyalty.points import Points, points_of
from schema.loyalty.tasks import Task, tasks_of
from schema.loyalty.tiers import Tier

if TYPE_CHECKING:
    from schema.commerce.orders import Order, OrderStatus
    from schema.commerce.payments import Wallet

Role = describe_values(
    strawberry.enum(RoleValue, name="Role", description="What an account may do beyond its own things."),
    BUYER="A customer: buys, posts, comments and earns points (every new account).",
    MERCHANT="Runs a shop: sells products and fulfils its orders, besides everything a buyer does.",
    MODERATOR="Staff: works the moderation queue and may see other users' private data.",
    ADMIN="Staff with every right: merchants, wallets, coupons and moderation.",
)


@in_graph
@strawberry.type(
    description="A Kameng account. Anyone may see the public profile (nickname, role, tier, counts); private "
                "fields answer null to anyone but the user themself (and, where stated, staff)."
)
class User(relay.Node):
    id: relay.NodeID[int]
    nickname: str = strawberry.field(description="Public display name; not unique, so not an identifier.")
    role: Role = strawberry.field(description="What the account may do.")
    tier: Tier = strawberry.field(description="Membership tier, from the last 12 months' spend and points.")
    created_at: datetime = strawberry.field(description="When the account was registered.")

    @strawberry.field(description="Visible to the user themself and to staff; null otherwise.")
    def email(self, info: Info) -> str | None:
        return self._email if allowed(info.context.actor, owner_id=self.id) else None

    @strawberry.field(description="Whether the user takes marketing messages (`setMarketingMessages`): visible to "
                                  "the user themself and to staff; null otherwise.")
    def marketing_messages(self, info: Info) -> bool | None:
        return self._marketing if allowed(info.context.actor, owner_id=self.id) else None

    @strawberry.field(description="The viewer's own notifications, newest first; null for other users.")
    async def notifications(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        unread_only: Annotated[bool, strawberry.argument(description="Only notifications not yet read.")] = False,
    ) -> Connection[Notification] | None:
        if info.context.actor.user_id != self.id:
            return None
        page = await notifications.list_for(
            info.context.actor, unread_only=unread_only, first=first, after=after, last=last, before=before
        )
        return Connection.of(page, Notification.from_model)

    @strawberry.field(description="How many of the viewer's notifications are unread; null for others.")
    async def unread_notification_count(self, info: Info) -> int | None:
        if info.context.actor.user_id != self.id:
            return None
        return await notifications.unread_count(info.context.actor)

    @strawberry.field(description="The user's wallet: to the user themself and to staff; null otherwise.")
    async def wallet(self, info: Info) -> Annotated[Wallet, strawberry.lazy("schema.commerce.payments")] | None:
        if not settlement.may_see_wallet(info.context.actor, self.id):
            return None
        balance = await info.context.loaders.account_balance.load(ledger.wallet(self.id))
        return graph_type("Wallet")(balance=Money(amount=balance, currency=settlement.WALLET_CURRENCY))

    @strawberry.field(description="The viewer's own orders, newest first; null for other users.")
    async def orders(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        status: Annotated[
            Annotated[OrderStatus, strawberry.lazy("schema.commerce.orders")] | None,
            strawberry.argument(description="Only orders in this status; default: all."),
        ] = None,
    ) -> Connection[Annotated[Order, strawberry.lazy("schema.commerce.orders")]] | None:
        if info.context.actor.user_id != self.id:
            return None
        page = await orders.list_for_buyer(
            info.context.actor, status=status, first=first, after=after, last=last, before=before
        )
        return Connection.of(page, graph_type("Order").from_model)

    @strawberry.field(description="The user's points: to the user themself and to staff; null otherwise.")
    async def points(self, info: Info) -> Points | None:
        return await points_of(info, self.id)

    @strawberry.field(description="The user's coupons, newest first: to the user themself and to staff.")
    async def coupons(
        self,
        info: Info,
        status: Annotated[
            UserCouponStatus | None, strawberry.argument(description="Only coupons in this status; default: all.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[UserCoupon] | None:
        return await coupons_of(info, self.id, status, first=first, after=after, last=last, before=before)

    @strawberry.field(description="The task center and the user's progress: to the user themself and to staff.")
    async def tasks(self, info: Info) -> list[Task] | None:
        return await tasks_of(info, self.id)

    @strawberry.field(description="Orders placed from the user's posts: to the user themself and to staff.")
    async def creator_stats(self, info: Info) -> CreatorStats | None:
        return await creator_stats_of(info, self.id)

    @strawberry.field(description="How many users follow this user.")
    def follower_count(self) -> int:
        return self._follower_count

    @strawberry.field(description="How many users, merchants, products and topics this user follows.")
    async def following_count(self, info: Info) -> int:
        return await info.context.loaders.following_count.load(self.id)

    _email: strawberry.Private[str]
    _follower_count: strawberry.Private[int] = 0
    _marketing: strawberry.Private[bool] = True

    @classmethod
    def from_model(cls, user: UserModel) -> User:
        return cls(
            id=user.id,
            nickname=user.nickname,
            role=user.role,
            tier=user.tier,
            created_at=user.created_at,
            _email=user.email,
            _follower_count=user.follower_count,
            _marketing=user.marketing,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        ids = [int(i) for i in node_ids]
        users = await info.context.loaders.user.load_many(ids)
        return [cls.from_model(u) if u is not None and u.is_active else None for u in users]


@strawberry.type(description="Queries about accounts.")
class AccountQueries:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    def viewer(self, info: Info) -> User | None:
        user = info.context.actor.user
        return User.from_model(user) if user is not None else None
