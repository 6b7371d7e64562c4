"""WebSockets tied to the session they were opened with (issue 10).

The token used to be checked at ``connection_init`` only: a socket kept streaming order
events (card keys included) and notifications after logout or revocation. Now each socket
opened with a token runs a guard that ends it

* at once when the session is revoked (logout, logout everywhere, refresh-token theft): the
  revocation is published on ``topics.session(id)`` in the revoking transaction;
* when the access token it presented expires, unless the client sent a fresh one;
* when a periodic re-check (``ws_session_check_seconds``) finds the session gone (a lost
  event, a deactivated user).

Ending means: close with 4403 "Forbidden: ..." (both protocols), and from that moment nothing
more is sent: every outgoing message passes the guard, which also refuses once the token's
expiry has passed, before its timer has fired.

A fresh token: on graphql-transport-ws, a ``ping`` whose payload carries
``{"Authorization": "Bearer <access token>"}`` (answered by a ``pong`` with
``{"refreshed": true}``); on the legacy graphql-ws, a new ``connection_init`` with the
token. The token must belong to the same user, else the socket closes (4403).

A Redis outage while listening ends the socket with 1013 "Try again later" (retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import structlog

from kameng import runtime
from kameng.settings import get_settings
from resolvers.accounts import sessions
from resolvers.accounts.auth import Actor, authenticate
from resolvers.errors import UserFacingError
from schema.outages import is_outage
from service.web.websocket import LegacyWSHandler, TransportWSHandler
from subscriptions import topics

log = structlog.get_logger("kameng.ws")

FORBIDDEN = 4403
TRY_AGAIN_LATER = 1013


def bearer(value: object) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value ("" if malformed, None if absent)."""
    if not isinstance(value, str) or not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def token_from(params: object) -> str | None:
    if not isinstance(params, dict):
        return None
    return bearer(params.get("Authorization") or params.get("authorization"))


def token_expiry(token: str) -> float:
    """The ``exp`` of an access token already verified by ``authenticate``."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"])


class SessionGuard:
    """Ends one WebSocket when the session it was opened with ends."""

    def __init__(self, end: Callable[[int, str], Awaitable[None]]) -> None:
        self._end = end
        self.ended = False
        self.user_id: int | None = None
        self._session_id: uuid.UUID | None = None
        self._expires_at = float("inf")
        self._task: asyncio.Task[None] | None = None

    def allows_sending(self) -> bool:
        if self.ended:
            return False
        if time.time() >= self._expires_at:
            self._finish(FORBIDDEN, "Forbidden: the access token has expired")
            return False
        return True

    def watch(self, actor: Actor, token: str) -> None:
        """(Re)start guarding for ``actor``, signed in with ``token``."""
        if actor.session_id is None or actor.user_id is None:
            return
        self.user_id = actor.user_id
        self._session_id = actor.session_id
        self._expires_at = token_expiry(token)
        self.stop()
        self._task = asyncio.create_task(self._run(actor.session_id, actor.user_id), name="ws-session-guard")

    def stop(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None

    def _finish(self, code: int, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        self.stop()
        # Closing awaits the transport: done in a task of its own, so that a send path that
        # notices the end does not wait for it, and the guard's own task may end meanwhile.
        task = asyncio.get_running_loop().create_task(self._end(code, reason))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _run(self, session_id: uuid.UUID, user_id: int) -> None:
        check_seconds = get_settings().ws_session_check_seconds
        try:
            async with runtime.bus().subscribe(topics.session(str(session_id))) as events:
                waiting = asyncio.ensure_future(anext(aiter(events)))
                try:
                    # Listening first, then checking: a revocation between the sign-in and
                    # now is found by the check, any later one arrives as an event.
                    alive = await sessions.is_alive(session_id, user_id)
                    while alive:
                        timeout = max(0.0, min(check_seconds, self._expires_at - time.time()))
                        done, _ = await asyncio.wait({waiting}, timeout=timeout)
                        if waiting in done:
                            waiting.result()
                            break
                        if time.time() >= self._expires_at:
                            self._finish(FORBIDDEN, "Forbidden: the access token has expired")
                            return
                        alive = await sessions.is_alive(session_id, user_id)
                finally:
                    waiting.cancel()
                    with contextlib.suppress(BaseException):
                        await waiting
            self._finish(FORBIDDEN, "Forbidden: the session has ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_outage(exc):
                log.warning("ws.outage", error=repr(exc))
                self._finish(TRY_AGAIN_LATER, "Service unavailable; reconnect shortly")
            else:
                log.exception("ws.session_guard_failed")
                self._finish(FORBIDDEN, "Forbidden: the session could not be checked")


async def _refreshed_actor(guard: SessionGuard, context: Any, token: str) -> bool:
    """Adopt a fresh access token sent on an open socket; False if it is not acceptable."""
    try:
        actor = await authenticate(token, ip=context.actor.ip, user_agent=context.actor.user_agent)
    except UserFacingError:
        return False
    if guard.user_id is not None and actor.user_id != guard.user_id:
        return False  # a socket does not change hands: its subscriptions were authorised for one user
    context.actor = actor
    guard.watch(actor, token)
    return True


class SessionTransportWSHandler(TransportWSHandler):
    """graphql-transport-ws, ended with its session; fresh tokens arrive in ``ping`` payloads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = SessionGuard(self._end)

    async def _end(self, code: int, reason: str) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        token = token_from(message.get("payload"))
        if self.connection_acknowledged and token:
            self.guard.watch(self.context.actor, token)

    async def handle_ping(self, message: Any) -> None:
        token = token_from(message.get("payload"))
        if token is None:
            await super().handle_ping(message)
            return
        if not self.connection_acknowledged or not await _refreshed_actor(self.guard, self.context, token):
            self.guard._finish(FORBIDDEN, "Forbidden: the new access token is not valid")
            return
        await self.send_message({"type": "pong", "payload": {"refreshed": True}})

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "connection_ack" or self.guard.allows_sending():
            await super().send_message(message)

    async def shutdown(self) -> None:
        self.guard.stop()
        await super().shutdown()


class SessionWSHandler(LegacyWSHandler):
    """Legacy graphql-ws, ended with its session; a fresh token comes in a new connection_init."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = SessionGuard(self._end)

    async def _end(self, code: int, reason: str) -> None:
        for operation_id in list(self.tasks):
            with contextlib.suppress(Exception):
                await self.cleanup_operation(operation_id)
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def handle_connection_init(self, message: Any) -> None:
        if self.connection_acknowledged:
            token = token_from(message.get("payload"))
            if not token or not await _refreshed_actor(self.guard, self.context, token):
                self.guard._finish(FORBIDDEN, "Forbidden: the new access token is not valid")
            else:
                await self.send_message({"type": "connection_ack"})
            return
        await super().handle_connection_init(message)
        token = token_from(message.get("payload"))
        if self.connection_acknowledged and token:
            self.guard.watch(self.context.actor, token)

    async def send_message(self, message: Any) -> None:
        if message.get("type") in ("connection_ack", "connection_error") or self.guard.allows_sending():
            await super().send_message(message)

    async def cleanup(self) -> None:
        self.guard.stop()
        await super().cleanup()
