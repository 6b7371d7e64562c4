"""Profiles written in bulk (the RFM sweep, the churn scores, the trained HOME lists) against
the erasure of an account deletion or an opt-out.

A batch reads whom it profiles, computes for a while, then writes. An erasure committed in
between found no profile to erase, and the batch would then write one. A job about one user
locks that user's row instead (``users.hold``); a batch would lock thousands of rows. On
PostgreSQL both sides take one advisory lock for the rest of their transaction, before anything
else in it:

* a batch ``writing()`` shares it with other batches, then keeps only the users ``profiled()``
  still finds: an erasure committed before the lock was granted is seen;
* an erasure, ``erasing()``, takes it alone: it waits for the batches writing, then erases what
  they wrote, and a batch that asks meanwhile waits for it.

SQLite runs one transaction at a time, which orders the two already.
"""

from __future__ import annotations

from collections.abc import Iterable

from tortoise import connections

from kameng.settings import get_settings
from models.accounts.users import User

PROFILES_LOCK = 0x6B70726F66  # "kprof"
#: ``writing()`` for a writer on a driver connection of its own (the events' COPY).
WRITING = "SELECT pg_advisory_xact_lock_shared($1)"
_ERASING = "SELECT pg_advisory_xact_lock($1)"
_TRY_WRITING = "SELECT pg_try_advisory_xact_lock_shared($1) AS taken"
_CHUNK = 1000  # ids per IN list


async def _lock(sql: str) -> None:
    if not get_settings().is_sqlite:
        await connections.get("default").execute_query(sql, [PROFILES_LOCK])


async def writing() -> None:
    """First in a batch's write transaction, before ``profiled()``."""
    await _lock(WRITING)


async def try_writing() -> bool:
    """``writing()`` unless it would wait: False while an erasure holds the lock or waits for it
    (PostgreSQL queues a shared request behind a waiting exclusive one)."""
    if get_settings().is_sqlite:
        return True
    _, rows = await connections.get("default").execute_query(_TRY_WRITING, [PROFILES_LOCK])
    return bool(rows[0]["taken"])


async def erasing() -> None:
    """In a deletion's or an opt-out's transaction, before it erases a profile."""
    await _lock(_ERASING)


async def profiled(user_ids: Iterable[int]) -> set[int]:
    """Which of ``user_ids`` are accounts that exist and allow personalisation (after ``writing()``)."""
    ids = sorted(set(user_ids))
    found: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        found.update(await User.filter(id__in=ids[start:start + _CHUNK], is_active=True, personalisation=True)
                     .values_list("id", flat=True))
    return found
