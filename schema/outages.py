"""Which failures mean "a dependency is down" rather than "a bug" (issue 10).

The database or Redis being unreachable is retryable: the HTTP layer answers 503 with
``Retry-After`` and a JSON GraphQL error (service/web/outages.py), and a subscription ends
with a ``SERVICE_UNAVAILABLE`` error the client may retry. ``OUTAGE`` is set by whatever sees
such a failure while serving one request, so that the HTTP layer can turn its status into
503 even when the failure happened inside a resolver (the masking extension catches those).
"""

from __future__ import annotations

import asyncio
import errno
from contextvars import ContextVar
from dataclasses import dataclass

import asyncpg.exceptions
from limits.errors import StorageError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tortoise.exceptions import DBConnectionError

#: Seconds a client is asked to wait before retrying after an outage.
RETRY_AFTER_SECONDS = 5
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
MESSAGE = "A service Kameng depends on is unavailable; retry shortly."

_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # ConnectionRefusedError, ConnectionResetError...: a socket to the dependency
    TimeoutError,
    asyncio.TimeoutError,
    DBConnectionError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    StorageError,
)

_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT}


def is_outage(error: BaseException | None) -> bool:
    """True when ``error`` (or what caused it) is a dependency being unreachable."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _OUTAGE_TYPES):
            return True
        if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS:
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


@dataclass
class OutageFlag:
    seen: bool = False


OUTAGE: ContextVar[OutageFlag | None] = ContextVar("kameng_outage", default=None)


def mark_outage() -> None:
    flag = OUTAGE.get()
    if flag is not None:
        flag.seen = True
