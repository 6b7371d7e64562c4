"""Sessions in the graph: register / login / refreshToken / logout."""

from __future__ import annotations

from typing import TypeVar

import strawberry

from resolvers.accounts import sessions
from resolvers.loyalty import invitations
from resolvers.accounts.auth import Actor
from schema.accounts.users import User
from schema.base import UserError, mutation, errors_field
from schema.context import Info


@strawberry.input(description="A new buyer account; it is signed in at once.")
class RegisterInput:
    email: str = strawberry.field(description="Sign-in address, unique per account (EMAIL_TAKEN otherwise).")
    password: str = strawberry.field(description="8 to 128 characters, not the email address.")
    nickname: str = strawberry.field(description="Public display name, 2 to 40 characters.")
    invite_code: str | None = strawberry.field(
        default=None, description="An invite code from a friend (`myInvitation.code`): both of you earn points when "
                                  "your first order of at least the configured total completes.")
    device_id: str | None = strawberry.field(
        default=None, description="The anonymous device id the client sends with `track`, if any.")


@strawberry.input(description="Credentials of an existing account.")
class LoginInput:
    email: str = strawberry.field(description="The account's sign-in address.")
    password: str = strawberry.field(description="The account's password.")


@strawberry.input(description="Trade a refresh token for a new token pair.")
class RefreshTokenInput:
    refresh_token: str = strawberry.field(
        description="The refresh token of the last sign-in or refresh; it is rotated (used once, then replaced)."
    )


@strawberry.input(description="Which session(s) to end.")
class LogoutInput:
    refresh_token: str | None = strawberry.field(
        default=None, description="The session to end; default: the one of the access token."
    )
    everywhere: bool = strawberry.field(default=False, description="End every session of the account.")


@strawberry.type(description="Tokens of a new session. Send the access token as `Authorization: Bearer`.")
class AuthPayload:
    errors: list[UserError] = errors_field()
    access_token: str | None = strawberry.field(
        default=None, description="Send as `Authorization: Bearer <token>` (HTTP) or in the WebSocket "
                                  "`connection_init` payload; short-lived. Null on failure."
    )
    refresh_token: str | None = strawberry.field(
        default=None, description="Keep it secret; trade it with `refreshToken` for a new pair before the access "
                                  "token expires. Null on failure."
    )
    expires_in: int | None = strawberry.field(
        default=None, description="Access token lifetime, seconds. Null on failure."
    )
    user: User | None = strawberry.field(default=None, description="The signed-in user. Null on failure.")


# The contract names a payload per mutation; they share one shape.
@strawberry.type(description="Result of `register`: the new account's first session.")
class RegisterPayload(AuthPayload):
    pass


@strawberry.type(description="Result of `login`: a new session.")
class LoginPayload(AuthPayload):
    pass


@strawberry.type(description="Result of `refreshToken`: the same session with a new token pair.")
class RefreshTokenPayload(AuthPayload):
    pass


@strawberry.type(description="Result of `logout`.")
class LogoutPayload:
    errors: list[UserError] = errors_field()
    sessions_ended: int | None = strawberry.field(
        default=None, description="How many sessions were ended (0 if already ended). Null on failure."
    )


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


@strawberry.type(description="Mutations of accounts and sessions.")
class AccountMutations:
    @mutation(description="Create a buyer account and sign it in. Rate-limited per address.")
    async def register(self, info: Info, input: RegisterInput) -> RegisterPayload:
        result = await invitations.register(
            info.context.actor, email=input.email, password=input.password, nickname=input.nickname,
            invite_code=input.invite_code, device_id=input.device_id,
        )
        return _signed_in(info, RegisterPayload, result)

    @mutation(description="Open a session with email and password. Throttled per account and per address.")
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        result = await sessions.login(info.context.actor, email=input.email, password=input.password)
        return _signed_in(info, LoginPayload, result)

    @mutation(description="Rotate a refresh token: a new access and refresh token for the same session. Reusing an "
                          "old refresh token (after a short grace) ends the session.")
    async def refresh_token(self, info: Info, input: RefreshTokenInput) -> RefreshTokenPayload:
        return _signed_in(info, RefreshTokenPayload, await sessions.refresh(refresh_token=input.refresh_token))

    @mutation(description="End the current session, the one of `refreshToken`, or all of the account's sessions; "
                          "their tokens stop working and their live subscriptions close.")
    async def logout(self, info: Info, input: LogoutInput) -> LogoutPayload:
        ended = await sessions.logout(info.context.actor, refresh_token=input.refresh_token, everywhere=input.everywhere)
        return LogoutPayload(sessions_ended=ended)
