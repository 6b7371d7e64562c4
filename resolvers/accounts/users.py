"""Users: registration and the rules of an account's email, password and nickname."""

from __future__ import annotations

import functools
import unicodedata

from email_validator import EmailNotValidError, validate_email
from tortoise import connections
from tortoise.exceptions import IntegrityError

from kameng import runtime
from kameng.security import hash_password
from kameng.settings import get_settings
from models.accounts.users import Role, User
from models.statements import placeholders
from resolvers.accounts import notifications, sessions
from resolvers.accounts.auth import Actor
from resolvers.accounts.sessions import SignedIn
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import outbox

PASSWORD_MIN = 8
PASSWORD_MAX = 128
NICKNAME_MAX = 40


def normalise_email(email: str, field: str = "email") -> str:
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise invalid(field, str(exc)) from None
    return result.normalized.lower()


def validate_password(password: str, email: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise invalid("password", f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long.")
    if password.strip().lower() == email or password.strip().lower() == email.split("@")[0]:
        raise invalid("password", "The password must not be your email address.")


def clean_nickname(nickname: str) -> str:
    value = unicodedata.normalize("NFC", nickname).strip()
    if not 2 <= len(value) <= NICKNAME_MAX:
        raise invalid("nickname", f"The nickname must be 2 to {NICKNAME_MAX} characters long.")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise invalid("nickname", "The nickname must not contain control characters.")
    return value


async def create_user(email: str, password: str, nickname: str, role: Role = Role.BUYER) -> User:
    """Validate and create an account (shared by `register` and `kameng createuser`)."""
    email = normalise_email(email)
    validate_password(password, email)
    nickname = clean_nickname(nickname)
    if await User.filter(email=email).exists():
        raise UserFacingError(ErrorCode.EMAIL_TAKEN, "An account with this email already exists.", "email")
    password_hash = hash_password(password)
    try:
        async with outbox.atomic():
            user = await User.create(email=email, nickname=nickname, password_hash=password_hash, role=role)
            await notifications.notify(
                user.id, "WELCOME", f"Welcome to Kameng, {nickname}", dedupe_key=f"welcome:{user.id}"
            )
            return user
    except IntegrityError:  # a concurrent registration with the same email won
        raise UserFacingError(ErrorCode.EMAIL_TAKEN, "An account with this email already exists.", "email") from None


async def register(actor: Actor, *, email: str, password: str, nickname: str) -> SignedIn:
    limiter = runtime.limiter()
    if not await limiter.hit(get_settings().register_limit_per_ip, "register", actor.ip or "-"):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many sign-ups from this address; try later.")
    user = await create_user(email, password, nickname)
    return await sessions.open_session(user, actor, first=True)


async def get_users(ids: list[int]) -> list[User | None]:
    """Batch load for DataLoaders: one query, results in the order asked."""
    found = {user.id: user for user in await User.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def hold(user_id: int, *, profiled: bool = False) -> bool:
    """Whether the account still exists (and, with ``profiled``, allows personalisation), its row
    locked until the transaction ends. Call it inside the transaction first.

    Jobs that write personal rows after the fact (task progress, a buyer's RFM) can run after
    the user deleted the account or opted out, which wait for no job. Both begin by updating this
    row, so the lock orders the two: a job that holds it first has its rows erased with the rest;
    one that comes after sees the account gone and writes nothing.
    """
    query = User.filter(id=user_id, is_active=True)
    if profiled:
        query = query.filter(personalisation=True)
    return await query.select_for_update(no_key=True).only("id").first() is not None


@functools.cache
def _still_active_sql(dialect: str) -> str:
    # FOR SHARE, not hold()'s FOR NO KEY UPDATE: one buyer's concurrent orders do not wait for each other.
    lock = " FOR SHARE" if dialect == "postgres" else ""  # SQLite runs one transaction at a time
    return f'SELECT 1 FROM "{User._meta.db_table}" WHERE id = {placeholders(dialect, 1)[0]} AND is_active{lock}'


async def still_active(user_id: int) -> bool:
    """Whether the account still exists, its row share-locked until the transaction ends. Call
    it inside the transaction before writing rows that a deletion must see.

    A request is authenticated before its transaction begins, so a deletion can commit in
    between, or run alongside it: a deletion first updates this row (``is_active``), which waits
    for the lock taken here, so its checks see what this transaction wrote; a deletion already
    under way makes this wait, and PostgreSQL then reads the row as the deletion left it.
    """
    connection = connections.get("default")
    _, rows = await connection.execute_query(_still_active_sql(connection.capabilities.dialect), [user_id])
    return bool(rows)
