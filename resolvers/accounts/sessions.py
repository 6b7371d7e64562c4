"""Sessions: sign-in with rotating refresh tokens, sign-out, revocation that reaches open
WebSockets, and the notice of a new sign-in.

Revoking a session writes, in the same transaction, one event per session on
``topics.session(id)``: every WebSocket opened with that session listens there and closes
(service/web/sessions.py). ``is_alive`` is the periodic re-check those sockets also run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.queryset import QuerySet

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
from resolvers.accounts import notifications, rotation
from resolvers.accounts.auth import Actor, live_session_user, require
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import jobs, outbox, topics


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    session_id: uuid.UUID
    access_token: str
    refresh_token: str
    expires_in: int


async def login(actor: Actor, *, email: str, password: str) -> SignedIn:
    """Check the password; throttled per (account, client address) and per address.

    The account limit is keyed by the client address too, so that guessing from one address
    does not lock the owner (at another address) out; the per-address limit bounds how many
    accounts one address can try. Every attempt is counted before the password is checked,
    successful ones included, so that concurrent guesses cannot slip past the limit while the
    first ones are verified.
    """
    settings = get_settings()
    limiter = runtime.limiter()
    account_key = email.strip().lower()[:254]
    address = actor.ip or "-"
    account_ok = await limiter.hit(settings.login_limit_per_account, "login:account", account_key, address)
    ip_ok = await limiter.hit(settings.login_limit_per_ip, "login:ip", address)
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
    revoked, so both the thief and the owner must sign in again. Except within the grace
    window after its rotation (two tabs, a retried request): then the answer is the same new
    pair (resolvers/accounts/rotation.py).
    """
    session_id, secret = _parse_refresh(refresh_token)
    denied = UserFacingError(ErrorCode.UNAUTHENTICATED, "The refresh token is not valid.", "refreshToken")
    session = await AuthSession.filter(id=session_id).select_related("user").first()
    now = datetime.now(UTC)
    if session is None or session.revoked_at is not None or session.expires_at <= now or not session.user.is_active:
        raise denied
    presented = digest(secret)
    if not same_digest(presented, session.refresh_hash):
        return await _reused(session, secret, presented, denied)
    new_secret = rotation.next_secret(secret, session.id, session.generation + 1)
    # Noted before rotating: a concurrent use that loses the race below (or reads the
    # session after it) must find the note, whichever request rotates.
    await rotation.remember_rotation(session.id, presented, session.generation + 1)
    # Conditional on the hash we checked: of two concurrent uses of one token, one rotates;
    # the others find the pair it rotated to (the same secret) and answer it.
    rotated = await AuthSession.filter(id=session.id, refresh_hash=presented, revoked_at=None).update(
        refresh_hash=digest(new_secret), generation=session.generation + 1
    )
    if rotated != 1:
        return await _reused(session, secret, presented, denied)
    return _tokens(session.user, session, new_secret)


async def _reused(session: AuthSession, secret: str, presented: str, denied: UserFacingError) -> SignedIn:
    """An already rotated token: the same new pair within the grace window, else theft."""
    current = await AuthSession.filter(id=session.id, revoked_at=None).first()
    generation = await rotation.rotated_to(session.id, presented) if current is not None else None
    if current is not None and generation is not None:
        if generation == current.generation:
            successor = rotation.next_secret(secret, session.id, generation)
            if same_digest(digest(successor), current.refresh_hash):
                return _tokens(session.user, current, successor)
        # Rotated again since: a stale tab, not a copy; it signs in again, nobody is logged out.
        raise denied
    await revoke(AuthSession.filter(id=session.id))
    raise denied


async def logout(actor: Actor, *, refresh_token: str | None = None, everywhere: bool = False) -> int:
    """End the caller's session (or all of them); returns how many sessions ended.

    Their open WebSockets close too (the revocation is published on each session's topic)."""
    user = require(actor)
    targets = AuthSession.filter(user_id=user.id)
    if not everywhere:
        session_id = _parse_refresh(refresh_token)[0] if refresh_token else actor.session_id
        targets = targets.filter(id=session_id)
    return await revoke(targets)


async def revoke(sessions: QuerySet[AuthSession]) -> int:
    """Revoke the still-active ``sessions``; their WebSockets close once this commits."""
    now = datetime.now(UTC)
    async with outbox.atomic():
        ids = await sessions.filter(revoked_at=None).values_list("id", flat=True)
        if not ids:
            return 0
        count = await AuthSession.filter(id__in=ids, revoked_at=None).update(revoked_at=now)
        for session_id in ids:
            await outbox.emit(topics.session(str(session_id)), {"revoked": True})
    return count


async def is_alive(session_id: uuid.UUID, user_id: int) -> bool:
    """The session exists, is neither revoked nor expired, and its user is active."""
    user = await live_session_user(session_id, user_id)
    return user is not None and user.is_active


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
