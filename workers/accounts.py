"""Account jobs: the notice of a new sign-in (resolvers/accounts/sessions.py does the work)."""

from __future__ import annotations

from resolvers.accounts import sessions
from workers.jobs import job


@job(max_retries=5, min_backoff=500)
async def notify_new_signin(session_id: str) -> None:
    await sessions.notify_new_signin(str(session_id))
