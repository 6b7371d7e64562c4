"""Sessions: sign-in with rotating refresh tokens, sign-out, and the notice of a new sign-in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kameng import runtime
from kameng.security import (
    AccessClaims,
    digest,
    hash_password,
    issue_access_token,
    new_refresh_secret,
    password_needs_rehash,
    same_digest,
    verify_password,
)
from kameng.settings import get_settings
from models.accounts.users import AuthSession, User
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import jobs, outbox


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    session_id: uuid.UUID
    access_token: str
    refresh_token: str
    expires_in: int


async def login(actor: Actor, *, email: str, password: str) -> SignedIn:
    """Check the password; throttled per account and per address.

    Every attempt is counted before the password is checked, successful ones included, so
    that concurrent guesses cannot slip past the limit while the first ones are verified.
    """
    settings = get_settings()
    limiter = runtime.limiter()
    account_key = email.strip().lower()[:254]
    account_ok = await limiter.hit(settings.login_limit_per_account, "login:account", account_key)
    ip_ok = await limiter.hit(settings.login_limit_per_ip, "login:ip", actor.ip or "-")
    if not (account_ok and ip_ok):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many sign-in attempts; wait a minute and try again.")

    user = await User.filter(email=account_key).first()
    if not verify_password(user.password_hash if user else None, password) or user is None or not user.is_active:
        raise UserFacingError(ErrorCode.INVALID_CREDENTIALS, "The email or password is not right.")
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        await user.save(update_fields=["password_hash"])
    return await open_session(user, actor)


async def open_session(user: User, actor: Actor, *, first: bool = False) -> SignedIn:
    settings = get_settings()
    secret = new_refresh_secret()
    async with outbox.atomic():
        session = await AuthSession.create(
            id=uuid.uuid4(),
            user=user,
            refresh_hash=digest(secret),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
            user_agent=actor.user_agent[:255],
            ip=actor.ip[:64],
        )
        if not first:
            await outbox.enqueue(jobs.notify_new_signin(str(session.id)))
    return _tokens(user, session, secret)


def _tokens(user: User, session: AuthSession, secret: str) -> SignedIn:
    settings = get_settings()
    access = issue_access_token(
        settings.signing_secret(),
        AccessClaims(user.id, session.id, user.role.value),
        settings.access_token_ttl_seconds,
    )
    return SignedIn(user, session.id, access, f"{session.id}.{secret}", settings.access_token_ttl_seconds)


def _parse_refresh(token: str) -> tuple[uuid.UUID, str]:
    session_part, _, secret = token.strip().partition(".")
    try:
        return uuid.UUID(session_part), secret
    except ValueError:
        raise UserFacingError(ErrorCode.UNAUTHENTICATED, "The refresh token is not valid.", "refreshToken") from None


async def refresh(*, refresh_token: str) -> SignedIn:
    """Trade a refresh token for new tokens; the old refresh token stops working.

    Presenting a refresh token that was already used means it was copied: the session is
    revoked, so both the thief and the owner must sign in again.
    """
    session_id, secret = _parse_refresh(refresh_token)
    denied = UserFacingError(ErrorCode.UNAUTHENTICATED, "The refresh token is not valid.", "refreshToken")
    session = await AuthSession.filter(id=session_id).select_related("user").first()
    now = datetime.now(UTC)
    if session is None or session.revoked_at is not None or session.expires_at <= now or not session.user.is_active:
        raise denied
    presented = digest(secret)
    if not same_digest(presented, session.refresh_hash):
        await AuthSession.filter(id=session.id, revoked_at=None).update(revoked_at=now)
        raise denied
    new_secret = new_refresh_secret()
    # Conditional on the hash we checked: of two concurrent uses of one token, one wins.
    rotated = await AuthSession.filter(id=session.id, refresh_hash=presented, revoked_at=None).update(
        refresh_hash=digest(new_secret), generation=session.generation + 1
    )
    if rotated != 1:
        await AuthSession.filter(id=session.id, revoked_at=None).update(revoked_at=now)
        raise denied
    return _tokens(session.user, session, new_secret)


async def logout(actor: Actor, *, refresh_token: str | None = None, everywhere: bool = False) -> int:
    """End the caller's session (or all of them); returns how many sessions ended."""
    user = require(actor)
    now = datetime.now(UTC)
    sessions = AuthSession.filter(user_id=user.id, revoked_at=None)
    if not everywhere:
        session_id = _parse_refresh(refresh_token)[0] if refresh_token else actor.session_id
        sessions = sessions.filter(id=session_id)
    return await sessions.update(revoked_at=now)


async def notify_new_signin(session_id: str) -> None:
    """Tell a user about a new sign-in to their account (once per session: a replayed job
    notifies once)."""
    session = await AuthSession.filter(id=session_id).first()
    if session is None:
        return
    where = session.ip or "an unknown address"
    await notifications.notify(
        session.user_id,
        "NEW_SIGNIN",
        "New sign-in to your account",
        f"A new session was opened from {where} ({session.user_agent or 'unknown device'}).",
        {"sessionId": str(session.id)},
        dedupe_key=f"signin:{session.id}",
    )
