"""Who is calling, and the one permission helper every use case goes through."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise import connections
from tortoise.expressions import Q

from kameng.security import InvalidToken, decode_access_token
from kameng.settings import get_settings
from models.accounts.users import AuthSession, User
from models.statements import placeholders
from resolvers.accounts import permissions
from resolvers.accounts.permissions import Action
from resolvers.errors import ErrorCode, UserFacingError


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of a use case: a signed-in user or an anonymous visitor, and where from."""

    user: User | None = None
    session_id: uuid.UUID | None = None
    ip: str = ""
    user_agent: str = ""
    # A guest who proved an order's lookup credentials acts as that one order's buyer.
    guest_order_id: int | None = None
    # ``user`` was read from the database for this one HTTP request, so a use case that needs
    # the row as it is now (pricing's member tier) may take it rather than read it again. A
    # WebSocket's actor is as old as its connection: False there, and wherever an actor is made.
    read_for_request: bool = False

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None


ANONYMOUS = Actor()


def require(actor: Actor, *, owner_id: int | None = None) -> User:
    """Return the signed-in user, or raise UNAUTHENTICATED. With ``owner_id``: a user who may
    read what that user owns (``permissions.READ_PRIVATE``), or FORBIDDEN. Anything more
    privileged goes through ``permissions.require`` with its action."""
    if owner_id is None:
        return permissions.require_signed_in(actor)
    return permissions.require(actor, Action.READ_PRIVATE, owner_id=owner_id)


def allowed(actor: Actor, *, owner_id: int) -> bool:
    """May the actor read what ``owner_id`` owns (reads that hide rather than fail)."""
    return permissions.allowed(actor, Action.READ_PRIVATE, owner_id=owner_id)


async def authenticate(token: str, *, ip: str = "", user_agent: str = "", for_request: bool = False) -> Actor:
    """Resolve a bearer access token to an actor; raise UNAUTHENTICATED if it is not good.

    A token is good when its signature and expiry check out *and* the session it names is
    neither revoked nor expired, so that logout and theft detection end access at once.
    ``for_request``: the actor serves one HTTP request only (``Actor.read_for_request``).
    """
    try:
        claims = decode_access_token(get_settings().signing_secret(), token)
    except InvalidToken:
        raise UserFacingError(ErrorCode.UNAUTHENTICATED, "The access token is invalid or expired.") from None
    user = await live_session_user(claims.session_id, claims.user_id)
    if user is None or not user.is_active:
        raise UserFacingError(ErrorCode.UNAUTHENTICATED, "The session has ended; sign in again.")
    await _touch(user)
    return Actor(user=user, session_id=claims.session_id, ip=ip, user_agent=user_agent, read_for_request=for_request)


# The statement is written once per process and dialect: it runs for every request that
# carries a token and every WebSocket re-check, and building it through the ORM (pypika,
# the join, the filters) cost more CPU than sending it and reading the row (issue 15).
@functools.cache
def _live_session_sql(dialect: str) -> str:
    marks = placeholders(dialect, 3)
    columns = ", ".join(f'u."{column}"' for column in User._meta.fields_db_projection.values())
    return (
        f'SELECT {columns} FROM "{AuthSession._meta.db_table}" s JOIN "{User._meta.db_table}" u ON u."id" = s."user_id" '
        f'WHERE s."id" = {marks[0]} AND s."user_id" = {marks[1]} AND s."revoked_at" IS NULL AND s."expires_at" > {marks[2]}'
    )


async def live_session_user(session_id: uuid.UUID, user_id: int) -> User | None:
    """The user of session ``session_id`` if that session is theirs and neither revoked nor
    expired (whether the user is active is the caller's check): one statement, one row."""
    connection = connections.get("default")
    fields = AuthSession._meta.fields_map
    values = [fields["id"].to_db_value(session_id, None), user_id,
              fields["expires_at"].to_db_value(datetime.now(UTC), None)]
    _, rows = await connection.execute_query(_live_session_sql(connection.capabilities.dialect), values)
    return User._init_from_db(**dict(rows[0])) if rows else None


#: Activity is recorded at most this often per user (feeds fan out to recently active users).
ACTIVITY_RESOLUTION = timedelta(hours=1)


async def _touch(user: User) -> None:
    """Record activity, at most hourly: a conditional UPDATE, so concurrent requests write once.

    The loaded ``user`` keeps its previous value on purpose: the FOLLOWING feed reads it to
    see that a user is back from inactivity and their cached feed needs a rebuild. Sign-up
    counts as activity (``last_active_at`` null: ``created_at``), so the first hour costs none.
    """
    now = datetime.now(UTC)
    stale = now - ACTIVITY_RESOLUTION
    if (user.last_active_at or user.created_at) >= stale:
        return
    await User.filter(Q(last_active_at__lt=stale) | Q(last_active_at=None), id=user.id).update(last_active_at=now)
