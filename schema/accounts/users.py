"""Accounts in the graph: User, viewer, register / login / refreshToken / logout."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from models.accounts.users import Role as RoleValue
from models.accounts.users import Tier as TierValue
from models.accounts.users import User as UserModel
from resolvers.accounts import users as accounts, notifications
from resolvers.accounts.auth import Actor, allowed
from schema.base import Connection, UserError, run_mutation
from schema.context import Info
from schema.loyalty.loyalty import (
    CreatorStats,
    Points,
    Task,
    UserCoupon,
    UserCouponStatus,
    coupons_of,
    creator_stats_of,
    points_of,
    tasks_of,
)
from schema.accounts.notifications import Notification
from schema.commerce.orders import Order, OrderStatus, viewer_orders

if TYPE_CHECKING:
    from schema.commerce.payments import Wallet

Role = strawberry.enum(RoleValue, name="Role")
Tier = strawberry.enum(TierValue, name="Tier", description="Membership tier.")


@strawberry.type
class User(relay.Node):
    id: relay.NodeID[int]
    nickname: str
    role: Role
    tier: Tier
    created_at: datetime

    @strawberry.field(description="Visible to the user themself and to staff; null otherwise.")
    def email(self, info: Info) -> str | None:
        return self._email if allowed(info.context.actor, owner_id=self.id) else None

    @strawberry.field(description="The viewer's own notifications, newest first; null for other users.")
    async def notifications(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        unread_only: bool = False,
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
        from schema.commerce.payments import wallet_of

        return await wallet_of(info, self.id)

    @strawberry.field(description="The viewer's own orders, newest first; null for other users.")
    async def orders(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: OrderStatus | None = None,
    ) -> Connection[Order] | None:
        return await viewer_orders(info, self.id, first, after, status)

    @strawberry.field(description="The user's points: to the user themself and to staff; null otherwise.")
    async def points(self, info: Info) -> Points | None:
        return await points_of(info, self.id)

    @strawberry.field(description="The user's coupons, newest first: to the user themself and to staff.")
    async def coupons(
        self,
        info: Info,
        status: UserCouponStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[UserCoupon] | None:
        return await coupons_of(info, self.id, status, first, after)

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
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        ids = [int(i) for i in node_ids]
        users = await info.context.loaders.user.load_many(ids)
        return [cls.from_model(u) if u is not None and u.is_active else None for u in users]


@strawberry.input
class RegisterInput:
    email: str
    password: str
    nickname: str


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.input
class RefreshTokenInput:
    refresh_token: str


@strawberry.input
class LogoutInput:
    refresh_token: str | None = strawberry.field(
        default=None, description="The session to end; default: the one of the access token."
    )
    everywhere: bool = strawberry.field(default=False, description="End every session of the account.")


@strawberry.type(description="Tokens of a new session. Send the access token as `Authorization: Bearer`.")
class AuthPayload:
    errors: list[UserError]
    access_token: str | None = None
    refresh_token: str | None = None
    expires_in: int | None = strawberry.field(default=None, description="Access token lifetime, seconds.")
    user: User | None = None


# The contract names a payload per mutation; they share one shape.
@strawberry.type
class RegisterPayload(AuthPayload):
    pass


@strawberry.type
class LoginPayload(AuthPayload):
    pass


@strawberry.type
class RefreshTokenPayload(AuthPayload):
    pass


@strawberry.type
class LogoutPayload:
    errors: list[UserError]
    sessions_ended: int | None = None


async def _signed_in(info: Info, action: Awaitable[accounts.SignedIn]) -> dict[str, Any]:
    result = await action
    # The rest of the payload is read as the user who just signed in (e.g. their email).
    previous = info.context.actor
    info.context.actor = Actor(result.user, result.session_id, previous.ip, previous.user_agent)
    return {
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
        "expires_in": result.expires_in,
        "user": User.from_model(result.user),
    }


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    def viewer(self, info: Info) -> User | None:
        user = info.context.actor.user
        return User.from_model(user) if user is not None else None


@strawberry.type
class AccountMutations:
    @strawberry.mutation
    async def register(self, info: Info, input: RegisterInput) -> RegisterPayload:
        action = accounts.register(
            info.context.actor, email=input.email, password=input.password, nickname=input.nickname
        )
        return await run_mutation(RegisterPayload, _signed_in(info, action))

    @strawberry.mutation
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        action = accounts.login(info.context.actor, email=input.email, password=input.password)
        return await run_mutation(LoginPayload, _signed_in(info, action))

    @strawberry.mutation
    async def refresh_token(self, info: Info, input: RefreshTokenInput) -> RefreshTokenPayload:
        action = accounts.refresh(refresh_token=input.refresh_token)
        return await run_mutation(RefreshTokenPayload, _signed_in(info, action))

    @strawberry.mutation
    async def logout(self, info: Info, input: LogoutInput) -> LogoutPayload:
        async def action() -> dict[str, Any]:
            ended = await accounts.logout(
                info.context.actor, refresh_token=input.refresh_token, everywhere=input.everywhere
            )
            return {"sessions_ended": ended}

        return await run_mutation(LogoutPayload, action())
