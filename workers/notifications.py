"""Jobs that notify users."""

from __future__ import annotations

from models.accounts.users import AuthSession
from resolvers.accounts import notifications
from workers.jobs import job


@job(max_retries=5, min_backoff=500)
async def notify_new_signin(session_id: str) -> None:
    """Tell a user about a new sign-in to their account (once per session)."""
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
