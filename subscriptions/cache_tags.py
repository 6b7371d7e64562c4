"""What public responses depend on, and telling the response cache that it changed (issue 15).

*Recording.* While a cacheable request executes, the schema names what it reads:
``record(product(7), stock(7))``. The tags land in the set the response cache opened for the
request (``recording()``); outside such a request ``record`` does nothing.

*Invalidation.* A use case that changes what a public page shows calls ``touch(...)`` right
after the write. The tags are dropped from every response cache of this process at once;
inside ``outbox.atomic()`` they are dropped again when the outermost transaction commits, and
only then sent to the other processes (the publisher ``service/web/cache_sync.py`` installs:
Redis pub/sub, waiting for the other processes' acknowledgements for a bounded time). A
response computed while the transaction was open carries a tag with a newer invalidation than
its start, so the cache refuses to store it (a generation check, ``ResponseCache.put``).

Tags: ``Product:<id>`` (its fields, its visibility), ``stock:<id>``, ``Merchant:<id>`` (its
fields and status), ``list:Product`` (which products a list holds, in what order) and
``list:Product:sales`` (the BEST_SELLING order only).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

PRODUCT_LIST = "list:Product"
PRODUCT_LIST_BY_SALES = "list:Product:sales"

_recording: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("cache_recording", default=None)
_pending: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("cache_pending", default=None)
_waits: contextvars.ContextVar[list[asyncio.Task[Any]] | None] = contextvars.ContextVar("cache_waits", default=None)
_listeners: list[weakref.WeakMethod[Any] | Callable[[frozenset[str]], Any]] = []
_publisher: Callable[[frozenset[str]], Awaitable[None]] | None = None
_background: set[asyncio.Task[Any]] = set()


def product(product_id: int) -> str:
    return f"Product:{product_id}"


def stock(product_id: int) -> str:
    return f"stock:{product_id}"


def merchant(merchant_id: int) -> str:
    return f"Merchant:{merchant_id}"


# -- recording --------------------------------------------------------------------------


@contextlib.contextmanager
def recording() -> Iterator[set[str]]:
    tags: set[str] = set()
    token = _recording.set(tags)
    try:
        yield tags
    finally:
        _recording.reset(token)


def start_recording_into(tags: set[str]) -> contextvars.Token[set[str] | None]:
    return _recording.set(tags)


def stop_recording(token: contextvars.Token[set[str] | None]) -> None:
    _recording.reset(token)


def record(*tags: str) -> None:
    recorded = _recording.get()
    if recorded is not None:
        recorded.update(tags)


def is_recording() -> bool:
    return _recording.get() is not None


# -- invalidation -----------------------------------------------------------------------


def listen(invalidate: Callable[[frozenset[str]], Any]) -> None:
    """Call ``invalidate(tags)`` on every change made in this process (held weakly if a method)."""
    _listeners.append(weakref.WeakMethod(invalidate) if hasattr(invalidate, "__self__") else invalidate)  # type: ignore[arg-type]


def set_publisher(publish: Callable[[frozenset[str]], Awaitable[None]] | None) -> None:
    """Where committed changes go for the other processes (None: this process only)."""
    global _publisher
    _publisher = publish


def _apply_local(tags: frozenset[str]) -> None:
    for entry in list(_listeners):
        target = entry() if isinstance(entry, weakref.WeakMethod) else entry
        if target is None:
            _listeners.remove(entry)
        else:
            target(tags)


def _send(tags: frozenset[str]) -> None:
    if _publisher is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_publisher(tags))
    _background.add(task)
    task.add_done_callback(_background.discard)
    waits = _waits.get()
    if waits is not None:
        waits.append(task)


def touch(*tags: str) -> None:
    """The data behind ``tags`` changed (call it after the write)."""
    changed = frozenset(tags)
    _apply_local(changed)
    pending = _pending.get()
    if pending is not None:
        pending.update(changed)
    else:
        _send(changed)


def begin() -> contextvars.Token[set[str] | None]:
    """outbox.atomic(), outermost transaction: hold the tags touched until it ends."""
    return _pending.set(set())


def end(token: contextvars.Token[set[str] | None], committed: bool) -> None:
    """outbox.atomic(), outermost transaction ended: after a commit, drop the tags again and
    send them to the other processes (after a rollback nothing changed)."""
    pending = _pending.get()
    _pending.reset(token)
    if committed and pending:
        changed = frozenset(pending)
        _apply_local(changed)
        _send(changed)


@contextlib.contextmanager
def request_waits() -> Iterator[list[asyncio.Task[Any]]]:
    """The publications a request starts, so that it can answer only once they are acknowledged."""
    waits: list[asyncio.Task[Any]] = []
    token = _waits.set(waits)
    try:
        yield waits
    finally:
        _waits.reset(token)


def touch_products(product_ids: Iterable[int], *extra: str) -> None:
    touch(*(product(i) for i in product_ids), *extra)
