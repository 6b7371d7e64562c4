"""Keyset pagination for Relay connections.

Cursors hold the sort key of an item (e.g. its id), not an offset, so a page boundary does
not move when rows are inserted in front of it. ``first``/``last`` are capped at 100.

``paginate`` orders by id. ``paginate_by`` orders by another column with the id as the tie
breaker, and its cursors carry both (plus the column's name, so that a cursor of one sort
is refused by another).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

import orjson
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from resolvers.decimals import strict_decimal
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

    async def count(self) -> int:
        """How many items the whole list holds (one COUNT query; the page's length if unknown)."""
        return await self.total.count() if self.total is not None else len(self.items)


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


# -- ordering by another column ---------------------------------------------------------


def page_size(first: int | None, last: int | None) -> tuple[bool, int]:
    """(backwards, size) of a request, or INVALID_INPUT (the same rules as ``paginate``)."""
    if first is not None and last is not None:
        raise invalid("first", "Pass either first or last, not both.")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= MAX_PAGE:
            raise invalid(name, f"{name} must be between 0 and {MAX_PAGE}.")
    if last is not None:
        return True, last
    return False, first if first is not None else DEFAULT_PAGE


def _json_value(value: Any) -> Any:
    # Decimals travel as strings: a float would lose the fen.
    return str(value) if isinstance(value, Decimal) else value


def parse_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError
    return value


def parse_decimal(value: Any) -> Decimal:
    """A decimal cursor key: strict, as a client may have forged the cursor (ValueError)."""
    if not isinstance(value, str):
        raise ValueError
    return strict_decimal(value)


def encode_key_cursor(key: str, value: Any, row_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([key, _json_value(value), row_id])).decode().rstrip("=")


def decode_key_cursor(cursor: str, key: str, parse: Callable[[Any], Any], field: str) -> tuple[Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name, raw, row_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if name != key or not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError
        return parse(raw), row_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise invalid(field, "The cursor is not one this API handed out for this order.") from None


def _beyond(key: str, value: Any, row_id: int, *, greater: bool) -> Q:
    """Rows strictly after (value, id) in ascending order (``greater``) or descending order."""
    op = "gt" if greater else "lt"
    return Q(**{f"{key}__{op}": value}) | Q(**{key: value, f"id__{op}": row_id})


async def paginate_by(
    queryset: QuerySet[Any],
    key: str,
    *,
    descending: bool,
    parse: Callable[[Any], Any] = parse_int,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[Any]:
    """One page of ``queryset`` ordered by (``key``, id), both ascending or both descending.

    A keyset cursor: the page after (v, i) is "key beyond v, or key = v and id beyond i", so
    rows inserted anywhere never shift a boundary. ``key`` must be a non-null column.
    ``parse`` turns a cursor's JSON value back into a column value (raising ValueError).
    """
    backwards, size = page_size(first, last)
    filtered = queryset
    if after is not None:
        value, row_id = decode_key_cursor(after, key, parse, "after")
        filtered = filtered.filter(_beyond(key, value, row_id, greater=not descending))
    if before is not None:
        value, row_id = decode_key_cursor(before, key, parse, "before")
        filtered = filtered.filter(_beyond(key, value, row_id, greater=descending))

    forward = [f"-{key}", "-id"] if descending else [key, "id"]
    reverse = [key, "id"] if descending else [f"-{key}", "-id"]
    rows = list(await filtered.order_by(*(reverse if backwards else forward)).limit(size + 1))
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    return Page(
        items=rows,
        cursors=[encode_key_cursor(key, getattr(row, key), row.id) for row in rows],
        has_next=more if not backwards else before is not None,
        has_previous=more if backwards else after is not None,
        total=queryset,
    )
