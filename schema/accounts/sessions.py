"""Sessions in the graph: register / login / refreshToken / logout."""

from __future__ import annotations

from typing import TypeVar

import strawberry

from resolvers.accounts import sessions, users
from resolvers.accounts.auth import Actor
from schema.accounts.users import User
from schema.base import UserError, mutation, no_errors
from schema.context import Info


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
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
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
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
    sessions_ended: int | None = None


P = TypeVar("P", bound=AuthPayload)


def _signed_in(info: Info, payload: type[P], result: sessions.SignedIn) -> P:
    # The rest of the payload is read as the user who just signed in (e.g. their email).
    previous = info.context.actor
    info.context.actor = Actor(result.user, result.session_id, previous.ip, previous.user_agent)
    return payload(
        access_token=result.access_token,
        refresh_token=result.refresh_token,
        expires_in=result.expires_in,
        user=User.from_model(result.user),
    )


@strawberry.type
class AccountMutations:
    @mutation()
    async def register(self, info: Info, input: RegisterInput) -> RegisterPayload:
        result = await users.register(
            info.context.actor, email=input.email, password=input.password, nickname=input.nickname
        )
        return _signed_in(info, RegisterPayload, result)

    @mutation()
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        result = await sessions.login(info.context.actor, email=input.email, password=input.password)
        return _signed_in(info, LoginPayload, result)

    @mutation()
    async def refresh_token(self, info: Info, input: RefreshTokenInput) -> RefreshTokenPayload:
        return _signed_in(info, RefreshTokenPayload, await sessions.refresh(refresh_token=input.refresh_token))

    @mutation()
    async def logout(self, info: Info, input: LogoutInput) -> LogoutPayload:
        ended = await sessions.logout(info.context.actor, refresh_token=input.refresh_token, everywhere=input.everywhere)
        return LogoutPayload(sessions_ended=ended)
