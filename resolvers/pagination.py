"""Keyset pagination for Relay connections.

Cursors hold the sort key of an item (e.g. its id), not an offset, so a page boundary does
not move when rows are inserted in front of it. ``first``/``last`` are capped at 100.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from tortoise.queryset import QuerySet

from resolvers.errors import invalid

T = TypeVar("T")
MAX_PAGE = 100
DEFAULT_PAGE = 20


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool
    has_previous: bool
    total: QuerySet[Any] | None = None  # counted only if the client asks for totalCount


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([value])).decode().rstrip("=")


def decode_cursor(cursor: str, field: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        (value,) = orjson.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(value, int):
            raise ValueError
        return value
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise invalid(field, "The cursor is not one this API handed out.") from None


async def paginate(
    queryset: QuerySet[Any],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    newest_first: bool = True,
) -> Page[Any]:
    """One page of ``queryset`` ordered by id (newest first by default)."""
    if first is not None and last is not None:
        raise invalid("first", "Pass either first or last, not both.")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= MAX_PAGE:
            raise invalid(name, f"{name} must be between 0 and {MAX_PAGE}.")
    backwards = last is not None
    size = last if backwards else (first if first is not None else DEFAULT_PAGE)

    filtered = queryset
    # "after" means further along the order; with newest first that is a smaller id.
    if after is not None:
        bound = decode_cursor(after, "after")
        filtered = filtered.filter(id__lt=bound) if newest_first else filtered.filter(id__gt=bound)
    if before is not None:
        bound = decode_cursor(before, "before")
        filtered = filtered.filter(id__gt=bound) if newest_first else filtered.filter(id__lt=bound)

    forward_order = "-id" if newest_first else "id"
    reverse_order = "id" if newest_first else "-id"
    rows = list(await filtered.order_by(reverse_order if backwards else forward_order).limit(size + 1))
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    cursors = [encode_cursor(row.id) for row in rows]
    return Page(
        items=rows,
        cursors=cursors,
        has_next=more if not backwards else before is not None,
        has_previous=more if backwards else after is not None,
        total=queryset,
    )
