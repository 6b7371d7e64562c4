"""Shared GraphQL shapes: UserError and its codes, Relay connections, mutation payloads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

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


@strawberry.type(
    description="An expected failure of a mutation (bad input, not allowed, wrong state): nothing was changed."
)
class UserError:
    code: ErrorCode = strawberry.field(description="What went wrong, as a stable code to branch on.")
    field: str | None = strawberry.field(
        description="The input field at fault, camelCase as in the input (e.g. `email`, `productId`, "
                    "`filter.topic`); null when the failure is not about one field."
    )
    message: str = strawberry.field(description="An English sentence fit to show the user; its wording may change.")

    @classmethod
    def of(cls, error: UserFacingError) -> UserError:
        return cls(code=error.code, field=error.field, message=error.message)


@strawberry.type(description="An amount of money. `amount` is a decimal string such as \"10.00\".")
class Money:
    amount: Decimal = strawberry.field(
        description="The amount in the currency's major unit as a decimal string (\"10.00\"); never a float."
    )
    currency: str = strawberry.field(description="ISO 4217 code, e.g. `CNY`.")


@strawberry.type(description="Where a page of a connection sits in the whole list (Relay cursor connections).")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether items follow this page: page on with `after: endCursor`. When paging backward "
                    "(`last`), true if `before` was given."
    )
    has_previous_page: bool = strawberry.field(
        description="Whether items precede this page: page back with `before: startCursor`. When paging forward "
                    "(`first`), true if `after` was given."
    )
    start_cursor: str | None = strawberry.field(description="The cursor of the first edge; null on an empty page.")
    end_cursor: str | None = strawberry.field(description="The cursor of the last edge; null on an empty page.")


# "{node}" in the descriptions of Connection and Edge is replaced by the node type's name in
# each specialised type (see finish_descriptions), so `PostConnection` says it holds posts.
@strawberry.type(description="One `{node}` of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        description="Opaque position of this `{node}` in the list: pass it as `after` or `before`. Valid only for "
                    "the field (and sort) that handed it out."
    )
    node: T = strawberry.field(description="The `{node}` itself.")


@strawberry.type(
    description="A page of `{node}` items (Relay cursor connection). Page forward with `first`/`after` or "
                "backward with `last`/`before`; cursors are keyset positions, so rows added meanwhile do not "
                "shift a page."
)
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The `{node}` items of this page, in the list's order.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more `{node}` items lie either side.")
    _page: strawberry.Private[Page[Any]]

    @strawberry.field(description="How many `{node}` items the whole list holds (all pages), counted only when "
                                  "asked for.")
    async def total_count(self) -> int:
        return await self._page.count()

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
        for argument in field.arguments:
            if argument.python_name == "input" and argument.description is None:
                argument.description = "What to do: every field is described on the input type."

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


def errors_field() -> Any:
    """A payload's ``errors`` field: empty on success."""
    return strawberry.field(
        default_factory=no_errors,
        description="Why nothing was changed; empty on success (and then the other fields are set).",
    )


# Connection arguments, the same on every connection field.
First = Annotated[int | None, strawberry.argument(
    description="Page forward: at most this many items from the start, or after `after` (0 to 100; default 20 "
                "when neither `first` nor `last` is given). Not with `last`."
)]
After = Annotated[str | None, strawberry.argument(
    description="Page forward from here: the `endCursor` (or an edge's `cursor`) of a page of this same field."
)]
Last = Annotated[int | None, strawberry.argument(
    description="Page backward: at most this many items from the end, or before `before` (0 to 100). The page "
                "still lists its items in the field's order. Not with `first`."
)]
Before = Annotated[str | None, strawberry.argument(
    description="Page backward from here: the `startCursor` (or an edge's `cursor`) of a page of this same field."
)]


def node_keys(node_ids: Iterable[str]) -> list[int | None]:
    """Database keys of node ids; None for one that is not a number."""
    parsed: list[int | None] = []
    for node_id in node_ids:
        try:
            parsed.append(int(node_id))
        except ValueError:
            parsed.append(None)
    return parsed


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


# -- descriptions a decorator cannot give ---------------------------------------------------


def describe_values(enum: Any, **descriptions: str) -> Any:
    """Describe the values of an enum made by ``strawberry.enum`` from a lower layer's Enum
    (its members cannot carry ``strawberry.enum_value`` without that layer knowing GraphQL)."""
    values = {value.name: value for value in enum.__strawberry_definition__.values}
    if unknown := set(descriptions) - set(values):
        raise ValueError(f"{enum.__name__} has no value {sorted(unknown)}")
    for name, description in descriptions.items():
        values[name].description = description
    return enum


# Strawberry's own wording for its built-in scalars, replaced by what a client must know.
_SCALARS = {
    "DateTime": (
        "Date with time (isoformat)",
        "An instant as an ISO 8601 string with its UTC offset, e.g. `2026-11-30T20:21:09.123456+00:00`. "
        "Kameng answers in UTC.",
    ),
    "Decimal": (
        "Decimal (fixed-point)",
        "An exact decimal number as a string, e.g. `\"10.00\"`: money and rates never travel as floats.",
    ),
}


def finish_descriptions(schema: Any) -> None:
    """Fill ``{node}`` in the descriptions of each ``XConnection``/``XEdge`` with ``X``, name
    the type in each Node's ``id``, and replace Strawberry's terse built-in scalar descriptions
    (on the graphql-core objects of ``schema``, which the SDL and introspection read)."""
    for name, gql_type in schema._schema.type_map.items():
        if name in _SCALARS and gql_type.description == _SCALARS[name][0]:
            gql_type.description = _SCALARS[name][1]
        if name == "Node":
            gql_type.description = "An object with a global ID, which `node(id:)` fetches again."
        if name == "Node" or any(i.name == "Node" for i in getattr(gql_type, "interfaces", ())):
            gql_type.fields["id"].description = (
                f"Global ID of this {name}: opaque and stable. Pass it to `node(id:)`, `nodes(ids:)` or an "
                "argument that expects this object's ID; do not parse it."
            )
        definition = getattr(gql_type, "extensions", None) and gql_type.extensions.get("strawberry-definition")
        concrete_of = getattr(definition, "concrete_of", None)
        if concrete_of is None or concrete_of.origin not in (Connection, Edge):
            continue
        node = name.removesuffix("Connection").removesuffix("Edge")
        gql_type.description = gql_type.description.replace("{node}", node)
        for field in gql_type.fields.values():
            if field.description:
                field.description = field.description.replace("{node}", node)


describe_values(
    ErrorCode,
    INVALID_INPUT="A value is malformed or out of range; `field` names it.",
    NOT_FOUND="No such object, or the viewer may not see it (the two are not told apart).",
    UNAUTHENTICATED="Sign in first (or the access or refresh token is no longer valid).",
    FORBIDDEN="Signed in, but the role or ownership does not allow it.",
    INVALID_CREDENTIALS="Wrong email or password (which one is not said).",
    EMAIL_TAKEN="An account with this email already exists.",
    RATE_LIMITED="Too many attempts; wait a while and try again.",
    SOLD_OUT="The product has no stock left.",
    INSUFFICIENT_STOCK="Fewer units are left than the quantity asked for.",
    INSUFFICIENT_BALANCE="The wallet (or points balance) holds too little.",
    INVALID_STATE="Not possible in the object's current state (e.g. cancelling a paid order).",
    COUPON_INVALID="The coupon cannot be used here: expired, used, below its minimum spend or out of scope.",
    DUPLICATE="Already done (e.g. the same card key, or a second check-in today).",
)
