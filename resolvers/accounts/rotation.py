"""Refresh-token rotation with a grace window (issue 10).

A refresh token is rotated on every use, and reusing an old one revokes the session (it was
copied). Two tabs, or a retried request, reuse the token within milliseconds; the answer to
them is the same new pair, for ``refresh_reuse_grace_seconds``. The new secret is derived
from the presented one with the server's signing secret, so the server can hand the same
pair out again without storing it, and nobody can compute it offline from a stolen old
token. Which tokens were just rotated is kept for the window in Redis (or this process's
memory on the embedded default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid

from kameng import runtime
from kameng.settings import get_settings

log = logging.getLogger(__name__)

# rotated-token digest key -> (expiry monotonic time, generation it was rotated to)
_LOCAL_GRACE: dict[str, tuple[float, int]] = {}


def next_secret(secret: str, session_id: uuid.UUID, generation: int) -> str:
    """The refresh secret that follows ``secret`` at ``generation`` (deterministic, keyed)."""
    key = get_settings().signing_secret().encode()
    mac = hmac.new(key, f"refresh:{session_id}:{generation}:{secret}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _grace_key(session_id: uuid.UUID, presented_digest: str) -> str:
    return f"{get_settings().namespace}:refresh-grace:{session_id}:{presented_digest}"


async def remember_rotation(session_id: uuid.UUID, presented_digest: str, generation: int) -> None:
    """Note that the token with ``presented_digest`` was just rotated to ``generation``.

    Best effort: failing to note it only means a concurrent reuse is treated as theft.
    """
    grace = get_settings().refresh_reuse_grace_seconds
    if grace <= 0:
        return
    key = _grace_key(session_id, presented_digest)
    redis = runtime.redis()
    if redis is None:
        now = time.monotonic()
        for stale in [k for k, (expiry, _) in _LOCAL_GRACE.items() if expiry <= now]:
            _LOCAL_GRACE.pop(stale, None)
        _LOCAL_GRACE[key] = (now + grace, generation)
        return
    try:
        await redis.set(key, str(generation), px=max(1, int(grace * 1000)))
    except Exception as exc:  # an outage must not fail a rotation that already committed
        log.warning("refresh grace not recorded: %r", exc)


async def rotated_to(session_id: uuid.UUID, presented_digest: str) -> int | None:
    """The generation the presented token was rotated to within the grace window, if it was."""
    key = _grace_key(session_id, presented_digest)
    redis = runtime.redis()
    if redis is None:
        entry = _LOCAL_GRACE.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None
    value = await redis.get(key)
    return int(value) if value is not None else None

