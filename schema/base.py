"""Shared GraphQL shapes: UserError and its codes, Relay connections, mutation payloads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from strawberry import relay
from strawberry.extensions import FieldExtension
from strawberry.types.field import StrawberryField

from resolvers.errors import ErrorCode as ErrorCodeValue
from resolvers.errors import UserFacingError
from resolvers.pagination import Page

ErrorCode = strawberry.enum(ErrorCodeValue, name="ErrorCode", description="Stable codes of expected failures.")
T = TypeVar("T")
P = TypeVar("P")


@strawberry.type(description="An expected failure: nothing was changed.")
class UserError:
    code: ErrorCode
    field: str | None
    message: str

    @classmethod
    def of(cls, error: UserFacingError) -> UserError:
        return cls(code=error.code, field=error.field, message=error.message)


@strawberry.type(description="An amount of money. `amount` is a decimal string such as \"10.00\".")
class Money:
    amount: Decimal
    currency: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _page: strawberry.Private[Page[Any]]

    @strawberry.field(description="Counted only when asked for.")
    async def total_count(self) -> int:
        return await self._page.total.count() if self._page.total is not None else len(self.edges)

    @classmethod
    def of(cls, page: Page[Any], convert: Callable[[Any], T]) -> Connection[T]:
        edges = [Edge(cursor=c, node=convert(item)) for c, item in zip(page.cursors, page.items, strict=True)]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=page.cursors[0] if page.cursors else None,
                end_cursor=page.cursors[-1] if page.cursors else None,
            ),
            _page=page,
        )


class PayloadErrors(FieldExtension):
    """Turns a use case's expected failure into the mutation payload's ``errors``.

    The resolver returns its payload on success; a ``UserFacingError`` raised anywhere in
    it (ID decoding included) becomes ``Payload(errors=[...])`` with every other field null.
    """

    def apply(self, field: StrawberryField) -> None:
        self._field = field

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except UserFacingError as error:
            return self._field.type(errors=[UserError.of(error)])


def mutation(*, description: str | None = None) -> Any:
    """``@strawberry.mutation`` whose expected failures become the payload's ``errors``."""
    return strawberry.mutation(description=description, extensions=[PayloadErrors()])


def no_errors() -> list[UserError]:
    """Default of a payload's ``errors``: the payload of a success carries none."""
    return []


async def run_mutation(payload: Callable[..., P], action: Awaitable[dict[str, Any]]) -> P:
    """Run a use case; an expected failure becomes the payload's ``errors`` (other fields null)."""
    try:
        fields = await action
    except UserFacingError as error:
        return payload(errors=[UserError.of(error)])
    return payload(errors=[], **fields)


def decode_id(global_id: relay.GlobalID | str, expected: str, field: str) -> int:
    """The database key inside a global ID of the expected type, or INVALID_INPUT.

    Strict: the key is a positive 64-bit integer in ASCII digits without sign, spaces,
    underscores or leading zeros (``int()`` would take " 1_0", "١٢"; ``Order:1.5``,
    ``Order:0x1`` and ``Order:`` are refused as well).
    """
    import re

    from resolvers.errors import invalid

    try:
        gid = global_id if isinstance(global_id, relay.GlobalID) else relay.GlobalID.from_id(global_id)
        if gid.type_name != expected or not re.fullmatch(r"[1-9][0-9]{0,18}", gid.node_id, flags=re.ASCII):
            raise ValueError
        key = int(gid.node_id)
        if key > 2**63 - 1:
            raise ValueError
        return key
    except (ValueError, TypeError, UnicodeError):
        raise invalid(field, f"Expected the ID of a {expected}.") from None


# -- the graph's types, by name -----------------------------------------------------------
# The graph is cyclic (a user has orders and an order names its product, a product has
# posts and a post names its product) while modules must not be. A type that points at a
# type of a context above its own annotates the field with `strawberry.lazy(...)` and builds
# the value through `graph_type(name)`; the class registers itself with `@in_graph` when its
# module is imported, which schema/__init__ does for every context before a schema exists.
_GRAPH: dict[str, Any] = {}


def in_graph(cls: type[T]) -> type[T]:
    """Register a GraphQL type under its class name, for ``graph_type``."""
    _GRAPH[cls.__name__] = cls
    return cls


def graph_type(name: str) -> Any:
    """The GraphQL type class registered as ``name``."""
    return _GRAPH[name]
